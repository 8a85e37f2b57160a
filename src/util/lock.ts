// Image locks, compatible with systemd-nspawn's: a lock file beside the tree
// (<parent>/.#<name>.lck) and a global one by inode under
// /run/systemd/nspawn/locks. Exclusive for a writable run, shared for
// --read-only, -x and --volatile, so several read-only users can share a tree.
import { closeSync, fstatSync, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import { LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, flock, strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "./errors.ts";

export interface Lock {
  release(): void;
  /** the lock files and the fds that hold them (to hand them on to a supervisor) */
  held(): Array<{ fd: number; path: string }>;
}

const GLOBAL_DIR = "/run/systemd/nspawn/locks";
const EWOULDBLOCK = 11;

/** Is the file open as `fd` still the one at `path`? (A lock's previous holder may have unlinked it between our open and flock.) */
export function stillAt(fd: number, path: string): boolean {
  const mine = fstatSync(fd);
  let cur;
  try {
    cur = statSync(path);
  } catch {
    return false;
  }
  return cur.ino === mine.ino && cur.dev === mine.dev;
}

/** Take a lock file (flock, non-blocking); `busy` makes the error when another process holds it. */
export function takeFile(path: string, shared: boolean, busy: () => SpawnctlError): { fd: number; path: string } {
  for (;;) {
    const fd = openSync(path, "a", 0o600);
    const r = flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
    if (r !== 0) {
      closeSync(fd);
      if (r === EWOULDBLOCK) throw busy();
      throw new SpawnctlError(`locking ${path}: flock: ${strerror(r)}`, { errno: r });
    }
    // the previous holder may have unlinked the file between our open and
    // flock; then we hold a lock nobody else can see: take it again
    if (stillAt(fd, path)) return { fd, path };
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

/** Release locks a previous process handed down as inherited fds. */
export function releaseInherited(locks: Array<{ fd: number; path: string }>): void {
  for (const l of locks) {
    try {
      releaseFile(l);
    } catch {
      /* the fd was not inherited after all */
    }
  }
}

/** Release a lock file taken with takeFile, removing it when nobody else holds it. */
export function releaseFile(h: { fd: number; path: string }): void {
  // remove the file only when nobody else holds it
  if (flock(h.fd, LOCK_EX | LOCK_NB) === 0) {
    try {
      unlinkSync(h.path);
    } catch {
      /* already gone */
    }
  }
  flock(h.fd, LOCK_UN);
  closeSync(h.fd);
}

export interface TreeLockOptions {
  /** while this says so (a machine is being cleaned up, whose locks go last), a busy tree is waited for, up to waitMs */
  waitWhile?: () => boolean;
  waitMs?: number;
}

export function lockTree(dir: string, shared: boolean, opts: TreeLockOptions = {}): Lock {
  const deadline = Date.now() + (opts.waitMs ?? 10_000);
  for (;;) {
    try {
      return lockTreeOnce(dir, shared);
    } catch (e) {
      const busy = e instanceof SpawnctlError && e.message.endsWith("is currently busy.");
      if (!busy || !opts.waitWhile || Date.now() >= deadline || !opts.waitWhile()) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function lockTreeOnce(dir: string, shared: boolean): Lock {
  const busy = () => new SpawnctlError(`Directory tree ${dir} is currently busy.`);
  const held: Array<{ fd: number; path: string }> = [];
  try {
    const st = statSync(dir);
    mkdirSync(GLOBAL_DIR, { recursive: true, mode: 0o755 });
    held.push(takeFile(`${GLOBAL_DIR}/inode-${st.dev}:${st.ino}`, shared, busy));
    if (dir !== "/") {
      const parts = dir.replace(/\/+$/, "").split("/");
      const name = parts.pop();
      const beside = `${parts.join("/") || ""}/.#${name}.lck`;
      try {
        held.push(takeFile(beside, shared, busy));
      } catch (e) {
        // a tree on a read-only file system (a rescue system's /) cannot get
        // the lock file beside it; nothing can write to it either, so a
        // shared user goes on with the global lock alone, as nspawn does
        if (!(shared && (e as NodeJS.ErrnoException).code === "EROFS")) throw e;
      }
    }
  } catch (e) {
    for (const h of held.reverse()) releaseFile(h);
    throw e;
  }
  return {
    release() {
      for (const h of held.reverse()) releaseFile(h);
      held.length = 0;
    },
    held: () => held.map((h) => ({ ...h })),
  };
}
