// The libc calls the netlink code needs, through bun:ffi. Socket calls are
// safe in Bun's threaded process; setns(CLONE_NEWNET) is too, because it only
// moves the calling thread — which is why enterNetns() always moves back.
// Loaded lazily, so importing this module costs nothing.
import { CString, ptr, toArrayBuffer, type FFIFunction, type Pointer } from "bun:ffi";
import { dlopenLibc } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";

const SYMBOLS = {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
  recvfrom: { args: ["i32", "ptr", "u64", "i32", "ptr", "ptr"], returns: "i64" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  open: { args: ["cstring", "i32"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  strerror: { args: ["i32"], returns: "ptr" },
  __errno_location: { args: [], returns: "ptr" },
  if_nametoindex: { args: ["cstring"], returns: "u32" },
} as const satisfies Record<string, FFIFunction>;

let cached: ReturnType<typeof dlopenLibc<typeof SYMBOLS>> | undefined;

function libc() {
  cached ??= dlopenLibc(SYMBOLS);
  return cached;
}

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const SOL_NETLINK = 270;
export const CLONE_NEWNET = 0x40000000;
export const MSG_TRUNC = 0x20;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

export const EINTR = 4;
export const EAGAIN = 11;
export const EPROTONOSUPPORT = 93;

/** errno of the last failed libc call on this thread. Read it right after the call. */
function lastErrno(): number {
  const p = libc().__errno_location() as Pointer;
  return new Int32Array(toArrayBuffer(p, 0, 4))[0]!;
}

export function strerror(errno: number): string {
  const p = libc().strerror(errno) as Pointer | null;
  return p ? new CString(p).toString() : `errno ${errno}`;
}

function fail(syscall: string, what?: string): never {
  const errno = lastErrno();
  throw new SpawnctlError(`${syscall}${what ? ` ${what}` : ""}: ${strerror(errno)}`, { errno, syscall });
}

/** socket(2) with SOCK_CLOEXEC; returns the fd. */
export function socket(domain: number, type: number, protocol: number): number {
  const fd = libc().socket(domain, type | SOCK_CLOEXEC, protocol) as number;
  if (fd < 0) fail("socket");
  return fd;
}

/** bind(2) a netlink socket; port id 0 lets the kernel pick a unique one. */
export function bindNetlink(fd: number, groups = 0): void {
  const sa = new Uint8Array(12); // struct sockaddr_nl
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_NETLINK, true);
  v.setUint32(8, groups, true);
  if (libc().bind(fd, ptr(sa), sa.length) < 0) fail("bind");
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): boolean {
  const v = new Int32Array([value]);
  return libc().setsockopt(fd, level, name, ptr(v), 4) === 0;
}

/** SO_RCVTIMEO: a blocking recv gives EAGAIN after this many milliseconds. */
export function setReceiveTimeout(fd: number, ms: number): void {
  const tv = new BigInt64Array([BigInt(Math.floor(ms / 1000)), BigInt((ms % 1000) * 1000)]); // struct timeval
  if (libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ptr(tv), 16) < 0) fail("setsockopt", "SO_RCVTIMEO");
}

/** sendto(2) to the kernel (the zeroed sockaddr_nl is port id 0). */
export function sendToKernel(fd: number, buf: Uint8Array): void {
  const sa = new Uint8Array(12);
  new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
  for (;;) {
    const n = Number(libc().sendto(fd, ptr(buf), buf.length, 0, ptr(sa), sa.length));
    if (n >= 0) {
      // netlink datagrams are sent whole or not at all
      if (n !== buf.length) throw new SpawnctlError(`sendto: sent ${n} of ${buf.length} bytes`, { syscall: "sendto" });
      return;
    }
    if (lastErrno() !== EINTR) fail("sendto");
  }
}

/**
 * One datagram into buf. Returns its full length (MSG_TRUNC), which is larger
 * than buf when the datagram did not fit, or -EAGAIN when SO_RCVTIMEO expired.
 */
export function receive(fd: number, buf: Uint8Array): number {
  for (;;) {
    const n = Number(libc().recvfrom(fd, ptr(buf), buf.length, MSG_TRUNC, null, null));
    if (n >= 0) return n;
    const e = lastErrno();
    if (e === EAGAIN) return -EAGAIN;
    if (e !== EINTR) fail("recvfrom");
  }
}

export function close(fd: number): void {
  libc().close(fd);
}

/** open(2) read-only with O_CLOEXEC, e.g. a namespace file. */
export function openReadOnly(path: string): number {
  const fd = libc().open(Buffer.from(`${path}\0`), O_RDONLY | O_CLOEXEC) as number;
  if (fd < 0) fail("open", path);
  return fd;
}

/**
 * Run fn with the calling thread in the network namespace `nsFd`, then move
 * the thread back. Only the thread moves, so fn must be synchronous: a
 * socket opened in fn stays in the namespace it was created in.
 */
export function inNetns<T>(nsFd: number, fn: () => T): T {
  // /proc/thread-self, not /proc/self: the process's main thread may not be this one
  const home = openReadOnly("/proc/thread-self/ns/net");
  try {
    if (libc().setns(nsFd, CLONE_NEWNET) < 0) fail("setns");
    try {
      return fn();
    } finally {
      if (libc().setns(home, CLONE_NEWNET) < 0) {
        // The JS thread would keep running in the other namespace; nothing
        // below can be trusted after that.
        const errno = lastErrno();
        throw new SpawnctlError(`setns back to the original network namespace: ${strerror(errno)}`, { errno, syscall: "setns" });
      }
    }
  } finally {
    close(home);
  }
}

/** The ifindex of a link by its (primary) name in the calling thread's network
 * namespace, through an ioctl (no netlink dump to encode and decode); 0 if none. */
export function ifIndex(name: string): number {
  return libc().if_nametoindex(Buffer.from(`${name}\0`)) as number;
}
