// The host's side of a container's user namespace: choosing the range and
// matching the tree's ownership to it before the start (prepare), writing
// the child's id maps and making its idmapped mounts at barrier 1, and
// delegating the machine's cgroups to the container's root.
import { openSync, statSync, writeSync } from "node:fs";
import { ptr } from "bun:ffi";
import type { Settings } from "../settings/types.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { chaseInRoot } from "../util/tree.ts";
import type { Lock } from "../util/lock.ts";
import { trace } from "../util/log.ts";
import type { CgroupFacts } from "../container/host.ts";
import type { SpawnHooks } from "../container/spawn.ts";
import { closeQuietly, shim, strerror } from "../sys/ffi.ts";
import { makedev } from "../sys/consts.ts";
import { deviceNodes, idmapSources, type PreparedBind, type RunContext, type UsernsContext } from "../container/build-plan.ts";
import { chooseRange } from "./range.ts";
import { ensureOwnership, idmappedTree, makeUserns } from "./ownership.ts";

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
export function prepareUserns(s: Settings, tree: string): PreparedUserns | undefined {
  if (s.privateUsers.mode === "no") return undefined;
  trace("userns: choosing range");
  const r = chooseRange(s.privateUsers, tree, s.machine);
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
      ensureOwnership(tree, r.shift);
    }
    let rootBase = 0;
    if (ownership === "map") {
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

/**
 * The container's /dev: a tmpfs the host's root makes (a user namespace may
 * make no device nodes, and nodes on a tmpfs of its own do not open) with
 * the nodes in it, owned by the container's root so they show as root's
 * inside, as under nspawn. Returned as a detached mount's fd for the child
 * to attach; nothing is left on the host's file systems.
 */
export function makeDevFs(nodes: Array<[name: string, major: number, minor: number]>, shift: number): number {
  const names = Buffer.from(nodes.map(([n]) => `${n}\0`).join(""));
  const devs = new BigUint64Array(nodes.map(([, maj, min]) => BigInt(makedev(maj, min))));
  const failedAt = new Int32Array(1);
  const fd = shim().nsh_make_devfs(ptr(names), ptr(devs), nodes.length, shift, shift, ptr(failedAt)) as number;
  if (fd < 0) {
    const at = failedAt[0]! >= 0 ? `creating device node /dev/${nodes[failedAt[0]!]![0]}` : "creating the container's /dev (tmpfs)";
    throw new SpawnctlError(`${at}: ${strerror(-fd)}`, { errno: -fd });
  }
  return fd;
}

function checkChown(s: Settings, r: { shift: number; range: number }): void {
  if (s.ephemeral || s.volatile === "overlay") throw new SpawnctlError("--private-users-ownership=chown may not be combined with --ephemeral or --volatile=overlay: the tree itself would be rewritten.");
  if (s.volatile === "yes") throw new SpawnctlError("--private-users-ownership=chown may not be combined with --volatile=yes.");
  if (r.range !== 65536 || r.shift % 65536 !== 0) throw new SpawnctlError(`--private-users-ownership=chown needs a range of 65536 starting at a multiple of 65536 (got ${r.shift}:${r.range}).`);
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

function writeMap(pid: number, file: "uid_map" | "gid_map", line: string): void {
  try {
    const fd = openSync(`/proc/${pid}/${file}`, "w");
    try {
      // one write: the kernel takes the whole map at once
      writeSync(fd, line);
    } finally {
      closeQuietly(fd);
    }
  } catch (e) {
    throw new SpawnctlError(`writing /proc/${pid}/${file} (${line.trim()}): ${fsMessage(e)}`);
  }
}

/** The child's id maps: its root is the range's first id. */
function writeMaps(ctx: RunContext, pid: number): void {
  const u = ctx.userns!;
  const line = `0 ${u.shift} ${u.range}\n`;
  writeMap(pid, "uid_map", line);
  writeMap(pid, "gid_map", line);
}

/**
 * The mounts the child receives at barrier 1, in idmapSources' order, then
 * its /dev, as fds (the caller sends and closes them); made once its maps are
 * written.
 */
function usernsMounts(s: Settings, ctx: RunContext, pid: number): number[] {
  const u = ctx.userns!;
  const fds: number[] = [];
  const sources = idmapSources(s, ctx);
  const own = openSync(`/proc/${pid}/ns/user`, "r");
  try {
    for (const src of sources) {
      if (src.map === "none") {
        fds.push(cloneTree(src.hostPath, src.recursive));
        continue;
      }
      let nsfd = own;
      if (src.map !== "container") {
        const m = src.map;
        nsfd = makeUserns(`${m.hostUid} ${u.shift + m.uid} ${m.count ?? 1}\n`, `${m.hostGid} ${u.shift + m.gid} ${m.count ?? 1}\n`);
      }
      try {
        let fd: number;
        try {
          try {
            fd = idmappedTree(src.hostPath, nsfd, src.recursive);
          } catch (e) {
            // a mount below the tree whose file system cannot be idmapped (the
            // host's /proc under -D /): map the tree's own file system alone
            if (!src.recursive) throw e;
            fd = idmappedTree(src.hostPath, nsfd, false);
          }
        } catch (e) {
          const unsupported = e instanceof SpawnctlError && [1, 22, 95].includes(e.errno ?? 0);
          if (fds.length > 0 || !unsupported) throw e;
          if (!u.fallbackChown) throw new SpawnctlError(`--private-users-ownership=map: the file system of ${src.hostPath} does not support idmapped mounts (${e.message}).`);
          // ownership auto on a file system without idmapped mounts: chown
          checkChown(s, u);
          ensureOwnership(ctx.tree, u.shift);
          fd = cloneTree(src.hostPath, src.recursive);
        }
        fds.push(fd);
      } finally {
        if (nsfd !== own) closeQuietly(nsfd);
      }
    }
    // the slot after the mounts: the container's /dev
    fds.push(makeDevFs(deviceNodes(ctx), u.shift));
  } catch (e) {
    for (const fd of fds) closeQuietly(fd);
    throw e;
  } finally {
    closeQuietly(own);
  }
  trace("userns: barrier done");
  return fds;
}

/**
 * The user namespace's part in driving a child: right after the clone, while
 * the child is still starting up, delegate its cgroups (before it joins them
 * after barrier 1), write its maps and make its mounts; hand those over at
 * barrier 1.
 */
export function usernsHooks(s: Settings, ctx: RunContext, delegate: () => void): Pick<SpawnHooks, "afterClone" | "barrier" | "onFail"> {
  let fds: number[] = [];
  return {
    afterClone(pid) {
      trace("userns: barrier");
      // the maps first: from then on the child's root is the range's first
      // id, which the delegated files belong to
      writeMaps(ctx, pid);
      delegate();
      fds = usernsMounts(s, ctx, pid);
    },
    barrier(id) {
      if (id !== 1) return undefined;
      const out = fds;
      fds = [];
      return out;
    },
    onFail() {
      // made for a child that never reached barrier 1
      for (const fd of fds) closeQuietly(fd);
      fds = [];
    },
  };
}

// what a delegated cgroup's owner must be able to write (systemd's list), by
// the kind of hierarchy: cgroup2, and the v1 hierarchies the container's init
// manages (name=systemd); in the other v1 ones the child only joins (tasks)
const DELEGATED_FILES = {
  v2: ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"],
  managed: ["cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release"],
  joined: ["tasks"],
};

/**
 * Hand the machine's cgroups to the container's root: in the hierarchies its
 * init manages (cgroup2, and name=systemd on v1/hybrid hosts) the directory
 * and its delegation files, elsewhere only "tasks", which the child writes
 * to join them itself.
 */
export function delegateCgroups(paths: string[], kind: (path: string) => keyof typeof DELEGATED_FILES, shift: number): void {
  const all: string[] = [];
  for (const dir of paths) {
    const k = kind(dir);
    if (k !== "joined") all.push(dir);
    for (const f of DELEGATED_FILES[k]) all.push(`${dir}/${f}`);
  }
  // one call into the shim for them all
  const failedAt = new Int32Array(1);
  const r = shim().nsh_chown_paths(ptr(Buffer.from(all.map((p) => `${p}\0`).join(""))), all.length, shift, shift, ptr(failedAt)) as number;
  if (r < 0) {
    const p = all[failedAt[0]!] ?? "";
    const dir = paths.find((d) => p === d || p.startsWith(`${d}/`)) ?? p;
    throw new SpawnctlError(`delegating cgroup ${dir} to the container's root: ${p}: ${strerror(-r)}`, { errno: -r });
  }
}

/** Delegate a machine's cgroups (see delegateCgroups) on this host's layout. */
export function delegateMachineCgroups(facts: CgroupFacts, paths: string[], shift: number): void {
  delegateCgroups(paths, (p) => {
    if (facts.unified && p.startsWith(`${facts.unified}/`)) return "v2";
    return facts.v1.some((h) => !!h.name && p.startsWith(`${h.mountpoint}/`)) ? "managed" : "joined";
  }, shift);
}
