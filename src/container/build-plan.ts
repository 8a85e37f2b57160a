// buildPlan(settings, context) -> Plan. Pure: everything it needs from the
// machine was gathered into the RunContext beforehand (prepare.ts), so the
// whole container layout can be unit-tested without root and printed with
// --print-plan.
//
// The child runs these ops in order. The container root is staged at
// ctx.stage (a host directory, mounted over only inside the container's
// private mount namespace), every path under it is resolved inside it by the
// shim, and the last ops pivot into it and exec the payload.
import type { Settings } from "../settings/types.ts";
import type { BindMount } from "../settings/parse.ts";
import { CLONE, MNT_DETACH, MOUNT_ATTR, MS, PR, S_IF, makedev } from "../sys/consts.ts";
import type { Op, ParentOp, Plan } from "../sys/plan.ts";
import { machineDelegation } from "../cgroup/delegation.ts";
import { FD_SLOTS, FD_TAG } from "../sys/abi.ts";
import { bundleProcessOps, bundleSetupOps, bundleSysctlOps, hasPrestartHooks } from "./bundle-plan.ts";

/** the slot the notify socket is made in (the last: the user namespace's mounts count up from 0) */
const NOTIFY_SLOT = FD_SLOTS - 1;
import { SpawnctlError } from "../util/errors.ts";
import type { CgroupFacts } from "./host.ts";
import { escapeOverlayPath, parseMountOptions } from "./mountopts.ts";
import type { ResolvedUser } from "../util/tree.ts";
import { bindUserOps, idMap, type AccountCopy, type BoundUser } from "./bind-user.ts";
import { CONTAINER_XAUTHORITY, type X11Plan } from "./x11.ts";
import { stackMountData, type LayerStack } from "./stack.ts";

export interface PreparedBind extends BindMount {
  /** the host path to bind (a temporary directory for an empty source) */
  hostSource: string;
  isDir: boolean;
  /** for rootidmap/owneridmap: the host owner of the source and the container owner of the target */
  sourceOwner?: { uid: number; gid: number };
  targetOwner?: { uid: number; gid: number };
}

/** A user namespace for the container: the child's id maps are written by the parent at barrier 1. */
export interface UsernsContext {
  shift: number;
  range: number;
  /** the root (the tree, or its /usr for --volatile=yes), which always arrives as a mount in
   * slot 0, is idmapped to the range (ownership map) rather than a plain clone */
  idmapRoot: boolean;
  /** the tree's own base (its root's owner, rounded down to 65536): what the idmapping maps to the range */
  rootBase?: number;
  /** ownership auto: where the root cannot be idmapped, chown the tree (at barrier 1) and send it plain */
  fallbackChown?: boolean;
}

/** A detached mount the parent makes after writing the id maps, and sends in
 * this order: in a user namespace the child gets the root and every host
 * directory it binds this way, as the host's root made them, since it may
 * not even be allowed to look up their paths (/var/lib/machines is 0700). */
export interface IdmapSource {
  hostPath: string;
  recursive: boolean;
  /** "container": the container's own mapping; "none": a plain clone; else a
   * single host id mapped to a container uid/gid (rootidmap, owneridmap) */
  map: "container" | "none" | { hostUid: number; hostGid: number; uid: number; gid: number; count?: number };
}

function bindByFd(ctx: RunContext, b: PreparedBind): boolean {
  return !!ctx.userns && !b.sourceInImage;
}

/** The mounts a plan receives as fds (slot i = the i-th entry). */
export function idmapSources(s: Settings, ctx: RunContext): IdmapSource[] {
  const u = ctx.userns;
  if (!u) return [];
  const out: IdmapSource[] = [];
  const root = s.volatile === "yes" ? `${ctx.tree === "/" ? "" : ctx.tree}/usr` : ctx.tree;
  // a tree owned by another range (shifted earlier) is mapped from its own base
  const rb = u.rootBase ?? 0;
  const map: IdmapSource["map"] = !u.idmapRoot || rb === u.shift ? "none" : rb === 0 ? "container" : { hostUid: rb, hostGid: rb, uid: 0, gid: 0, count: u.range };
  if (ctx.stack) {
    // a layered image: the layer store (every layer below it) and the image's own directory (upper, work)
    out.push({ hostPath: ctx.stack.layerRoot, recursive: false, map }, { hostPath: ctx.stack.dir, recursive: false, map });
  } else {
    out.push({ hostPath: root, recursive: true, map });
  }
  for (const b of ctx.binds) {
    if (!bindByFd(ctx, b)) continue;
    if (b.idmap === "none") out.push({ hostPath: b.hostSource, recursive: b.recursive, map: "none" });
    else if (b.idmap === "idmap") out.push({ hostPath: b.hostSource, recursive: b.recursive, map: "container" });
    else {
      const src = b.sourceOwner ?? { uid: 0, gid: 0 };
      const dst = b.idmap === "owneridmap" ? b.targetOwner ?? { uid: 0, gid: 0 } : { uid: 0, gid: 0 };
      out.push({ hostPath: b.hostSource, recursive: b.recursive, map: { hostUid: src.uid, hostGid: src.gid, uid: dst.uid, gid: dst.gid } });
    }
  }
  return out;
}

function bindSlot(ctx: RunContext, b: PreparedBind): number | undefined {
  if (!bindByFd(ctx, b)) return undefined;
  let slot = ctx.stack ? 2 : 1;
  for (const o of ctx.binds) {
    if (o === b) return slot;
    if (bindByFd(ctx, o)) slot++;
  }
  return undefined;
}

export interface PreparedOverlay {
  /** lower layers, top-most first, as host paths (or in-root paths when inImage) */
  lower: string[];
  upper?: string;
  work?: string;
  destination: string;
  readOnly: boolean;
}

export type FileAction =
  | { op: "none" }
  | { op: "copy"; content: string | Uint8Array; replace: boolean }
  | { op: "bind"; hostFile: string }
  | { op: "symlink"; target: string }
  | { op: "delete" };

export interface RunContext {
  /** host directory the root is mounted on inside the container's mount namespace */
  stage: string;
  /** host directory for a private scratch tmpfs (overlay upper layers, boot id) */
  scratch: string;
  /** the tree the container runs (a host path) */
  tree: string;
  /** the tree is a layered image (an OCI image): its root is an overlay of its layers */
  stack?: LayerStack;
  cgroup: CgroupFacts;
  /** use a cgroup namespace, rooted at the machine's cgroup */
  cgroupNamespace: boolean;
  /** cgroup v1 "tasks" files the child writes "0" to, joining the machine's cgroups itself (the
   * cgroup2 one it is started in); moving oneself skips the global lock that a move by pid takes */
  cgroupJoin: string[];
  /** the container runs in a payload cgroup below its machine's (--keep-unit: `start`) */
  cgroupPayload?: boolean;
  osRelease: string;
  user: ResolvedUser;
  /** container_uuid: 32 hex digits */
  uuid: string;
  bootId: string;
  env: string[];
  seccomp: Uint8Array;
  binds: PreparedBind[];
  overlays: PreparedOverlay[];
  resolvConf: FileAction;
  timezone: FileAction;
  journal?: { hostDir: string; containerDir: string };
  devices: { fuse: boolean; tun: boolean };
  /** create the tree's missing /etc mount points etc. */
  treeHasEtc: boolean;
  /** the kernel masks (host paths that exist under /proc) */
  procMasks: string[];
  /** the tree's top-level links into /usr (bin -> usr/bin, ...), recreated on a --volatile=yes root */
  usrLinks: Array<[name: string, target: string]>;
  /** spawnctl's own hard RLIMIT_NOFILE, the fallback when it cannot raise it */
  nofileHard: bigint;
  /** the supervisor sets up the network while the child mounts: wait for it before dropping privileges */
  networkBarrier: boolean;
  userns?: UsernsContext;
  /** --bind-user=: the users, and the guest's account files with their lines (guests without nss-systemd) */
  bindUsers?: { users: BoundUser[]; copies: AccountCopy[] };
  /** --x11: the display and the Xauthority to write at /run/host/xauthority */
  x11?: X11Plan;
  /** the lock on the user namespace's range, held while the container runs (not part of the plan) */
  rangeLock?: import("../util/lock.ts").Lock;
}

const API_ATTRS = MS.NOSUID | MS.NOEXEC | MS.NODEV;
const TMPFS = "tmpfs";

/** The paths nspawn masks with an inaccessible file and those it makes read-only. */
export const PROC_INACCESSIBLE = ["/proc/kallsyms", "/proc/kcore", "/proc/keys", "/proc/sysrq-trigger", "/proc/timer_list"];
export const PROC_READ_ONLY = ["/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/scsi"];

const DEV_NODES: Array<[name: string, major: number, minor: number]> = [
  ["null", 1, 3], ["zero", 1, 5], ["full", 1, 7], ["random", 1, 8], ["urandom", 1, 9], ["tty", 5, 0],
];

function m(op: Omit<Extract<Op, { kind: "mount" }>, "kind">): Op {
  return { kind: "mount", ...op };
}

function ro(dst: string, recursive = false, extra = 0, optional = false): Op {
  const op: Op = { kind: "setattr", dst, dstInRoot: true, set: MOUNT_ATTR.RDONLY | extra };
  if (recursive) op.recursive = true;
  if (optional) op.optional = true;
  return op;
}

function bindSelf(dst: string, optional = false, recursive = false, attrsAfter = 0): Op {
  const op = m({ src: dst, dst, srcInRoot: true, dstInRoot: true, flags: MS.BIND | (recursive ? MS.REC : 0) });
  if (optional) op.optional = true;
  if (attrsAfter) Object.assign(op, { attrsAfter, recursive });
  return op;
}

/** Mounting the root at ctx.stage according to --read-only, --volatile and --ephemeral. */
function rootOps(s: Settings, ctx: RunContext): Op[] {
  const ops: Op[] = [];
  const stage = ctx.stage;
  const scratchTmpfs = (): Op => m({ src: "tmpfs", dst: ctx.scratch, fstype: TMPFS, flags: MS.NOSUID | MS.NODEV, data: "mode=0700", what: `mounting a scratch tmpfs on ${ctx.scratch}` });
  // in a user namespace the root arrives as a mount in slot 0
  const idmapped = !!ctx.userns;
  const overlayRoot = (): Op[] => {
    // in a user namespace the lower layer is the tree's mount from slot 0, and overlayfs
    // keeps its own attributes in user.* xattrs (trusted.* needs the host's root)
    const lower = idmapped ? `${ctx.scratch}/lower` : ctx.tree;
    return [
      ...(idmapped ? [{ kind: "moveMount", slot: 0, dst: lower, dstInRoot: false, mkdir: true } as Op] : []),
      { kind: "mkdir", path: `${ctx.scratch}/upper`, mode: 0o755, inRoot: false },
      { kind: "mkdir", path: `${ctx.scratch}/work`, mode: 0o700, inRoot: false },
      m({
        src: "overlay", dst: stage, fstype: "overlay", flags: 0,
        data: `lowerdir=${escapeOverlayPath(lower)},upperdir=${ctx.scratch}/upper,workdir=${ctx.scratch}/work${ctx.userns ? ",userxattr" : ""}`,
        what: `mounting an overlay of ${ctx.tree} on ${stage}`,
      }),
    ];
  };
  ops.push(scratchTmpfs());
  if (ctx.stack) {
    ops.push(...stackRootOps(s, ctx));
  } else if (s.ephemeral || s.volatile === "overlay") {
    // -x: changes go to an overlay upper layer on a tmpfs that vanishes with the
    // container's mount namespace; the tree itself is never written to.
    ops.push(...overlayRoot());
  } else if (s.volatile === "yes") {
    ops.push(
      m({ src: "tmpfs", dst: stage, fstype: TMPFS, flags: MS.STRICTATIME, data: "mode=0755", what: `mounting a volatile tmpfs root on ${stage}` }),
      { kind: "setRoot", path: stage },
      ...(idmapped
        ? [{ kind: "moveMount", slot: 0, dst: "/usr", dstInRoot: true, mkdir: true } as Op, ro("/usr", true)]
        : [m({ src: `${ctx.tree}/usr`, dst: "/usr", dstInRoot: true, mkdir: true, flags: MS.BIND | MS.REC, what: `binding ${ctx.tree}/usr to the volatile root`, attrsAfter: MOUNT_ATTR.RDONLY, recursive: true })]),
      // an empty root needs the merged-/usr links and the usual top-level directories
      ...ctx.usrLinks.map(([name, target]): Op => ({ kind: "symlink", target, path: `/${name}`, inRoot: true })),
      ...["etc", "var", "root", "home", "srv", "mnt"].map((d): Op => ({ kind: "mkdir", path: `/${d}`, mode: d === "root" ? 0o700 : 0o755, inRoot: true })),
    );
    return ops;
  } else if (idmapped) {
    ops.push({ kind: "moveMount", slot: 0, dst: stage, dstInRoot: false });
  } else {
    ops.push(m({ src: ctx.tree, dst: stage, flags: MS.BIND | MS.REC, what: `binding ${ctx.tree} to ${stage}` }));
  }
  ops.push({ kind: "setRoot", path: stage });
  if (s.pivotRoot) {
    // --pivot-root=NEW[:OLD]: NEW (resolved inside the tree) becomes the
    // root; the tree's own root goes to OLD inside it, or stays out of reach
    const pivot = `${ctx.scratch}/pivot`;
    ops.push(
      { kind: "mkdir", path: pivot, mode: 0o755, inRoot: false },
      m({ src: s.pivotRoot.newRoot, srcInRoot: true, dst: pivot, flags: MS.BIND | MS.REC, what: `binding ${s.pivotRoot.newRoot} of the tree as its root (--pivot-root)` }),
      { kind: "setRoot", path: pivot },
    );
    if (s.pivotRoot.oldRoot) {
      ops.push(m({ src: stage, dst: s.pivotRoot.oldRoot, dstInRoot: true, mkdir: true, flags: MS.BIND | MS.REC, what: `binding the tree's root to ${s.pivotRoot.oldRoot} (--pivot-root)` }));
    }
  }
  if (s.readOnly && !s.ephemeral && s.volatile !== "overlay") ops.push(ro("/", true));
  if (s.volatile === "state") {
    ops.push(m({ src: "tmpfs", dst: "/var", dstInRoot: true, mkdir: true, fstype: TMPFS, flags: MS.STRICTATIME, data: "mode=0755" }));
  }
  return ops;
}

/**
 * A layered image's root: an overlay of its layers with its own upper layer
 * on top (written to), or under it for -x and --volatile=overlay (then the
 * changes go to the scratch tmpfs), or as one more lower layer for
 * --read-only. In a user namespace the layer store and the image's directory
 * arrive idmapped in slots 0 and 1, as a directory tree's root does.
 */
function stackRootOps(s: Settings, ctx: RunContext): Op[] {
  const st = ctx.stack!;
  if (s.volatile === "yes") throw new SpawnctlError(`--volatile=yes needs a tree with its own /usr; the layered image ${st.dir} can run with --volatile=overlay or --ephemeral instead.`);
  const ops: Op[] = [];
  let layers = st.layerRoot;
  let own = st.dir;
  if (ctx.userns) {
    layers = `${ctx.scratch}/layers`;
    own = `${ctx.scratch}/image`;
    ops.push({ kind: "moveMount", slot: 0, dst: layers, dstInRoot: false, mkdir: true }, { kind: "moveMount", slot: 1, dst: own, dstInRoot: false, mkdir: true });
  }
  // short names for the layers (scratch/l/N), so that many fit in the mount's options
  const links = `${ctx.scratch}/l`;
  ops.push({ kind: "mkdir", path: links, mode: 0o700, inRoot: false });
  st.lower.forEach((l, i) => ops.push({ kind: "symlink", target: `${layers}/${l}`, path: `${links}/${i}`, inRoot: false }));
  const lower = st.lower.map((_, i) => `${links}/${i}`);
  let data: string;
  let flags = 0;
  if (s.ephemeral || s.volatile === "overlay") {
    ops.push({ kind: "mkdir", path: `${ctx.scratch}/upper`, mode: 0o755, inRoot: false }, { kind: "mkdir", path: `${ctx.scratch}/work`, mode: 0o700, inRoot: false });
    data = stackMountData(st, [`${own}/upper`, ...lower], `${ctx.scratch}/upper`, `${ctx.scratch}/work`);
  } else if (s.readOnly) {
    data = stackMountData(st, [`${own}/upper`, ...lower], undefined, undefined);
    flags = MS.RDONLY;
  } else {
    data = stackMountData(st, lower, `${own}/upper`, `${own}/work`);
  }
  ops.push(m({ src: "overlay", dst: ctx.stage, fstype: "overlay", flags, data, what: `mounting the ${st.lower.length} layers of ${st.dir} on ${ctx.stage}` }));
  return ops;
}

function runOps(s: Settings, ctx: RunContext): Op[] {
  const userns = !!ctx.userns;
  const ops: Op[] = [
    m({ src: "tmpfs", dst: "/run", dstInRoot: true, mkdir: true, fstype: TMPFS, flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: "mode=0755,size=20%,nr_inodes=800k" }),
    { kind: "mkdir", path: "/run/host", mode: 0o755, inRoot: true },
    // empty nodes of every type, bound over what must be hidden
    { kind: "mkdir", path: "/run/host/inaccessible", mode: 0o755, inRoot: true },
    { kind: "mknod", path: "/run/host/inaccessible/reg", mode: S_IF.REG | 0, dev: 0, inRoot: true },
    { kind: "mkdir", path: "/run/host/inaccessible/dir", mode: 0, inRoot: true },
    { kind: "mknod", path: "/run/host/inaccessible/chr", mode: S_IF.CHR | 0, dev: 0, inRoot: true },
    // a user namespace may not make block nodes: that mask is then missing
    { kind: "mknod", path: "/run/host/inaccessible/blk", mode: S_IF.BLK | 0, dev: 0, inRoot: true, ...(userns ? { ignoreErrors: true } : {}) },
    { kind: "mknod", path: "/run/host/inaccessible/fifo", mode: S_IF.FIFO | 0, dev: 0, inRoot: true },
    { kind: "mknod", path: "/run/host/inaccessible/sock", mode: S_IF.SOCK | 0, dev: 0, inRoot: true },
    { kind: "write", path: "/run/host/os-release", data: ctx.osRelease, mode: 0o444, inRoot: true, create: true },
    { kind: "write", path: "/run/host/container-manager", data: "systemd-nspawn\n", mode: 0o444, inRoot: true, create: true },
    { kind: "write", path: "/run/host/container-uuid", data: `${formatUuid(ctx.uuid)}\n`, mode: 0o444, inRoot: true, create: true },
    { kind: "mkdir", path: "/run/host/incoming", mode: 0o755, inRoot: true },
  ];
  if (s.credentials.length > 0) {
    ops.push(
      m({ src: "ramfs", dst: "/run/host/credentials", dstInRoot: true, mkdir: true, fstype: "ramfs", flags: API_ATTRS, data: "mode=0700" }),
      ...s.credentials.map((c): Op => ({ kind: "write", path: `/run/host/credentials/${c.id}`, data: c.data, mode: 0o400, inRoot: true, create: true })),
      { kind: "chmod", path: "/run/host/credentials", mode: 0o500, inRoot: true },
      ro("/run/host/credentials"),
    );
  }
  return ops;
}

/** The device nodes a container gets (name under /dev, major, minor). */
export function deviceNodes(ctx: Pick<RunContext, "devices">): Array<[name: string, major: number, minor: number]> {
  const nodes = [...DEV_NODES];
  if (ctx.devices.fuse) nodes.push(["fuse", 10, 229]);
  if (ctx.devices.tun) nodes.push(["net/tun", 10, 200]);
  return nodes;
}

/** In a user namespace the container's /dev arrives made, with its nodes, in the slot after the mounts (at barrier 3). */
export function devSlot(s: Settings, ctx: RunContext): number {
  return idmapSources(s, ctx).length;
}

function devOps(s: Settings, ctx: RunContext): Op[] {
  const ops: Op[] = ctx.userns
    ? [
      // the parent made it (and delegated our cgroups) while we mounted
      { kind: "barrier", id: 3 },
      { kind: "recvFd", slot: devSlot(s, ctx) },
      { kind: "moveMount", slot: devSlot(s, ctx), dst: "/dev", dstInRoot: true, mkdir: true },
    ]
    : [m({ src: "tmpfs", dst: "/dev", dstInRoot: true, mkdir: true, fstype: TMPFS, flags: MS.NOSUID | MS.STRICTATIME, data: DEVFS_OPTIONS })];
  const nodes = [...DEV_NODES];
  if (ctx.devices.fuse) nodes.push(["fuse", 10, 229]);
  // a user namespace may not make device nodes: its /dev came with them
  const node = (path: string, maj: number, min: number, ignoreErrors = false): Op[] => {
    if (ctx.userns) return [];
    const op: Op = { kind: "mknod", path, mode: S_IF.CHR | 0o666, dev: makedev(maj, min), inRoot: true };
    if (ignoreErrors) op.ignoreErrors = true;
    return [op];
  };
  for (const [name, maj, min] of nodes) {
    ops.push(
      ...node(`/dev/${name}`, maj, min),
      { kind: "symlink", target: `../${name}`, path: `/dev/char/${maj}:${min}`, inRoot: true },
    );
  }
  if (ctx.devices.tun) {
    ops.push(
      // without a private network a missing tun node is not worth failing for
      ...node("/dev/net/tun", 10, 200, !s.privateNetwork),
      { kind: "symlink", target: "../net/tun", path: "/dev/char/10:200", inRoot: true, ignoreErrors: !s.privateNetwork },
    );
  }
  ops.push(
    { kind: "symlink", target: "/proc/self/fd", path: "/dev/fd", inRoot: true },
    { kind: "symlink", target: "/proc/self/fd/0", path: "/dev/stdin", inRoot: true },
    { kind: "symlink", target: "/proc/self/fd/1", path: "/dev/stdout", inRoot: true },
    { kind: "symlink", target: "/proc/self/fd/2", path: "/dev/stderr", inRoot: true },
    { kind: "symlink", target: "/proc/kcore", path: "/dev/core", inRoot: true },
    m({ src: "tmpfs", dst: "/dev/shm", dstInRoot: true, mkdir: true, fstype: TMPFS, flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: "mode=1777" }),
    m({ src: "devpts", dst: "/dev/pts", dstInRoot: true, mkdir: true, fstype: "devpts", flags: MS.NOSUID | MS.NOEXEC, data: "newinstance,ptmxmode=0666,mode=620,gid=5" }),
    { kind: "symlink", target: "pts/ptmx", path: "/dev/ptmx", inRoot: true },
    m({ src: "mqueue", dst: "/dev/mqueue", dstInRoot: true, mkdir: true, fstype: "mqueue", flags: API_ATTRS }),
  );
  return ops;
}

function procOps(s: Settings, ctx: RunContext): Op[] {
  const ops: Op[] = [
    m({ src: "proc", dst: "/proc", dstInRoot: true, mkdir: true, fstype: "proc", flags: API_ATTRS }),
    // an OCI bundle's sysctls, while /proc/sys is writable
    ...bundleSysctlOps(s),
    // /proc/sys read-only; with a private network its net/ part stays writable.
    // Bind first, then remount: the kernel ignores MS_RDONLY on the initial bind.
    bindSelf("/proc/sys", false, false, MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC),
  ];
  if (s.privateNetwork) {
    // a bind inherits the read-only flag of the mount it comes from: clear it
    ops.push(bindSelf("/proc/sys/net"), { kind: "setattr", dst: "/proc/sys/net", dstInRoot: true, set: 0, clear: MOUNT_ATTR.RDONLY });
  }
  for (const p of PROC_READ_ONLY) ops.push(bindSelf(p, true, false, MOUNT_ATTR.RDONLY));
  for (const p of ctx.procMasks) {
    ops.push(m({ src: "/run/host/inaccessible", dst: p, srcInRoot: true, dstInRoot: true, flags: MS.BIND, inaccessible: true, optional: true }));
  }
  // a boot ID of its own, bound read-only over the kernel's
  ops.push(
    { kind: "write", path: `${ctx.scratch}/boot_id`, data: `${ctx.bootId}\n`, mode: 0o444, inRoot: false, create: true },
    m({ src: `${ctx.scratch}/boot_id`, dst: "/proc/sys/kernel/random/boot_id", dstInRoot: true, flags: MS.BIND, attrsAfter: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC }),
  );
  return ops;
}

function sysOps(s: Settings, ctx: RunContext): Op[] {
  const ops: Op[] = [];
  if (ctx.userns && !(cloneFlags(s, ctx) & CLONE.NEWNET)) {
    // a user namespace may mount sysfs only for a network namespace it owns:
    // sharing the host's network, the container gets the host's /sys, read-only
    ops.push(m({ src: "/sys", dst: "/sys", dstInRoot: true, mkdir: true, flags: MS.BIND | MS.REC, attrsAfter: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC, recursive: true, what: "binding the host's /sys into the container" }));
  } else {
    ops.push(m({ src: "sysfs", dst: "/sys", dstInRoot: true, mkdir: true, fstype: "sysfs", flags: API_ATTRS | MS.RDONLY }));
  }
  ops.push(...cgroupOps(ctx));
  return ops;
}

function cgroupOps(ctx: RunContext): Op[] {
  const cg = ctx.cgroup;
  const ops: Op[] = [];
  const at = "/sys/fs/cgroup";
  if (cg.layout === "unified") {
    ops.push(m({ src: "cgroup2", dst: at, dstInRoot: true, fstype: "cgroup2", flags: API_ATTRS, data: "nsdelegate" }));
    return ops;
  }
  if (cg.layout === "none") return ops;
  ops.push(m({ src: "tmpfs", dst: at, dstInRoot: true, fstype: TMPFS, flags: API_ATTRS, data: "mode=0755" }));
  for (const h of cg.v1) {
    const dst = `${at}/${h.dirName}`;
    ops.push(m({ src: "cgroup", dst, dstInRoot: true, mkdir: true, fstype: "cgroup", flags: API_ATTRS | (h.name ? 0 : MS.RDONLY), data: h.options }));
    // co-mounted controllers get a symlink per controller ("cpu -> cpu,cpuacct")
    if (h.controllers.length > 1) {
      for (const c of h.controllers) if (c !== h.dirName) ops.push({ kind: "symlink", target: h.dirName, path: `${at}/${c}`, inRoot: true });
    }
  }
  if (cg.layout === "hybrid") {
    ops.push(m({ src: "cgroup2", dst: `${at}/unified`, dstInRoot: true, mkdir: true, fstype: "cgroup2", flags: API_ATTRS, data: "nsdelegate" }));
  }
  ops.push(ro(at, false, MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC));
  return ops;
}

function customMountOps(s: Settings, ctx: RunContext): Op[] {
  type Entry = { dst: string; ops: Op[] };
  const entries: Entry[] = [];
  for (const b of ctx.binds) {
    const slot = bindSlot(ctx, b);
    if (slot !== undefined) {
      const ops: Op[] = [{ kind: "moveMount", slot, dst: b.destination, dstInRoot: true, mkdir: b.isDir, mkfile: !b.isDir }];
      if (b.readOnly) ops.push(ro(b.destination, b.recursive));
      entries.push({ dst: b.destination, ops });
      continue;
    }
    const ops: Op[] = [
      m({
        src: b.hostSource, srcInRoot: b.sourceInImage, dst: b.destination, dstInRoot: true,
        mkdir: b.isDir, mkfile: !b.isDir, flags: MS.BIND | (b.recursive ? MS.REC : 0),
        ...(b.readOnly ? { attrsAfter: MOUNT_ATTR.RDONLY, recursive: b.recursive } : {}),
      }),
    ];
    entries.push({ dst: b.destination, ops });
  }
  for (const t of s.tmpfs) {
    const { flags, data } = parseMountOptions(t.options, MS.NODEV | MS.STRICTATIME);
    entries.push({ dst: t.destination, ops: [m({ src: "tmpfs", dst: t.destination, dstInRoot: true, mkdir: true, fstype: TMPFS, flags, data })] });
  }
  for (const o of ctx.overlays) {
    const lower = o.lower.map(escapeOverlayPath).join(":");
    const data = (o.readOnly || !o.upper
      ? `lowerdir=${lower}`
      : `lowerdir=${lower},upperdir=${escapeOverlayPath(o.upper)},workdir=${escapeOverlayPath(o.work!)}`) + (ctx.userns ? ",userxattr" : "");
    entries.push({
      dst: o.destination,
      ops: [m({ src: "overlay", dst: o.destination, dstInRoot: true, mkdir: true, fstype: "overlay", flags: o.readOnly ? MS.RDONLY : 0, data })],
    });
  }
  for (const p of s.inaccessible) {
    entries.push({
      dst: p,
      ops: [
        m({ src: "/run/host/inaccessible", dst: p, srcInRoot: true, dstInRoot: true, flags: MS.BIND, inaccessible: true, attrsAfter: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC }),
      ],
    });
  }
  // parents before children, as nspawn sorts custom mounts by destination
  entries.sort((a, b) => a.dst.split("/").length - b.dst.split("/").length || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  return entries.flatMap((e) => e.ops);
}

function fileActionOps(path: string, a: FileAction, mode = 0o644): Op[] {
  switch (a.op) {
    case "none":
      return [];
    case "copy":
      return [
        ...(a.replace ? [{ kind: "unlink", path, inRoot: true, optional: true } as Op] : []),
        { kind: "write", path, data: a.content, mode, inRoot: true, create: true, trunc: true, optional: true },
      ];
    case "bind": {
      // best effort, as nspawn: a read-only tree without the file keeps none
      const bind = m({ src: a.hostFile, dst: path, dstInRoot: true, mkfile: true, flags: MS.BIND, attrsAfter: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC });
      bind.ignoreErrors = true;
      return [bind];
    }
    case "symlink":
      return [
        { kind: "unlink", path, inRoot: true, optional: true },
        { kind: "symlink", target: a.target, path, inRoot: true, optional: true },
      ];
    case "delete":
      return [{ kind: "unlink", path, inRoot: true, optional: true }];
  }
}

export function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function cloneFlags(s: Settings, ctx?: RunContext): number {
  let f = CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC;
  if (s.privateNetwork && !s.networkNamespacePath) f |= CLONE.NEWNET;
  if (ctx?.userns) f |= CLONE.NEWUSER;
  return f;
}

/** execve candidates: init for --boot, the command, or a login shell. */
export function execOps(s: Settings, ctx: RunContext): Op[] {
  const env = ctx.env;
  if (s.boot) {
    const inits = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"];
    return inits.map((file, i): Op => ({ kind: "exec", file, argv: [file, ...s.parameters], env, fallback: i < inits.length - 1 }));
  }
  if (s.parameters.length > 0) {
    return [{ kind: "exec", file: s.parameters[0]!, argv: s.parameters, env, searchPath: true }];
  }
  const shells: string[] = [];
  if (ctx.user.shell && ctx.user.shell.startsWith("/")) shells.push(ctx.user.shell);
  for (const sh of ["/bin/bash", "/bin/sh"]) if (!shells.includes(sh)) shells.push(sh);
  return shells.map((file, i): Op => ({
    kind: "exec", file, argv: [`-${file.split("/").pop()}`], env, fallback: i < shells.length - 1,
  }));
}

/** Die with the supervisor (SIGKILL); the shim also exits at once if the supervisor is gone already. */
function pdeathsig(): Op {
  return { kind: "prctl", option: PR.SET_PDEATHSIG, arg2: 9, what: "setting the parent-death signal" };
}

/** /dev's tmpfs, as nspawn mounts it; the user namespace's /dev (made by the shim) takes the same. */
export const DEVFS_OPTIONS = "mode=0755,size=4m,nr_inodes=64k";

export function buildPlan(s: Settings, ctx: RunContext): Plan {
  const ops: Op[] = [
    // die with the supervisor: a SIGKILLed spawnctl leaves no container behind
    pdeathsig(),
  ];
  // joined while we are still the host's root (in a user namespace too, whose
  // maps need not be written for this: the host's root owns the files, so
  // they need no delegation), and before barrier 1, while the parent works
  for (const t of ctx.cgroupJoin) ops.push({ kind: "write", path: t, data: "0", mode: 0, inRoot: false });
  // a network namespace of our own starts with its loopback down
  if (s.privateNetwork && !s.networkNamespacePath) ops.push({ kind: "ifUp", name: "lo" });
  if (ctx.userns) {
    // barrier 1 (the parent answers it right after the clone, before we
    // ask): the parent writes our id maps and sends the idmapped mounts;
    // while we mount it makes our /dev (barrier 3), then delegates our
    // cgroups and makes our network links (barrier 2). Without a user
    // namespace there is nothing to wait for here: the parent makes the
    // links in our network namespace as soon as the clone has made it.
    ops.push({ kind: "barrier", id: 1 });
    const last = devSlot(s, ctx);
    // (the last slot is the notify socket's)
    if (last >= NOTIFY_SLOT) {
      throw new SpawnctlError(`With a user namespace at most ${NOTIFY_SLOT - 2} host directories can be bound (--bind=/--bind-ro=); got ${last - 1}.`);
    }
    for (let slot = 0; slot < last; slot++) ops.push({ kind: "recvFd", slot });
    // we still are the host's root, which the namespace cannot map: become its root
    ops.push({ kind: "setgroups", gids: [] }, { kind: "setgid", gid: 0 }, { kind: "setuid", uid: 0 });
    // a change of credentials clears the parent-death signal: arm it again,
    // or a SIGKILLed spawnctl would leave the container running
    ops.push(pdeathsig());
  }
  if (s.networkNamespacePath) ops.push({ kind: "setns", path: s.networkNamespacePath, nstype: CLONE.NEWNET });
  if (ctx.cgroupNamespace) ops.push({ kind: "unshare", flags: CLONE.NEWCGROUP });
  // our mounts must not propagate back to the host
  ops.push(m({ dst: "/", flags: MS.SLAVE | MS.REC, what: "making the host's mounts slaves of the container's namespace" }));
  ops.push(...rootOps(s, ctx));
  ops.push(...runOps(s, ctx));
  if (s.notifyReady) {
    // --notify-ready: the payload reports READY=1 on /run/host/notify (its
    // NOTIFY_SOCKET); the socket goes to the parent, which waits for it
    ops.push(
      { kind: "bindSocket", path: "/run/host/notify", inRoot: true, slot: NOTIFY_SLOT },
      { kind: "sendFd", slot: NOTIFY_SLOT, tag: FD_TAG.NOTIFY },
    );
  }
  ops.push(...procOps(s, ctx));
  ops.push(...sysOps(s, ctx));
  ops.push(...devOps(s, ctx));
  ops.push(m({ src: "tmpfs", dst: "/tmp", dstInRoot: true, mkdir: true, fstype: TMPFS, flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME, data: "mode=1777,size=10%,nr_inodes=400k" }));
  if (ctx.journal) {
    ops.push(
      m({ src: ctx.journal.hostDir, dst: ctx.journal.containerDir, dstInRoot: true, mkdir: true, flags: MS.BIND, what: `binding the journal ${ctx.journal.hostDir} into the container` }),
    );
  }
  ops.push(...customMountOps(s, ctx));
  if (ctx.bindUsers) ops.push(...bindUserOps(ctx.bindUsers.users, ctx.bindUsers.copies));
  if (ctx.x11?.xauthority) {
    // the cookie is the key to the X server: only the container's user reads it
    ops.push(
      { kind: "write", path: CONTAINER_XAUTHORITY, data: ctx.x11.xauthority, mode: 0o600, inRoot: true, create: true, trunc: true },
      { kind: "chown", path: CONTAINER_XAUTHORITY, uid: ctx.user.uid, gid: ctx.user.gid, inRoot: true },
    );
  }
  ops.push(...bundleSetupOps(s, ctx));
  if (ctx.treeHasEtc) {
    const fileOps = [...fileActionOps("/etc/resolv.conf", ctx.resolvConf), ...fileActionOps("/etc/localtime", ctx.timezone)];
    // as nspawn ("Failed to copy /etc/resolv.conf ..., ignoring"), a file
    // that cannot be put there is worth no failure: the container's root may
    // not own the tree's /etc (-U), or the tree has a FIFO, a device or a
    // directory where the file belongs (never opened: see the shim's write)
    for (const op of fileOps) op.ignoreErrors = true;
    ops.push(...fileOps);
  }
  // /run/host is read-only once filled; what is mounted below it keeps its
  // own flags (--bind-user='s homes stay writable, the credentials are read-only already)
  ops.push(m({ src: "/run/host", dst: "/run/host", srcInRoot: true, dstInRoot: true, flags: MS.BIND | MS.REC, attrsAfter: MOUNT_ATTR.RDONLY }));
  ops.push({ kind: "pivot" });
  ops.push({ kind: "hostname", name: s.hostname });
  if (s.console !== "pipe") {
    const size = s.bundle?.consoleSize;
    ops.push({ kind: "console", ptmx: "/dev/pts/ptmx", link: "/dev/console", ...(size ? { size: { rows: size.height, cols: size.width } } : {}) });
  }
  if (!s.rlimits.some((r) => r.resource === 7)) {
    // what a kernel gives its init: 1024 soft, and a hard limit of 512K where
    // spawnctl may raise it (CAP_SYS_RESOURCE), else the one it has
    ops.push(
      { kind: "rlimit", resource: 7, soft: 1024n, hard: 524288n, name: "NOFILE", ignoreErrors: true },
      { kind: "rlimit", resource: 7, soft: 1024n < ctx.nofileHard ? 1024n : ctx.nofileHard, hard: ctx.nofileHard, name: "NOFILE", ignoreErrors: true },
    );
  }
  for (const r of s.rlimits) ops.push({ kind: "rlimit", resource: r.resource, soft: r.soft, hard: r.hard, name: r.name });
  if (!Number.isNaN(s.oomScoreAdjust)) {
    ops.push({ kind: "write", path: "/proc/self/oom_score_adj", data: String(s.oomScoreAdjust), mode: 0, inRoot: false });
  }
  if (s.cpuAffinity.length > 0) {
    const bytes = new Uint8Array(Math.ceil((Math.max(...s.cpuAffinity) + 1) / 64) * 8);
    for (const c of s.cpuAffinity) bytes[c >> 3]! |= 1 << (c & 7);
    ops.push({ kind: "affinity", mask: bytes });
  }
  if (s.personality === "x86") ops.push({ kind: "personality", persona: 0x0008 /* PER_LINUX32 */ });
  // links were made meanwhile (addresses and firewall rules come after), and
  // in a user namespace our cgroups delegated: wait for them
  // (and an OCI bundle's prestart hooks ran)
  if (ctx.networkBarrier || ctx.userns || hasPrestartHooks(s)) ops.push({ kind: "barrier", id: 2 });
  // the veth's end here: the host creates it up on its side only (the kernel
  // cannot bring up a peer before the pair is joined)
  if (ctx.networkBarrier && s.networkVeth) ops.push({ kind: "ifUp", name: "host0" });
  ops.push({ kind: "setsid", ctty: s.console !== "pipe", cttyStdin: s.console === "pipe" });
  ops.push({ kind: "capbset", keep: s.capability });
  ops.push({ kind: "seccomp", program: ctx.seccomp });
  const u = ctx.user;
  if (u.uid !== 0 || u.gid !== 0) {
    if (s.ambientCapability) ops.push({ kind: "prctl", option: PR.SET_KEEPCAPS, arg2: 1, what: "keeping capabilities across the user change" });
    ops.push({ kind: "setgroups", gids: u.groups }, { kind: "setgid", gid: u.gid }, { kind: "setuid", uid: u.uid }, pdeathsig());
    ops.push({ kind: "caps", set: s.ambientCapability, ambient: s.ambientCapability });
  } else {
    // (root's supplementary groups only as an OCI bundle lists them)
    ops.push({ kind: "setgroups", gids: s.userIds ? u.groups : [] });
    ops.push({ kind: "caps", set: s.capability, ambient: 0n });
  }
  if (s.noNewPrivileges) ops.push({ kind: "prctl", option: PR.SET_NO_NEW_PRIVS, arg2: 1, what: "setting no_new_privs" });
  const cwd = s.workingDirectory || (s.boot || s.parameters.length > 0 ? "/" : u.home || "/");
  ops.push({ kind: "chdir", path: cwd, optional: !s.workingDirectory });
  ops.push(...bundleProcessOps(s));
  // nothing of the host side stays open past this point: not in the payload,
  // and not in --as-pid2's stub init, which never execs (the caller's fds, the
  // cgroup directory, the locks, a machine supervisor's fds). The stub init
  // is non-dumpable, so a container process without CAP_SYS_PTRACE cannot open
  // its /proc/1/exe, fd or mem; the payload becomes dumpable again at its exec.
  ops.push({ kind: "closeFrom", fd: 3 });
  if (s.asPid2) ops.push({ kind: "prctl", option: PR.SET_DUMPABLE, arg2: 0, what: "making the stub init non-dumpable" }, { kind: "stubInit" });
  ops.push({ kind: "sigreset" });
  // -Z: the payload's SELinux label, taken at its exec
  if (s.selinuxContext) ops.push({ kind: "write", path: "/proc/thread-self/attr/exec", data: s.selinuxContext, mode: 0, inRoot: false });
  ops.push(...execOps(s, ctx));
  const parent = parentOps(s, ctx);
  if (s.selinuxApifsContext) labelApiFilesystems(ops, parent, s.selinuxApifsContext);
  return { cloneFlags: cloneFlags(s, ctx), ops, parent, root: ctx.tree };
}

/** -L: the container's API file systems (its tmpfs mounts, devpts, mqueue, the user namespace's /dev) get the SELinux label. */
function labelApiFilesystems(ops: Op[], parent: ParentOp[], label: string): void {
  const opt = `context="${label}"`;
  for (const op of ops) {
    if (op.kind !== "mount" || !op.dstInRoot || !op.fstype || !["tmpfs", "devpts", "mqueue"].includes(op.fstype)) continue;
    op.data = op.data ? `${op.data},${opt}` : opt;
  }
  for (const op of parent) if (op.kind === "makeDevfs") op.options = `${op.options},${opt}`;
}

/** ownership chown rewrites the tree itself: not with a copy or an overlay of it, and only for a whole 64K range. */
export function checkChown(s: Settings, r: { shift: number; range: number }): void {
  if (s.ephemeral || s.volatile === "overlay") throw new SpawnctlError("--private-users-ownership=chown may not be combined with --ephemeral or --volatile=overlay: the tree itself would be rewritten.");
  if (s.volatile === "yes") throw new SpawnctlError("--private-users-ownership=chown may not be combined with --volatile=yes.");
  if (r.range !== 65536 || r.shift % 65536 !== 0) throw new SpawnctlError(`--private-users-ownership=chown needs a range of 65536 starting at a multiple of 65536 (got ${r.shift}:${r.range}).`);
}

/** The line of the child's uid_map and gid_map: its root is the range's first id. */
function mapLine(u: UsernsContext): string {
  return `0 ${u.shift} ${u.range}\n`;
}

/** Why ownership auto may not fall back to chown for this start, if it may not. */
function chownRefusal(s: Settings, r: { shift: number; range: number }): string | undefined {
  try {
    checkChown(s, r);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The user namespace's part of the parent's side, up to barrier 2 (see
 * build-plan.ts parentOps): right after the clone the child waits at
 * barrier 1 for its maps and its mounts (the tree, the binds), the least it
 * needs to go on; then, while it mounts, the delegation of its cgroups
 * (which it joined as the host's root, before it became the namespace's)
 * and its /dev, which it takes at barrier 3.
 */
function usernsParentOps(s: Settings, ctx: RunContext, delegation: string[]): ParentOp[] {
  const u = ctx.userns!;
  const bound = ctx.bindUsers?.users ?? [];
  const ops: ParentOp[] = [bound.length > 0
    ? { kind: "mapUserns", uidMap: idMap(u.shift, u.range, bound, "uid"), gidMap: idMap(u.shift, u.range, bound, "gid"), reg: 0 }
    : { kind: "mapUserns", uidMap: mapLine(u), gidMap: mapLine(u), reg: 0 }];
  idmapSources(s, ctx).forEach((src, k) => {
    if (src.map === "none") {
      ops.push({ kind: "cloneTree", path: src.hostPath, recursive: src.recursive });
      return;
    }
    const reg = src.map === "container" ? 0 : 1;
    if (src.map !== "container") {
      const m = src.map;
      ops.push({ kind: "makeUserns", uidMap: `${m.hostUid} ${u.shift + m.uid} ${m.count ?? 1}\n`, gidMap: `${m.hostGid} ${u.shift + m.gid} ${m.count ?? 1}\n`, reg });
    }
    const op: ParentOp = { kind: "idmapTree", path: src.hostPath, reg, recursive: src.recursive, flatRetry: src.recursive };
    // the tree (the first source): ownership auto chowns it where it cannot be idmapped
    if (k === 0 && u.fallbackChown && !ctx.stack) {
      const refused = chownRefusal(s, u);
      op.fallback = refused ? { refused } : { tree: ctx.tree, shift: u.shift };
    }
    ops.push(op);
    if (reg !== 0) ops.push({ kind: "closeReg", reg });
  });
  ops.push({ kind: "closeReg", reg: 0 }, { kind: "go", barrier: 1 });
  if (delegation.length) ops.push({ kind: "chownPaths", paths: delegation, uid: u.shift, gid: u.shift, what: "delegating the machine's cgroups to the container's root" });
  ops.push({ kind: "makeDevfs", options: DEVFS_OPTIONS, nodes: deviceNodes(ctx), uid: u.shift, gid: u.shift }, { kind: "go", barrier: 3 });
  return ops;
}


/**
 * The parent's side of the plan (sys/plan.ts ParentOp): what the spawning
 * process does while the child works, in order. With a user namespace the
 * shim's part comes first (usernsParentOps); the network's steps run once
 * the child's namespace exists (the clone made it), and before the go-ahead
 * for barrier 2, after which the payload may run, the network is ready;
 * the host's side of it overlaps with the payload's start.
 */
export function parentOps(s: Settings, ctx: RunContext): ParentOp[] {
  const ops: ParentOp[] = ctx.userns ? usernsParentOps(s, ctx, machineDelegation(ctx.cgroup, s.machine, !!ctx.cgroupPayload)) : [];
  if (ctx.networkBarrier) ops.push({ kind: "step", name: "net-links" }, { kind: "step", name: "net-ready" });
  if (hasPrestartHooks(s)) ops.push({ kind: "step", name: "oci-prestart" });
  if (ctx.networkBarrier || ctx.userns || hasPrestartHooks(s)) ops.push({ kind: "go", barrier: 2 });
  if (ctx.networkBarrier) ops.push({ kind: "step", name: "net-host" });
  return ops;
}

export { MNT_DETACH };
