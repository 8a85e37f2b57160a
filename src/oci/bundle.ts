// --oci-bundle=PATH: an OCI runtime bundle (PATH/config.json and the root
// directory it names) turned into the settings a .nspawn file would give,
// so that the ordinary run machinery executes it. Like systemd-nspawn, the
// bundle takes the place of the .nspawn file (and is trusted); options on
// the command line win over it, group by group, as they win over a file.
// What the spec asks and spawnctl cannot do is an error naming the field
// ("config.json: linux.namespaces[2].type: ..."); what nspawn accepts and
// ignores (AppArmor and SELinux labels, annotations) is a warning.
import { readFileSync, statSync } from "node:fs";
import { capNumber } from "../settings/caps.ts";
import type { LoadedFile } from "../settings/nspawn-file.ts";
import {
  RLIMITS, RLIM_INFINITY, U64_MAX, checkPath, isAbsoluteNormalized, isValidHostname, normalize, parseEnvAssignment, sanitizeMessage,
  type BindMount, type Rlimit, type TmpfsMount,
} from "../settings/parse.ts";
import { parseProperty } from "../settings/properties.ts";
import type { BundleDevice, BundleExtras, BundleHook, PartialSettings } from "../settings/types.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { fieldPath, parseRuntimeSpec, type RuntimeSpec, type SpecHook } from "./runtime-spec.ts";

/** The runtime spec versions whose config.json this reads: 1.0.x as nspawn, and 1.1/1.2, which only add fields. */
const VERSION = /^1\.[0-2]\.\d+(-[0-9A-Za-z.+-]+)?$/;

/** Destinations nspawn mounts itself: a bundle's mounts and masks there are skipped, as nspawn skips them. */
const OWN_MOUNTS = new Set([
  "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus",
  "/proc/fs", "/proc/irq", "/proc/kallsyms", "/proc/kcore", "/proc/keys", "/proc/scsi", "/proc/sys", "/proc/sys/net",
  "/proc/sysrq-trigger", "/proc/timer_list", "/run", "/sys", "/sys/fs/selinux", "/tmp",
]);

export function isOwnMount(p: string): boolean {
  return OWN_MOUNTS.has(p) || p === "/sys/fs/cgroup" || p.startsWith("/sys/fs/cgroup/");
}

/** Device nodes every container gets anyway: a bundle's entry for one is skipped. */
const IMPLICIT_DEVICES = new Set(["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/net/tun", "/dev/ptmx", "/dev/pts/ptmx", "/dev/console"]);

/** Sysctls that belong to a namespace the container has of its own (anything else would change the host's). */
const IPC_SYSCTLS = new Set(["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]);

/** The spec's namespace types */
const NAMESPACES = new Set(["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]);

interface Ctx {
  file: string;
  bundle: string;
  warn: (m: string) => void;
}

/** One field's failure: "DIR/config.json: process.user.uid: reason" */
function fail(c: Ctx, path: readonly PropertyKey[], reason: string): never {
  throw new SpawnctlError(sanitizeMessage(`${c.file}: ${fieldPath(path)}: ${reason}`));
}

function absolute(c: Ctx, path: readonly PropertyKey[], p: string): string {
  if (!p.startsWith("/")) fail(c, path, `not an absolute path: ${p}`);
  try {
    checkPath(p);
  } catch (e) {
    fail(c, path, `${(e as Error).message}: ${p}`);
  }
  return normalize(p);
}

/** A path the spec allows relative to the bundle (root.path, a bind mount's source). */
function inBundle(c: Ctx, path: readonly PropertyKey[], p: string): string {
  if (!p) fail(c, path, "empty path");
  return absolute(c, path, p.startsWith("/") ? p : `${c.bundle}/${p}`);
}

/** rlimit values: a negative number or 2^64-1 is RLIM_INFINITY (as nspawn reads them) */
function rlimitValue(n: number): bigint {
  if (n < 0 || n >= Number(U64_MAX)) return RLIM_INFINITY;
  return BigInt(n);
}

function capMask(c: Ctx, path: readonly PropertyKey[], names: string[] | undefined): bigint | undefined {
  if (!names) return undefined;
  let m = 0n;
  names.forEach((n, i) => {
    const nr = capNumber(n);
    if (nr === undefined || !/^CAP_/i.test(n)) fail(c, [...path, i], `unknown capability ${n}`);
    m |= 1n << BigInt(nr);
  });
  return m;
}

function hooks(c: Ctx, path: readonly PropertyKey[], list: SpecHook[] | undefined): BundleHook[] {
  return (list ?? []).map((h, i) => {
    const p = absolute(c, [...path, i, "path"], h.path);
    (h.env ?? []).forEach((e, k) => {
      if (!/^[^=]+=/.test(e)) fail(c, [...path, i, "env", k], `not NAME=VALUE: ${e}`);
    });
    return { path: p, args: h.args && h.args.length > 0 ? h.args : [p], env: h.env ?? [], ...(h.timeout ? { timeout: h.timeout } : {}) };
  });
}

/** What a loaded bundle gives the merge: its settings (a trusted file's) and the mask groups it set. */
export function bundleSettings(spec: RuntimeSpec, bundleDir: string, warn: (m: string) => void, file = `${bundleDir}/config.json`): LoadedFile {
  const c: Ctx = { file, bundle: bundleDir, warn };
  const s: PartialSettings = {};
  const groups = new Set<string>();
  const set = <K extends keyof PartialSettings>(group: string, k: K, v: PartialSettings[K]) => {
    s[k] = v;
    groups.add(group);
  };
  if (!VERSION.test(spec.ociVersion)) fail(c, ["ociVersion"], `OCI bundle version not supported: ${spec.ociVersion} (1.0.x to 1.2.x are)`);
  const extras: BundleExtras = { maskedPaths: [], readonlyPaths: [], devices: [], sysctl: [], hooks: { prestart: [], poststart: [], poststop: [] } };

  // as nspawn with a bundle: no files of the host's copied in, no journal linked
  set("resolvConf", "resolvConf", "off");
  set("timezone", "timezone", "off");
  set("linkJournal", "linkJournal", "no");

  if (spec.root) {
    set("directory", "directory", inBundle(c, ["root", "path"], spec.root.path));
    if (spec.root.readonly !== undefined) set("readOnly", "readOnly", spec.root.readonly);
  }
  if (spec.hostname !== undefined) {
    if (!isValidHostname(spec.hostname)) fail(c, ["hostname"], `not a valid hostname: ${spec.hostname}`);
    set("hostname", "hostname", spec.hostname);
  }
  mapProcess(c, spec, set, extras);
  if (spec.domainname !== undefined) {
    if (!isValidHostname(spec.domainname)) fail(c, ["domainname"], `not a valid domain name: ${spec.domainname}`);
    extras.domainname = spec.domainname;
  }
  mapMounts(c, spec, set);
  mapLinux(c, spec, s, set, extras);
  if (spec.hooks) {
    const h = spec.hooks;
    for (const k of ["createRuntime", "createContainer", "startContainer"] as const) if (h[k]) fail(c, ["hooks", k], "not supported (prestart, poststart and poststop are)");
    extras.hooks = { prestart: hooks(c, ["hooks", "prestart"], h.prestart), poststart: hooks(c, ["hooks", "poststart"], h.poststart), poststop: hooks(c, ["hooks", "poststop"], h.poststop) };
  }
  for (const k of ["solaris", "windows", "vm", "zos"] as const) if (spec[k] !== undefined) fail(c, [k], "not supported on Linux");
  // annotations are the bundle's own business: read (their shape is checked) and ignored, as nspawn does
  set("bundle", "bundle", extras);
  return { path: file, trusted: true, settings: s, groups, groupFields: { capability: ["capability", "dropCapability"], user: ["user", "userIds"] } };
}

type Setter = <K extends keyof PartialSettings>(group: string, k: K, v: PartialSettings[K]) => void;

function mapProcess(c: Ctx, spec: RuntimeSpec, set: Setter, extras: BundleExtras): void {
  const p = spec.process;
  if (!p) return;
  const at = (...rest: PropertyKey[]) => ["process", ...rest];
  if (p.terminal === false) set("console", "console", "pipe");
  if (p.consoleSize) {
    const { width, height } = p.consoleSize;
    if (width < 1 || height < 1 || width > 65535 || height > 65535) fail(c, at("consoleSize"), "width and height must be 1…65535");
    extras.consoleSize = { width, height };
  }
  const cwd = absolute(c, at("cwd"), p.cwd);
  if (!isAbsoluteNormalized(p.cwd) && p.cwd !== cwd) c.warn(`${c.file}: process.cwd: ${p.cwd} taken as ${cwd}.`);
  set("workingDirectory", "workingDirectory", cwd);
  if (p.env) {
    const env: string[] = [];
    p.env.forEach((e, i) => {
      let a: string | null;
      try {
        a = parseEnvAssignment(e);
      } catch (err) {
        fail(c, at("env", i), (err as Error).message);
      }
      if (a === null) fail(c, at("env", i), `not NAME=VALUE: ${e}`);
      env.push(a);
    });
    set("environment", "environment", env);
  }
  if (p.args !== undefined) {
    if (p.args.length === 0) fail(c, at("args"), "argument list empty, refusing");
    if (!p.args[0]) fail(c, at("args", 0), "executable name is empty, refusing");
    set("parameters", "parameters", p.args);
  }
  if (p.commandLine !== undefined) fail(c, at("commandLine"), "not supported on Linux");
  if (p.rlimits) {
    const out: Rlimit[] = [];
    p.rlimits.forEach((r, i) => {
      const name = /^RLIMIT_([A-Z]+)$/.exec(r.type)?.[1];
      if (!name || RLIMITS[name] === undefined) fail(c, at("rlimits", i, "type"), `unknown resource limit ${r.type}`);
      if (out.some((o) => o.name === name)) fail(c, at("rlimits", i, "type"), `${r.type} given twice, refusing`);
      const soft = rlimitValue(r.soft);
      const hard = rlimitValue(r.hard);
      if (soft > hard) fail(c, at("rlimits", i), `soft limit ${r.soft} above hard limit ${r.hard}`);
      out.push({ resource: RLIMITS[name]!, name, soft, hard });
    });
    set("rlimits", "rlimits", out);
  }
  if (p.apparmorProfile !== undefined) c.warn(`${c.file}: process.apparmorProfile: not supported, ignoring.`);
  if (p.selinuxLabel !== undefined) c.warn(`${c.file}: process.selinuxLabel: not supported, ignoring.`);
  for (const k of ["scheduler", "ioPriority", "execCPUAffinity"] as const) if (p[k] !== undefined) fail(c, at(k), "not supported");
  if (p.capabilities) {
    const caps = p.capabilities;
    const bounding = capMask(c, at("capabilities", "bounding"), caps.bounding);
    const ambient = capMask(c, at("capabilities", "ambient"), caps.ambient);
    // effective, permitted and inheritable are what execve() recomputes anyway:
    // checked against the bounding set and otherwise left to it, as nspawn does
    for (const k of ["effective", "permitted", "inheritable"] as const) {
      const m = capMask(c, at("capabilities", k), caps[k]);
      if (m !== undefined && bounding !== undefined && m & ~bounding) fail(c, at("capabilities", k), "lists capabilities that are not in the bounding set");
    }
    if (bounding !== undefined) {
      set("capability", "capability", bounding);
      // one group with the bounding set: --capability= or --drop-capability= replace both
      set("capability", "dropCapability", ~bounding & ((1n << 64n) - 1n));
    }
    if (ambient) {
      if (bounding !== undefined && ambient & ~bounding) fail(c, at("capabilities", "ambient"), "lists capabilities that are not in the bounding set");
      set("ambientCapability", "ambientCapability", ambient);
    }
  }
  if (p.noNewPrivileges !== undefined) set("noNewPrivileges", "noNewPrivileges", p.noNewPrivileges);
  if (p.oomScoreAdj !== undefined) {
    if (p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000) fail(c, at("oomScoreAdj"), `out of range (-1000…1000): ${p.oomScoreAdj}`);
    set("oomScoreAdjust", "oomScoreAdjust", p.oomScoreAdj);
  }
  const u = p.user;
  if (u.username !== undefined) fail(c, at("user", "username"), "not supported on Linux");
  if (u.uid === 4294967295 || u.gid === 4294967295) fail(c, at("user", u.uid === 4294967295 ? "uid" : "gid"), "4294967295 is no valid id");
  (u.additionalGids ?? []).forEach((g, i) => {
    if (g === 4294967295) fail(c, at("user", "additionalGids", i), "4294967295 is no valid id");
  });
  set("user", "user", String(u.uid));
  set("user", "userIds", { uid: u.uid, gid: u.gid, groups: u.additionalGids ?? [] });
  if (u.umask !== undefined) extras.umask = u.umask;
}

function mapMounts(c: Ctx, spec: RuntimeSpec, set: Setter): void {
  if (!spec.mounts) return;
  const binds: BindMount[] = [];
  const tmpfs: TmpfsMount[] = [];
  spec.mounts.forEach((m, i) => {
    const at = (...rest: PropertyKey[]) => ["mounts", i, ...rest];
    const dst = absolute(c, at("destination"), m.destination);
    if (isOwnMount(dst)) return;
    if (dst === "/") fail(c, at("destination"), "a mount on / is not supported (root.path is the root)");
    if (m.uidMappings !== undefined || m.gidMappings !== undefined) fail(c, at(m.uidMappings !== undefined ? "uidMappings" : "gidMappings"), "idmapped mounts are not supported");
    const opts = m.options ?? [];
    const isBind = m.type === "bind" || ((m.type === undefined || m.type === "none") && opts.some((o) => o === "bind" || o === "rbind"));
    if (isBind) {
      if (m.source === undefined) fail(c, at("source"), "a bind mount needs a source");
      const b: BindMount = { source: inBundle(c, at("source"), m.source), sourceInImage: false, destination: dst, readOnly: false, recursive: true, idmap: "none" };
      opts.forEach((o, k) => {
        switch (o) {
          case "bind": b.recursive = false; break;
          case "rbind": b.recursive = true; break;
          case "ro": b.readOnly = true; break;
          case "rw": b.readOnly = false; break;
          // propagation: the container's mounts are slaves of the host's anyway
          case "private": case "rprivate": case "slave": case "rslave": case "shared": case "rshared": case "unbindable": case "runbindable": break;
          case "nosuid": case "nodev": case "noexec": case "relatime": case "noatime": case "strictatime":
            c.warn(`${c.file}: mounts[${i}].options[${k}]: ${o} is not applied to a bind mount, ignoring.`);
            break;
          default: fail(c, at("options", k), `bind mount option not supported: ${o}`);
        }
      });
      binds.push(b);
      return;
    }
    if (m.type === "tmpfs") {
      const kept = opts.filter((o) => o !== "tmpfs");
      // biome-ignore lint: control characters are what we look for
      kept.forEach((o, k) => { if (/[\x00-\x1f\x7f,]/.test(o)) fail(c, at("options", k), `invalid mount option: ${o}`); });
      tmpfs.push({ destination: dst, options: kept.join(",") || "mode=0755" });
      return;
    }
    fail(c, at("type"), `mounts of type ${m.type ?? "(none)"} are not supported at ${dst} (bind and tmpfs are)`);
  });
  if (binds.length > 0 || tmpfs.length > 0) {
    set("customMounts", "binds", binds);
    set("customMounts", "tmpfs", tmpfs);
  }
}

function mapLinux(c: Ctx, spec: RuntimeSpec, s: PartialSettings, set: Setter, extras: BundleExtras): void {
  const l = spec.linux;
  if (!l) return;
  const at = (...rest: PropertyKey[]) => ["linux", ...rest];
  let userns = false;
  if (l.namespaces) {
    const seen = new Set<string>();
    let netPath: string | undefined;
    l.namespaces.forEach((n, i) => {
      if (!NAMESPACES.has(n.type)) fail(c, at("namespaces", i, "type"), `unknown namespace type ${n.type}`);
      if (n.type === "time") fail(c, at("namespaces", i, "type"), "time namespaces are not supported");
      if (seen.has(n.type)) fail(c, at("namespaces", i, "type"), `namespace ${n.type} given twice, refusing`);
      seen.add(n.type);
      if (n.path !== undefined) {
        if (n.type !== "network") fail(c, at("namespaces", i, "path"), `joining an existing ${n.type} namespace is not supported (only a network namespace's path is)`);
        netPath = absolute(c, at("namespaces", i, "path"), n.path);
      }
    });
    if (!seen.has("mount")) fail(c, at("namespaces"), "containers without a mount namespace are not supported");
    const shared = ["pid", "ipc", "uts"].filter((t) => !seen.has(t));
    if (shared.length > 0) c.warn(`${c.file}: linux.namespaces: no ${shared.join(", ")} namespace listed, but the container always gets its own.`);
    set("network", "privateNetwork", seen.has("network"));
    set("network", "networkNamespacePath", netPath ?? "");
    userns = seen.has("user");
  }
  mapIdMappings(c, l, userns, set);
  if (l.timeOffsets !== undefined) fail(c, at("timeOffsets"), "not supported");
  (l.devices ?? []).forEach((d, i) => {
    const dev = mapDevice(c, at("devices", i), d);
    if (dev && !IMPLICIT_DEVICES.has(dev.path)) extras.devices.push(dev);
  });
  if (l.cgroupsPath !== undefined) {
    // only a path of slices says where a machine goes here ("/a.slice/a-b.slice" → a-b.slice)
    const parts = l.cgroupsPath.split("/").filter(Boolean);
    const last = parts[parts.length - 1];
    if (!last || !parts.every((p) => /^[A-Za-z0-9_.\\:-]+\.slice$/.test(p))) fail(c, at("cgroupsPath"), `does not name a slice (as /NAME.slice/...): ${l.cgroupsPath}`);
    set("slice", "slice", last);
  }
  if (l.resources) set("properties", "properties", mapResources(c, l.resources));
  for (const k of ["rdma", "unified", "memoryPolicy", "netDevices"] as const) if (l[k] !== undefined) fail(c, at(k), "not supported");
  if (l.intelRdt !== undefined) c.warn(`${c.file}: linux.intelRdt: not supported, ignoring.`);
  if (l.mountLabel !== undefined) c.warn(`${c.file}: linux.mountLabel: not supported, ignoring.`);
  if (l.sysctl) {
    const privateNet = s.privateNetwork === true && !s.networkNamespacePath;
    for (const [k, v] of Object.entries(l.sysctl)) {
      if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(k)) fail(c, at("sysctl", k), "not a valid sysctl key");
      const ns = IPC_SYSCTLS.has(k) || k.startsWith("fs.mqueue.") ? "ipc" : k.startsWith("net.") ? "net" : k === "kernel.hostname" || k === "kernel.domainname" ? "uts" : undefined;
      if (!ns) fail(c, at("sysctl", k), "not namespaced: setting it would change the host's, refusing");
      if (ns === "net" && !privateNet) fail(c, at("sysctl", k), "a network sysctl needs a network namespace of the container's own (linux.namespaces: network)");
      // biome-ignore lint: control characters are what we look for
      if (/[\x00-\x1f\x7f]/.test(v)) fail(c, at("sysctl", k), "invalid value");
      extras.sysctl.push([k, v]);
    }
  }
  if (l.seccomp) mapSeccomp(c, l.seccomp, set);
  if (l.rootfsPropagation !== undefined && !["shared", "rshared", "slave", "rslave", "private", "rprivate"].includes(l.rootfsPropagation)) {
    fail(c, at("rootfsPropagation"), `unknown propagation ${l.rootfsPropagation}`);
  }
  for (const [k, list] of [["maskedPaths", l.maskedPaths], ["readonlyPaths", l.readonlyPaths]] as const) {
    (list ?? []).forEach((p, i) => {
      const n = absolute(c, at(k, i), p);
      if (n === "/") fail(c, at(k, i), "cannot be /");
      if (!isOwnMount(n)) extras[k].push(n);
    });
  }
  if (l.personality) {
    const d = l.personality.domain;
    if (d !== "LINUX" && d !== "LINUX32") fail(c, at("personality", "domain"), `unknown execution domain ${d}`);
    if (l.personality.flags && l.personality.flags.length > 0) fail(c, at("personality", "flags"), "not supported");
    set("personality", "personality", d === "LINUX32" ? "x86" : "x86-64");
  }
}

function mapIdMappings(c: Ctx, l: NonNullable<RuntimeSpec["linux"]>, userns: boolean, set: Setter): void {
  const at = (...rest: PropertyKey[]) => ["linux", ...rest];
  const one = (k: "uidMappings" | "gidMappings") => {
    const list = l[k];
    if (!list || list.length === 0) return undefined;
    if (!userns) fail(c, at(k), "given without a user namespace in linux.namespaces");
    if (list.length > 1) fail(c, at(k), "more than one mapping is not supported");
    const m = list[0]!;
    if (m.containerID !== 0) fail(c, at(k, 0, "containerID"), "a mapping must start at the container's id 0");
    if (m.size === 0) fail(c, at(k, 0, "size"), "an empty range");
    if (m.hostID + m.size - 1 > 4294967294) fail(c, at(k, 0), "the range goes beyond the last valid id");
    return m;
  };
  const u = one("uidMappings");
  const g = one("gidMappings");
  if (u && g && (u.hostID !== g.hostID || u.size !== g.size)) fail(c, at("gidMappings", 0), "uid and gid mappings that differ are not supported");
  const m = u ?? g;
  if (!userns) {
    set("privateUsers", "privateUsers", { mode: "no" });
    return;
  }
  if (!m) {
    set("privateUsers", "privateUsers", { mode: "pick" });
    return;
  }
  if (m.size < 65536) c.warn(`${c.file}: linux.${u ? "uidMappings" : "gidMappings"}: a range of fewer than 65536 ids; a tree's files of higher ids will be unmapped.`);
  set("privateUsers", "privateUsers", { mode: "fixed", base: m.hostID, range: m.size });
}

function mapDevice(c: Ctx, at: PropertyKey[], d: NonNullable<NonNullable<RuntimeSpec["linux"]>["devices"]>[number]): BundleDevice | undefined {
  const type = d.type === "u" ? "c" : d.type;
  if (type !== "c" && type !== "b" && type !== "p") fail(c, [...at, "type"], `unknown device type ${d.type}`);
  const path = absolute(c, [...at, "path"], d.path);
  if (type !== "p" && (d.major === undefined || d.minor === undefined)) fail(c, at, "a character or block device needs major and minor");
  if ((d.major ?? 0) > 4095) fail(c, [...at, "major"], `out of range: ${d.major}`);
  if ((d.minor ?? 0) > 1048575) fail(c, [...at, "minor"], `out of range: ${d.minor}`);
  return { path, type, major: d.major ?? 0, minor: d.minor ?? 0, mode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0 };
}

/** linux.resources → the --property= assignments spawnctl applies to the machine's cgroup. */
function mapResources(c: Ctx, r: NonNullable<NonNullable<RuntimeSpec["linux"]>["resources"]>): string[] {
  const out: string[] = [];
  const at = (...rest: PropertyKey[]) => ["linux", "resources", ...rest];
  const add = (path: PropertyKey[], assignment: string) => {
    try {
      parseProperty(assignment);
    } catch (e) {
      fail(c, path, (e as Error).message);
    }
    out.push(assignment);
  };
  // the devices cgroup: spawnctl's containers have nspawn's own device policy;
  // the usual "deny everything" first entry says nothing more
  (r.devices ?? []).forEach((d, i) => {
    const denyAll = !d.allow && d.type === undefined && d.major === undefined && d.minor === undefined && (d.access === undefined || d.access === "rwm");
    if (!denyAll) fail(c, at("devices", i), "device cgroup rules other than the leading deny-all are not supported");
  });
  const mem = r.memory;
  if (mem) {
    for (const k of ["kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"] as const) {
      if (mem[k] !== undefined) c.warn(`${c.file}: linux.resources.memory.${k}: not supported, ignoring.`);
    }
    const bytes = (n: number) => (n < 0 ? "infinity" : String(BigInt(n)));
    if (mem.limit !== undefined) add(at("memory", "limit"), `MemoryMax=${bytes(mem.limit)}`);
    if (mem.reservation !== undefined) add(at("memory", "reservation"), `MemoryLow=${bytes(mem.reservation)}`);
    if (mem.swap !== undefined && mem.swap >= 0) {
      // the spec's swap is memory plus swap; cgroup v2's is swap alone
      if (mem.limit === undefined || mem.limit < 0) fail(c, at("memory", "swap"), "a swap limit needs a memory limit");
      if (mem.swap < mem.limit) fail(c, at("memory", "swap"), "below the memory limit");
      add(at("memory", "swap"), `MemorySwapMax=${BigInt(mem.swap) - BigInt(mem.limit)}`);
    }
  }
  const cpu = r.cpu;
  if (cpu) {
    for (const k of ["burst", "realtimeRuntime", "realtimePeriod", "mems", "idle"] as const) if (cpu[k] !== undefined) fail(c, at("cpu", k), "not supported");
    if (cpu.shares !== undefined) add(at("cpu", "shares"), `CPUShares=${cpu.shares}`);
    if ((cpu.quota !== undefined) !== (cpu.period !== undefined) && !(cpu.quota !== undefined && cpu.quota < 0)) {
      fail(c, at("cpu", cpu.quota === undefined ? "quota" : "period"), "quota and period go together");
    }
    if (cpu.quota !== undefined && cpu.quota > 0 && cpu.period !== undefined) {
      if (cpu.period === 0) fail(c, at("cpu", "period"), "must be above 0");
      // CPUQuota= in 1/10000 of a CPU, rounded up so that a small quota is no "0"
      const pm = Math.ceil((cpu.quota * 10000) / cpu.period);
      add(at("cpu", "quota"), `CPUQuota=${pm}\u2031`);
    }
    if (cpu.cpus !== undefined) add(at("cpu", "cpus"), `AllowedCPUs=${cpu.cpus}`);
  }
  const bio = r.blockIO;
  if (bio) {
    for (const k of ["leafWeight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"] as const) {
      if (bio[k] !== undefined) fail(c, at("blockIO", k), "not supported");
    }
    if (bio.weight !== undefined) add(at("blockIO", "weight"), `BlockIOWeight=${bio.weight}`);
  }
  if (r.pids) add(at("pids", "limit"), `TasksMax=${r.pids.limit < 0 ? "infinity" : r.pids.limit}`);
  for (const k of ["hugepageLimits", "network", "rdma", "unified"] as const) if (r[k] !== undefined) fail(c, at(k), "not supported");
  return out;
}

const ALLOW = "SCMP_ACT_ALLOW";
/** actions that refuse a call; spawnctl's filter refuses with EPERM */
const REFUSE = new Set(["SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"]);
const EPERM = 1;
/** What the container's set-up calls once its filter is in place, up to the payload's execve (and the report of a failure) */
const SETUP_CALLS = [
  "capget", "capset", "chdir", "close", "close_range", "execve", "exit_group", "poll", "prctl", "rt_sigaction", "rt_sigprocmask",
  "sendmsg", "setgroups", "setresgid", "setresuid", "umask",
];

/**
 * linux.seccomp → --system-call-filter= lists, where they say the same. The
 * container's filter is nspawn's allow list plus the allowed minus the denied
 * names; a bundle that allows by default denies its refused calls, and one
 * that refuses by default allows its listed calls and denies every other
 * call the tables know. Refusals are EPERM; an argument condition cannot be
 * expressed, so such a rule refuses the call outright (stricter, and said).
 */
function mapSeccomp(c: Ctx, sc: NonNullable<NonNullable<RuntimeSpec["linux"]>["seccomp"]>, set: Setter): void {
  const at = (...rest: PropertyKey[]) => ["linux", "seccomp", ...rest];
  // biome-ignore lint: lazy imports keep the system call tables off the start of a bundle without a filter
  const { isKnownName } = require("../settings/syscall-groups.ts") as typeof import("../settings/syscall-groups.ts");
  // biome-ignore lint: as above
  const { SYSCALLS_I386, SYSCALLS_X86_64 } = require("../sys/syscalls.ts") as typeof import("../sys/syscalls.ts");
  const action = (path: PropertyKey[], a: string) => {
    if (a !== ALLOW && !REFUSE.has(a)) fail(c, path, `action not supported: ${a}`);
    return a === ALLOW;
  };
  const defaultAllows = action(at("defaultAction"), sc.defaultAction);
  if (!defaultAllows && sc.defaultAction === "SCMP_ACT_ERRNO" && sc.defaultErrnoRet !== undefined && sc.defaultErrnoRet !== EPERM) {
    c.warn(`${c.file}: linux.seccomp.defaultErrnoRet: refused calls fail with EPERM here, not ${sc.defaultErrnoRet}.`);
  }
  if (sc.listenerPath !== undefined) fail(c, at("listenerPath"), "not supported");
  (sc.architectures ?? []).forEach((a, i) => {
    if (!/^SCMP_ARCH_[A-Z0-9_]+$/.test(a)) fail(c, at("architectures", i), `unknown architecture ${a}`);
  });
  (sc.flags ?? []).forEach((f, i) => {
    if (f !== "SECCOMP_FILTER_FLAG_LOG" && f !== "SECCOMP_FILTER_FLAG_SPEC_ALLOW" && f !== "SECCOMP_FILTER_FLAG_TSYNC") fail(c, at("flags", i), `flag not supported: ${f}`);
  });
  const allow = new Set<string>();
  const deny = new Set<string>();
  (sc.syscalls ?? []).forEach((r, i) => {
    const allows = action(at("syscalls", i, "action"), r.action);
    if (r.names.length === 0) fail(c, at("syscalls", i, "names"), "system call name list is empty");
    const conditional = Array.isArray(r.args) && r.args.length > 0;
    if (!allows && r.errnoRet !== undefined && r.errnoRet !== EPERM) c.warn(`${c.file}: linux.seccomp.syscalls[${i}].errnoRet: refused calls fail with EPERM here, not ${r.errnoRet}.`);
    // a name no table knows (another architecture's) is skipped, as nspawn does
    const names = r.names.filter((n) => !n.startsWith("@") && isKnownName(n));
    if (allows === defaultAllows) return;
    if (allows && conditional) {
      c.warn(`${c.file}: linux.seccomp.syscalls[${i}]: argument conditions cannot be expressed; ${names.join(" ")} stay refused.`);
      return;
    }
    if (!allows && conditional) c.warn(`${c.file}: linux.seccomp.syscalls[${i}]: argument conditions cannot be expressed; ${names.join(" ")} are refused outright.`);
    for (const n of names) (allows ? allow : deny).add(n);
  });
  if (defaultAllows) {
    const kept = SETUP_CALLS.filter((n) => deny.has(n));
    if (kept.length > 0) c.warn(`${c.file}: linux.seccomp: ${kept.join(" ")} stay allowed: the container's set-up makes these calls after its filter is in place.`);
    for (const n of kept) deny.delete(n);
    set("syscallFilter", "syscallAllow", []);
    set("syscallFilter", "syscallDeny", [...deny].sort());
    return;
  }
  // the filter goes in before the set-up drops privileges (as nspawn's): the
  // set-up's own calls stay allowed, and so does the payload, which is said
  const missing = SETUP_CALLS.filter((n) => !allow.has(n));
  if (missing.length > 0) c.warn(`${c.file}: linux.seccomp: ${missing.join(" ")} stay allowed: the container's set-up makes these calls after its filter is in place.`);
  for (const n of missing) allow.add(n);
  const every = new Set([...Object.keys(SYSCALLS_X86_64), ...Object.keys(SYSCALLS_I386)]);
  set("syscallFilter", "syscallAllow", [...allow].sort());
  set("syscallFilter", "syscallDeny", [...every].filter((n) => !allow.has(n)).sort());
}

/** Read PATH/config.json: the bundle's settings, or an error naming the file and field. */
export function loadBundle(dir: string, warn: (m: string) => void): LoadedFile {
  const file = `${dir}/config.json`;
  let text: string;
  try {
    if (!statSync(dir).isDirectory()) throw new SpawnctlError(`--oci-bundle=: ${dir} is not a directory.`);
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof SpawnctlError) throw e;
    throw new SpawnctlError(`Failed to read OCI bundle configuration ${file}: ${fsMessage(e)}`);
  }
  return bundleSettings(parseRuntimeSpec(text, file), dir, warn, file);
}
