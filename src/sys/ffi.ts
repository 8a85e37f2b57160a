// The FFI boundary: the embedded shim and the few libc calls that are safe in
// a threaded process. Loaded lazily, so importing this module costs nothing.
import { dlopen, CString, ptr, type ConvertFns, type FFIFunction, type Pointer } from "bun:ffi";
import { readFileSync, readdirSync, writeSync, closeSync } from "node:fs";
import { release } from "node:os";
import { SHIM_SYMBOLS, ABI_VERSION } from "./abi.ts";
import { SpawnctlError } from "../util/errors.ts";
// The shared object is embedded in the executable by bun build --compile.
import shimFile from "../../build/nsh.so" with { type: "file" };

const LIBC_SYMBOLS = {
  memfd_create: { args: ["cstring", "u32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  open: { args: ["cstring", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  syscall: { args: ["i64", "i64", "i64", "i64"], returns: "i64" },
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  strerror: { args: ["i32"], returns: "ptr" },
  umount2: { args: ["cstring", "i32"], returns: "i32" },
  mount: { args: ["cstring", "cstring", "cstring", "u64", "cstring"], returns: "i32" },
  getuid: { args: [], returns: "u32" },
  geteuid: { args: [], returns: "u32" },
  getpid: { args: [], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
  tcgetpgrp: { args: ["i32"], returns: "i32" },
  isatty: { args: ["i32"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  mkdirat: { args: ["i32", "cstring", "u32"], returns: "i32" },
  symlinkat: { args: ["cstring", "i32", "cstring"], returns: "i32" },
  fchownat: { args: ["i32", "cstring", "u32", "u32", "i32"], returns: "i32" },
  fchmodat: { args: ["i32", "cstring", "u32", "i32"], returns: "i32" },
  readlinkat: { args: ["i32", "cstring", "ptr", "u64"], returns: "i64" },
  unlinkat: { args: ["i32", "cstring", "i32"], returns: "i32" },
  utimensat: { args: ["i32", "cstring", "ptr", "i32"], returns: "i32" },
  mknod: { args: ["cstring", "u32", "u64"], returns: "i32" },
  llistxattr: { args: ["cstring", "ptr", "u64"], returns: "i64" },
  lgetxattr: { args: ["cstring", "cstring", "ptr", "u64"], returns: "i64" },
  lsetxattr: { args: ["cstring", "cstring", "ptr", "u64", "i32"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

/** The typed functions of a symbol table (Bun's own mapping of FFI types to JavaScript ones). */
export type Lib<T extends Record<string, FFIFunction>> = ConvertFns<T>;


let libcCache: Lib<typeof LIBC_SYMBOLS> | undefined;
let shimCache: Lib<typeof SHIM_SYMBOLS> | undefined;

/** The C library's functions `symbols` (glibc, or musl when spawnctl runs on a musl build of Bun). */
export function dlopenLibc<T extends Record<string, FFIFunction>>(symbols: T): Lib<T> {
  try {
    return dlopen("libc.so.6", symbols as never).symbols as never;
  } catch {
    return dlopen(`libc.musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`, symbols as never).symbols as never;
  }
}

export function libc(): Lib<typeof LIBC_SYMBOLS> {
  if (!libcCache) libcCache = dlopenLibc(LIBC_SYMBOLS);
  return libcCache;
}

export function errno(): number {
  const p = libc().__errno_location() as Pointer;
  return new Int32Array(toBuffer(p, 4))[0]!;
}

import { toArrayBuffer } from "bun:ffi";
function toBuffer(p: Pointer, len: number): ArrayBuffer {
  return toArrayBuffer(p, 0, len);
}

export function strerror(e: number): string {
  const p = libc().strerror(e) as Pointer | null;
  const text = p ? new CString(p).toString() : `errno ${e}`;
  return e === ENOSYS ? text + oldKernelHint(release()) : text;
}

const ENOSYS = 38;

/**
 * What ENOSYS means on a kernel older than 5.6: spawnctl resolves every path
 * in a tree with openat2(RESOLVE_IN_ROOT), which came in 5.6 (RHEL 7 and 8,
 * Debian 10 and Ubuntu 18.04 run older ones).
 */
export function oldKernelHint(kernel: string): string {
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m || Number(m[1]) > 5 || (Number(m[1]) === 5 && Number(m[2]) >= 6)) return "";
  return ` (spawnctl needs Linux 5.6 or newer; this kernel is ${kernel})`;
}

/** The shim as a file dlopen can map, and the fd to close once it is mapped.
 * Inside the compiled binary the embedded copy goes to a sealed memfd: Bun's
 * own extraction goes to $TMPDIR, which is often mounted noexec on servers. */
function shimPath(): { path: string; fd: number } {
  if (!shimFile.startsWith("/$bunfs/") && !shimFile.startsWith("B:/~BUN/")) return { path: shimFile, fd: -1 };
  const fd = sealedMemfd("spawnctl-shim", readFileSync(shimFile));
  return { path: `/proc/self/fd/${fd}`, fd };
}

export function shim(): Lib<typeof SHIM_SYMBOLS> {
  if (!shimCache) {
    const { path, fd } = shimPath();
    let lib: { symbols: unknown };
    try {
      lib = dlopen(path, SHIM_SYMBOLS as never);
    } finally {
      // the mapping stays; no fd of the shim is kept open
      if (fd >= 0) libc().close(fd);
    }
    shimCache = lib.symbols as Lib<typeof SHIM_SYMBOLS>;
    const v = shimCache!.nsh_abi_version();
    if (v !== ABI_VERSION) throw new Error(`the embedded shim speaks ABI ${v}, this program ${ABI_VERSION}`);
  }
  return shimCache!;
}

export function pipe(nonblockingRead = false): [number, number] {
  const fds = new Int32Array(2);
  if (libc().pipe2(ptr(fds), 0x80000 /* O_CLOEXEC */) < 0) throw new SpawnctlError(`pipe2: ${strerror(errno())}`);
  if (nonblockingRead) shim().nsh_set_nonblock(fds[0]!, 1);
  return [fds[0]!, fds[1]!];
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(); returns 0 or the errno. */
export function flock(fd: number, op: number): number {
  return libc().flock(fd, op) < 0 ? errno() : 0;
}

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined || fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

/** mknod(2) for device nodes and fifos (Node has no binding); returns 0 or the errno. */
export function mknod(path: string, mode: number, dev: number): number {
  return libc().mknod(cstr(path), mode, dev) < 0 ? errno() : 0;
}

/** All extended attributes of a path (not following symlinks). */
export function listXattrs(path: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const p = cstr(path);
  const size = Number(libc().llistxattr(p, null, 0));
  if (size <= 0) return out;
  const names = new Uint8Array(size);
  const n = Number(libc().llistxattr(p, ptr(names), size));
  if (n <= 0) return out;
  for (const name of Buffer.from(names.subarray(0, n)).toString("latin1").split("\0").filter(Boolean)) {
    const nb = cstr(name);
    const len = Number(libc().lgetxattr(p, nb, null, 0));
    if (len < 0) continue;
    const val = new Uint8Array(Math.max(len, 1));
    const got = Number(libc().lgetxattr(p, nb, ptr(val), len));
    if (got >= 0) out.set(name, val.subarray(0, got));
  }
  return out;
}

export function setXattr(path: string, name: string, value: Uint8Array): number {
  const v = value.length ? value : new Uint8Array(1);
  return libc().lsetxattr(cstr(path), cstr(name), ptr(v), value.length, 0) < 0 ? errno() : 0;
}

/** isatty(3); node:tty costs most of a millisecond to load */
export function isatty(fd: number): boolean {
  return libc().isatty(fd) === 1;
}

/** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC) */
export function seqpacketPair(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().socketpair(1, 5 | 0x80000, 0, ptr(fds)) < 0) throw new SpawnctlError(`socketpair: ${strerror(errno())}`);
  return [fds[0]!, fds[1]!];
}

const MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033, F_SEAL_SEAL = 1, F_SEAL_SHRINK = 2, F_SEAL_GROW = 4, F_SEAL_WRITE = 8;

/**
 * A memfd holding `bytes`, sealed (no write, grow, shrink or further seal) and
 * reopened read-only, for an executable or a library spawnctl runs: nothing
 * that gets hold of it (a container process through /proc) can change code
 * that host root runs (the class of runc's CVE-2019-5736). Close-on-exec.
 */
export function sealedMemfd(name: string, bytes: Uint8Array): number {
  const c = libc();
  const fd = c.memfd_create(Buffer.from(`${name}\0`), MFD_CLOEXEC | MFD_ALLOW_SEALING) as number;
  if (fd < 0) throw new SpawnctlError(`memfd_create: ${strerror(errno())} (spawnctl needs memfd support, Linux 3.17 or later)`);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    if (c.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) throw new SpawnctlError(`sealing the ${name} memfd: ${strerror(errno())} (spawnctl needs sealable memfds, Linux 3.17 or later)`);
    const ro = c.open(cstr(`/proc/self/fd/${fd}`), 0x80000 /* O_RDONLY | O_CLOEXEC */, 0) as number;
    if (ro < 0) throw new SpawnctlError(`reopening the ${name} memfd read-only: ${strerror(errno())} (is /proc mounted?)`);
    return ro;
  } finally {
    c.close(fd);
  }
}

/** Mark every fd from 3 up close-on-exec: what the caller left open (a host
 * file, a socket) never reaches a child, let alone a container. */
export function cloexecInherited(): void {
  // close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); kernels before 5.11 lack the
  // flag: then each fd listed in /proc/self/fd
  if (Number(libc().syscall(436, 3, 0xffffffff, 1 << 2)) === 0) return;
  for (const f of readdirSync("/proc/self/fd")) {
    const fd = Number(f);
    if (fd > 2) libc().fcntl(fd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
  }
}

/** Is this the compiled single binary (as opposed to `bun src/main.ts`)? */
export const COMPILED = shimFile.startsWith("/$bunfs/") || shimFile.startsWith("B:/~BUN/");
