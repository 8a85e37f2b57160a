// The tree a bootstrap builds: a temporary directory beside DEST, renamed
// to DEST at the end, removed on failure (debootstrap and pacstrap alike).
import { readRegular } from "../util/tree.ts";
import {
  chmodSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync,
  rmSync, statSync, unlinkSync, writeSync, type Stats,
} from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { Cleanup } from "../container/prepare.ts";

/**
 * DEST may be missing, or an empty directory (lost+found aside), as for
 * debootstrap and mmdebstrap; anything else is refused, naming it. Run before
 * anything is fetched, and again just before the tree is made. Writes nothing.
 */
export function checkTarget(dest: string): void {
  if (dest === "/" || dest === "" || /^\/+$/.test(dest)) throw new SpawnctlError("Refusing to bootstrap into the root directory.");
  let st: Stats | undefined;
  try {
    st = statSync(dest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR") throw new SpawnctlError(`${dest}: ${fsMessage(e)}`, { cause: e });
  }
  if (st) {
    if (!st.isDirectory()) throw new SpawnctlError(`${dest} exists and is not a directory.`);
    if (readdirSync(dest).some((e) => e !== "lost+found")) throw new SpawnctlError(`${dest} exists and is not empty.`);
    return;
  }
  // DEST is made later with its parents: the nearest one that exists must be a directory
  for (let p = dest.replace(/\/+$/, ""); p.includes("/"); ) {
    p = p.slice(0, p.lastIndexOf("/")) || "/";
    let up: Stats;
    try {
      up = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === "ENOENT" || code === "ENOTDIR") && p !== "/") continue;
      throw new SpawnctlError(`${dest}: ${p}: ${fsMessage(e)}`, { cause: e });
    }
    if (!up.isDirectory()) throw new SpawnctlError(`${dest}: ${p} exists and is not a directory.`);
    return;
  }
}

/** Paths of the target tree: a temporary name beside DEST, renamed at the end. */
export function prepareTarget(dest: string, cleanup: Cleanup): string {
  checkTarget(dest);
  const parent = dest.replace(/\/[^/]+\/?$/, "") || "/";
  mkdirSync(parent, { recursive: true });
  const name = dest.slice(parent.length + 1).replace(/\/$/, "");
  const tmp = mkdtempSync(`${parent}/.#${name}.bootstrap-`);
  chmodSync(tmp, 0o755);
  cleanup.push(() => rmSync(tmp, { recursive: true, force: true }));
  return tmp;
}

/**
 * SIGINT and SIGTERM interrupt a bootstrap: `signal` aborts its downloads,
 * check() throws once it has come, release() stops listening.
 */
export function interruption(): { signal: AbortSignal; check(): void; release(): void } {
  const abort = new AbortController();
  const onSignal = () => abort.abort(new SpawnctlError("Interrupted."));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: abort.signal,
    check() {
      if (abort.signal.aborted) throw abort.signal.reason;
    },
    release() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

// ---------------------------------------------------------------------------
// Writing into the tree from the host
//
// Once packages are unpacked, the tree holds whatever symlinks they ship:
// "etc -> /etc" or "usr/sbin/policy-rc.d -> /etc/passwd" are fine inside the
// container, where an absolute target starts at the tree's root, but a host
// path like `${tree}/etc/hostname` would follow them out of the tree. Every
// file the bootstrap itself writes, reads or removes there goes through these
// functions, which resolve symlinks by hand inside the tree, as the container
// sees them (openat2's RESOLVE_IN_ROOT: an absolute target restarts at the
// root, ".." stops there). The tree is nobody else's while this runs: no
// container is running in it.

const MAX_LINKS = 40;

function treeError(doing: string, path: string, e: unknown): SpawnctlError {
  return new SpawnctlError(`${doing} ${path} in the new tree: ${e instanceof SpawnctlError ? e.message : fsMessage(e)}`, { cause: e });
}

/**
 * The host path of `rel` (relative to the tree's root, "etc/hostname") with
 * every symlink on the way resolved inside `root`; the last component too,
 * unless `nofollow`. Components that do not exist are appended as named.
 */
export function treePath(root: string, rel: string, nofollow = false): string {
  const base = root.replace(/\/+$/, "");
  const phys: string[] = [];
  let todo = rel.split("/");
  let links = 0;
  let missing = false;
  while (todo.length) {
    const c = todo.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      phys.pop();
      continue;
    }
    if (missing || (nofollow && todo.every((t) => t === "" || t === "."))) {
      phys.push(c);
      continue;
    }
    const p = `${base}/${[...phys, c].join("/")}`;
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw treeError("resolving", rel, e);
      missing = true;
      phys.push(c);
      continue;
    }
    if (!st.isSymbolicLink()) {
      phys.push(c);
      continue;
    }
    if (++links > MAX_LINKS) throw new SpawnctlError(`resolving ${rel} in the new tree: too many levels of symbolic links`);
    let target: string;
    try {
      target = readlinkSync(p);
    } catch (e) {
      throw treeError("resolving", rel, e);
    }
    if (target.startsWith("/")) phys.length = 0;
    todo = target.split("/").concat(todo);
  }
  return phys.length ? `${base}/${phys.join("/")}` : base;
}

/** mkdir -p inside the tree. */
export function treeMkdir(root: string, rel: string, mode = 0o755): void {
  const parts = rel.split("/").filter((c) => c !== "" && c !== ".");
  for (let i = 1; i <= parts.length; i++) {
    const p = treePath(root, parts.slice(0, i).join("/"));
    let st: Stats | undefined;
    try {
      st = lstatSync(p);
    } catch {
      try {
        mkdirSync(p, mode);
      } catch (e) {
        throw treeError("creating", rel, e);
      }
      continue;
    }
    if (!st.isDirectory()) throw new SpawnctlError(`creating ${rel} in the new tree: ${parts.slice(0, i).join("/")} is not a directory`);
  }
}

/**
 * Write a regular file inside the tree. Whatever else stands there (a FIFO,
 * a device node, a socket) is removed first, so that the write cannot block
 * or reach a device; a directory there is an error.
 */
export function treeWrite(root: string, rel: string, data: string | Uint8Array, mode = 0o644): void {
  const p = treePath(root, rel);
  let fd = -1;
  try {
    let st: Stats | undefined;
    try {
      st = lstatSync(p);
    } catch {
      /* a new file */
    }
    if (st?.isDirectory()) throw new SpawnctlError("it is a directory");
    if (st && !st.isFile()) unlinkSync(p);
    fd = openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    if (st === undefined) fchmodSync(fd, mode); // the umask does not apply to what we mean
  } catch (e) {
    throw treeError("writing", rel, e);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** A regular file of the tree as text, or undefined (missing, not a regular file, larger than `max`). */
export function treeRead(root: string, rel: string, max = 16 << 20): string | undefined {
  let p: string;
  try {
    p = treePath(root, rel);
  } catch {
    return undefined;
  }
  return readRegular(p, max);
}

/** lstat of `rel` in the tree (the last component not followed), or undefined. */
export function treeLstat(root: string, rel: string): Stats | undefined {
  try {
    return lstatSync(treePath(root, rel, true));
  } catch {
    return undefined;
  }
}

/** Remove a file (or symlink, ...) of the tree if it is there; the last component is not followed. */
export function treeRemove(root: string, rel: string): void {
  const p = treePath(root, rel, true);
  try {
    rmSync(p, { force: true });
  } catch (e) {
    throw treeError("removing", rel, e);
  }
}
