// Gathers everything the plan builder needs from the machine (the tree's
// users and machine ID, bind sources, resolv.conf and timezone decisions,
// temporary directories) into a RunContext. Undo steps for what it creates
// are pushed onto the caller's cleanup stack before the side effect.
import { mkdirInRoot } from "../sys/at.ts";
import { sweepTemp, tempName } from "../cgroup/gc.ts";
import { mkdirSync, mkdtempSync, rmSync, statSync, existsSync, lstatSync, readFileSync, readlinkSync, symlinkSync } from "node:fs";
import { type Settings, needsNetworkSetup } from "../settings/types.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { trace, warn } from "../util/log.ts";
import { chaseInRoot, existsInRoot, parseOsRelease, readInRoot, resolveUser, statInRoot, type ResolvedUser } from "../util/tree.ts";
import { PROC_INACCESSIBLE, type FileAction, type PreparedBind, type PreparedOverlay, type RunContext } from "./build-plan.ts";
import type { HostFacts } from "./host.ts";
import { loadFilter } from "./seccomp/load.ts";
import { containerDir, machineCgroupRel } from "../cgroup/cgroup.ts";
import { bindOwners, prepareUserns } from "./userns-setup.ts";
import { accountCopies, boundResolved, planBindUsers, readHostAccounts, type BoundUser } from "./bind-user.ts";
import { makePeersFile, peersFile, wantsPeers } from "./hosts.ts";
import { CONTAINER_XAUTHORITY, X11_SOCKET_DIR, planX11, type X11Plan } from "./x11.ts";
import { isStack, withTreeView } from "./stack.ts";

export const RUNTIME_DIR = "/run/spawnctl";
export const STAGE_DIR = `${RUNTIME_DIR}/root`;
export const SCRATCH_DIR = `${RUNTIME_DIR}/scratch`;

export type Cleanup = Array<() => void>;

/**
 * A root that is not a directory on the host (a disk image, src/image/disk):
 * made for each start of the container, and let go of on the host once the
 * container's child holds its own copy of it.
 */
export interface TreeSource {
  /** what is locked and recorded as the machine's root (the image file) */
  path: string;
  /** make the tree (undo steps on `cleanup`); the settings to plan with: its directory is the tree */
  open(s: Settings, cleanup: Cleanup): { tree: string; settings: Settings };
  /** the child has cloned its mount namespace and is running: the host's side can go */
  spawned(): void;
}

/** Undo what a cleanup stack holds, newest first; a failing step is a warning, not the end. */
export function runCleanup(cleanup: Cleanup): void {
  while (cleanup.length > 0) {
    const undo = cleanup.pop()!;
    try {
      undo();
    } catch (e) {
      warn(`cleaning up: ${e instanceof Error ? e.message : e}`);
    }
  }
}

// Web Crypto's generator: node:crypto costs milliseconds to load at start-up
function randomBytes(n: number): Buffer {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(n)));
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

export function randomUuid(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString("hex");
}

function uuidDashed(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The tree's /etc/machine-id if it holds a valid ID. */
export function treeMachineId(tree: string): string | undefined {
  const t = readInRoot(tree, "/etc/machine-id", 4096)?.trim();
  if (t && /^[0-9a-f]{32}$/.test(t) && !/^0+$/.test(t)) return t;
  return undefined;
}

/** Refuse trees that do not look like an OS, as nspawn does. */
/**
 * The directory of the tree that becomes the container's / (--pivot-root's
 * first path, resolved inside the tree), or the tree itself: what the
 * checks and the user, machine ID and /etc lookups read.
 */
export function containerRoot(s: Settings, tree = s.directory): string {
  if (!s.pivotRoot) return tree;
  const p = chaseInRoot(tree, s.pivotRoot.newRoot);
  if (!p) throw new SpawnctlError(`--pivot-root=: ${s.pivotRoot.newRoot} does not exist in ${tree}.`);
  return p;
}

/** `image`: the disk image the tree was mounted from, named in the refusals instead of its mount point. */
export function checkTree(s: Settings, image?: string): void {
  // a layered (OCI) image need not be an OS tree: an application image may have no /usr
  if (isStack(s.directory)) return;
  const dir = containerRoot(s);
  const shown = image ? `Image ${image}` : `Directory ${dir}`;
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    throw new SpawnctlError(`Failed to open directory ${dir}: ${fsMessage(e)}`);
  }
  if (!st.isDirectory()) throw new SpawnctlError(`${dir} is not a directory.`);
  if (s.volatile === "yes") {
    if (!existsInRoot(dir, "/usr")) throw new SpawnctlError(`${shown} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);
    return;
  }
  if (s.boot && process.env.SYSTEMD_NSPAWN_CHECK_OS_RELEASE !== "0") {
    if (!existsInRoot(dir, "/etc/os-release") && !existsInRoot(dir, "/usr/lib/os-release")) {
      throw new SpawnctlError(`${shown} doesn't look like an OS root directory (os-release file is missing). Refusing.`);
    }
  } else if (!s.boot && !existsInRoot(dir, "/usr")) {
    throw new SpawnctlError(`${shown} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);
  }
}

export function buildEnvironment(s: Settings, user: ResolvedUser, uuid: string, hostOsRelease: string, extra: Array<[string, string]> = []): string[] {
  const env = new Map<string, string>();
  env.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.set("container", process.env.SYSTEMD_NSPAWN_CONTAINER_SERVICE || "systemd-nspawn");
  env.set("TERM", s.console === "pipe" ? process.env.TERM ?? "dumb" : process.env.TERM || "vt220");
  env.set("HOME", user.home || "/");
  env.set("USER", user.name);
  env.set("LOGNAME", user.name);
  env.set("container_uuid", uuidDashed(uuid));
  if (s.notifyReady) env.set("NOTIFY_SOCKET", "/run/host/notify");
  if (!s.boot) env.set("LANG", "C.UTF-8");
  const os = parseOsRelease(hostOsRelease);
  for (const k of ["ID", "VERSION_ID", "BUILD_ID", "VARIANT_ID", "IMAGE_ID", "IMAGE_VERSION"]) {
    if (os[k]) env.set(`container_host_${k.toLowerCase()}`, os[k]!);
  }
  if (s.credentials.length > 0) env.set("CREDENTIALS_DIRECTORY", "/run/host/credentials");
  for (const [k, v] of extra) env.set(k, v);
  for (const a of s.environment) {
    const eq = a.indexOf("=");
    env.set(a.slice(0, eq), a.slice(eq + 1));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

function resolvConfAction(s: Settings, facts: HostFacts): FileAction {
  const r = facts.resolvConf ?? { resolvedRunning: false };
  let mode = s.resolvConf;
  if (mode === "auto") {
    if (s.privateNetwork) return { op: "none" };
    const kind = r.resolvedRunning && r.stub ? "stub" : "host";
    mode = `${s.readOnly ? "bind" : "copy"}-${kind}` as Settings["resolvConf"];
  }
  if (mode === "off") return { op: "none" };
  if (mode === "delete") return { op: "delete" };
  const [how, what] = mode.split("-") as ["copy" | "replace" | "bind", "host" | "static" | "uplink" | "stub"];
  const files: Record<string, [string | undefined, string]> = {
    host: [r.host, "/etc/resolv.conf"],
    static: [r.static, "/usr/lib/systemd/resolv.conf"],
    uplink: [r.uplink, "/run/systemd/resolve/resolv.conf"],
    stub: [r.stub, "/run/systemd/resolve/stub-resolv.conf"],
  };
  const [content, hostFile] = files[what]!;
  if (content === undefined) return { op: "none" };
  if (how === "bind") return { op: "bind", hostFile };
  return { op: "copy", content, replace: how === "replace" };
}

function timezoneAction(s: Settings, facts: HostFacts, tree: string): FileAction {
  const lt = facts.localtime;
  let mode = s.timezone;
  if (mode === "auto") {
    // as nspawn: a read-only tree cannot take a new link, so it gets a bind
    if (!lt) mode = s.readOnly ? "off" : "delete";
    else if (s.readOnly) mode = "bind";
    else if (lt.symlinkZone && existsInRoot(tree, `/usr/share/zoneinfo/${lt.symlinkZone}`)) mode = "symlink";
    else mode = "copy";
  }
  switch (mode) {
    case "off": return { op: "none" };
    case "delete": return { op: "delete" };
    case "symlink":
      if (!lt?.symlinkZone) return { op: "none" };
      return { op: "symlink", target: `../usr/share/zoneinfo/${lt.symlinkZone}` };
    case "bind":
      return lt ? { op: "bind", hostFile: "/etc/localtime" } : { op: "none" };
    case "copy":
      return lt?.content ? { op: "copy", content: lt.content, replace: true } : { op: "none" };
  }
  return { op: "none" };
}

/** A temporary directory of this run: made (and removed by the clean-up), or with --print-plan only named. */
function tempDirFor(prefix: string, cleanup: Cleanup, dry: boolean): string {
  if (dry) return `${tempName(prefix)}XXXXXX`;
  mkdirSync("/var/tmp", { recursive: true });
  const dir = mkdtempSync(tempName(prefix));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function prepareBinds(s: Settings, tree: string, cleanup: Cleanup, dry: boolean): PreparedBind[] {
  return s.binds.map((b): PreparedBind => {
    if (b.source === "") {
      return { ...b, hostSource: tempDirFor("/var/tmp/spawnctl-bind-", cleanup, dry), isDir: true };
    }
    if (b.sourceInImage) {
      const st = statInRoot(tree, b.source);
      if (!st) throw new SpawnctlError(`Failed to stat ${b.source} in the container tree: No such file or directory`);
      return { ...b, hostSource: b.source, isDir: st.isDirectory() };
    }
    try {
      return { ...b, hostSource: b.source, isDir: statSync(b.source).isDirectory() };
    } catch (e) {
      throw new SpawnctlError(`Failed to stat ${b.source}: ${fsMessage(e)}`);
    }
  });
}

function prepareOverlays(s: Settings, tree: string, cleanup: Cleanup, dry: boolean): PreparedOverlay[] {
  return s.overlays.map((o) => {
    const hostPath = (l: { path: string; inImage: boolean }, what: string): string => {
      if (!l.inImage) {
        if (!existsSync(l.path)) throw new SpawnctlError(`Overlay ${what} ${l.path} does not exist.`);
        return l.path;
      }
      // an image-relative layer must not leave the tree through a symlink
      const p = chaseInRoot(tree, l.path);
      const direct = `${tree === "/" ? "" : tree}${l.path}`;
      if (!p) throw new SpawnctlError(`Overlay ${what} +${l.path} does not exist in the container tree.`);
      if (p !== direct) throw new SpawnctlError(`Overlay ${what} +${l.path} is reached through a symlink in the container tree; refusing.`);
      return direct;
    };
    // nspawn lists lower layers lowest first; overlayfs wants the top-most first
    const lower = o.lower.map((l) => hostPath(l, "layer")).reverse();
    if (o.readOnly || !o.upper) return { lower, destination: o.destination, readOnly: true };
    let upper: string;
    if (o.upper.path === "") {
      const dir = tempDirFor("/var/tmp/spawnctl-overlay-", cleanup, dry);
      upper = `${dir}/upper`;
      if (!dry) mkdirSync(upper);
    } else upper = hostPath(o.upper, "upper directory");
    // the work directory must live on the upper directory's file system
    const parent = upper.replace(/\/[^/]+\/?$/, "") || "/";
    // (named with our pid: what a SIGKILLed run left there goes now)
    const work = `${parent}/${tempName(".#spawnctl-work-")}${dry ? "XXXXXXXXXXXXXXXX" : randomHex(8)}`;
    if (!dry) {
      sweepTemp(parent, [".#spawnctl-work-"]);
      mkdirSync(work, { mode: 0o700 });
      cleanup.push(() => rmSync(work, { recursive: true, force: true }));
    }
    return { lower, upper, work, destination: o.destination, readOnly: false };
  });
}

function journalContext(s: Settings, tree: string, machineId: string | undefined, cleanup: Cleanup, dry: boolean): RunContext["journal"] {
  const mode = s.linkJournal;
  if (mode === "no" || s.ephemeral || !machineId) {
    if ((mode === "host" || mode === "guest") && !machineId) throw new SpawnctlError("--link-journal= needs a machine ID in the container tree's /etc/machine-id.");
    return undefined;
  }
  const hostDir = `/var/log/journal/${machineId}`;
  const containerDir = `/var/log/journal/${machineId}`;
  const hostHasJournal = existsSync("/var/log/journal");
  switch (mode) {
    case "auto":
      return existsSync(hostDir) && lstatSync(hostDir).isDirectory() ? { hostDir, containerDir } : undefined;
    case "try-host":
    case "host":
      if (!hostHasJournal && mode === "try-host") return undefined;
      if (!dry && !existsSync(hostDir)) mkdirSync(hostDir, { recursive: true, mode: 0o2755 });
      return { hostDir, containerDir };
    case "try-guest":
    case "guest": {
      if (!hostHasJournal) {
        if (mode === "guest") throw new SpawnctlError("--link-journal=guest needs /var/log/journal on the host.");
        return undefined;
      }
      // the journal lives in the tree; the host gets a symlink to it
      // made inside the tree: a symlink there must not make directories on the host
      if (!chaseInRoot(tree, "/var/log") || dry) return undefined;
      const inTree = mkdirInRoot(tree, `/var/log/journal/${machineId}`, 0o2755);
      try {
        const l = lstatSync(hostDir);
        if (!l.isSymbolicLink() && mode === "guest") throw new SpawnctlError(`${hostDir} already exists and is not a symlink.`);
      } catch (e) {
        if (e instanceof SpawnctlError) throw e;
        symlinkSync(inTree, hostDir);
      }
      return undefined;
    }
  }
  void cleanup;
  return undefined;
}

function nofileHard(): bigint {
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (m && /^\d+$/.test(m[1]!)) return BigInt(m[1]!);
  } catch {
    /* no /proc */
  }
  return 524288n;
}

function usrLinks(tree: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    try {
      const p = `${tree}/${name}`;
      if (!lstatSync(p).isSymbolicLink()) continue;
      const t = readlinkSync(p);
      if (/^\/?usr\//.test(t)) out.push([name, t]);
    } catch {
      /* not there */
    }
  }
  return out;
}

/** --bind-user=: each user's home, bound plainly (its owner is mapped into the container) */
function boundHomes(bound: BoundUser[]): PreparedBind[] {
  return bound.map((b): PreparedBind => {
    let isDir: boolean;
    try {
      isDir = statSync(b.hostHome).isDirectory();
    } catch (e) {
      throw new SpawnctlError(`Failed to stat home directory ${b.hostHome} of user '${b.name}' (--bind-user=): ${fsMessage(e)}`);
    }
    if (!isDir) throw new SpawnctlError(`Home directory ${b.hostHome} of user '${b.name}' (--bind-user=) is not a directory.`);
    return { source: b.hostHome, sourceInImage: false, destination: b.home, readOnly: false, recursive: true, idmap: "none", hostSource: b.hostHome, isDir: true };
  });
}

/** --x11: the host's socket directory, read-only (connecting to a socket needs no writable mount) */
function x11Binds(x: X11Plan | undefined): PreparedBind[] {
  if (!x) return [];
  let isDir = false;
  try {
    isDir = statSync(X11_SOCKET_DIR).isDirectory();
  } catch {
    // handled below
  }
  if (!isDir) throw new SpawnctlError(`--x11: ${X11_SOCKET_DIR} does not exist on this host: no local X server is running.`);
  return [{ source: X11_SOCKET_DIR, sourceInImage: false, destination: X11_SOCKET_DIR, readOnly: true, recursive: false, idmap: "none", hostSource: X11_SOCKET_DIR, isDir: true }];
}

/**
 * hosts = true, on a zone or a bridge: the machine's /etc/hosts is bound
 * from a copy that lists its peers (container/hosts.ts). A tree whose
 * /etc/hosts is a link or something else than a file keeps it.
 */
function peersBind(s: Settings, view: string, cleanup: Cleanup, dry: boolean): PreparedBind[] {
  if (!wantsPeers(s)) return [];
  // (a missing file is not made: an empty /etc/hosts left in the tree would
  // lose localhost on its next start)
  const st = statInRoot(view, "/etc/hosts");
  if (!st?.isFile()) return [];
  const file = peersFile(s.machine);
  if (!dry) {
    makePeersFile(s.machine, readInRoot(view, "/etc/hosts") ?? "");
    cleanup.push(() => rmSync(file, { force: true }));
  }
  // read-only: a file on the host's /run that the guest could write would let it fill the host's tmpfs
  return [{ source: file, sourceInImage: false, destination: "/etc/hosts", readOnly: true, recursive: false, idmap: "none", hostSource: file, isDir: false }];
}

function x11Environment(x: X11Plan | undefined): Array<[string, string]> {
  if (!x) return [];
  const env: Array<[string, string]> = [["DISPLAY", x.display.name]];
  if (x.xauthority) env.push(["XAUTHORITY", CONTAINER_XAUTHORITY]);
  return env;
}

/**
 * The facts a plan is built from. With `dry` (--print-plan) nothing is made
 * or changed anywhere: temporary directories are only named, the journal's
 * directories and links are not made, a picked UID range is not locked and a
 * tree is not chowned.
 */
export function prepareContext(s: Settings, facts: HostFacts, tree: string, cleanup: Cleanup, dry = s.printPlan): RunContext {
  // a layered image is read through a read-only view of its layers, gone before it runs
  return withTreeView(tree, s.machine, (files, stack) => {
    const ctx = prepareTreeContext(s, facts, tree, files, cleanup, dry);
    if (stack) ctx.stack = stack;
    return ctx;
  });
}

function prepareTreeContext(s: Settings, facts: HostFacts, tree: string, files: string, cleanup: Cleanup, dry: boolean): RunContext {
  const layered = files !== tree;
  // (the view is gone when the container runs: an overlay's +PATH cannot point into it)
  const inImage = s.overlays.flatMap((o) => [...o.lower, ...(o.upper ? [o.upper] : [])]).find((l) => l.inImage);
  if (layered && inImage) throw new SpawnctlError(`--overlay= with +${inImage.path}: paths inside a layered (OCI) image cannot be overlay layers; use a host directory.`);
  // its layers are shared with other images: they are idmapped, never chowned
  if (layered && s.privateUsers.mode !== "no" && s.privateUsersOwnership === "chown") {
    throw new SpawnctlError("--private-users-ownership=chown would chown layers other images share; a layered (OCI) image runs with map (or auto).");
  }
  // the user, the machine ID and /etc are the container's: below --pivot-root's directory
  const view = containerRoot(s, files);
  const pu = prepareUserns(s, tree, dry);
  if (pu?.lock) {
    const lock = pu.lock;
    cleanup.push(() => lock.release());
  }
  const bound = pu?.userns && s.bindUsers.length > 0 ? planBindUsers(s.bindUsers, view, pu.userns, readHostAccounts()) : [];
  let user: ResolvedUser;
  if (s.user && s.user !== "root" && s.user !== "0") {
    const b = bound.find((x) => x.name === s.user);
    const u = b ? boundResolved(b) : resolveUser(view, s.user);
    if (!u) throw new SpawnctlError(`Failed to resolve user ${s.user}.`);
    user = u;
  } else {
    user = resolveUser(view, "root") ?? { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", groups: [] };
  }
  // an OCI bundle's process.user: the ids as given (the name and home, if the tree knows the uid)
  if (s.userIds) user = { ...user, uid: s.userIds.uid, gid: s.userIds.gid, groups: s.userIds.groups };
  const x11 = s.x11 ? planX11(s.x11.display, process.env, facts.hostname) : undefined;
  const machineId = treeMachineId(view);
  const uuid = machineId ?? (s.uuid || randomUuid());
  if (!dry) {
    mkdirSync(STAGE_DIR, { recursive: true, mode: 0o755 });
    mkdirSync(SCRATCH_DIR, { recursive: true, mode: 0o700 });
  }
  const etc = statInRoot(view, "/etc");
  const r: RunContext = {
    stage: STAGE_DIR,
    scratch: SCRATCH_DIR,
    tree,
    cgroup: facts.cgroup,
    cgroupNamespace: facts.cgroup.layout !== "none" && existsSync("/proc/self/ns/cgroup"),
    cgroupJoin: facts.cgroup.v1.map((h) => `${containerDir(facts.cgroup, `${h.mountpoint}/${machineCgroupRel(s.machine)}`, s.keepUnit)}/tasks`),
    cgroupPayload: s.keepUnit,
    osRelease: facts.osRelease,
    user,
    uuid,
    bootId: uuidDashed(randomUuid()),
    env: buildEnvironment(s, user, uuid, facts.osRelease, x11Environment(x11)),
    seccomp: loadFilter(s.capability, s.syscallAllow, s.syscallDeny, s.suppressSync || process.env.SYSTEMD_SUPPRESS_SYNC === "1"),
    binds: [
      ...prepareBinds(s, files, cleanup, dry).map((b) => (pu ? bindOwners(b, files) : b)),
      ...boundHomes(bound), ...x11Binds(x11), ...peersBind(s, view, cleanup, dry),
    ],
    overlays: prepareOverlays(s, files, cleanup, dry),
    resolvConf: resolvConfAction(s, facts),
    timezone: timezoneAction(s, facts, view),
    // (the view of a layered image is read-only: no journal link into it)
    journal: layered ? undefined : journalContext(s, view, machineId, cleanup, dry),
    devices: { fuse: facts.hasFuse, tun: facts.hasNetTun },
    treeHasEtc: !!etc && etc.isDirectory(),
    procMasks: PROC_INACCESSIBLE,
    usrLinks: s.volatile === "yes" ? usrLinks(files) : [],
    nofileHard: nofileHard(),
    networkBarrier: needsNetworkSetup(s),
    userns: pu?.userns,
    rangeLock: pu?.lock,
    ...(bound.length > 0 ? { bindUsers: { users: bound, copies: accountCopies(bound, view) } } : {}),
    ...(x11 ? { x11 } : {}),
  };
  return r;
}
