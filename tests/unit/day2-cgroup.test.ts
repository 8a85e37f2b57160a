// cgls, top and analyze without root: the cgroup layouts (v2, hybrid,
// legacy v1) from fixture mount tables and cgroup files, a tree drawn as
// systemd-cgls draws it, cgtop's table, and the option parsers.
import { describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { detectCgroups } from "../../src/cgroup/facts.ts";
import { drawCgroupTree, machineDirs, parsePids, pickTree, readCgroupTree, type CgNode, type ProcInfo } from "../../src/cgroup/tree.ts";
import { countProcesses, formatCgBytes, parseBlkio, parseCpuStat, parseIoStat, readSample, renderTop, sortRows, topRow } from "../../src/cgroup/stats.ts";
import { parseTopArgs } from "../../src/machine/top.ts";
import { parseCglsArgs } from "../../src/machine/cgls.ts";
import { endsWithLoginPrompt, formatTimespan, parseAnalyzeArgs, processStartUs } from "../../src/machine/analyze.ts";
import { tempDir } from "../helpers.ts";

const mi = (id: number, mp: string, fstype: string, super_: string) => `${id} 1 0:${id} / ${mp} rw,nosuid,nodev,noexec,relatime shared:${id} - ${fstype} ${fstype} ${super_}`;
const V2 = [mi(30, "/sys/fs/cgroup", "cgroup2", "rw,nsdelegate,memory_recursiveprot")].join("\n");
const HYBRID = [
  mi(30, "/sys/fs/cgroup", "tmpfs", "ro,mode=755"),
  mi(31, "/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate"),
  mi(32, "/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
  mi(33, "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
  mi(34, "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
  mi(35, "/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
  mi(36, "/sys/fs/cgroup/blkio", "cgroup", "rw,blkio"),
].join("\n");
const LEGACY = HYBRID.split("\n").filter((l) => !l.includes("unified")).join("\n");
const M = "/spawnctl/web";

describe("the machine's directories in each layout", () => {
  test("cgroup v2: one directory, the unified one", () => {
    const f = detectCgroups(V2);
    const d = machineDirs(f, [`/sys/fs/cgroup${M}`], `/sys/fs/cgroup${M}`);
    expect(d.unified).toBe(`/sys/fs/cgroup${M}`);
    expect(d.systemd).toBeUndefined();
    expect(d.controllers.size).toBe(0);
  });
  test("hybrid: name=systemd, the co-mounted cpu,cpuacct answering to both, and cgroup2", () => {
    const f = detectCgroups(HYBRID);
    expect(f.layout).toBe("hybrid");
    const dirs = f.v1.map((h) => `${h.mountpoint}${M}`);
    const d = machineDirs(f, [...dirs, `/sys/fs/cgroup/unified${M}`], `/sys/fs/cgroup/unified${M}`);
    expect(d.systemd).toBe(`/sys/fs/cgroup/systemd${M}`);
    expect(d.unified).toBe(`/sys/fs/cgroup/unified${M}`);
    expect(d.controllers.get("cpu")).toBe(`/sys/fs/cgroup/cpu,cpuacct${M}`);
    expect(d.controllers.get("cpuacct")).toBe(`/sys/fs/cgroup/cpu,cpuacct${M}`);
    expect(d.controllers.get("memory")).toBe(`/sys/fs/cgroup/memory${M}`);
    expect(d.all.length).toBe(6);
  });
  test("legacy v1: no cgroup2 at all", () => {
    const f = detectCgroups(LEGACY);
    expect(f.layout).toBe("legacy");
    const d = machineDirs(f, f.v1.map((h) => `${h.mountpoint}${M}`));
    expect(d.unified).toBeUndefined();
    expect(d.systemd).toBe(`/sys/fs/cgroup/systemd${M}`);
    expect(d.controllers.get("pids")).toBe(`/sys/fs/cgroup/pids${M}`);
  });
});

describe("cgroup files", () => {
  test("cgroup2 cpu.stat and io.stat", () => {
    expect(parseCpuStat("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")).toBe(1_500_000);
    // v1's cpu.stat has no usage: nothing is made up
    expect(parseCpuStat("nr_periods 0\nnr_throttled 0\nthrottled_time 0\n")).toBeUndefined();
    expect(parseIoStat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")).toEqual({ read: 4196, write: 8192 });
    expect(parseIoStat("")).toEqual({ read: 0, write: 0 });
  });
  test("v1 blkio.throttle.io_service_bytes, the Total line not counted twice", () => {
    const text = "8:0 Read 1000\n8:0 Write 2000\n8:0 Sync 3000\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 3000\n8:16 Read 5\n8:16 Write 0\nTotal 3005\n";
    expect(parseBlkio(text)).toEqual({ read: 1005, write: 2000 });
    expect(parseBlkio("Total 0\n")).toEqual({ read: 0, write: 0 });
  });
  test("cgroup.procs: duplicates (v1) folded, sorted", () => {
    expect(parsePids("12\n3\n12\n\n")).toEqual([3, 12]);
  });

  const files = (m: Record<string, string>) => (p: string) => m[p];
  test("a sample on cgroup v2", () => {
    const f = detectCgroups(V2);
    const dir = `/sys/fs/cgroup${M}`;
    const d = machineDirs(f, [dir], dir);
    const s = readSample(d, "", 5, files({
      [`${dir}/cpu.stat`]: "usage_usec 2000\n", [`${dir}/memory.current`]: "1048576\n", [`${dir}/pids.current`]: "4\n",
      [`${dir}/io.stat`]: "8:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n",
    }));
    expect(s).toEqual({ at: 5, cpuNs: 2_000_000, memory: 1048576, tasks: 4, ioRead: 10, ioWrite: 20 });
    // a sub-group
    const sub = readSample(d, "init.scope", 5, files({ [`${dir}/init.scope/cpu.stat`]: "usage_usec 7\n", [`${dir}/init.scope/pids.current`]: "1\n" }));
    expect(sub.cpuNs).toBe(7000);
    expect(sub.tasks).toBe(1);
    expect(sub.memory).toBeUndefined();
  });
  test("a sample on a hybrid host: CPU from cgroup2's cpu.stat, the rest from v1", () => {
    const f = detectCgroups(HYBRID);
    const d = machineDirs(f, [...f.v1.map((h) => `${h.mountpoint}${M}`), `/sys/fs/cgroup/unified${M}`], `/sys/fs/cgroup/unified${M}`);
    const s = readSample(d, "", 1, files({
      [`/sys/fs/cgroup/unified${M}/cpu.stat`]: "usage_usec 3\n",
      [`/sys/fs/cgroup/cpu,cpuacct${M}/cpuacct.usage`]: "999\n",
      [`/sys/fs/cgroup/memory${M}/memory.usage_in_bytes`]: "4096\n",
      [`/sys/fs/cgroup/pids${M}/pids.current`]: "2\n",
      [`/sys/fs/cgroup/blkio${M}/blkio.throttle.io_service_bytes_recursive`]: "8:0 Read 7\n8:0 Write 9\nTotal 16\n",
      [`/sys/fs/cgroup/blkio${M}/blkio.throttle.io_service_bytes`]: "Total 0\n",
    }));
    expect(s).toEqual({ at: 1, cpuNs: 3000, memory: 4096, tasks: 2, ioRead: 7, ioWrite: 9 });
  });
  test("a sample on a legacy v1 host without a pids controller: tasks counted", () => {
    const f = detectCgroups(LEGACY.split("\n").filter((l) => !l.includes("pids")).join("\n"));
    const d = machineDirs(f, f.v1.map((h) => `${h.mountpoint}${M}`));
    const s = readSample(d, "", 1, files({
      [`/sys/fs/cgroup/cpu,cpuacct${M}/cpuacct.usage`]: "123456\n",
      [`/sys/fs/cgroup/memory${M}/memory.usage_in_bytes`]: "8192\n",
      [`/sys/fs/cgroup/blkio${M}/blkio.throttle.io_service_bytes`]: "8:0 Read 1\n8:0 Write 2\n",
    }), () => 6);
    expect(s).toEqual({ at: 1, cpuNs: 123456, memory: 8192, tasks: 6, ioRead: 1, ioWrite: 2 });
  });
  test("counting processes down a tree of directories", () => {
    const root = tempDir();
    try {
      mkdirSync(`${root}/a/b`, { recursive: true });
      writeFileSync(`${root}/cgroup.procs`, "1\n2\n");
      writeFileSync(`${root}/a/cgroup.procs`, "");
      writeFileSync(`${root}/a/b/cgroup.procs`, "3\n");
      const ls = (d: string) => (d === root ? ["a"] : d === `${root}/a` ? ["b"] : []);
      expect(countProcesses(root, ls)).toBe(3);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("the tree, drawn as systemd-cgls draws it", () => {
  const node = (name: string, pids: number[], children: CgNode[] = []): CgNode => ({ name, dir: `/x/${name}`, pids, children });
  const tree = node("/", [1234], [
    node("init.scope", [7]),
    node("system.slice", [], [
      node("dbus.service", [120]),
      node("empty.service", []),
      node("systemd-journald.service", [35, 1102]),
    ]),
    node("user.slice", []),
  ]);
  const procs: Record<number, ProcInfo> = {
    1234: { cmdline: "/bin/sh", kernel: false },
    7: { cmdline: "/usr/lib/systemd/systemd", kernel: false },
    120: { cmdline: "/usr/bin/dbus-daemon --system", kernel: false },
    35: { cmdline: "/lib/systemd/systemd-journald", kernel: false },
    1102: { cmdline: "[kworker/0:1]", kernel: true },
  };
  const info = (p: number) => procs[p];
  test("processes first, pids aligned, empty groups left out, branches", () => {
    expect(drawCgroupTree(tree, info)).toEqual([
      "├─1234 /bin/sh",
      "├─init.scope",
      "│ └─7 /usr/lib/systemd/systemd",
      "└─system.slice",
      "  ├─dbus.service",
      "  │ └─120 /usr/bin/dbus-daemon --system",
      "  └─systemd-journald.service",
      "    └─35 /lib/systemd/systemd-journald",
    ]);
  });
  test("-a shows empty groups, -k kernel threads (pids right-aligned to the widest)", () => {
    const lines = drawCgroupTree(tree, info, { all: true, kernelThreads: true });
    expect(lines).toEqual([
      "├─1234 /bin/sh",
      "├─init.scope",
      "│ └─7 /usr/lib/systemd/systemd",
      "├─system.slice",
      "│ ├─dbus.service",
      "│ │ └─120 /usr/bin/dbus-daemon --system",
      "│ ├─empty.service",
      "│ └─systemd-journald.service",
      "│   ├─  35 /lib/systemd/systemd-journald",
      "│   └─1102 [kworker/0:1]",
      "└─user.slice",
    ]);
  });
  test("a width cuts lines", () => {
    expect(drawCgroupTree(node("/", [120]), info, { width: 20 })).toEqual(["└─120 /usr/bin/dbus…"]);
  });
  test("a process gone between listing and reading is left out", () => {
    expect(drawCgroupTree(node("/", [99999, 7]), info)).toEqual(["└─7 /usr/lib/systemd/systemd"]);
  });
  test("read from directories, and the hierarchy holding sub-groups picked", () => {
    const root = tempDir();
    try {
      const mk = (d: string, procs: string) => {
        mkdirSync(d, { recursive: true });
        writeFileSync(`${d}/cgroup.procs`, procs);
      };
      // hybrid: name=systemd has systemd's groups, cgroup2 and memory only the root
      mk(`${root}/systemd/m`, "");
      mk(`${root}/systemd/m/init.scope`, "10\n");
      mk(`${root}/systemd/m/system.slice/a.service`, "11\n");
      mk(`${root}/unified/m`, "10\n11\n");
      mk(`${root}/memory/m`, "10\n11\n");
      const sys = readCgroupTree(`${root}/systemd/m`);
      expect(sys.children.map((c) => c.name)).toEqual(["init.scope", "system.slice"]);
      expect(sys.children[1]!.children[0]!.pids).toEqual([11]);
      const picked = pickTree([
        { kind: "unified", tree: readCgroupTree(`${root}/unified/m`) },
        { kind: "other", tree: readCgroupTree(`${root}/memory/m`) },
        { kind: "systemd", tree: sys },
      ]);
      expect(picked?.dir).toBe(`${root}/systemd/m`);
      // all flat: systemd's hierarchy first, then cgroup2
      const flat = pickTree([
        { kind: "other", tree: readCgroupTree(`${root}/memory/m`) },
        { kind: "unified", tree: readCgroupTree(`${root}/unified/m`) },
      ]);
      expect(flat?.dir).toBe(`${root}/unified/m`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("cgtop's table", () => {
  test("the first iteration has no rates; the second has", () => {
    const a = { at: 0, cpuNs: 0, memory: 2 * 1024 * 1024, tasks: 3, ioRead: 0, ioWrite: 0 };
    const b = { at: 2e9, cpuNs: 1e9, memory: 2 * 1024 * 1024, tasks: 3, ioRead: 4096, ioWrite: 2048 };
    const first = topRow("/spawnctl/web", a);
    expect(first).toEqual({ path: "/spawnctl/web", tasks: 3, memory: 2097152 });
    const second = topRow("/spawnctl/web", b, a);
    expect(second.cpu).toBeCloseTo(0.5);
    expect(second.inBps).toBe(2048);
    expect(second.outBps).toBe(1024);
    expect(renderTop([first], { tty: false })).toEqual(["/spawnctl/web       3      -     2.0M        -        -"]);
    expect(renderTop([second], { tty: false })).toEqual(["/spawnctl/web       3   50.0     2.0M     2.0K     1.0K"]);
  });
  test("on a terminal: a header, and the path column fitted", () => {
    const lines = renderTop([{ path: "/spawnctl/a-very-long-machine-name-indeed-it-is", tasks: 1 }], { tty: true, columns: 60 });
    expect(lines[0]).toBe(`${"Control Group".padEnd(18)}   Tasks   %CPU   Memory  Input/s Output/s`);
    expect(lines[1]!.length).toBe(lines[0]!.length);
    expect(lines[1]).toContain("…");
  });
  test("ordering: a parent before its children, then the key, then the path", () => {
    const rows = [
      { path: "/", cpu: 0.1, memory: 10 },
      { path: "/b", cpu: 0.5, memory: 1 },
      { path: "/a", cpu: 0.2, memory: 5 },
      { path: "/c" },
    ];
    expect(sortRows(rows, "cpu").map((r) => r.path)).toEqual(["/", "/b", "/a", "/c"]);
    expect(sortRows(rows, "memory").map((r) => r.path)).toEqual(["/", "/a", "/b", "/c"]);
    expect(sortRows(rows, "path").map((r) => r.path)).toEqual(["/", "/a", "/b", "/c"]);
  });
  test("bytes as systemd prints them", () => {
    expect(formatCgBytes(0)).toBe("0B");
    expect(formatCgBytes(1023)).toBe("1023B");
    expect(formatCgBytes(1536)).toBe("1.5K");
    expect(formatCgBytes(5 * 1024 ** 3)).toBe("5.0G");
  });
});

describe("options", () => {
  test("top", () => {
    expect(parseTopArgs(["-b", "-n", "2", "-d", "0.5"])).toMatchObject({ batch: true, iterations: 2, delayMs: 500 });
    expect(parseTopArgs(["--batch", "--iterations=3", "--delay=2s", "--order=memory", "web"])).toMatchObject({ batch: true, iterations: 3, delayMs: 2000, order: "memory", machine: "web" });
    expect(parseTopArgs(["-1", "-m"])).toMatchObject({ iterations: 1, order: "memory" });
    expect(parseTopArgs(["-bn5", "-d250ms"])).toMatchObject({ batch: true, iterations: 5, delayMs: 250 });
    expect(() => parseTopArgs(["-x"])).toThrow("unknown option '-x'");
    expect(() => parseTopArgs(["--frobnicate"])).toThrow("unknown option '--frobnicate'");
    expect(() => parseTopArgs(["--order=size"])).toThrow("--order=: size");
    expect(() => parseTopArgs(["-d", "soon"])).toThrow("delay parameter 'soon'");
    expect(() => parseTopArgs(["-d", "0"])).toThrow("invalid delay");
    expect(() => parseTopArgs(["-n"])).toThrow("'-n' requires an argument");
    expect(() => parseTopArgs(["a", "b"])).toThrow("too many arguments");
  });
  test("cgls", () => {
    expect(parseCglsArgs(["-al", "web", "db"])).toMatchObject({ all: true, full: true, names: ["web", "db"] });
    expect(parseCglsArgs(["--no-pager", "-k"])).toMatchObject({ kernelThreads: true, names: [] });
    expect(() => parseCglsArgs(["--tree"])).toThrow("unknown option '--tree'");
  });
  test("analyze", () => {
    expect(parseAnalyzeArgs(["web"])).toMatchObject({ machine: "web", verb: "time" });
    expect(parseAnalyzeArgs(["web", "critical-chain", "multi-user.target", "--fuzz=1s"])).toMatchObject({ verb: "critical-chain", units: ["multi-user.target"], passOptions: ["--fuzz=1s"] });
    expect(() => parseAnalyzeArgs(["web", "plot"])).toThrow("unknown command 'plot'");
    expect(() => parseAnalyzeArgs(["--user", "web"])).toThrow("unknown option '--user'");
    expect(() => parseAnalyzeArgs([])).toThrow("a machine name is needed");
    expect(() => parseAnalyzeArgs(["web", "blame", "x"])).toThrow("takes no arguments");
  });
});

describe("analyze's measurements", () => {
  test("time spans as systemd prints them", () => {
    expect(formatTimespan(843_000)).toBe("843ms");
    expect(formatTimespan(1_234_000)).toBe("1.234s");
    expect(formatTimespan(2_000_000)).toBe("2s");
    expect(formatTimespan(62_345_000)).toBe("1min 2.345s");
    expect(formatTimespan(3_723_500_000)).toBe("1h 2min 3.5s");
  });
  test("a console log ending in a login prompt", () => {
    expect(endsWithLoginPrompt("Debian GNU/Linux 12 web console\r\n\r\nweb login: ")).toBe(true);
    expect(endsWithLoginPrompt("\x1b[2J\x1b[Hbox login:")).toBe(true);
    expect(endsWithLoginPrompt("web login: root\r\nPassword: \r\n# ")).toBe(false);
    expect(endsWithLoginPrompt("booting...\n")).toBe(false);
  });
  test("a process's start from /proc/PID/stat and /proc/uptime", () => {
    // started 500 ticks (5 s) after boot, the host up 15 s: started 10 s ago
    const stat = "42 (init) S 0 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 500 1000 100";
    expect(processStartUs(42, stat, "15.00 10.00\n", 100_000_000)).toBe(90_000_000);
  });
});
