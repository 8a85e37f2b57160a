// One OCI layer (a tar changeset) unpacked into a directory overlayfs can
// stack: a whiteout `.wh.NAME` becomes the character device 0:0 overlayfs
// reads as "NAME is deleted", an opaque marker `.wh..wh..opq` becomes the
// overlay.opaque xattr on its directory (both user.* and trusted.*, so the
// layer reads the same with and without userxattr). Everything else is
// extracted with import-tar's rules: nothing outside the layer (absolute
// names, "..", symlinked parents that leave it fail the layer), hardlinks,
// devices, ownership and xattrs kept, except overlayfs's own xattrs, which a
// layer may not bring (they would redirect lookups to other layers).
import { lstatSync, realpathSync } from "node:fs";
import { extractTar, type ExtractStats } from "../archive/extract.ts";
import { readTar, type TarEntry } from "../archive/tar.ts";
import { setXattr, strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";
const EMPTY = new Uint8Array(0);
const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;

function split(path: string): [dir: string, base: string] {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return i < 0 ? ["", p] : [p.slice(0, i), p.slice(i + 1)];
}

/** The layer's entries in overlayfs form; opaque directories are collected into `opaque`. */
export function* overlayEntries(entries: Iterable<TarEntry>, opaque: string[], what: string): Generator<TarEntry> {
  for (const e of entries) {
    for (const k of [...e.xattrs.keys()]) if (OVERLAY_XATTR.test(k)) e.xattrs.delete(k);
    const [dir, base] = split(e.path);
    if (base === OPAQUE) {
      opaque.push(dir);
      continue;
    }
    if (base.startsWith(WH)) {
      const name = base.slice(WH.length);
      if (name === "" || name === "." || name === ".." || name.startsWith(WH)) throw new SpawnctlError(`${what}: the whiteout ${JSON.stringify(e.path)} names no file.`);
      yield {
        ...e, path: dir ? `${dir}/${name}` : name, type: "char", mode: 0, size: 0, data: EMPTY, linkname: "", devmajor: 0, devminor: 0, xattrs: new Map(),
      };
      continue;
    }
    yield e;
  }
}

const dirEntry = (path: string): TarEntry => ({
  path, type: "dir", mode: 0o755, uid: 0, gid: 0, uname: "", gname: "", mtime: Math.floor(Date.now() / 1000), size: 0, linkname: "", devmajor: 0, devminor: 0, xattrs: new Map(), data: EMPTY,
});

/** Unpack the uncompressed layer `tar` into the existing, empty directory `root`. */
export function unpackLayer(tar: Uint8Array, root: string, what: string): ExtractStats {
  const opaque: string[] = [];
  const opts = { refuseEscapes: true, devices: true, owners: true, xattrs: true, name: what };
  const stats = extractTar(overlayEntries(readTar(tar, { name: what }), opaque, what), root, opts);
  const realRoot = realpathSync(root);
  for (const dir of opaque) {
    let path = dir ? `${root}/${dir}` : root;
    let exists = true;
    try {
      lstatSync(path);
    } catch {
      exists = false;
    }
    // the marker's directory, made with the same rules as any entry when the layer has no entry for it
    if (!exists) extractTar([dirEntry(dir)], root, opts);
    path = realpathSync(path);
    if (path !== realRoot && !path.startsWith(`${realRoot}/`)) throw new SpawnctlError(`${what}: the opaque marker of ${JSON.stringify(dir)} leads out of the layer.`);
    if (!lstatSync(path).isDirectory()) throw new SpawnctlError(`${what}: the opaque marker's ${JSON.stringify(dir)} is not a directory.`);
    for (const ns of ["trusted", "user"]) {
      const r = setXattr(path, `${ns}.overlay.opaque`, new TextEncoder().encode("y"));
      if (r !== 0) throw new SpawnctlError(`${what}: marking ${dir || "/"} opaque: setxattr ${ns}.overlay.opaque: ${strerror(r)}`, { errno: r });
    }
  }
  return stats;
}
