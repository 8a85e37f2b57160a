// Matching a tree's file ownership to a user namespace range: the recursive
// shift (--private-users-ownership=chown, done in C by shim/shift.c) and the
// idmapped-mount alternative (map), plus the probe that chooses between them.
import { statSync } from "node:fs";
import { ptr } from "bun:ffi";
import { cstr, shim, strerror } from "../sys/ffi.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";

/** The range size the shift works in: ids keep their low 16 bits. */
export const SHIFT_RANGE = 0x10000;

/**
 * Give every inode of `tree` (on its own mount; symlinks are never followed)
 * the owner shift + (uid & 0xFFFF) : shift + (gid & 0xFFFF), keeping
 * setuid/setgid bits and file capabilities (rootid moved with the range) and
 * shifting the ids in POSIX ACLs. shift 0 undoes a shift. The root directory
 * gets its owner last, so an interrupted shift leaves it looking unshifted.
 */
export function shiftTree(tree: string, shift: number): { visited: number; changed: number } {
  if (!Number.isInteger(shift) || shift < 0 || shift % SHIFT_RANGE !== 0 || shift >= 0xfffe0000) {
    throw new SpawnctlError(`shifting the ownership of ${tree}: ${shift} is not a multiple of 65536 below 4294836224`);
  }
  const stats = new BigUint64Array(2);
  const r = shim().nsh_shift_tree(cstr(tree), shift, ptr(stats)) as number;
  if (r < 0) {
    const at = String(shim().nsh_shift_error_path()) || tree;
    const hint = -r === 40 /* ELOOP */ && at !== tree ? " (directories nested too deeply)" : "";
    throw new SpawnctlError(`shifting the ownership of ${tree} to ${shift}: ${at}: ${strerror(-r)}${hint}`, { errno: -r, syscall: "chown" });
  }
  return { visited: Number(stats[0]), changed: Number(stats[1]) };
}

/** The owner of the tree's root directory. */
export function treeOwner(tree: string): { uid: number; gid: number } {
  try {
    const st = statSync(tree);
    return { uid: st.uid, gid: st.gid };
  } catch (e) {
    throw new SpawnctlError(`reading the owner of ${tree}: ${fsMessage(e)}`, { errno: Math.abs((e as { errno?: number }).errno ?? 0) || undefined, cause: e });
  }
}

/**
 * nspawn's rule: a tree whose root directory already lies in the range
 * (uid and gid both in [shift, shift + 65535]) is taken as shifted, and
 * nothing is walked. Returns whether the tree was shifted now.
 */
export function ensureOwnership(tree: string, shift: number): boolean {
  const { uid, gid } = treeOwner(tree);
  if (Math.floor(uid / SHIFT_RANGE) === shift / SHIFT_RANGE && Math.floor(gid / SHIFT_RANGE) === shift / SHIFT_RANGE) return false;
  shiftTree(tree, shift);
  return true;
}

/** A user namespace with these maps (the kernel's "inside outside count\n"
 * lines), as an fd the caller closes. */
export function makeUserns(uidMap: string, gidMap: string): number {
  const fd = shim().nsh_make_userns(cstr(uidMap), cstr(gidMap)) as number;
  if (fd < 0) {
    const hint = -fd === 1 /* EPERM */ ? " (are user namespaces disabled?)" : "";
    throw new SpawnctlError(`creating a user namespace for uid map ${JSON.stringify(uidMap.trim())}: ${strerror(-fd)}${hint}`, { errno: -fd, syscall: "clone" });
  }
  return fd;
}

/**
 * A detached copy of the mount at `path` (and its submounts if `recursive`)
 * whose files appear with ownership mapped through `usernsFd`. Returns the
 * mount fd: attach it with move_mount, or reach its files through
 * /proc/self/fd/N/… . The caller closes it.
 */
export function idmappedTree(path: string, usernsFd: number, recursive: boolean): number {
  const fd = shim().nsh_idmapped_tree(cstr(path), usernsFd, recursive ? 1 : 0) as number;
  if (fd < 0) {
    throw new SpawnctlError(`creating an idmapped mount of ${path}: ${strerror(-fd)}`, { errno: -fd, syscall: "mount_setattr" });
  }
  return fd;
}

