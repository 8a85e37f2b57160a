// The host's side of a container's user namespace: choosing the range and
// matching the tree's ownership to it before the start (prepare), writing
// the child's id maps and making its idmapped mounts at barrier 1, and
// delegating the machine's cgroups to the container's root.
import { openSync, statSync } from "node:fs";
import { ptr } from "bun:ffi";
import type { Settings } from "../settings/types.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { chaseInRoot } from "../util/tree.ts";
import type { Lock } from "../util/lock.ts";
import { trace } from "../util/log.ts";
import type { CgroupFacts } from "./host.ts";
import { answeredByShim, type ShimAnswer, type SpawnHooks } from "./spawn.ts";
import { closeQuietly, cstr, shim, strerror } from "../sys/ffi.ts";
import { makedev } from "../sys/consts.ts";
import { DEVFS_OPTIONS, deviceNodes, idmapSources, type PreparedBind, type RunContext, type UsernsContext } from "./build-plan.ts";
import { chooseRange } from "../userns/range.ts";
import { ensureOwnership, idmappedTree, makeUserns } from "../userns/ownership.ts";

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
  const names = nulList(nodes.map(([n]) => n));
  const devs = new BigUint64Array(nodes.map(([, maj, min]) => BigInt(makedev(maj, min))));
  const failedAt = new Int32Array(1);
  const fd = shim().nsh_make_devfs(cstr(DEVFS_OPTIONS), ptr(names), ptr(devs), nodes.length, shift, shift, ptr(failedAt)) as number;
  if (fd < 0) throw devFailure(nodes, failedAt[0]!, -fd);
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

/**
 * Write the child's id maps (its root is the range's first id) and return
 * an fd of its user namespace, for the idmapped mounts: one call into the shim.
 */
function mapChild(ctx: RunContext, pid: number): number {
  const line = cstr(mapLine(ctx));
  const failedAt = new Int32Array(1);
  const fd = shim().nsh_map_userns(pid, line, line, failedAt) as number;
  if (fd < 0) throw mapFailure(ctx, pid, failedAt[0]!, -fd);
  return fd;
}

function mapFailure(ctx: RunContext, pid: number, failedAt: number, errno: number): SpawnctlError {
  const file = ["uid_map", "gid_map", "ns/user"][failedAt];
  const what = file === "ns/user" ? `opening /proc/${pid}/ns/user` : `writing /proc/${pid}/${file} (${mapLine(ctx).trim()})`;
  return new SpawnctlError(`${what}: ${strerror(errno)}`, { errno });
}

/** The line of the child's uid_map and gid_map: its root is the range's first id. */
function mapLine(ctx: RunContext): string {
  const u = ctx.userns!;
  return `0 ${u.shift} ${u.range}\n`;
}

/**
 * Write the child's maps (unless they are written already), then make the
 * mounts it receives at barrier 1, in idmapSources' order, as fds (the
 * caller sends and closes them).
 */
function usernsMounts(s: Settings, ctx: RunContext, pid: number, mapsWritten: boolean): number[] {
  const u = ctx.userns!;
  const fds: number[] = [];
  const sources = idmapSources(s, ctx);
  const own = mapsWritten ? openSync(`/proc/${pid}/ns/user`, "r") : mapChild(ctx, pid);
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
  } catch (e) {
    for (const fd of fds) closeQuietly(fd);
    throw e;
  } finally {
    closeQuietly(own);
  }
  return fds;
}

/**
 * The user namespace's part in driving a child. Right after the clone the
 * child waits at barrier 1: its maps and its mounts, the least it needs to
 * go on. Then, while it mounts, its /dev, which it takes at barrier 3, and
 * the delegation of its cgroups (it joins them as the host's root, before
 * it becomes the namespace's, so only its init needs them), which barrier 2
 * waits for before it execs anything.
 *
 * When the tree is the only mount it receives, spawnPlan lets the shim do
 * all of that within the clone's call (shimAnswer, nsh_spawn_userns: maps,
 * root, delegation, barrier 1, /dev, barrier 3), before any JavaScript runs;
 * if it cannot make the root (a file system without idmapped mounts), the
 * rest goes on here from the written maps. Otherwise (binds, or a start by
 * the machine supervisor) this answers barrier 1 at once, makes /dev after
 * it and delegates after barrier 3.
 */
export function usernsHooks(s: Settings, ctx: RunContext, delegation: string[]): SpawnHooks {
  const u = ctx.userns!;
  let mounts: number[] = [];
  let dev: number[] = [];
  const nodes = deviceNodes(ctx);
  // the common case, the tree alone (mapped to the container, or cloned as
  // it is): the shim does all of it within the clone's call
  const sources = idmapSources(s, ctx);
  const root = sources[0]!;
  let shimAnswer: ShimAnswer | undefined;
  if (sources.length === 1 && (root.map === "container" || root.map === "none")) {
    // plain loops: this runs before the clone, in a cold process, where
    // each builtin's first use (map, flatMap, from...) costs
    const names: string[] = [];
    const majmin = new Uint32Array(2 * nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      names.push(nodes[i]![0]);
      majmin[2 * i] = nodes[i]![1];
      majmin[2 * i + 1] = nodes[i]![2];
    }
    const result = new Int32Array(3);
    result[0] = -1;
    shimAnswer = {
      map: cstr(mapLine(ctx)), root: cstr(root.hostPath), flags: (root.recursive ? 1 : 0) | (root.map === "container" ? 2 : 0),
      shift: u.shift, chown: nulList(delegation), nChown: delegation.length,
      devNames: nulList(names), majmin, nDev: nodes.length, result, devOpts: cstr(DEVFS_OPTIONS),
    };
  }
  // the shim answered barriers 1 and 3
  let byShim = false;
  // the barriers the shim answered (or tried to, for a child that is gone)
  let shimSent: number[] = [];
  return {
    shimAnswer,
    afterClone(pid) {
      const r = shimAnswer?.result;
      trace(`userns: barrier 1 (shim: ${r?.[0]})`);
      if (answeredByShim({ shimAnswer })) {
        byShim = true;
        shimSent = [1, 3];
        return;
      }
      // sending failed: the child is gone, and its error waits in the socket for the driver
      if (r && (r[0] === 3 || (r[0] === 4 && r[2] === -2)) && childGone(r[1]!)) {
        byShim = true;
        shimSent = r[0] === 3 ? [1] : [1, 3];
        return;
      }
      if (r && r[0] >= 0 && r[0] !== 1) throw shimFailure(ctx, pid, r, delegation, nodes);
      // the maps are written when the shim got as far as making the root
      mounts = usernsMounts(s, ctx, pid, r?.[0] === 1);
      trace("userns: barrier 1 answered");
    },
    preAnswered: () => shimSent,
    // barrier 1 at once; with the shim's answers nothing else is left to
    // wait for before the child execs, unless the network is (barrier 2)
    answerAhead: () => (byShim ? (ctx.networkBarrier ? [] : [2]) : [1]),
    barrier(id) {
      const out = id === 1 ? mounts : id === 3 ? dev : [];
      if (id === 1) mounts = [];
      if (id === 3) dev = [];
      return out;
    },
    afterGo(id) {
      if (byShim) return;
      if (id === 1) {
        dev = [makeDevFs(nodes, u.shift)];
        trace("userns: /dev made");
      } else if (id === 3) {
        chownDelegation(delegation, u.shift);
        trace("userns: cgroups delegated");
      }
    },
    onFail() {
      // made for a child that never took them
      for (const fd of [...mounts, ...dev]) closeQuietly(fd);
      mounts = [];
      dev = [];
    },
  };
}

// what a delegated cgroup's owner must be able to write (systemd's list), by
// the kind of hierarchy: cgroup2, and the v1 hierarchies the container's init
// manages (name=systemd); in the other v1 ones the child only joins (tasks)
const DELEGATED_FILES = {
  v2: ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"],
  managed: ["cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release"],
  joined: [],
};

/**
 * What handing the machine's cgroups to the container's root changes: in
 * the hierarchies its init manages (cgroup2, and name=systemd on v1/hybrid
 * hosts) the directory and its delegation files. The others it only joins,
 * which the child does before it leaves the host's root (so nothing of them
 * is handed over).
 */
export function delegationPaths(paths: string[], kind: (path: string) => keyof typeof DELEGATED_FILES): string[] {
  const all: string[] = [];
  for (const dir of paths) {
    const k = kind(dir);
    if (k !== "joined") all.push(dir);
    for (const f of DELEGATED_FILES[k]) all.push(`${dir}/${f}`);
  }
  return all;
}

/** delegationPaths on this host's layout. */
export function machineDelegation(facts: CgroupFacts, paths: string[]): string[] {
  return delegationPaths(paths, (p) => {
    if (facts.unified && p.startsWith(`${facts.unified}/`)) return "v2";
    return facts.v1.some((h) => !!h.name && p.startsWith(`${h.mountpoint}/`)) ? "managed" : "joined";
  });
}

function delegationFailure(paths: string[], failedAt: number, errno: number): SpawnctlError {
  const p = paths[failedAt] ?? "";
  // the cgroup: the path itself when it is one of the directories, else its directory
  const dir = paths.includes(p.slice(0, p.lastIndexOf("/"))) ? p.slice(0, p.lastIndexOf("/")) : p;
  return new SpawnctlError(`delegating cgroup ${dir} to the container's root: ${p}: ${strerror(errno)}`, { errno });
}

/** chown the delegation paths to the container's root, in one call into the shim. */
export function chownDelegation(paths: string[], shift: number): void {
  if (paths.length === 0) return;
  const failedAt = new Int32Array(1);
  const r = shim().nsh_chown_paths(ptr(nulList(paths)), paths.length, shift, shift, ptr(failedAt)) as number;
  if (r < 0) throw delegationFailure(paths, failedAt[0]!, -r);
}

/** Strings as one NUL-separated buffer (never empty: the shim is handed a pointer). */
function nulList(items: string[]): Buffer {
  let s = "";
  for (const i of items) s += `${i}\0`;
  return Buffer.from(s || "\0");
}

const EPIPE = 32;
const ECONNRESET = 104;

/** A send to the child failed because it is gone (it said why in the socket). */
function childGone(errno: number): boolean {
  return errno === EPIPE || errno === ECONNRESET;
}

function devFailure(nodes: Array<[name: string, major: number, minor: number]>, failedAt: number, errno: number): SpawnctlError {
  const at = failedAt >= 0 && nodes[failedAt] ? `creating device node /dev/${nodes[failedAt]![0]}` : "creating the container's /dev (tmpfs)";
  return new SpawnctlError(`${at}: ${strerror(errno)}`, { errno });
}

/** What stopped nsh_spawn_userns (result: stage, errno, index; see shim/shift.c). */
function shimFailure(ctx: RunContext, pid: number, r: Int32Array, delegation: string[], nodes: Array<[name: string, major: number, minor: number]>): SpawnctlError {
  const [stage, errno, at] = [r[0]!, r[1]!, r[2]!];
  if (stage === 0) return mapFailure(ctx, pid, at, errno);
  if (stage === 2) return delegationFailure(delegation, at, errno);
  if (stage === 4) return devFailure(nodes, at, errno);
  return new SpawnctlError(`releasing the container process: ${strerror(errno)}`, { errno });
}
