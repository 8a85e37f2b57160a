// The system calls the image verbs need that Node has no binding for:
// ioctl (file attributes, btrfs, block devices, reflinks), statfs,
// renameat2(RENAME_NOREPLACE) (a raw system call) and lseek(SEEK_DATA/SEEK_HOLE). Loaded lazily;
// every function returns an errno (0 on success) or throws a sentence.
import { ptr, type FFIFunction, type Pointer } from "bun:ffi";
import { closeSync, constants, openSync } from "node:fs";
import { type Lib, cstr, dlopenLibc, errno, strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";

const SYMBOLS = {
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  statfs: { args: ["cstring", "ptr"], returns: "i32" },
  // renameat2 is a raw system call: musl has no wrapper, glibc's came in 2.28
  syscall: { args: ["i64", "i32", "cstring", "i32", "cstring", "u32"], returns: "i64" },
  lseek: { args: ["i32", "i64", "i32"], returns: "i64" },
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

let lib: Lib<typeof SYMBOLS> | undefined;
function c(): Lib<typeof SYMBOLS> {
  if (!lib) lib = dlopenLibc(SYMBOLS);
  return lib;
}

export const EPERM = 1;
export const ENOENT = 2;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENOTDIR = 20;
export const EINVAL = 22;
export const ENOTTY = 25;
export const ENXIO = 6;
export const EOPNOTSUPP = 95;
export const ENOTCONN = 107;

// ioctl numbers: _IOC(dir, type, nr, size) = dir<<30 | size<<16 | type<<8 | nr
const IOC = (dir: number, type: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
const R = 2;
const W = 1;
export const FS_IOC_GETFLAGS = IOC(R, 0x66, 1, 8);
export const FS_IOC_SETFLAGS = IOC(W, 0x66, 2, 8);
export const FS_IMMUTABLE_FL = 0x10;
export const FS_APPEND_FL = 0x20;
export const FS_NOCOW_FL = 0x00800000;
const FICLONE = IOC(W, 0x94, 9, 4);
const BLKROSET = IOC(0, 0x12, 93, 0);
const BLKROGET = IOC(0, 0x12, 94, 0);
const BLKGETSIZE64 = IOC(R, 0x12, 114, 8);

/** ioctl on an fd with a buffer argument; returns 0 or the errno. */
export function ioctl(fd: number, request: number, arg: Uint8Array | Int32Array | BigUint64Array | null): number {
  const r = c().ioctl(fd, request, arg ? ptr(arg) : null) as number;
  return r < 0 ? errno() : 0;
}

/** Open a path (following symlinks: images may be links into the pool) for an ioctl. */
export function openForIoctl(path: string, what: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | 0o2000000 /* O_CLOEXEC */ | 0o400 /* O_NOCTTY */);
  } catch (e) {
    throw new SpawnctlError(`${what}: opening ${path}: ${(e as Error).message.replace(/^[A-Z]+: /, "").replace(/, open .*$/, "")}`);
  }
}

export function withFd<T>(path: string, what: string, fn: (fd: number) => T): T {
  const fd = openForIoctl(path, what);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** The inode flags (chattr/lsattr), or the errno (ENOTTY: the file system has none). */
export function getInodeFlags(fd: number): { flags: number; err: number } {
  const buf = new Int32Array(2);
  const err = ioctl(fd, FS_IOC_GETFLAGS, buf);
  return { flags: buf[0]! >>> 0, err };
}

/** Whether the file or directory carries the immutable flag (chattr +i); false where it cannot be read. */
export function isImmutable(path: string): boolean {
  try {
    return withFd(path, `reading the flags of ${path}`, (fd) => {
      const { flags, err } = getInodeFlags(fd);
      return !err && (flags & FS_IMMUTABLE_FL) !== 0;
    });
  } catch {
    return false;
  }
}

/** Set or clear `mask` in the inode flags; returns 0 or the errno. */
export function changeInodeFlags(fd: number, value: number, mask: number): number {
  const { flags, err } = getInodeFlags(fd);
  if (err) return err;
  const next = ((flags & ~mask) | (value & mask)) >>> 0;
  if (next === flags) return 0;
  const buf = new Int32Array([next | 0, 0]);
  return ioctl(fd, FS_IOC_SETFLAGS, buf);
}

/** Reflink a whole file (FICLONE); returns 0 or the errno (EXDEV, EOPNOTSUPP, EINVAL when not possible). */
export function reflink(srcFd: number, dstFd: number): number {
  // FICLONE takes the source fd as the argument itself, not a pointer to it
  const r = c().ioctl(dstFd, FICLONE, srcFd as Pointer) as number;
  return r < 0 ? errno() : 0;
}

export function blockDeviceSize(fd: number): bigint | undefined {
  const b = new BigUint64Array(1);
  return ioctl(fd, BLKGETSIZE64, b) === 0 ? b[0] : undefined;
}

export function blockDeviceReadOnly(fd: number): boolean {
  const b = new Int32Array(1);
  return ioctl(fd, BLKROGET, b) === 0 && b[0] !== 0;
}

export function setBlockDeviceReadOnly(fd: number, ro: boolean): number {
  return ioctl(fd, BLKROSET, new Int32Array([ro ? 1 : 0]));
}

// ---------------------------------------------------------------------------
// statfs

export const FS_MAGIC = {
  BTRFS: 0x9123683e,
  EXT4: 0xef53,
  XFS: 0x58465342,
  TMPFS: 0x01021994,
} as const;

const FS_NAMES: Record<number, string> = {
  0x9123683e: "btrfs", 0xef53: "ext4", 0x58465342: "xfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x2fc12fc1: "zfs",
  0xf2f52010: "f2fs", 0x6969: "nfs", 0x73717368: "squashfs", 0xe0f5e1e2: "erofs", 0x65735546: "fuse", 0xca451a4e: "bcachefs",
  0x4d44: "vfat", 0x858458f6: "ramfs", 0x5346544e: "ntfs", 0x3153464a: "jfs", 0x52654973: "reiserfs", 0xff534d42: "cifs",
};

export interface FsInfo {
  type: number;
  /** the file system's name ("ext4"), or its magic number in hex */
  name: string;
  readOnly: boolean;
  blockSize: number;
  totalBytes: number;
  freeBytes: number;
}

/** statfs(2) of a path. */
export function statFs(path: string): FsInfo {
  // struct statfs on 64-bit Linux: f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree (8 bytes each),
  // f_fsid (8), f_namelen, f_frsize, f_flags (8 each), spare
  const b = new BigInt64Array(16);
  if (c().statfs(cstr(path), ptr(b)) < 0) {
    const e = errno();
    throw new SpawnctlError(`reading the file system of ${path}: statfs: ${strerror(e)}`, { errno: e });
  }
  const type = Number(BigInt.asUintN(32, b[0]!));
  const bsize = Number(b[1]!);
  return {
    type,
    name: FS_NAMES[type] ?? `0x${type.toString(16)}`,
    readOnly: (Number(b[10]!) & 1) !== 0, // ST_RDONLY
    blockSize: bsize,
    totalBytes: Number(b[2]!) * bsize,
    freeBytes: Number(b[4]!) * bsize,
  };
}

export function fsName(path: string): string {
  try {
    return statFs(path).name;
  } catch {
    return "an unknown file system";
  }
}

// ---------------------------------------------------------------------------
// renames and sparse files

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
/** renameat2's number: x86-64's table, or the generic one arm64 uses */
const NR_RENAMEAT2 = process.arch === "arm64" ? 276 : 316;

/** rename(2) that fails with EEXIST instead of replacing the target (an empty directory included); returns 0 or the errno. */
export function renameNoReplace(from: string, to: string): number {
  return Number(c().syscall(NR_RENAMEAT2, AT_FDCWD, cstr(from), AT_FDCWD, cstr(to), RENAME_NOREPLACE)) < 0 ? errno() : 0;
}

/** renameNoReplace that throws a sentence. */
export function renameInto(from: string, to: string, what: string): void {
  const e = renameNoReplace(from, to);
  if (e === EEXIST) throw new SpawnctlError(`${what}: ${to} already exists`, { errno: e });
  if (e) throw new SpawnctlError(`${what}: renaming ${from} to ${to}: ${strerror(e)}`, { errno: e });
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** The next data offset at or after `off` (SEEK_DATA), or -1 when only a hole follows. */
export function seekData(fd: number, off: number): number {
  const r = Number(c().lseek(fd, BigInt(off), SEEK_DATA));
  if (r < 0) {
    const e = errno();
    if (e === ENXIO) return -1;
    throw new SpawnctlError(`lseek(SEEK_DATA): ${strerror(e)}`, { errno: e });
  }
  return r;
}

export function seekHole(fd: number, off: number): number {
  const r = Number(c().lseek(fd, BigInt(off), SEEK_HOLE));
  if (r < 0) {
    const e = errno();
    throw new SpawnctlError(`lseek(SEEK_HOLE): ${strerror(e)}`, { errno: e });
  }
  return r;
}

export function ftruncate(fd: number, size: number): number {
  return c().ftruncate(fd, BigInt(size)) < 0 ? errno() : 0;
}
