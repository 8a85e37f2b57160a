// btrfs through its ioctls (no btrfs-progs needed): telling a subvolume from
// a directory, creating, snapshotting and deleting subvolumes, their
// read-only flag, and qgroup limits for set-limit.
import { closeSync, lstatSync, openSync, readdirSync, rmdirSync, statSync, constants } from "node:fs";
import { strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { ENOTCONN, FS_MAGIC, ioctl, statFs, withFd } from "./sys.ts";

const IOC = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x94 << 8) | nr) >>> 0;
const BTRFS_IOC_SNAP_CREATE_V2 = IOC(1, 23, 4096);
const BTRFS_IOC_SUBVOL_CREATE = IOC(1, 14, 4096);
const BTRFS_IOC_SNAP_DESTROY = IOC(1, 15, 4096);
const BTRFS_IOC_SUBVOL_GETFLAGS = IOC(2, 25, 8);
const BTRFS_IOC_SUBVOL_SETFLAGS = IOC(1, 26, 8);
const BTRFS_IOC_QUOTA_CTL = IOC(3, 40, 16);
const BTRFS_IOC_QGROUP_LIMIT = IOC(2, 43, 48);
const BTRFS_SUBVOL_RDONLY = 2n;
const BTRFS_QUOTA_CTL_ENABLE = 1n;
const BTRFS_QGROUP_LIMIT_MAX_RFER = 1n;
/** a subvolume's root directory always has this inode number */
const BTRFS_FIRST_FREE_OBJECTID = 256;
const NAME_OFFSET_V2 = 56;
const NAME_MAX_V2 = 4039;
const NAME_OFFSET_V1 = 8;
const NAME_MAX_V1 = 4087;

function dirFd(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | 0o2000000);
}

export function isBtrfs(path: string): boolean {
  try {
    return statFs(path).type === FS_MAGIC.BTRFS;
  } catch {
    return false;
  }
}

/** Is `path` (followed if a symlink) the root of a btrfs subvolume? */
export function isSubvolume(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isDirectory() && st.ino === BTRFS_FIRST_FREE_OBJECTID && isBtrfs(path);
  } catch {
    return false;
  }
}

function nameArgs(size: number, offset: number, max: number, name: string, what: string): Uint8Array {
  const b = new Uint8Array(size);
  const n = Buffer.from(name);
  if (n.length > max) throw new SpawnctlError(`${what}: the name ${name} is too long for btrfs`);
  b.set(n, offset);
  return b;
}

function parentAndName(path: string): [string, string] {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return [i <= 0 ? "/" : p.slice(0, i), p.slice(i + 1)];
}

/** Snapshot the subvolume `src` as `dst` (which must not exist), read-only if asked; returns 0 or the errno. */
export function snapshot(src: string, dst: string, readOnly: boolean): number {
  const [dir, name] = parentAndName(dst);
  const args = nameArgs(4096, NAME_OFFSET_V2, NAME_MAX_V2, name, `snapshotting ${src}`);
  const view = new DataView(args.buffer);
  const srcFd = dirFd(src);
  try {
    view.setBigInt64(0, BigInt(srcFd), true);
    view.setBigUint64(16, readOnly ? BTRFS_SUBVOL_RDONLY : 0n, true);
    const parent = dirFd(dir);
    try {
      return ioctl(parent, BTRFS_IOC_SNAP_CREATE_V2, args);
    } finally {
      closeSync(parent);
    }
  } finally {
    closeSync(srcFd);
  }
}

/**
 * Snapshot `src` and, recursively, the subvolumes nested in it (a snapshot
 * holds only an empty directory where a nested subvolume was). Returns 0 or
 * the errno of the top-level snapshot; nested failures throw.
 */
export function snapshotRecursive(src: string, dst: string, readOnly: boolean): number {
  const nested = nestedSubvolumes(src);
  // the nested ones go in first, so a read-only top is set last
  const err = snapshot(src, dst, readOnly && nested.length === 0);
  if (err) return err;
  for (const rel of nested) {
    const target = `${dst}/${rel}`;
    try {
      rmdirSync(target);
    } catch (e) {
      throw new SpawnctlError(`snapshotting the nested subvolume ${src}/${rel}: removing the placeholder ${target}: ${(e as Error).message}`);
    }
    const e2 = snapshot(`${src}/${rel}`, target, false);
    if (e2) throw new SpawnctlError(`snapshotting the nested subvolume ${src}/${rel} to ${target}: ${strerror(e2)}`, { errno: e2 });
  }
  if (readOnly && nested.length) setSubvolumeReadOnly(dst, true);
  return 0;
}

/** Paths (relative to `root`) of the subvolumes inside the subvolume `root`, outermost first. */
export function nestedSubvolumes(root: string): string[] {
  const out: string[] = [];
  const rootDev = lstatSync(root).dev;
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(rel ? `${root}/${rel}` : root);
    } catch {
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      let st;
      try {
        st = lstatSync(`${root}/${r}`);
      } catch {
        continue;
      }
      if (!st.isDirectory()) continue;
      // every btrfs subvolume has its own st_dev
      if (st.dev !== rootDev) {
        if (st.ino === BTRFS_FIRST_FREE_OBJECTID) {
          out.push(r);
          for (const inner of nestedSubvolumes(`${root}/${r}`)) out.push(`${r}/${inner}`);
        }
        continue; // a mount point or a subvolume: handled, or not ours
      }
      walk(r);
    }
  };
  walk("");
  return out;
}

/** Create the subvolume `path`; returns 0 or the errno. */
export function createSubvolume(path: string): number {
  const [dir, name] = parentAndName(path);
  const args = nameArgs(4096, NAME_OFFSET_V1, NAME_MAX_V1, name, `creating the subvolume ${path}`);
  const parent = dirFd(dir);
  try {
    return ioctl(parent, BTRFS_IOC_SUBVOL_CREATE, args);
  } finally {
    closeSync(parent);
  }
}

/** Delete the subvolume `path` with everything in it (not nested subvolumes: ENOTEMPTY); returns 0 or the errno. */
export function destroySubvolume(path: string): number {
  const [dir, name] = parentAndName(path);
  const args = nameArgs(4096, NAME_OFFSET_V1, NAME_MAX_V1, name, `deleting the subvolume ${path}`);
  const parent = dirFd(dir);
  try {
    return ioctl(parent, BTRFS_IOC_SNAP_DESTROY, args);
  } finally {
    closeSync(parent);
  }
}

/** Delete a subvolume and the subvolumes nested in it, innermost first; returns 0 or the errno. */
export function destroySubvolumeRecursive(path: string): number {
  for (const rel of nestedSubvolumes(path).reverse()) {
    setSubvolumeReadOnly(`${path}/${rel}`, false);
    const e = destroySubvolume(`${path}/${rel}`);
    if (e) return e;
  }
  return destroySubvolume(path);
}

export function subvolumeReadOnly(path: string): boolean {
  return withFd(path, `reading the flags of the subvolume ${path}`, (fd) => {
    const b = new BigUint64Array(1);
    return ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, b) === 0 && (b[0]! & BTRFS_SUBVOL_RDONLY) !== 0n;
  });
}

export function setSubvolumeReadOnly(path: string, ro: boolean): void {
  withFd(path, `marking the subvolume ${path} ${ro ? "read-only" : "writable"}`, (fd) => {
    const b = new BigUint64Array(1);
    let e = ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, b);
    if (!e) {
      const next = ro ? b[0]! | BTRFS_SUBVOL_RDONLY : b[0]! & ~BTRFS_SUBVOL_RDONLY;
      if (next === b[0]) return;
      e = ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, new BigUint64Array([next]));
    }
    if (e) throw new SpawnctlError(`marking the subvolume ${path} ${ro ? "read-only" : "writable"}: ${strerror(e)}`, { errno: e });
  });
}

/**
 * Limit the referenced bytes of the subvolume's own qgroup (0/<id>), turning
 * quotas on for the file system first if they are off. `bytes` undefined
 * removes the limit.
 */
export function setQgroupLimit(path: string, bytes: bigint | undefined): void {
  const what = `setting the btrfs quota of ${path} to ${bytes === undefined ? "none" : `${bytes} bytes`}`;
  withFd(path, what, (fd) => {
    const args = new BigUint64Array(6);
    args[0] = 0n; // qgroupid 0: the subvolume the fd is in
    args[1] = BTRFS_QGROUP_LIMIT_MAX_RFER;
    args[2] = bytes ?? 0xffffffffffffffffn;
    let e = ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, args);
    if (e === ENOTCONN) {
      // quotas are off on this file system: turn them on, as machined does for its pool
      const ctl = new BigUint64Array([BTRFS_QUOTA_CTL_ENABLE, 0n]);
      const q = ioctl(fd, BTRFS_IOC_QUOTA_CTL, ctl);
      if (q) throw new SpawnctlError(`${what}: enabling quotas on the file system: ${strerror(q)}`, { errno: q });
      e = ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, args);
    }
    if (e) throw new SpawnctlError(`${what}: ${strerror(e)}`, { errno: e });
  });
}
