// Working inside a directory tree we do not trust (a running container's
// root): every path is opened with openat2(RESOLVE_IN_ROOT) relative to an fd
// of that root, and every change is made with the *at() call on a parent
// directory fd, so symlinks in the tree can never redirect us to host files.
import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { cstr, errno, libc, shim, strerror } from "./ffi.ts";
import { O } from "./consts.ts";
import { SpawnctlError } from "../util/errors.ts";

export const RESOLVE = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10 } as const;
export const AT_EMPTY_PATH = 0x1000;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;

function fail(what: string, e: number): never {
  throw new SpawnctlError(`${what}: ${strerror(e)}`, { errno: e });
}

/** openat2(); throws a sentence naming `what` on failure. */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number, what: string): number {
  const fd = shim().nsh_openat2(dirfd, cstr(path), flags, mode, resolve) as number;
  if (fd < 0) fail(what, -fd);
  return fd;
}

/** openat2() that returns -errno instead of throwing */
export function tryOpenat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  return shim().nsh_openat2(dirfd, cstr(path), flags, mode, resolve) as number;
}

/** Open `path` inside the tree rooted at `rootfd` (O_PATH unless flags say otherwise). */
export function openInRoot(rootfd: number, path: string, flags: number = O.PATH, what = `opening ${path}`): number {
  return openat2(rootfd, path.replace(/^\/+/, "") || ".", flags, 0, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS, what);
}

function check(r: number | bigint, what: string): void {
  if (Number(r) < 0) fail(what, errno());
}

export function mkdirat(dirfd: number, name: string, mode: number): number {
  return libc().mkdirat(dirfd, cstr(name), mode) < 0 ? errno() : 0;
}
export function symlinkat(target: string, dirfd: number, name: string, what: string): void {
  check(libc().symlinkat(cstr(target), dirfd, cstr(name)), what);
}
export function lchownat(dirfd: number, name: string, uid: number, gid: number, what: string): void {
  check(libc().fchownat(dirfd, cstr(name), uid, gid, name === "" ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW), what);
}
export function chmodFd(fd: number, mode: number, what: string): void {
  // fchmod() refuses O_PATH fds; the /proc/self/fd link does the same job
  check(libc().fchmodat(-100, cstr(`/proc/self/fd/${fd}`), mode, 0), what);
}
export function readlinkat(dirfd: number, name: string, what: string): string {
  const buf = new Uint8Array(4096);
  const n = Number(libc().readlinkat(dirfd, cstr(name), ptr(buf), buf.length));
  if (n < 0) fail(what, errno());
  return Buffer.from(buf.subarray(0, n)).toString();
}
export function unlinkat(dirfd: number, name: string, dir: boolean): number {
  return libc().unlinkat(dirfd, cstr(name), dir ? AT_REMOVEDIR : 0) < 0 ? errno() : 0;
}
/** set atime/mtime (seconds) on an fd or on `name` in `dirfd` without following a link */
export function utimesAt(dirfd: number, name: string, atime: number, mtime: number): void {
  const ts = new BigInt64Array([BigInt(Math.floor(atime)), BigInt(Math.round((atime % 1) * 1e9)), BigInt(Math.floor(mtime)), BigInt(Math.round((mtime % 1) * 1e9))]);
  libc().utimensat(dirfd, cstr(name), ptr(ts), name === "" ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW);
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* closed */
  }
}

/**
 * Make the directory `path` (absolute, inside the untrusted tree at `root`)
 * with its missing parents, every step resolved inside the tree, so a symlink
 * there (/var/log/journal -> /etc) makes nothing on the host. Returns the
 * directory's real path on the host.
 */
export function mkdirInRoot(root: string, path: string, mode: number): string {
  const rootfd = openat2(-100, root, O.PATH | O.DIRECTORY, 0, 0, `opening ${root}`);
  let dir = rootfd;
  try {
    let sofar = "";
    for (const name of path.split("/").filter(Boolean)) {
      if (name === "." || name === "..") fail(`creating ${path} in ${root}`, 22 /* EINVAL */);
      const e = mkdirat(dir, name, mode);
      if (e !== 0 && e !== 17 /* EEXIST */) fail(`creating ${path} in ${root}`, e);
      // what is there now (a symlink too) is resolved from the tree's root
      sofar += `/${name}`;
      const sub = shim().nsh_openat2(rootfd, cstr(sofar.slice(1)), O.PATH | O.DIRECTORY, 0, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS) as number;
      if (sub < 0) fail(`opening ${path} in ${root}`, -sub);
      if (dir !== rootfd) closeFd(dir);
      dir = sub;
    }
    return readlinkat(-100, `/proc/self/fd/${dir}`, `resolving ${path} in ${root}`);
  } finally {
    if (dir !== rootfd) closeFd(dir);
    closeFd(rootfd);
  }
}
