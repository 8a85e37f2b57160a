// Copying an OS tree the way `cp -a` does, with everything an image needs:
// owners (numeric), modes with setuid bits (chown before chmod), times,
// symlinks, hardlinks, device nodes, fifos and extended attributes (ACLs and
// file capabilities live there). Regular files are reflinked where the file
// system can. The copy goes to a temporary name beside the target and is
// renamed into place at the end, so a failure leaves nothing half-done.
import {
  constants, copyFileSync, lchownSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readlinkSync,
  renameSync, rmSync, symlinkSync, chmodSync, linkSync, utimesSync, type Stats,
} from "node:fs";
import { listXattrs, mknod, setXattr, strerror } from "../sys/ffi.ts";
import { SpawnctlError, fsMessage } from "./errors.ts";

export interface CopyOptions {
  /** called every so often with the number of entries copied */
  progress?(entries: number): void;
}

function copyMeta(src: string, dst: string, st: Stats, isLink: boolean): void {
  lchownSync(dst, st.uid, st.gid);
  if (!isLink) chmodSync(dst, st.mode & 0o7777);
  for (const [name, value] of listXattrs(src)) {
    const r = setXattr(dst, name, value);
    if (r !== 0 && r !== 95 /* EOPNOTSUPP */ && r !== 1) throw new SpawnctlError(`setting ${name} on ${dst}: ${strerror(r)}`);
  }
  if (isLink) lutimesSync(dst, st.atime, st.mtime);
  else utimesSync(dst, st.atime, st.mtime);
}

/** Copy `src` to `dst` (which must not exist) in place, without the atomic rename. */
export function copyTreeRaw(src: string, dst: string, opts: CopyOptions = {}): void {
  const inodes = new Map<string, string>();
  let count = 0;
  const dirs: Array<[string, string, Stats]> = [];
  const walk = (s: string, d: string) => {
    const st = lstatSync(s);
    if (++count % 1000 === 0) opts.progress?.(count);
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() && st.nlink > 1) {
      const first = inodes.get(key);
      if (first) {
        linkSync(first, d);
        return;
      }
      inodes.set(key, d);
    }
    if (st.isDirectory()) {
      mkdirSync(d, { mode: 0o700 });
      for (const e of readdirSync(s)) walk(`${s}/${e}`, `${d}/${e}`);
      // directory metadata last, or a read-only mode would stop the copy
      dirs.push([s, d, st]);
      return;
    }
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(s), d);
      copyMeta(s, d, st, true);
      return;
    }
    if (st.isFile()) {
      copyFileSync(s, d, constants.COPYFILE_FICLONE);
    } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      const r = mknod(d, st.mode, Number(st.rdev));
      if (r !== 0) throw new SpawnctlError(`creating ${d}: mknod: ${strerror(r)}`);
    } else if (st.isSocket()) {
      return; // sockets are not copied, as cp -a
    }
    copyMeta(s, d, st, false);
  };
  walk(src, dst);
  for (const [s, d, st] of dirs.reverse()) copyMeta(s, d, st, false);
}

/** Copy a tree to `dst` atomically (temporary sibling, then rename). */
export function copyTree(src: string, dst: string, opts: CopyOptions = {}): void {
  const slash = dst.lastIndexOf("/");
  const tmp = `${dst.slice(0, slash)}/.#${dst.slice(slash + 1)}.copy-${process.pid}-${Date.now().toString(36)}`;
  try {
    copyTreeRaw(src, tmp, opts);
    renameSync(tmp, dst);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new SpawnctlError(`copying ${src} to ${dst}: ${fsMessage(e)}`, { cause: e });
  }
}


export interface AsyncCopyOptions {
  /** called every so often with the entries and file bytes copied so far */
  progress?(entries: number, bytes: number): void;
  /** awaited every few hundred entries, so signal handlers can run; throwing from it stops the copy */
  yield?(): Promise<void>;
  /** `dst` exists already (an empty directory or a fresh btrfs subvolume): fill it and give it `src`'s metadata */
  intoExisting?: boolean;
}

/**
 * copyTreeRaw that gives the event loop a turn now and then, so a long copy
 * (clone, import-fs) can be cancelled by SIGINT/SIGTERM; the caller removes
 * the half-done copy. Same semantics as copyTreeRaw otherwise.
 */
export async function copyTreeAsync(src: string, dst: string, opts: AsyncCopyOptions = {}): Promise<void> {
  const inodes = new Map<string, string>();
  let count = 0;
  let bytes = 0;
  let sinceYield = 0;
  const dirs: Array<[string, string, Stats]> = [];
  const tick = async (n: number) => {
    count++;
    bytes += n;
    sinceYield += 1 + Math.floor(n / 65536);
    if (sinceYield >= 512) {
      sinceYield = 0;
      opts.progress?.(count, bytes);
      await opts.yield?.();
    }
  };
  const walk = async (s: string, d: string, top: boolean): Promise<void> => {
    const st = lstatSync(s);
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() && st.nlink > 1) {
      const first = inodes.get(key);
      if (first) {
        linkSync(first, d);
        await tick(0);
        return;
      }
      inodes.set(key, d);
    }
    if (st.isDirectory()) {
      if (!(top && opts.intoExisting)) mkdirSync(d, { mode: 0o700 });
      await tick(0);
      for (const e of readdirSync(s)) await walk(`${s}/${e}`, `${d}/${e}`, false);
      dirs.push([s, d, st]);
      return;
    }
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(s), d);
      copyMeta(s, d, st, true);
    } else if (st.isFile()) {
      copyFileSync(s, d, constants.COPYFILE_FICLONE);
      copyMeta(s, d, st, false);
    } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      const r = mknod(d, st.mode, Number(st.rdev));
      if (r !== 0) throw new SpawnctlError(`creating ${d}: mknod: ${strerror(r)}`);
      copyMeta(s, d, st, false);
    }
    await tick(st.isFile() ? st.size : 0);
  };
  await walk(src, dst, true);
  for (const [s, d, st] of dirs.reverse()) copyMeta(s, d, st, false);
  opts.progress?.(count, bytes);
}

/**
 * What a walk of `root` will handle, for a progress line's total: the bytes
 * of its regular files (a hardlinked file once) and, with `tar`, the size of
 * the tar stream they make (a 512-byte header per entry, data padded to 512).
 * Symlinks are not followed; an entry that vanishes or cannot be read counts
 * as nothing. An estimate: the tree may change while it is copied.
 */
export function treeBytes(root: string, tar = false): number {
  const seen = new Set<string>();
  let total = tar ? 1024 : 0; // the end-of-archive blocks
  const walk = (p: string) => {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (tar) total += 512;
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = readdirSync(p);
      } catch {
        /* unreadable: the copy itself reports it */
      }
      for (const n of names) walk(`${p}/${n}`);
      return;
    }
    if (!st.isFile()) return;
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    total += tar ? Math.ceil(st.size / 512) * 512 : st.size;
  };
  walk(root);
  return total;
}
