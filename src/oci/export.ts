// export-oci: an OCI image of the pool as an oci-archive (a tar of an OCI
// image layout: oci-layout, index.json, blobs/sha256/...), readable by
// import-oci, skopeo (oci-archive:) and umoci. The store keeps layers
// unpacked only, so each goes out as a new gzip layer made from its
// directory, and the image's own changes (the upper layer), if any, as one
// more: overlayfs's whiteouts (0:0 devices, the opaque xattr) turned back
// into the OCI layer spec's .wh. entries; a new config lists their diff_ids.
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, writeSync } from "node:fs";
import { TarWriter } from "../archive/tar.ts";
import { isatty, listXattrs } from "../sys/ffi.ts";
import { SpawnctlError, fsMessage, usage } from "../util/errors.ts";
import { info } from "../util/log.ts";
import { formatBytes } from "../util/table.ts";
import { removePath, runJob } from "../image/job.ts";
import { lockImage, requireImage } from "../image/pool.ts";
import { tempPath } from "../image/names.ts";
import { readRecord } from "./image-dir.ts";
import { configSchema, MT, parseDoc, type Descriptor, type Manifest } from "./schema.ts";
import { hasBlob, layerPath, readBlob, sha256, storeAt } from "./store.ts";

const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;

function devNumbers(rdev: number): [number, number] {
  const d = BigInt(rdev);
  return [Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)), Number((d & 0xffn) | ((d >> 12n) & ~0xffn))];
}

/** A directory in overlayfs form (a layer, an upper layer) as an OCI layer tar, or undefined when it is empty. */
export function layerTar(upper: string): Uint8Array | undefined {
  const w = new TarWriter();
  const inodes = new Map<number, string>();
  let n = 0;
  const walk = (rel: string) => {
    const dir = rel ? `${upper}/${rel}` : upper;
    for (const name of readdirSync(dir).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const full = `${upper}/${path}`;
      const st = lstatSync(full);
      const meta = {
        mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000),
        xattrs: new Map([...listXattrs(full)].filter(([k]) => !OVERLAY_XATTR.test(k))),
      };
      n++;
      if (st.isCharacterDevice() && st.rdev === 0) {
        w.addFile(rel ? `${rel}/.wh.${name}` : `.wh.${name}`, new Uint8Array(0), { mode: 0o644 });
      } else if (st.isDirectory()) {
        w.addDir(path, meta);
        const x = listXattrs(full);
        const opaque = x.get("user.overlay.opaque") ?? x.get("trusted.overlay.opaque");
        if (opaque && new TextDecoder().decode(opaque).startsWith("y")) w.addFile(`${path}/.wh..wh..opq`, new Uint8Array(0), { mode: 0o644 });
        walk(path);
      } else if (st.nlink > 1 && inodes.has(st.ino)) {
        w.addHardlink(path, inodes.get(st.ino)!, meta);
      } else if (st.isFile()) {
        if (st.nlink > 1) inodes.set(st.ino, path);
        w.addFile(path, readFileSync(full), meta);
      } else if (st.isSymbolicLink()) {
        w.addSymlink(path, readlinkSync(full), meta);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const [maj, min] = devNumbers(st.rdev);
        w.addDevice(path, st.isCharacterDevice() ? "char" : "block", maj, min, meta);
      } else if (st.isFIFO()) {
        w.addFifo(path, meta);
      }
      // sockets are not part of an image
    }
  };
  walk("");
  return n ? w.finish() : undefined;
}

export async function exportOci(name: string, file: string): Promise<void> {
  const doing = `exporting image '${name}' to ${file}`;
  const img = requireImage(name);
  if (img.type !== "oci") throw new SpawnctlError(`${doing}: it is a ${img.type} image; export-oci exports OCI images (use export-tar).`);
  if (file === "-" && isatty(1)) throw usage("Refusing to write an archive to a terminal; give a file or pipe the output on.");
  const lock = lockImage(img, true, doing);
  try {
    await runJob(doing, async (job) => {
      const rec = readRecord(img.path);
      const store = storeAt(img.path.slice(0, img.path.lastIndexOf("/")));
      const blobs = new Map<string, Uint8Array>();
      const what = (x: string) => `${x} of the image '${name}'`;
      const cfgText = new TextDecoder().decode(readBlob(store, rec.configDigest, what("the config")));
      parseDoc(configSchema(), cfgText, what("the config"));
      // each layer as it came where its blob is still there, else made anew from its unpacked
      // directory (then with a diff_id of its own); the image's own changes as one more
      const layers: Descriptor[] = [];
      const diffIds: string[] = [];
      const gzipLayer = (tar: Uint8Array) => {
        const gz = Bun.gzipSync(tar as Uint8Array<ArrayBuffer>);
        const d: Descriptor = { mediaType: MT.ociLayerGzip, digest: sha256(gz), size: gz.length };
        blobs.set(d.digest, gz);
        layers.push(d);
        diffIds.push(sha256(tar));
      };
      for (const l of rec.layers) {
        if (hasBlob(store, l.digest)) {
          blobs.set(l.digest, readBlob(store, l.digest, what(`the layer ${l.digest.slice(0, 19)}`)));
          layers.push({ mediaType: l.mediaType, digest: l.digest, size: l.size });
          diffIds.push(l.diffId);
        } else {
          gzipLayer(layerTar(layerPath(store, l.diffId)) ?? new TarWriter().finish());
        }
        await job.tick();
      }
      const changes = layerTar(`${img.path}/upper`);
      if (changes) gzipLayer(changes);
      const cfg = JSON.parse(cfgText) as { rootfs: { diff_ids: string[] }; history?: unknown[] };
      cfg.rootfs.diff_ids = diffIds;
      if (changes && Array.isArray(cfg.history)) cfg.history.push({ created: new Date().toISOString(), created_by: "spawnctl export-oci (the image's own changes)" });
      const cfgBytes = new TextEncoder().encode(JSON.stringify(cfg));
      const config: Descriptor = { mediaType: MT.ociConfig, digest: sha256(cfgBytes), size: cfgBytes.length };
      blobs.set(config.digest, cfgBytes);
      const manifest: Manifest = { schemaVersion: 2, mediaType: MT.ociManifest, config, layers };
      const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
      const manifestType = MT.ociManifest;
      const mDigest = sha256(manifestBytes);
      blobs.set(mDigest, manifestBytes);
      const tag = rec.reference?.split("/").pop()?.split("@")[0]?.split(":")[1];
      const index = {
        schemaVersion: 2, mediaType: MT.ociIndex,
        manifests: [{ mediaType: manifestType, digest: mDigest, size: manifestBytes.length, annotations: { "org.opencontainers.image.ref.name": tag || "latest" } }],
      };
      // "-": standard output (not a terminal); a file: a temporary name beside it, renamed at the end
      const toStdout = file === "-";
      const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) || "/" : ".";
      const tmp = toStdout ? "" : tempPath(dir, "export-oci");
      let fd = 1;
      if (!toStdout) {
        job.removeOnFailure(tmp);
        try {
          fd = openSync(tmp, "wx", 0o644);
        } catch (e) {
          throw new SpawnctlError(`${doing}: ${fsMessage(e)}`, { cause: e });
        }
      }
      let bytes = 0;
      try {
        const w = new TarWriter((c) => {
          for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, c.length - off);
          bytes += c.length;
        });
        const enc = (s: string) => new TextEncoder().encode(s);
        w.addFile("oci-layout", enc(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
        w.addFile("index.json", enc(JSON.stringify(index)));
        w.addDir("blobs");
        w.addDir("blobs/sha256");
        for (const [d, b] of blobs) {
          w.addFile(`blobs/sha256/${d.slice(7)}`, b);
          await job.tick();
        }
        w.finish();
      } finally {
        if (!toStdout) closeSync(fd);
      }
      if (!toStdout) {
        job.onUndo(`removing ${file}`, () => removePath(file));
        renameSync(tmp, file);
      }
      info(`Exported image '${name}'${toStdout ? "" : ` to ${file}`} (${blobs.size} blobs${changes ? ", its own changes as one more layer" : ""}, ${formatBytes(bytes)}).`);
    });
  } finally {
    lock.release();
  }
}
