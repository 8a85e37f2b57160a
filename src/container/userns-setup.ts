// The host's side of a container's user namespace: choosing the range and
// matching the tree's ownership to it before the start (prepare), and the
// parent's steps that give the child its maps, its idmapped mounts, its
// cgroups and its /dev (usernsParentOps), which the shim runs.
import { existsSync, statSync } from "node:fs";
import type { Settings } from "../settings/types.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { chaseInRoot } from "../util/tree.ts";
import type { Lock } from "../util/lock.ts";
import { trace } from "../util/log.ts";
import { cstr, shim, strerror } from "../sys/ffi.ts";
import type { ParentOp } from "../sys/plan.ts";
import { checkChown, type PreparedBind, type UsernsContext } from "./build-plan.ts";
import { chooseRange } from "../userns/range.ts";
import { ensureOwnership, idmappedTree } from "../userns/ownership.ts";

export interface PreparedUserns {
  userns: UsernsContext;
  lock?: Lock;
}

/**
 * Pick the range and bring the tree's ownership in line with it
 * (--private-users-ownership): map = idmapped mounts (nothing written),
 * chown = a recursive shift unless the tree's root is owned by the range
 * already, auto = map where the tree's file system allows it, else chown.
 */
export function prepareUserns(s: Settings, tree: string, dry = false): PreparedUserns | undefined {
  if (s.privateUsers.mode === "no") return undefined;
  trace("userns: choosing range");
  const r = chooseRange(s.privateUsers, tree, s.machine, dry);
  trace("userns: range chosen");
  try {
    let ownership = s.privateUsersOwnership;
    const rootPath = s.volatile === "yes" ? `${tree === "/" ? "" : tree}/usr` : tree;
    // auto is tried as map when the parent makes the root's mount (a probe
    // here would cost a user namespace per start); chown is the fallback
    const fallbackChown = ownership === "auto";
    if (fallbackChown) ownership = "map";
    if (ownership === "chown") {
      checkChown(s, r);
      // (--print-plan changes no owner)
      if (!dry) ensureOwnership(tree, r.shift);
    }
    let rootBase = 0;
    // (--print-plan of a disk image: its tree is not mounted, its root taken as root's)
    if (ownership === "map" && !(dry && !existsSync(rootPath))) {
      const st = statSync(rootPath);
      // a tree shifted to some range earlier (uid and gid in the same one) is mapped from there
      if (st.uid >>> 16 === st.gid >>> 16) rootBase = st.uid - (st.uid % 65536);
    }
    return { userns: { shift: r.shift, range: r.range, idmapRoot: ownership === "map", rootBase, fallbackChown }, lock: r.lock };
  } catch (e) {
    r.lock?.release();
    throw e;
  }
}


/** rootidmap/owneridmap need the owners of a bind's source and of its target in the tree. */
export function bindOwners(b: PreparedBind, tree: string): PreparedBind {
  if (b.idmap !== "rootidmap" && b.idmap !== "owneridmap") return b;
  const out = { ...b };
  try {
    const st = statSync(b.hostSource);
    out.sourceOwner = { uid: st.uid, gid: st.gid };
  } catch (e) {
    throw new SpawnctlError(`Failed to stat ${b.hostSource}: ${fsMessage(e)}`);
  }
  if (b.idmap === "owneridmap") {
    const p = chaseInRoot(tree, b.destination);
    if (p) {
      const st = statSync(p);
      out.targetOwner = { uid: st.uid, gid: st.gid };
    }
  }
  return out;
}

/** A detached copy of the mounts at `path` (open_tree OPEN_TREE_CLONE). */
export function cloneTree(path: string, recursive: boolean): number {
  const fd = shim().nsh_clone_tree(Buffer.from(`${path}\0`), recursive ? 1 : 0) as number;
  if (fd < 0) throw new SpawnctlError(`cloning the mount at ${path}: open_tree: ${strerror(-fd)}`, { errno: -fd });
  return fd;
}

/**
 * An idmapped mount the kernel refused (EPERM, EINVAL, EOPNOTSUPP: the file
 * system cannot do it): with submounts, the tree's own mount alone; for the
 * tree under ownership auto, chown it and send it plain. Returns the mount
 * to send in its place, or throws what to tell the user. `userns` is the
 * register the op names.
 */
export function recoverIdmap(op: Extract<ParentOp, { kind: "idmapTree" }>, errno: number, userns: number): number {
  const unsupported = errno === 1 || errno === 22 || errno === 95;
  if (unsupported && op.flatRetry) {
    try {
      return idmappedTree(op.path, userns, false);
    } catch (e) {
      if (!(e instanceof SpawnctlError && [1, 22, 95].includes(e.errno ?? 0))) throw e;
      errno = e.errno!;
    }
  }
  const why = `${op.path}: mount_setattr: ${strerror(errno)}`;
  if (!unsupported) throw new SpawnctlError(`making an idmapped mount of ${why}`, { errno });
  const fb = op.fallback;
  if (!fb) throw new SpawnctlError(`${op.context ?? "--private-users-ownership=map"}: the file system of ${op.path} does not support idmapped mounts (${why}).`, { errno });
  if ("refused" in fb) throw new SpawnctlError(`the file system of ${op.path} does not support idmapped mounts, and the tree cannot be chowned instead: ${fb.refused}`, { errno });
  // ownership auto on a file system without idmapped mounts: chown
  ensureOwnership(fb.tree, fb.shift);
  return cloneTree(op.path, op.recursive);
}
