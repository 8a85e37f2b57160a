// The automation contract: exactly the calls the known consumers of
// systemd-nspawn and machinectl make (Ansible's machinectl become method,
// the machinectl connection plugins, the CLI-only Nomad nspawn driver),
// through links named machinectl and systemd-nspawn, with their output
// parsed the way those consumers parse it (see reference-automation.md).
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, onTty, removeTree, rootTest as test, tempDir } from "../helpers.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

const NAME = "sctest-auto";
const IMAGE = `/var/lib/machines/${NAME}`;
const FG = "sctest-nomad";
let base = "";
let bin = "";
const before = IS_ROOT ? leftovers() : [];

// an init that powers off on SIGRTMIN+4 (what machinectl poweroff sends) and reboots on SIGINT
const INIT = `#!/bin/sh
trap "exit 0" 38
trap "exit 0" 15
while true; do sleep 0.05; done
`;

function tool(name: "machinectl" | "systemd-nspawn", args: string[], opts: { stdin?: string; env?: Record<string, string>; netns?: boolean } = {}) {
  const cmd = [`${bin}/${name}`, ...args];
  const p = Bun.spawnSync(opts.netns ? ["unshare", "--net", ...cmd] : cmd, {
    stdin: opts.stdin !== undefined ? Buffer.from(opts.stdin) : "ignore", stdout: "pipe", stderr: "pipe",
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** `KEY=VALUE` lines as Nomad's driver and the connection plugins read them. */
function keyValues(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of text.split("\n")) {
    const eq = l.indexOf("=");
    if (eq > 0) m.set(l.slice(0, eq), l.slice(eq + 1));
  }
  return m;
}

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(50);
  }
}

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  bin = `${base}/bin`;
  mkdirSync(bin);
  for (const n of ["machinectl", "systemd-nspawn"]) symlinkSync(SPAWNCTL, `${bin}/${n}`);
  removeTree(IMAGE);
  mkdirSync("/var/lib/machines", { recursive: true });
  makeBusyboxTree(IMAGE, { init: INIT });
  const r = tool("machinectl", ["start", NAME], { netns: true });
  expect(r.code).toBe(0);
});

afterAll(() => {
  if (!IS_ROOT) return;
  for (const n of [NAME, FG]) tool("machinectl", ["terminate", n]);
  removeTree(IMAGE);
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

describe("versions, as the consumers match them", () => {
  test("machinectl --version: \\Asystemd\\s+(\\d+)\\D (the connection plugins); systemd-nspawn --version: [0-9]{3} (Nomad)", () => {
    const m = tool("machinectl", ["--version"]);
    expect(m.code).toBe(0);
    const v = /^systemd\s+(\d+)\D/.exec(m.stdout);
    expect(Number(v?.[1])).toBeGreaterThanOrEqual(252);
    // the second line: systemd's feature string
    expect(m.stdout.split("\n")[1]).toMatch(/^([+-][A-Z0-9_]+ )+default-hierarchy=\w+$/);
    const n = tool("systemd-nspawn", ["--version"]);
    expect(n.stdout).toMatch(/[0-9]{3}/);
    expect(n.stdout).toBe(m.stdout);
  });
});

describe("machinectl, as the connection plugins and Nomad read it", () => {
  test("list --no-legend split on whitespace; -o json --no-pager list with machinectl's keys and types", () => {
    const rows = tool("machinectl", ["list", "--no-legend"]).stdout.trim().split("\n").map((l) => l.split(/\s+/));
    expect(rows.find((r) => r[0] === NAME)).toEqual([NAME, "container", "spawnctl", "busybox", "1", "-"]);
    const j = tool("machinectl", ["-o", "json", "--no-pager", "list"]);
    expect(j.code).toBe(0);
    expect(j.stdout.trim().split("\n")).toHaveLength(1);
    const list = JSON.parse(j.stdout) as Array<Record<string, unknown>>;
    const me = list.find((x) => x.machine === NAME)!;
    expect(Object.keys(me).sort()).toEqual(["addresses", "class", "machine", "os", "service", "version"]);
    expect(me).toEqual({ machine: NAME, class: "container", service: "spawnctl", os: "busybox", version: "1", addresses: null });
    const pretty = tool("machinectl", ["--json=pretty", "list"]).stdout;
    expect(JSON.parse(pretty)).toEqual(list);
    expect(pretty.split("\n").length).toBeGreaterThan(3);
  });

  test("--all show NAME and show NAME: systemd's property names", () => {
    const all = keyValues(tool("machinectl", ["--all", "show", NAME]).stdout);
    expect(all.get("Name")).toBe(NAME);
    expect(all.get("Id")).toMatch(/^[0-9a-f]{32}$/);
    expect(all.get("State")).toBe("running");
    expect(all.get("Class")).toBe("container");
    expect(all.get("RootDirectory")).toBe(IMAGE);
    expect(Number(all.get("Leader"))).toBeGreaterThan(1);
    expect(all.get("Unit")).toBe(machineCgroupRel(NAME).split("/")[1]);
    expect(all.get("Timestamp")).toMatch(/^\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(Number(all.get("TimestampMonotonic"))).toBeGreaterThan(0);
    expect(all.has("NetworkInterfaces")).toBe(true);
    expect(all.has("Service")).toBe(true);
    // its cgroup where systemd puts a machine, the container in its payload
    // (start runs it as systemd-nspawn@.service does, --keep-unit), inside
    // seen as the root
    const unified = `/sys/fs/cgroup/unified/${machineCgroupRel(NAME)}`;
    const v2 = existsSync(unified) ? unified : `/sys/fs/cgroup/${machineCgroupRel(NAME)}`;
    expect(readFileSync(`${v2}/payload/cgroup.procs`, "utf8").split("\n")).toContain(all.get("Leader")!);
    expect(readFileSync(`${v2}/cgroup.procs`, "utf8")).toBe("");
    expect(tool("machinectl", ["shell", NAME, "/bin/cat", "/proc/1/cgroup"]).stdout).toMatch(/^0::\/$/m);
    // show and status as JSON: the same names, numbers as numbers
    const js = JSON.parse(tool("machinectl", ["show", NAME, "--json=short"]).stdout);
    expect(js).toMatchObject({ Name: NAME, State: "running", RootDirectory: IMAGE, Class: "container" });
    expect(typeof js.Leader).toBe("number");
    const status = JSON.parse(tool("machinectl", ["-o", "json", "status", NAME]).stdout);
    expect(status).toMatchObject({ Name: NAME, OS: "BusyBox test tree", Addresses: [] });
    const plain = keyValues(tool("machinectl", ["show", NAME], { env: { SYSTEMD_LOG_LEVEL: "notice" } }).stdout);
    expect(plain.get("State")).toBe("running");
    expect(plain.get("RootDirectory")).toBe(IMAGE);
  });

  test("Ansible's become method: machinectl -q shell -M NAME root@ /bin/sh -c 'echo BECOME-SUCCESS-…; …'", () => {
    const r = tool("machinectl", ["-q", "shell", "-M", NAME, "root@", "/bin/sh", "-c", "echo BECOME-SUCCESS-xyzzy; id -u; cat"], { stdin: "piped module\n" });
    expect(r.code).toBe(0);
    // the plugin strips ANSI colour codes before looking for its marker
    const out = r.stdout.replace(/\x1B\[[0-9;]+m/g, "");
    expect(out).toBe("BECOME-SUCCESS-xyzzy\n0\npiped module\n");
    expect(r.stderr).toBe("");
    // the same as a user
    const u = tool("machinectl", ["-q", "shell", "-M", NAME, "tester@", "/bin/sh", "-c", "id -un"]);
    expect(u.stdout).toBe("tester\n");
  });

  test("the connection plugins: [--uid=N] shell NAME argv with a pty on stdin; copy-to (rm first, or --force), copy-from", async () => {
    const out = await onTty(`SYSTEMD_LOG_LEVEL=notice ${bin}/machinectl --uid=0 shell ${NAME} /bin/sh -c 'tty; id -u'`, [], {});
    expect(out).toMatch(/\/dev\/pts\/\d+\n0\n/);
    writeFileSync(`${base}/payload`, "module\n");
    tool("machinectl", ["shell", NAME, "/bin/rm", "-f", "/tmp/payload"]);
    expect(tool("machinectl", ["copy-to", NAME, `${base}/payload`, "/tmp/payload"]).code).toBe(0);
    expect(tool("machinectl", ["copy-to", NAME, `${base}/payload`, "/tmp/payload"]).code).toBe(1);
    writeFileSync(`${base}/payload`, "module v2\n");
    expect(tool("machinectl", ["copy-to", "--force", NAME, `${base}/payload`, "/tmp/payload"]).code).toBe(0);
    expect(tool("machinectl", ["copy-from", NAME, "/tmp/payload", `${base}/back`]).code).toBe(0);
    expect(readFileSync(`${base}/back`, "utf8")).toBe("module v2\n");
  });
});

describe("the CLI-only Nomad driver", () => {
  test("systemd-nspawn --machine N --boot --ephemeral --resolv-conf copy-host ... in the foreground; list -o json, --all show, shell, copy-from, cgroup stats, poweroff", async () => {
    // a tree of its own: the machine above holds its image (a writable user)
    const tree = `${base}/nomad-image`;
    makeBusyboxTree(tree, { init: INIT });
    mkdirSync(`${base}/vol`);
    writeFileSync(`${base}/vol/data`, "volume\n");
    mkdirSync(`${base}/ro`);
    writeFileSync(`${base}/ro/conf`, "config\n");
    const task = Bun.spawn(["unshare", "--net", `${bin}/systemd-nspawn`, "--machine", FG, "--hostname", "task1", "--boot", "--ephemeral",
      "--resolv-conf", "copy-host", "-E", "NOMAD_TASK=web", "--bind", `${base}/vol:/alloc`, "--bind-ro", `${base}/ro:/local`, "--network-veth",
      "-D", tree], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    try {
      const listed = () => (JSON.parse(tool("machinectl", ["-o", "json", "--no-pager", "list"]).stdout) as Array<{ machine: string }>).some((m) => m.machine === FG);
      await until(listed).catch(async (e) => {
        task.kill(9);
        throw new Error(`${e}: ${await new Response(task.stderr).text()}`);
      });
      const show = keyValues(tool("machinectl", ["--all", "show", FG]).stdout);
      expect(show.get("Name")).toBe(FG);
      expect(show.get("State")).toBe("running");
      expect(show.get("Id")).toMatch(/^[0-9a-f]{32}$/);
      const sh = tool("machinectl", ["shell", FG, "/bin/sh", "-c", "hostname; echo $NOMAD_TASK; cat /alloc/data /local/conf; echo w > /alloc/out; touch /local/x 2>/dev/null || echo ro"]);
      expect(sh.stdout).toBe("task1\n\nvolume\nconfig\nro\n");
      expect(readFileSync(`${base}/vol/out`, "utf8")).toBe("w\n");
      expect(tool("machinectl", ["copy-from", FG, "/etc/os-release", `${base}/os-release`]).code).toBe(0);
      expect(readFileSync(`${base}/os-release`, "utf8")).toContain("ID=busybox");
      // the driver's stats: the machine's cgroup where systemd puts it
      const unified = `/sys/fs/cgroup/unified/${machineCgroupRel(FG)}`;
      const v2 = existsSync(unified) ? unified : `/sys/fs/cgroup/${machineCgroupRel(FG)}`;
      expect(readFileSync(`${v2}/cpu.stat`, "utf8")).toMatch(/^usage_usec \d+/);
      expect(tool("machinectl", ["poweroff", FG]).code).toBe(0);
      expect(await task.exited).toBe(0);
      expect(tool("machinectl", ["list", "--no-legend"]).stdout).not.toContain(FG);
    } finally {
      // a failed check: end it the way its clean-up runs (a SIGKILL would leave it to the collector)
      tool("machinectl", ["terminate", FG]);
      task.kill(9);
      await task.exited;
    }
  });
});
