// Loop devices without udev: one per partition, each configured with the
// partition's offset and size (LOOP_CONFIGURE), so no partition scan and no
// /dev/loopNpM node is needed. Every device is auto-clear: the kernel
// detaches it when its last user goes (our fd, then the mounts of its file
// system), so a run that dies leaves no device behind once its mounts are gone.
import { ptr, type FFIFunction } from "bun:ffi";
import { closeSync, constants, existsSync, openSync, readFileSync } from "node:fs";
import { type Lib, dlopenLibc, errno, strerror } from "../../sys/ffi.ts";
import { SpawnctlError } from "../../util/errors.ts";

// ioctl with a pointer argument, and with an integer one (LOOP_CTL_GET_FREE)
const WITH_PTR = { ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" } } as const satisfies Record<string, FFIFunction>;
const WITH_INT = { ioctl: { args: ["i32", "u64", "u64"], returns: "i32" } } as const satisfies Record<string, FFIFunction>;
let lib: Lib<typeof WITH_PTR> | undefined;
let libN: Lib<typeof WITH_INT> | undefined;
function c(): Lib<typeof WITH_PTR> {
  if (!lib) lib = dlopenLibc(WITH_PTR);
  return lib;
}
function cn(): Lib<typeof WITH_INT> {
  if (!libN) libN = dlopenLibc(WITH_INT);
  return libN;
}

// <linux/loop.h>
const LOOP_CONFIGURE = 0x4c0a;
const LOOP_CTL_GET_FREE = 0x4c82;
export const LO_FLAGS = { READ_ONLY: 1, AUTOCLEAR: 4, PARTSCAN: 8, DIRECT_IO: 16 } as const;
// struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
const CONFIG_SIZE = 8 + 232 + 64;
const INFO = 8;
const EBUSY = 16;

export interface LoopDevice {
  /** /dev/loopN */
  path: string;
  number: number;
  /** our open fd on it: the device stays attached while it or a mount holds it */
  fd: number;
  readOnly: boolean;
}

/** The loop_config record LOOP_CONFIGURE takes (exported for tests). */
export function loopConfig(backingFd: number, offset: number, size: number, flags: number, name: string): Uint8Array {
  const b = new Uint8Array(CONFIG_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, backingFd, true);
  dv.setUint32(4, 0, true);
  dv.setBigUint64(INFO + 24, BigInt(offset), true);
  dv.setBigUint64(INFO + 32, BigInt(size), true);
  dv.setUint32(INFO + 52, flags, true);
  // lo_file_name: shown by losetup; the kernel's backing_file is the real path
  const nameBytes = new TextEncoder().encode(name).subarray(0, 63);
  b.set(nameBytes, INFO + 56);
  return b;
}

function devicePath(n: number): string {
  return `/dev/loop${n}`;
}

/** Open /dev/loopN; where no devtmpfs made the node, say so (no udev is needed, but a node is). */
function openDevice(n: number, ro: boolean): number {
  const p = devicePath(n);
  // (devtmpfs makes the node of a device LOOP_CTL_GET_FREE just added; give it a moment)
  for (let i = 0; i < 50 && !existsSync(p); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  if (!existsSync(p)) {
    let dev = "";
    try {
      dev = readFileSync(`/sys/block/loop${n}/dev`, "utf8").trim();
    } catch {
      /* none */
    }
    throw new SpawnctlError(`attaching a loop device: ${p} does not exist${dev ? ` (the kernel has it as ${dev}; is /dev a devtmpfs?)` : ""}`);
  }
  return openSync(p, (ro ? constants.O_RDONLY : constants.O_RDWR) | 0o2000000 /* O_CLOEXEC */);
}

/**
 * A loop device over `length` bytes of `backingFd` from `offset`. Another
 * process may take the free device between LOOP_CTL_GET_FREE and
 * LOOP_CONFIGURE (EBUSY): then the next free one is asked for.
 */
export function attachLoop(backingFd: number, offset: number, length: number, readOnly: boolean, name: string): LoopDevice {
  let ctl: number;
  try {
    ctl = openSync("/dev/loop-control", constants.O_RDWR | 0o2000000);
  } catch (e) {
    throw new SpawnctlError(`attaching a loop device: opening /dev/loop-control: ${(e as Error).message.replace(/^[A-Z]+: /, "").replace(/, open .*$/, "")} (is the loop module loaded?)`);
  }
  try {
    const flags = LO_FLAGS.AUTOCLEAR | (readOnly ? LO_FLAGS.READ_ONLY : 0);
    const cfg = loopConfig(backingFd, offset, length, flags, name);
    for (let attempt = 0; ; attempt++) {
      const n = cn().ioctl(ctl, LOOP_CTL_GET_FREE, 0) as number;
      if (n < 0) throw new SpawnctlError(`attaching a loop device: LOOP_CTL_GET_FREE: ${strerror(errno())}`, { errno: errno() });
      const fd = openDevice(n, readOnly);
      const r = c().ioctl(fd, LOOP_CONFIGURE, ptr(cfg)) as number;
      if (r === 0) return { path: devicePath(n), number: n, fd, readOnly };
      const err = errno();
      closeSync(fd);
      if (err === EBUSY && attempt < 64) continue;
      throw new SpawnctlError(`attaching ${devicePath(n)}: LOOP_CONFIGURE: ${strerror(err)}`, { errno: err, syscall: "ioctl" });
    }
  } finally {
    closeSync(ctl);
  }
}

/** Let go of our fd: an auto-clear device goes once no mount holds it. */
export function releaseLoop(d: LoopDevice): void {
  if (d.fd < 0) return;
  try {
    closeSync(d.fd);
  } catch {
    /* closed */
  }
  d.fd = -1;
}
