// Kernel constants used when building plans (x86-64's values, which arm64
// shares except where noted).

export const MS = {
  RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, SYNCHRONOUS: 16, REMOUNT: 32, MANDLOCK: 64, DIRSYNC: 128,
  NOSYMFOLLOW: 256, NOATIME: 1024, NODIRATIME: 2048, BIND: 4096, MOVE: 8192, REC: 16384, SILENT: 32768,
  UNBINDABLE: 1 << 17, PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20, RELATIME: 1 << 21,
  STRICTATIME: 1 << 24, LAZYTIME: 1 << 25,
} as const;

export const MOUNT_ATTR = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, NOSYMFOLLOW: 0x200000 } as const;

export const CLONE = {
  NEWNS: 0x20000, NEWCGROUP: 0x02000000, NEWUTS: 0x04000000, NEWIPC: 0x08000000, NEWUSER: 0x10000000,
  NEWPID: 0x20000000, NEWNET: 0x40000000,
} as const;

export const PR = { SET_PDEATHSIG: 1, SET_DUMPABLE: 4, SET_KEEPCAPS: 8, SET_CHILD_SUBREAPER: 36, SET_NO_NEW_PRIVS: 38 } as const;

export const S_IF = { FIFO: 0o010000, CHR: 0o020000, DIR: 0o040000, BLK: 0o060000, REG: 0o100000, LNK: 0o120000, SOCK: 0o140000 } as const;

export const MNT_DETACH = 2;

// arm64 numbers O_DIRECTORY and O_NOFOLLOW differently (its 0o200000 and
// 0o400000 are O_DIRECT and O_LARGEFILE); the rest is the same
const ARM64 = process.arch === "arm64";
export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  DIRECTORY: ARM64 ? 0o40000 : 0o200000, NOFOLLOW: ARM64 ? 0o100000 : 0o400000, CLOEXEC: 0o2000000, PATH: 0o10000000,
} as const;

export const OPEN_TREE_CLONE = 1;
export const AT_RECURSIVE = 0x8000;

export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export const SIGNAL = { HUP: 1, INT: 2, KILL: 9, USR1: 10, USR2: 12, TERM: 15, CHLD: 17, CONT: 18, WINCH: 28 } as const;
