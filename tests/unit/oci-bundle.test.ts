// --oci-bundle=: config.json → settings (src/oci/bundle.ts), the merge with
// the command line, and the plan ops the bundle adds; every malformed field
// is named in the error.
import { describe, expect, test } from "bun:test";
import { buildPlan, PROC_INACCESSIBLE, type RunContext } from "../../src/container/build-plan.ts";
import { detectCgroups } from "../../src/container/host.ts";
import { bundleSettings } from "../../src/oci/bundle.ts";
import { parseRuntimeSpec } from "../../src/oci/runtime-spec.ts";
import { capBit } from "../../src/settings/caps.ts";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { resolveSettings, type MergeEnv } from "../../src/settings/merge.ts";
import type { LoadedFile } from "../../src/settings/nspawn-file.ts";
import { CLONE, MOUNT_ATTR } from "../../src/sys/consts.ts";
import type { Op } from "../../src/sys/plan.ts";

const FILE = "/b/config.json";

function base(): Record<string, any> {
  return {
    ociVersion: "1.0.2",
    root: { path: "rootfs", readonly: true },
    hostname: "box",
    process: {
      terminal: false,
      user: { uid: 1000, gid: 1000, additionalGids: [100, 5] },
      args: ["/bin/sh", "-c", "echo hi"],
      env: ["PATH=/bin", "FOO=bar"],
      cwd: "/srv",
      capabilities: { bounding: ["CAP_CHOWN", "CAP_KILL"], effective: ["CAP_CHOWN"], permitted: ["CAP_CHOWN"], ambient: ["CAP_KILL"] },
      rlimits: [{ type: "RLIMIT_NOFILE", soft: 100, hard: 200 }, { type: "RLIMIT_CORE", soft: -1, hard: 18446744073709551615 }],
      noNewPrivileges: true,
      oomScoreAdj: 100,
    },
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup" },
      { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m", "nosuid"] },
      { destination: "/data", type: "bind", source: "data", options: ["rbind", "ro"] },
      { destination: "/abs", source: "/srv/x", options: ["bind"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }, { type: "network" }],
      maskedPaths: ["/proc/kcore", "/proc/latency_stats", "/etc/secret"],
      readonlyPaths: ["/proc/sys", "/usr/share"],
      sysctl: { "net.ipv4.ip_forward": "1", "kernel.shmmni": "100" },
      resources: { devices: [{ allow: false, access: "rwm" }], memory: { limit: 104857600 }, pids: { limit: 64 }, cpu: { quota: 50000, period: 100000 } },
      devices: [{ type: "c", path: "/dev/null", major: 1, minor: 3 }, { type: "c", path: "/dev/misc/foo", major: 10, minor: 200, fileMode: 0o600, uid: 5 }],
    },
    annotations: { "org.example": "x" },
  };
}

function load(spec: unknown, warnings: string[] = []): LoadedFile {
  return bundleSettings(parseRuntimeSpec(JSON.stringify(spec), FILE), "/b", (m) => warnings.push(m), FILE);
}

/** the error message of loading a modified base() */
function errorOf(edit: (c: Record<string, any>) => void): string {
  const c = base();
  edit(c);
  try {
    load(c);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("no error");
}

const env: MergeEnv = {
  cwd: "/", isRoot: true, isTty: false, hostname: () => "h", isDir: () => false, readFile: () => undefined,
  random64: () => "0000000000000001", warn: () => {}, boundingSet: (1n << 41n) - 1n,
};

function resolve(argv: string[], spec: unknown = base()) {
  const cl = parseCommandLine(["--oci-bundle=/b", ...argv], "/");
  return resolveSettings(cl, env, load(spec)).settings;
}

describe("config.json → settings", () => {
  test("a full bundle", () => {
    const warnings: string[] = [];
    const f = load(base(), warnings);
    const s = f.settings;
    expect(s.directory).toBe("/b/rootfs");
    expect(s.readOnly).toBe(true);
    expect(s.hostname).toBe("box");
    expect(s.console).toBe("pipe");
    expect(s.parameters).toEqual(["/bin/sh", "-c", "echo hi"]);
    expect(s.environment).toEqual(["PATH=/bin", "FOO=bar"]);
    expect(s.workingDirectory).toBe("/srv");
    expect(s.user).toBe("1000");
    expect(s.userIds).toEqual({ uid: 1000, gid: 1000, groups: [100, 5] });
    expect(s.capability).toBe(capBit("CHOWN") | capBit("KILL"));
    expect(s.ambientCapability).toBe(capBit("KILL"));
    expect(s.noNewPrivileges).toBe(true);
    expect(s.oomScoreAdjust).toBe(100);
    expect(s.rlimits).toEqual([
      { resource: 7, name: "NOFILE", soft: 100n, hard: 200n },
      { resource: 4, name: "CORE", soft: (1n << 64n) - 1n, hard: (1n << 64n) - 1n },
    ]);
    // the API file systems are the container's own: /proc and /sys/fs/cgroup are skipped
    expect(s.tmpfs).toEqual([{ destination: "/scratch", options: "size=1m,nosuid" }]);
    expect(s.binds).toEqual([
      { source: "/b/data", sourceInImage: false, destination: "/data", readOnly: true, recursive: true, idmap: "none" },
      { source: "/srv/x", sourceInImage: false, destination: "/abs", readOnly: false, recursive: false, idmap: "none" },
    ]);
    expect(s.privateNetwork).toBe(true);
    expect(s.networkNamespacePath).toBe("");
    expect(s.privateUsers).toEqual({ mode: "no" });
    expect(s.properties).toEqual(["MemoryMax=104857600", "CPUQuota=5000\u2031", "TasksMax=64"]);
    expect(s.bundle?.maskedPaths).toEqual(["/proc/latency_stats", "/etc/secret"]);
    expect(s.bundle?.readonlyPaths).toEqual(["/usr/share"]);
    expect(s.bundle?.sysctl).toEqual([["net.ipv4.ip_forward", "1"], ["kernel.shmmni", "100"]]);
    // /dev/null is made anyway
    expect(s.bundle?.devices).toEqual([{ path: "/dev/misc/foo", type: "c", major: 10, minor: 200, mode: 0o600, uid: 5, gid: 0 }]);
    // nspawn's defaults with a bundle
    expect(s.resolvConf).toBe("off");
    expect(s.timezone).toBe("off");
    expect(s.linkJournal).toBe("no");
    expect(warnings).toEqual([]);
  });

  test("a minimal bundle sets little", () => {
    const s = load({ ociVersion: "1.0.0", root: { path: "/abs/root" } }).settings;
    expect(s.directory).toBe("/abs/root");
    expect(s.parameters).toBeUndefined();
    expect(s.capability).toBeUndefined();
    expect(s.privateNetwork).toBeUndefined();
  });

  test("user namespaces: a mapping is a fixed range, none is pick", () => {
    const c = base();
    c.linux.namespaces.push({ type: "user" });
    c.linux.uidMappings = [{ containerID: 0, hostID: 65536 * 3, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 65536 * 3, size: 65536 }];
    expect(load(c).settings.privateUsers).toEqual({ mode: "fixed", base: 65536 * 3, range: 65536 });
    delete c.linux.uidMappings;
    delete c.linux.gidMappings;
    expect(load(c).settings.privateUsers).toEqual({ mode: "pick" });
  });

  test("a network namespace path, and no network namespace at all", () => {
    const c = base();
    c.linux.namespaces[4] = { type: "network", path: "/run/netns/x" };
    delete c.linux.sysctl;
    let s = load(c).settings;
    expect(s.networkNamespacePath).toBe("/run/netns/x");
    c.linux.namespaces.pop();
    s = load(c).settings;
    expect(s.privateNetwork).toBe(false);
  });

  test("seccomp: an allow-by-default profile is a deny list", () => {
    const c = base();
    c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat", "no_such_call", "setresuid"], action: "SCMP_ACT_ERRNO" }, { names: ["getpid"], action: "SCMP_ACT_ALLOW" }] };
    const warnings: string[] = [];
    const s = load(c, warnings).settings;
    expect(s.syscallDeny).toEqual(["mkdir", "mkdirat"]);
    expect(warnings).toEqual([`${FILE}: linux.seccomp: setresuid stay allowed: the container's set-up makes these calls after its filter is in place.`]);
    expect(s.syscallAllow).toEqual([]);
  });

  test("seccomp: a refuse-by-default profile allows its list and denies every other call", () => {
    const c = base();
    const warnings: string[] = [];
    c.linux.seccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [{ names: ["read", "write", "exit_group", "execve", "setresuid"], action: "SCMP_ACT_ALLOW" }, { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "SCMP_CMP_EQ" }] }],
    };
    const s = load(c, warnings).settings;
    // with the calls the set-up makes once the filter is in (said in a warning)
    expect(s.syscallAllow).toEqual([
      "capget", "capset", "chdir", "close", "close_range", "execve", "exit_group", "poll", "prctl", "read", "rt_sigaction",
      "rt_sigprocmask", "sendmsg", "setgroups", "setresgid", "setresuid", "umask", "write",
    ]);
    expect(warnings.join("\n")).toContain("linux.seccomp: capget capset chdir close close_range poll prctl rt_sigaction rt_sigprocmask sendmsg setgroups setresgid umask stay allowed");
    expect(s.syscallDeny).toContain("mkdir");
    expect(s.syscallDeny).toContain("personality");
    expect(s.syscallDeny).not.toContain("read");
    expect(warnings.join("\n")).toContain("linux.seccomp.syscalls[1]: argument conditions cannot be expressed");
  });

  test("accepted and ignored: AppArmor and SELinux labels, with a warning", () => {
    const c = base();
    c.process.apparmorProfile = "docker-default";
    c.process.selinuxLabel = "system_u:system_r:container_t:s0";
    const warnings: string[] = [];
    load(c, warnings);
    expect(warnings).toEqual([`${FILE}: process.apparmorProfile: not supported, ignoring.`, `${FILE}: process.selinuxLabel: not supported, ignoring.`]);
  });
});

describe("malformed config.json: the error names the field", () => {
  const cases: Array<[string, (c: Record<string, any>) => void, string]> = [
    ["version", (c) => { c.ociVersion = "2.0.0"; }, "ociVersion: OCI bundle version not supported: 2.0.0"],
    ["unknown top-level key", (c) => { c.rooot = {}; }, "rooot: unknown field"],
    ["unknown nested key", (c) => { c.process.user.name = "x"; }, "process.user.name: unknown field"],
    ["type", (c) => { c.process.args = "/bin/sh"; }, "process.args: expected array"],
    ["missing cwd", (c) => { delete c.process.cwd; }, "process.cwd: missing, but required"],
    ["relative cwd", (c) => { c.process.cwd = "srv"; }, "process.cwd: not an absolute path: srv"],
    ["uid range", (c) => { c.process.user.uid = -1; }, "process.user.uid: out of range"],
    ["empty args", (c) => { c.process.args = []; }, "process.args: argument list empty"],
    ["bad env", (c) => { c.process.env = ["OK=1", "1BAD=x"]; }, "process.env[1]: Environment variable assignment '1BAD=x' is not valid"],
    ["env without =", (c) => { c.process.env = ["NOVALUE"]; }, "process.env[0]: not NAME=VALUE"],
    ["rlimit name", (c) => { c.process.rlimits[1].type = "RLIMIT_BOGUS"; }, "process.rlimits[1].type: unknown resource limit RLIMIT_BOGUS"],
    ["rlimit twice", (c) => { c.process.rlimits[1].type = "RLIMIT_NOFILE"; }, "process.rlimits[1].type: RLIMIT_NOFILE given twice"],
    ["rlimit soft above hard", (c) => { c.process.rlimits[0].soft = 300; }, "process.rlimits[0]: soft limit 300 above hard limit 200"],
    ["capability", (c) => { c.process.capabilities.bounding.push("CAP_FLY"); }, "process.capabilities.bounding[2]: unknown capability CAP_FLY"],
    ["effective beyond bounding", (c) => { c.process.capabilities.effective.push("CAP_SYS_ADMIN"); }, "process.capabilities.effective: lists capabilities that are not in the bounding set"],
    ["oom", (c) => { c.process.oomScoreAdj = 2000; }, "process.oomScoreAdj: out of range"],
    ["umask", (c) => { c.process.user.umask = 0o1777; }, "process.user.umask: out of range"],
    ["domainname", (c) => { c.domainname = "a..b"; }, "domainname: not a valid domain name: a..b"],
    ["hostname", (c) => { c.hostname = "bad host"; }, "hostname: not a valid hostname"],
    ["mount type", (c) => { c.mounts.push({ destination: "/mnt/p", type: "proc", source: "proc" }); }, "mounts[5].type: mounts of type proc are not supported at /mnt/p"],
    ["mount option", (c) => { c.mounts[3].options.push("idmap"); }, "mounts[3].options[2]: bind mount option not supported: idmap"],
    ["mount destination", (c) => { c.mounts[2].destination = "scratch"; }, "mounts[2].destination: not an absolute path: scratch"],
    ["namespace type", (c) => { c.linux.namespaces[2].type = "ipcx"; }, "linux.namespaces[2].type: unknown namespace type ipcx"],
    ["namespace twice", (c) => { c.linux.namespaces.push({ type: "pid" }); }, "linux.namespaces[5].type: namespace pid given twice"],
    ["namespace path", (c) => { c.linux.namespaces[0].path = "/proc/1/ns/pid"; }, "linux.namespaces[0].path: joining an existing pid namespace is not supported"],
    ["no mount namespace", (c) => { c.linux.namespaces.splice(1, 1); }, "linux.namespaces: containers without a mount namespace are not supported"],
    ["time namespace", (c) => { c.linux.namespaces.push({ type: "time" }); }, "linux.namespaces[5].type: time namespaces are not supported"],
    ["mapping without userns", (c) => { c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }]; }, "linux.uidMappings: given without a user namespace"],
    ["two mappings", (c) => {
      c.linux.namespaces.push({ type: "user" });
      c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 10 }, { containerID: 10, hostID: 200000, size: 10 }];
    }, "linux.uidMappings: more than one mapping is not supported"],
    ["mapping base", (c) => {
      c.linux.namespaces.push({ type: "user" });
      c.linux.uidMappings = [{ containerID: 1, hostID: 100000, size: 65536 }];
    }, "linux.uidMappings[0].containerID: a mapping must start at the container's id 0"],
    ["host sysctl", (c) => { c.linux.sysctl["kernel.panic"] = "1"; }, "linux.sysctl.kernel.panic: not namespaced"],
    ["net sysctl without netns", (c) => { c.linux.namespaces.pop(); }, "linux.sysctl.net.ipv4.ip_forward: a network sysctl needs a network namespace"],
    ["device type", (c) => { c.linux.devices[1].type = "x"; }, "linux.devices[1].type: unknown device type x"],
    ["device numbers", (c) => { delete c.linux.devices[1].minor; }, "linux.devices[1]: a character or block device needs major and minor"],
    ["cgroup devices", (c) => { c.linux.resources.devices.push({ allow: true, type: "c", major: 1, minor: 3, access: "rwm" }); }, "linux.resources.devices[1]: device cgroup rules other than the leading deny-all are not supported"],
    ["memory", (c) => { c.linux.resources.memory.swap = 1000; }, "linux.resources.memory.swap: below the memory limit"],
    ["cpu quota alone", (c) => { delete c.linux.resources.cpu.period; }, "linux.resources.cpu.period: quota and period go together"],
    ["cpus", (c) => { c.linux.resources.cpu.cpus = "x-y"; }, "linux.resources.cpu.cpus: Failed to parse AllowedCPUs=x-y"],
    ["hugepages", (c) => { c.linux.resources.hugepageLimits = []; }, "linux.resources.hugepageLimits: not supported"],
    ["seccomp action", (c) => { c.linux.seccomp = { defaultAction: "SCMP_ACT_NOTIFY" }; }, "linux.seccomp.defaultAction: action not supported: SCMP_ACT_NOTIFY"],
    ["seccomp rule", (c) => { c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: [], action: "SCMP_ACT_ERRNO" }] }; }, "linux.seccomp.syscalls[0].names: system call name list is empty"],
    ["cgroupsPath", (c) => { c.linux.cgroupsPath = "/my/container"; }, "linux.cgroupsPath: does not name a slice"],
    ["masked path", (c) => { c.linux.maskedPaths.push("relative"); }, "linux.maskedPaths[3]: not an absolute path: relative"],
    ["hook path", (c) => { c.hooks = { prestart: [{ path: "hook.sh" }] }; }, "hooks.prestart[0].path: not an absolute path: hook.sh"],
    ["hook kind", (c) => { c.hooks = { createRuntime: [{ path: "/bin/true" }] }; }, "hooks.createRuntime: not supported"],
    ["annotation value", (c) => { c.annotations.x = 1; }, "annotations.x: expected string"],
    ["windows", (c) => { c.windows = {}; }, "windows: not supported on Linux"],
  ];
  for (const [name, edit, want] of cases) {
    test(name, () => {
      const m = errorOf(edit);
      expect(m).toContain(`${FILE}: ${want}`);
    });
  }

  test("not JSON, and JSON that is no bundle", () => {
    expect(() => parseRuntimeSpec("{", FILE)).toThrow(`Failed to parse '${FILE}'`);
    expect(() => parseRuntimeSpec("[1]", FILE)).toThrow("is not an OCI bundle configuration file");
  });
});

describe("merge with the command line", () => {
  test("the bundle's settings apply; the machine is named after the bundle", () => {
    const s = resolve([]);
    expect(s.directory).toBe("/b/rootfs");
    expect(s.machine).toBe("b");
    expect(s.hostname).toBe("box");
    expect(s.parameters).toEqual(["/bin/sh", "-c", "echo hi"]);
    expect(s.capability).toBe(capBit("CHOWN") | capBit("KILL"));
    expect(s.console).toBe("pipe");
    expect(s.ociBundle).toBe("/b");
  });

  test("options on the command line win, group by group", () => {
    const s = resolve(["-D", "/other", "--hostname=cli", "--capability=CAP_NET_RAW", "-u", "0", "--read-only=no".replace("=no", ""), "--console=read-only", "/bin/echo", "x"]);
    expect(s.directory).toBe("/other");
    expect(s.hostname).toBe("cli");
    expect(s.parameters).toEqual(["/bin/echo", "x"]);
    expect(s.console).toBe("read-only");
    // --capability= replaces the bundle's bounding set: nspawn's default plus it
    expect(s.capability & capBit("NET_RAW")).toBeTruthy();
    expect(s.capability & capBit("SYS_ADMIN")).toBeTruthy();
    // -u replaces process.user (name, uid, gid and groups)
    expect(s.user).toBe("0");
    expect(s.userIds).toBeUndefined();
  });

  test("--drop-capability= also replaces the bundle's bounding set", () => {
    const s = resolve(["--drop-capability=CAP_MKNOD"]);
    expect(s.capability & capBit("SYS_ADMIN")).toBeTruthy();
    expect(s.capability & capBit("MKNOD")).toBeFalsy();
  });

  test("no root.path and no -D", () => {
    const c = base();
    delete c.root;
    expect(() => resolve([], c)).toThrow("root.path: missing, and no --directory= given");
    expect(resolve(["-D", "/r"], c).directory).toBe("/r");
  });
});

describe("plan", () => {
  const HYBRID = "30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu";
  const ctx = (over: Partial<RunContext> = {}): RunContext => ({
    stage: "/run/spawnctl/root", scratch: "/run/spawnctl/scratch", tree: "/b/rootfs", cgroup: detectCgroups(HYBRID),
    cgroupNamespace: true, cgroupJoin: [], osRelease: "ID=debian\n", user: { name: "tester", uid: 1000, gid: 1000, home: "/", shell: "/bin/sh", groups: [100, 5] },
    uuid: "0123456789abcdef0123456789abcdef", bootId: "b", env: ["PATH=/bin"], seccomp: new Uint8Array(8),
    binds: [], overlays: [], resolvConf: { op: "none" }, timezone: { op: "none" }, devices: { fuse: false, tun: true },
    treeHasEtc: true, procMasks: PROC_INACCESSIBLE, usrLinks: [], nofileHard: 20000n, networkBarrier: false, ...over,
  });
  const at = (ops: Op[], pred: (o: Op) => boolean) => ops.findIndex(pred);

  test("sysctls between mounting /proc and making /proc/sys read-only", () => {
    const p = buildPlan(resolve([]), ctx());
    const proc = at(p.ops, (o) => o.kind === "mount" && o.dst === "/proc");
    const sysctl = at(p.ops, (o) => o.kind === "write" && o.path === "/proc/sys/net/ipv4/ip_forward");
    const sysRo = at(p.ops, (o) => o.kind === "mount" && o.dst === "/proc/sys");
    expect(proc).toBeGreaterThan(0);
    expect(sysctl).toBeGreaterThan(proc);
    expect(sysRo).toBeGreaterThan(sysctl);
    expect(p.cloneFlags & CLONE.NEWNET).toBeTruthy();
  });

  test("devices, masks and read-only paths after the custom mounts, before pivot_root", () => {
    const { ops } = buildPlan(resolve([]), ctx());
    const pivot = at(ops, (o) => o.kind === "pivot");
    const mask = ops.find((o) => o.kind === "mount" && o.dst === "/etc/secret");
    expect(mask).toMatchObject({ inaccessible: true, optional: true, src: "/run/host/inaccessible" });
    const roPath = ops.find((o) => o.kind === "mount" && o.dst === "/usr/share");
    expect(roPath).toMatchObject({ src: "/usr/share", srcInRoot: true, attrsAfter: MOUNT_ATTR.RDONLY, optional: true });
    const node = at(ops, (o) => o.kind === "mknod" && o.path === "/dev/misc/foo");
    expect(ops[node - 1]).toMatchObject({ kind: "mkdir", path: "/dev/misc" });
    expect(ops[node]).toMatchObject({ mode: 0o20600 });
    expect(ops[node + 2]).toMatchObject({ kind: "chown", uid: 5, gid: 0 });
    for (const i of [at(ops, (o) => o === mask), at(ops, (o) => o === roPath), node]) expect(i).toBeLessThan(pivot);
    expect(at(ops, (o) => o.kind === "mount" && o.dst === "/scratch")).toBeLessThan(at(ops, (o) => o === mask));
  });

  test("the payload's ids and groups are the bundle's", () => {
    const { ops } = buildPlan(resolve([]), ctx());
    expect(ops.find((o) => o.kind === "setgroups" && o.gids.length > 0)).toMatchObject({ gids: [100, 5] });
    expect(ops.find((o) => o.kind === "setuid")).toMatchObject({ uid: 1000 });
  });

  test("the domain name before the capabilities go, the umask last before the payload", () => {
    const c = base();
    c.domainname = "example.org";
    c.process.user.umask = 0o027;
    const { ops } = buildPlan(resolve([], c), ctx());
    const dom = at(ops, (o) => o.kind === "domainname" && o.name === "example.org");
    const mask = at(ops, (o) => o.kind === "umask" && o.mask === 0o027);
    expect(dom).toBeGreaterThan(0);
    expect(dom).toBeLessThan(at(ops, (o) => o.kind === "capbset"));
    expect(mask).toBeGreaterThan(at(ops, (o) => o.kind === "chdir"));
    expect(mask).toBeLessThan(at(ops, (o) => o.kind === "exec"));
    expect(buildPlan(resolve([]), ctx()).ops.some((o) => o.kind === "umask" || o.kind === "domainname")).toBe(false);
  });

  test("consoleSize: the console is made that size (terminal: true)", () => {
    const c = base();
    c.process.terminal = true;
    c.process.consoleSize = { height: 40, width: 100 };
    const { ops } = buildPlan(resolve([], c), ctx());
    expect(ops.find((o) => o.kind === "console")).toMatchObject({ size: { rows: 40, cols: 100 } });
    c.process.consoleSize = { height: 0, width: 100 };
    expect(() => load(c)).toThrow("process.consoleSize: width and height must be 1…65535");
  });

  test("prestart hooks hold the payload at barrier 2", () => {
    const c = base();
    c.hooks = { prestart: [{ path: "/bin/true" }] };
    const p = buildPlan(resolve([], c), ctx());
    expect(p.ops.some((o) => o.kind === "barrier" && o.id === 2)).toBe(true);
    expect(p.parent).toEqual([{ kind: "step", name: "oci-prestart" }, { kind: "go", barrier: 2 }]);
    const plain = buildPlan(resolve([]), ctx());
    expect(plain.parent).toEqual([]);
  });

  test("device nodes cannot be made in a user namespace", () => {
    expect(() => buildPlan(resolve([]), ctx({ userns: { shift: 65536, range: 65536, idmapRoot: false } }))).toThrow("linux.devices");
  });
});
