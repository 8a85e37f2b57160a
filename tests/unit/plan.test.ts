// The container layout as a plan, built without root from injected facts.
import { describe, expect, test } from "bun:test";
import { buildPlan, type RunContext } from "../../src/container/build-plan.ts";
import { detectCgroups } from "../../src/container/host.ts";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { resolveSettings, type MergeEnv } from "../../src/settings/merge.ts";
import { needsNetworkSetup } from "../../src/settings/types.ts";
import { CLONE, MS, MOUNT_ATTR } from "../../src/sys/consts.ts";
import { formatPlan, type Op } from "../../src/sys/plan.ts";
import { PROC_INACCESSIBLE, idmapSources } from "../../src/container/build-plan.ts";

const HYBRID = [
  "30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755",
  "31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
  "32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
  "33 30 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd",
  "34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
].join("\n");

const env: MergeEnv = {
  cwd: "/", isRoot: true, isTty: false, hostname: () => "h", isDir: () => false, readFile: () => undefined,
  random64: () => "0000000000000001", warn: () => {}, boundingSet: (1n << 41n) - 1n,
};

function ctx(over: Partial<RunContext> = {}): RunContext {
  return {
    stage: "/run/spawnctl/root", scratch: "/run/spawnctl/scratch", tree: "/m/web", cgroup: detectCgroups(HYBRID),
    cgroupNamespace: true, cgroupJoin: ["cpu", "memory", "systemd"].map((h) => `/sys/fs/cgroup/${h}/machine.slice/machine-web.scope/tasks`), osRelease: "ID=debian\n", user: { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", groups: [] },
    uuid: "0123456789abcdef0123456789abcdef", bootId: "b", env: ["PATH=/bin"], seccomp: new Uint8Array(8),
    binds: [], overlays: [], resolvConf: { op: "none" }, timezone: { op: "none" }, devices: { fuse: false, tun: true },
    treeHasEtc: true, procMasks: PROC_INACCESSIBLE, usrLinks: [["bin", "usr/bin"]], nofileHard: 20000n, networkBarrier: false, ...over,
  };
}

function plan(argv: string[], over: Partial<RunContext> = {}) {
  const s = resolveSettings(parseCommandLine(argv, "/"), env).settings;
  return buildPlan(s, ctx(over));
}

const idx = (ops: Op[], pred: (o: Op) => boolean) => ops.findIndex(pred);
const mountAt = (dst: string) => (o: Op) => o.kind === "mount" && o.dst === dst;

describe("plan", () => {
  test("namespaces, parent-death signal and the cgroup come first", () => {
    const p = plan(["-D", "/m/web", "/bin/true"]);
    expect(p.cloneFlags & CLONE.NEWPID).toBeTruthy();
    expect(p.cloneFlags & CLONE.NEWNS).toBeTruthy();
    expect(p.cloneFlags & CLONE.NEWNET).toBeFalsy();
    expect(p.ops[0]).toMatchObject({ kind: "prctl", option: 1, arg2: 9 });
    // the child joins its v1 cgroups itself, then makes its cgroup namespace
    expect(p.ops[1]).toMatchObject({ kind: "write", path: "/sys/fs/cgroup/cpu/machine.slice/machine-web.scope/tasks", data: "0" });
    expect(p.ops[4]).toMatchObject({ kind: "unshare", flags: CLONE.NEWCGROUP });
  });

  test("the API file systems, inside the root, before pivot_root", () => {
    const { ops } = plan(["-D", "/m/web", "/bin/true"]);
    const pivot = idx(ops, (o) => o.kind === "pivot");
    for (const d of ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
      const i = idx(ops, mountAt(d));
      expect(i).toBeGreaterThan(0);
      expect(i).toBeLessThan(pivot);
      expect((ops[i] as { dstInRoot?: boolean }).dstInRoot).toBe(true);
    }
    // /proc/sys is bound and the new mount made read-only in the same op; the kernel knobs are masked
    expect(ops.find(mountAt("/proc/sys"))).toMatchObject({ flags: MS.BIND, attrsAfter: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC });
    for (const k of ["/proc/kallsyms", "/proc/kcore", "/proc/sysrq-trigger"]) expect(ops.find(mountAt(k))).toMatchObject({ inaccessible: true });
    // v1 controllers read-only, name=systemd writable
    expect(ops.find(mountAt("/sys/fs/cgroup/memory"))).toMatchObject({ data: "memory" });
    expect(((ops.find(mountAt("/sys/fs/cgroup/memory")) as { flags: number }).flags & MS.RDONLY)).toBeTruthy();
    expect(((ops.find(mountAt("/sys/fs/cgroup/systemd")) as { flags: number }).flags & MS.RDONLY)).toBeFalsy();
  });

  test("cgroup v2 hosts get one cgroup2 mount", () => {
    const { ops } = plan(["-D", "/m/web", "true"], { cgroup: detectCgroups("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw") });
    expect(ops.find(mountAt("/sys/fs/cgroup"))).toMatchObject({ fstype: "cgroup2" });
    expect(ops.find(mountAt("/sys/fs/cgroup/unified"))).toBeUndefined();
  });

  test("private network: new netns, /proc/sys/net writable, CAP_NET_ADMIN kept", () => {
    const p = plan(["--private-network", "-D", "/m/web", "true"]);
    expect(p.cloneFlags & CLONE.NEWNET).toBeTruthy();
    const net = idx(p.ops, mountAt("/proc/sys/net"));
    expect(net).toBeGreaterThan(idx(p.ops, mountAt("/proc/sys")));
    expect(p.ops.find((o) => o.kind === "setattr" && o.dst === "/proc/sys/net")).toMatchObject({ set: 0, clear: MOUNT_ATTR.RDONLY });
    expect((p.ops.find((o) => o.kind === "capbset") as { keep: bigint }).keep & (1n << 12n)).toBeTruthy();
  });

  test("the child brings up its own loopback, and host0 once the host made the veth (barrier 2)", () => {
    const only = resolveSettings(parseCommandLine(["--private-network", "-D", "/m/web", "true"], "/"), env).settings;
    // a network namespace with only a loopback needs nothing from the host: no barrier
    expect(needsNetworkSetup(only)).toBe(false);
    const p = buildPlan(only, ctx({ networkBarrier: needsNetworkSetup(only) }));
    expect(p.ops.filter((o) => o.kind === "ifUp").map((o) => (o as { name: string }).name)).toEqual(["lo"]);
    expect(p.ops.some((o) => o.kind === "barrier")).toBe(false);
    const veth = resolveSettings(parseCommandLine(["-n", "-D", "/m/web", "true"], "/"), env).settings;
    expect(needsNetworkSetup(veth)).toBe(true);
    const ops = buildPlan(veth, ctx({ networkBarrier: true })).ops;
    const b2 = idx(ops, (o) => o.kind === "barrier" && o.id === 2);
    expect(b2).toBeGreaterThan(0);
    expect(idx(ops, (o) => o.kind === "ifUp" && o.name === "host0")).toBe(b2 + 1);
    expect(idx(ops, (o) => o.kind === "ifUp" && o.name === "lo")).toBeLessThan(b2);
    // -p alone still needs the host (it is refused there without an address); a given namespace is left alone
    expect(needsNetworkSetup(resolveSettings(parseCommandLine(["--private-network", "-p", "80", "-D", "/m/web", "true"], "/"), env).settings)).toBe(true);
    const given = resolveSettings(parseCommandLine(["--network-namespace-path=/run/netns/x", "-D", "/m/web", "true"], "/"), env).settings;
    expect(needsNetworkSetup(given)).toBe(false);
    expect(buildPlan(given, ctx()).ops.some((o) => o.kind === "ifUp")).toBe(false);
  });

  test("--read-only makes the staged root read-only recursively; -x mounts an overlay", () => {
    const r = plan(["--read-only", "-D", "/m/web", "true"]);
    expect(r.ops.find((o) => o.kind === "setattr" && o.dst === "/")).toMatchObject({ recursive: true, set: MOUNT_ATTR.RDONLY });
    const x = plan(["-x", "-D", "/m/web", "true"]);
    const ov = x.ops.find((o) => o.kind === "mount" && o.fstype === "overlay") as { data: string; dst: string };
    expect(ov.dst).toBe("/run/spawnctl/root");
    expect(ov.data).toBe("lowerdir=/m/web,upperdir=/run/spawnctl/scratch/upper,workdir=/run/spawnctl/scratch/work");
    expect(x.ops.find((o) => o.kind === "mount" && o.src === "/m/web")).toBeUndefined();
  });

  test("--volatile=yes: tmpfs root with the tree's /usr read-only; state: tmpfs /var", () => {
    const y = plan(["--volatile=yes", "-D", "/m/web", "true"]);
    expect(y.ops.find((o) => o.kind === "mount" && o.dst === "/run/spawnctl/root")).toMatchObject({ fstype: "tmpfs" });
    expect(y.ops.find(mountAt("/usr"))).toMatchObject({ src: "/m/web/usr" });
    const st = plan(["--volatile=state", "-D", "/m/web", "true"]);
    expect(st.ops.find(mountAt("/var"))).toMatchObject({ fstype: "tmpfs" });
    expect(st.ops.find((o) => o.kind === "setattr" && o.dst === "/")).toBeTruthy();
  });

  test("custom mounts are sorted parents first; read-only binds are remounted", () => {
    const p = plan(["-D", "/m/web", "--tmpfs=/a/b", "--bind-ro=/srv:/a", "--inaccessible=/a/b/c", "true"], {
      binds: [{ source: "/srv", hostSource: "/srv", sourceInImage: false, destination: "/a", readOnly: true, recursive: true, idmap: "none", isDir: true }],
    });
    const a = idx(p.ops, mountAt("/a")), ab = idx(p.ops, mountAt("/a/b")), abc = idx(p.ops, mountAt("/a/b/c"));
    expect(a).toBeLessThan(ab);
    expect(ab).toBeLessThan(abc);
    expect(p.ops[a]).toMatchObject({ kind: "mount", dst: "/a", attrsAfter: MOUNT_ATTR.RDONLY, recursive: true });
  });

  test("users: groups, gid, uid, then capabilities; root keeps the bounding set", () => {
    const u = plan(["-D", "/m/web", "-u", "tester", "true"], { user: { name: "tester", uid: 1000, gid: 100, home: "/home/t", shell: "/bin/sh", groups: [5] } });
    const kinds = u.ops.map((o) => o.kind);
    expect(kinds.indexOf("seccomp")).toBeLessThan(kinds.indexOf("setuid"));
    expect(u.ops.find((o) => o.kind === "setgroups")).toMatchObject({ gids: [5] });
    expect(u.ops.find((o) => o.kind === "setuid")).toMatchObject({ uid: 1000 });
    expect(u.ops.find((o) => o.kind === "caps")).toMatchObject({ set: 0n });
  });

  test("exec: command via PATH, --boot tries the inits in order, no command is a login shell", () => {
    const c = plan(["-D", "/m/web", "ls", "-l"]);
    expect(c.ops.at(-1)).toMatchObject({ kind: "exec", file: "ls", argv: ["ls", "-l"], searchPath: true });
    const b = plan(["-b", "-D", "/m/web", "systemd.unit=x"]);
    const execs = b.ops.filter((o) => o.kind === "exec");
    expect(execs.map((e) => (e as { file: string }).file)).toEqual(["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"]);
    expect(execs[0]).toMatchObject({ argv: ["/usr/lib/systemd/systemd", "systemd.unit=x"], fallback: true });
    const sh = plan(["-D", "/m/web"]);
    expect(sh.ops.filter((o) => o.kind === "exec").map((e) => (e as { argv: string[] }).argv[0])).toEqual(["-sh", "-bash"]);
  });

  test("--as-pid2 forks a stub init right before exec; pipe mode allocates no console", () => {
    const a = plan(["-a", "-D", "/m/web", "true"]);
    const kinds = a.ops.map((o) => o.kind);
    expect(kinds.indexOf("stubInit")).toBeLessThan(kinds.indexOf("exec"));
    expect(kinds).toContain("console");
    expect(plan(["-P", "-D", "/m/web", "true"]).ops.map((o) => o.kind)).not.toContain("console");
  });

  test("identity, resources and credentials", () => {
    const p = plan(["-D", "/m/web", "--hostname=box", "--rlimit=NOFILE=10:20", "--oom-score-adjust=-5", "--cpu-affinity=0,9", "--personality=x86", "--set-credential=tok:secret", "true"]);
    expect(p.ops.find((o) => o.kind === "hostname")).toMatchObject({ name: "box" });
    expect(p.ops.filter((o) => o.kind === "rlimit").map((o) => [(o as { soft: bigint }).soft, (o as { hard: bigint }).hard])).toEqual([[10n, 20n]]);
    expect(p.ops.find((o) => o.kind === "write" && o.path === "/proc/self/oom_score_adj")).toMatchObject({ data: "-5" });
    const aff = p.ops.find((o) => o.kind === "affinity") as { mask: Uint8Array };
    expect([...aff.mask.subarray(0, 2)]).toEqual([1, 2]);
    expect(p.ops.find((o) => o.kind === "personality")).toMatchObject({ persona: 8 });
    expect(p.ops.find((o) => o.kind === "write" && o.path === "/run/host/credentials/tok")).toMatchObject({ mode: 0o400 });
  });

  test("formatPlan prints one op per line", () => {
    const text = formatPlan(plan(["-D", "/m/web", "true"]));
    expect(text.split("\n")[0]).toStartWith("# child: clone flags 0x");
    expect(text).toContain("pivot");
    expect(text).toContain("# parent: nothing (the child waits for no barrier)");
  });
});

describe("the parent's side", () => {
  const userns = { shift: 0x50000, range: 65536, idmapRoot: true, rootBase: 0, fallbackChown: true };
  const kinds = (p: ReturnType<typeof plan>) => (p.parent ?? []).map((o) => (o.kind === "go" ? `go${o.barrier}` : o.kind === "step" ? o.name : o.kind));

  test("nothing without a user namespace or a network", () => {
    expect(plan(["-D", "/m/web", "true"]).parent).toEqual([]);
  });

  test("-U: maps, tree, barrier 1; delegation and /dev while it mounts, barrier 3; then barrier 2", () => {
    const p = plan(["-D", "/m/web", "-U", "true"], { userns });
    expect(kinds(p)).toEqual(["mapUserns", "idmapTree", "closeReg", "go1", "chownPaths", "makeDevfs", "go3", "go2"]);
    const [map, tree] = p.parent!;
    expect(map).toMatchObject({ uidMap: "0 327680 65536\n", gidMap: "0 327680 65536\n", reg: 0 });
    // ownership auto: chown where the file system cannot be idmapped
    expect(tree).toMatchObject({ path: "/m/web", reg: 0, recursive: true, fallback: { tree: "/m/web", shift: 0x50000 } });
    const chown = p.parent!.find((o) => o.kind === "chownPaths")!;
    expect(chown).toMatchObject({ uid: 0x50000, gid: 0x50000 });
    // cgroup2 and name=systemd are handed over, the other v1 hierarchies only joined
    if (chown.kind !== "chownPaths") throw new Error("chownPaths");
    expect(chown.paths).toContain("/sys/fs/cgroup/unified/machine.slice/machine-web.scope/cgroup.subtree_control");
    expect(chown.paths).toContain("/sys/fs/cgroup/systemd/machine.slice/machine-web.scope/tasks");
    expect(chown.paths.some((x) => x.startsWith("/sys/fs/cgroup/cpu/"))).toBe(false);
    // every barrier of the child has exactly one go
    for (const id of p.ops.filter((o) => o.kind === "barrier").map((o) => (o as { id: number }).id)) {
      expect(p.parent!.filter((o) => o.kind === "go" && o.barrier === id)).toHaveLength(1);
    }
  });

  test("-x -U: the copy may not be chowned, and the plan says why", () => {
    const p = plan(["-D", "/m/web", "-x", "-U", "true"], { userns });
    expect(p.parent![1]).toMatchObject({ kind: "idmapTree", fallback: { refused: expect.stringContaining("--ephemeral") } });
  });

  test("a tree shifted to another range earlier is mapped from its own base, through a namespace of its own", () => {
    const p = plan(["-D", "/m/web", "-U", "true"], { userns: { ...userns, rootBase: 0x70000 } });
    expect(kinds(p).slice(0, 5)).toEqual(["mapUserns", "makeUserns", "idmapTree", "closeReg", "closeReg"]);
    expect(p.parent![1]).toMatchObject({ uidMap: "458752 327680 65536\n", reg: 1 });
  });

  test("the network: links, then ready, before barrier 2; the host's side after it", () => {
    const p = plan(["-D", "/m/web", "-n", "true"], { networkBarrier: true });
    expect(kinds(p)).toEqual(["net-links", "net-ready", "go2", "net-host"]);
    const u = plan(["-D", "/m/web", "-n", "-U", "true"], { networkBarrier: true, userns });
    expect(kinds(u).slice(-4)).toEqual(["net-links", "net-ready", "go2", "net-host"]);
    expect(formatPlan(u)).toContain("step name=\"net-links\"");
  });
});

describe("cgroup layout detection", () => {
  test("hybrid, unified, legacy", () => {
    expect(detectCgroups(HYBRID)).toMatchObject({ layout: "hybrid", unified: "/sys/fs/cgroup/unified" });
    expect(detectCgroups(HYBRID).v1.map((h) => h.options)).toEqual(["cpu", "memory", "none,name=systemd"]);
    expect(detectCgroups("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw").layout).toBe("unified");
    expect(detectCgroups(HYBRID.split("\n").slice(0, 4).join("\n")).layout).toBe("legacy");
    const co = detectCgroups("30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct");
    expect(co.v1[0]).toMatchObject({ dirName: "cpu,cpuacct", controllers: ["cpu", "cpuacct"] });
  });
});

describe("plan with a user namespace", () => {
  const userns = { shift: 524288, range: 65536, idmapRoot: true };

  test("a new user namespace; the maps and idmapped mounts arrive before anything else", () => {
    const p = plan(["-U", "-D", "/m/web", "true"], { userns });
    expect(p.cloneFlags & CLONE.NEWUSER).toBeTruthy();
    // the child joins its cgroups while it is still the host's root and the
    // parent writes its maps (the files need no delegation for this)
    const b1 = p.ops.findIndex((o) => o.kind === "barrier" && o.id === 1);
    expect(p.ops.slice(1, b1).length).toBeGreaterThan(0);
    expect(p.ops.slice(1, b1).every((o) => o.kind === "write" && o.data === "0")).toBe(true);
    expect(p.ops[b1 + 1]).toMatchObject({ kind: "recvFd", slot: 0 });
    // then it takes the namespace's root ids
    expect(p.ops.slice(b1 + 2, b1 + 5).map((o) => o.kind)).toEqual(["setgroups", "setgid", "setuid"]);
    const setuid = b1 + 4;
    // slot 1, the container's /dev, at barrier 3, right before it is needed
    const b3 = p.ops.findIndex((o) => o.kind === "barrier" && o.id === 3);
    expect(b3).toBeGreaterThan(setuid);
    expect(p.ops[b3 + 1]).toMatchObject({ kind: "recvFd", slot: 1 });
    expect(p.ops[b3 + 2]).toMatchObject({ kind: "moveMount", slot: 1, dst: "/dev" });
    // the root is the idmapped tree, not a bind
    expect(p.ops.find((o) => o.kind === "moveMount")).toMatchObject({ slot: 0, dst: "/run/spawnctl/root" });
    expect(p.ops.find((o) => o.kind === "mount" && o.src === "/m/web")).toBeUndefined();
  });

  test("with chown or off ownership the root still comes from the parent (the child may not look up its path)", () => {
    const p = plan(["--private-users=pick", "--private-users-ownership=chown", "-D", "/m/web", "true"], { userns: { ...userns, idmapRoot: false } });
    expect(p.ops.filter((o) => o.kind === "recvFd").length).toBe(2);
    expect(p.ops.find((o) => o.kind === "moveMount")).toMatchObject({ slot: 0, dst: "/run/spawnctl/root" });
    expect(idmapSources(resolveSettings(parseCommandLine(["-U", "-D", "/m/web", "true"], "/"), env).settings, ctx({ userns: { ...userns, idmapRoot: false } }))).toEqual([{ hostPath: "/m/web", recursive: true, map: "none" }]);
  });

  test("/dev comes made, with its nodes, in the slot after the mounts; sysfs is the host's without a network namespace", () => {
    const { ops } = plan(["-U", "-D", "/m/web", "true"], { userns });
    expect(ops.some((o) => o.kind === "mknod" && o.path.startsWith("/dev/"))).toBe(false);
    expect(ops.find(mountAt("/dev"))).toBeUndefined();
    expect(ops.find((o) => o.kind === "moveMount" && o.dst === "/dev")).toMatchObject({ slot: 1, dstInRoot: true, mkdir: true });
    expect(ops.find(mountAt("/dev/null"))).toBeUndefined();
    // what lives in /dev is still made there
    expect(ops.find((o) => o.kind === "symlink" && o.path === "/dev/char/1:3")).toBeDefined();
    expect(ops.find(mountAt("/dev/pts"))).toMatchObject({ fstype: "devpts" });
    expect(ops.find(mountAt("/sys"))).toMatchObject({ src: "/sys", flags: MS.BIND | MS.REC, recursive: true });
    const net = plan(["-U", "--private-network", "-D", "/m/web", "true"], { userns }).ops;
    expect(net.find(mountAt("/sys"))).toMatchObject({ fstype: "sysfs" });
  });

  test("more host binds than the child has fd slots for is a clear error", () => {
    const many = Array.from({ length: 15 }, (_, i) => ({ source: `/b${i}`, sourceInImage: false, destination: `/b${i}`, readOnly: false, recursive: true, idmap: "none" as const, hostSource: `/b${i}`, isDir: true }));
    expect(() => plan(["-U", "-D", "/m/web", "true"], { userns, binds: many })).toThrow(/at most 13 host directories/);
    // (the last slot is the notify socket's: root, 13 binds and /dev fill the rest)
    expect(plan(["-U", "-D", "/m/web", "true"], { userns, binds: many.slice(0, 13) }).ops.filter((o) => o.kind === "recvFd").length).toBe(15);
    expect(() => plan(["-U", "-D", "/m/web", "true"], { userns, binds: many.slice(0, 14) })).toThrow(/got 14/);
  });

  test("-x puts the overlay over the idmapped tree, with user xattrs", () => {
    const { ops } = plan(["-U", "-x", "-D", "/m/web", "true"], { userns });
    expect(ops.find((o) => o.kind === "moveMount")).toMatchObject({ slot: 0, dst: "/run/spawnctl/scratch/lower", dstInRoot: false });
    const ov = ops.find((o) => o.kind === "mount" && o.fstype === "overlay") as { data: string };
    expect(ov.data).toContain("lowerdir=/run/spawnctl/scratch/lower");
    expect(ov.data).toContain("userxattr");
  });

  test("binds with idmap options come as idmapped mounts in slot order", () => {
    const binds = [
      { source: "/a", sourceInImage: false, destination: "/a", readOnly: false, recursive: true, idmap: "none" as const, hostSource: "/a", isDir: true },
      { source: "/b", sourceInImage: false, destination: "/b", readOnly: true, recursive: true, idmap: "idmap" as const, hostSource: "/b", isDir: true },
      { source: "/c", sourceInImage: false, destination: "/c", readOnly: false, recursive: false, idmap: "rootidmap" as const, hostSource: "/c", isDir: true, sourceOwner: { uid: 1000, gid: 1000 } },
    ];
    const { ops } = plan(["-U", "-D", "/m/web", "true"], { userns, binds });
    // every host directory comes from the parent: the child may not be allowed to look its path up
    // and /dev after them
    expect(ops.filter((o) => o.kind === "recvFd").length).toBe(5);
    expect(ops.find((o) => o.kind === "moveMount" && o.dst === "/dev")).toMatchObject({ slot: 4 });
    expect(ops.find((o) => o.kind === "moveMount" && o.dst === "/a")).toMatchObject({ slot: 1, dstInRoot: true });
    expect(ops.find((o) => o.kind === "moveMount" && o.dst === "/b")).toMatchObject({ slot: 2, dstInRoot: true });
    expect(ops.find((o) => o.kind === "moveMount" && o.dst === "/c")).toMatchObject({ slot: 3 });
    expect(ops.find((o) => o.kind === "setattr" && o.dst === "/b")).toMatchObject({ set: MOUNT_ATTR.RDONLY });
    const s = resolveSettings(parseCommandLine(["-U", "-D", "/m/web", "true"], "/"), env).settings;
    expect(idmapSources(s, ctx({ userns, binds })).map((x) => x.map)).toEqual(["container", "none", "container", { hostUid: 1000, hostGid: 1000, uid: 0, gid: 0 }]);
  });

  test("NET_BIND_SERVICE is dropped without a private network", () => {
    const s = resolveSettings(parseCommandLine(["-U", "-D", "/m/web", "true"], "/"), env).settings;
    expect(s.capability & (1n << 10n)).toBe(0n);
    const n = resolveSettings(parseCommandLine(["-U", "--private-network", "-D", "/m/web", "true"], "/"), env).settings;
    expect(n.capability & (1n << 10n)).toBe(1n << 10n);
  });
});

describe("machine cgroups where systemd puts them", () => {
  test("machine.slice/machine-<name as systemd-escape makes it>.scope, and back", async () => {
    const { machineCgroupRel, scopeMachine, escapeUnit } = await import("../../src/cgroup/cgroup.ts");
    expect(machineCgroupRel("web")).toBe("machine.slice/machine-web.scope");
    expect(machineCgroupRel("sctest-m1")).toBe("machine.slice/machine-sctest\\x2dm1.scope");
    expect(escapeUnit(".hidden")).toBe("\\x2ehidden");
    for (const n of ["a.b_c", "x-y-z", "grüß", "web"]) expect(scopeMachine(machineCgroupRel(n).split("/")[1]!)).toBe(n);
    expect(scopeMachine("system.slice")).toBeUndefined();
  });
});

describe("the payload layout (--keep-unit, what start passes)", () => {
  const userns = { shift: 0x50000, range: 65536, idmapRoot: true, rootBase: 0, fallbackChown: true };
  test("the container joins machine-NAME.scope/payload in the hierarchies its init manages, and that is what it is handed", () => {
    const p = plan(["-D", "/m/web", "-U", "--keep-unit", "true"], { userns, cgroupPayload: true });
    const chown = p.parent!.find((o) => o.kind === "chownPaths");
    if (chown?.kind !== "chownPaths") throw new Error("no delegation");
    expect(chown.paths).toContain("/sys/fs/cgroup/unified/machine.slice/machine-web.scope/payload");
    expect(chown.paths).toContain("/sys/fs/cgroup/systemd/machine.slice/machine-web.scope/payload/cgroup.procs");
    expect(chown.paths).not.toContain("/sys/fs/cgroup/unified/machine.slice/machine-web.scope");
  });
  test("containerDir: only the managed hierarchies have a payload", async () => {
    const { containerDir } = await import("../../src/cgroup/cgroup.ts");
    const facts = detectCgroups(HYBRID);
    expect(containerDir(facts, "/sys/fs/cgroup/unified/machine.slice/machine-web.scope", true)).toEndWith("/payload");
    expect(containerDir(facts, "/sys/fs/cgroup/systemd/machine.slice/machine-web.scope", true)).toEndWith("/payload");
    expect(containerDir(facts, "/sys/fs/cgroup/memory/machine.slice/machine-web.scope", true)).toEndWith(".scope");
    expect(containerDir(facts, "/sys/fs/cgroup/unified/machine.slice/machine-web.scope", false)).toEndWith(".scope");
  });
});

describe("SELinux labels (-Z, -L)", () => {
  const selinuxEnv: MergeEnv = { ...env, readFile: (p) => (p === "/sys/fs/selinux/enforce" ? "1" : undefined) };
  const withLabels = (argv: string[], over: Partial<RunContext> = {}) =>
    buildPlan(resolveSettings(parseCommandLine(argv, "/"), selinuxEnv).settings, ctx(over));

  test("-Z writes the payload's label right before its exec; -L labels the tmpfs, devpts and mqueue mounts and the user namespace's /dev", () => {
    const p = withLabels(["-D", "/m/web", "-Z", "system_u:system_r:container_t:s0:c1,c2", "-L", "system_u:object_r:container_file_t:s0:c1,c2", "/bin/true"]);
    const w = idx(p.ops, (o) => o.kind === "write" && o.path === "/proc/thread-self/attr/exec");
    expect(w).toBeGreaterThan(0);
    expect(p.ops[w]).toMatchObject({ data: "system_u:system_r:container_t:s0:c1,c2", inRoot: false });
    expect(p.ops[w + 1]!.kind).toBe("exec");
    const label = 'context="system_u:object_r:container_file_t:s0:c1,c2"';
    for (const dst of ["/run", "/tmp", "/dev/shm", "/dev/pts", "/dev/mqueue"]) {
      const m = p.ops.find(mountAt(dst)) as { data?: string };
      expect(m.data).toEndWith(label);
    }
    // the tree's own mounts and binds carry no label
    expect(p.ops.filter((o) => o.kind === "mount" && o.fstype === "proc").every((o) => !(o as { data?: string }).data?.includes("context="))).toBe(true);
    const u = withLabels(["-D", "/m/web", "-U", "-L", "system_u:object_r:container_file_t:s0", "/bin/true"], { userns: { shift: 65536, range: 65536, idmapRoot: true } });
    expect(u.parent?.find((o) => o.kind === "makeDevfs")).toMatchObject({ options: 'mode=0755,size=4m,nr_inodes=64k,context="system_u:object_r:container_file_t:s0"' });
  });

  test("a label is checked, and a host without SELinux says so", () => {
    expect(() => resolveSettings(parseCommandLine(["-D", "/m/web", "-Z", 'a:b:c"x'], "/"), selinuxEnv)).toThrow("--selinux-context");
    expect(() => resolveSettings(parseCommandLine(["-D", "/m/web", "-L", "nolabel"], "/"), selinuxEnv)).toThrow("--selinux-apifs-context");
    expect(() => resolveSettings(parseCommandLine(["-D", "/m/web", "-Z", "u:r:t:s0"], "/"), env)).toThrow("--selinux-context=: SELinux is not enabled on this host");
  });
});
