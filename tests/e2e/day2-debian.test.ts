// e2e: the day-2 verbs against a booted Debian machine with systemd: cgls
// shows systemd's own groups (init.scope, system.slice/...), top -b -n 2 the
// machine with numbers, analyze time/blame/critical-chain are the guest's own
// systemd-analyze passed through.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, run, tempDir } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

const ok = IS_ROOT && haveMirror();
const test = needs("root and a Debian mirror", ok);
const NAME = "sctest-day2";
// an ephemeral machine's name is the image's with a suffix
const ours = (n: string) => n === NAME || (n.startsWith(`${NAME}-`) && /^[0-9a-f]{16}$/.test(n.slice(NAME.length + 1)));
const mine = (l: string) => l.includes(`${NAME}-`) || l.includes(`/${NAME}.`) || l.startsWith("sysctl:");
const before = ok ? leftovers().filter(mine) : [];
let links = "";

beforeAll(() => {
  if (!ok) return;
  const tree = ensureDebianTree();
  mkdirSync("/var/lib/machines", { recursive: true });
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  symlinkSync(tree, `/var/lib/machines/${NAME}`);
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  // the cached tree stays pristine: the machine runs on an overlay
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  writeFileSync(`/etc/systemd/nspawn/${NAME}.nspawn`, "[Exec]\nEphemeral=yes\n");
  links = tempDir();
  for (const t of ["systemd-cgls", "systemd-cgtop", "systemd-analyze"]) symlinkSync(SPAWNCTL, `${links}/${t}`);
}, 900_000);

const machineNames = () => run(["list", "--no-legend"]).stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter(ours);

afterAll(() => {
  if (!ok) return;
  for (const n of machineNames()) run(["terminate", n]);
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console.1`, { force: true });
  if (links) rmSync(links, { recursive: true, force: true });
  // only what is ours: other suites may run machines meanwhile
  const end = Date.now() + 10_000;
  let left = leftovers().filter(mine).filter((l) => !before.includes(l));
  while (left.length && Date.now() < end) {
    Bun.sleepSync(200);
    left = leftovers().filter(mine).filter((l) => !before.includes(l));
  }
  expect(left).toEqual([]);
});

async function until(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(200);
  }
}
const tool = (name: string, args: string[]) => {
  const p = Bun.spawnSync([`${links}/${name}`, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
};

describe("day-2 verbs on a booted Debian machine", () => {
  test("cgls, top and analyze on a systemd guest", async () => {
    const r = run(["start", NAME], { netns: true });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // found by its name, never by its position in the list
    const name = machineNames()[0]!;
    expect(name).toBeDefined();
    await until(() => {
      const s = run(["shell", name, "/bin/systemctl", "is-system-running"]).stdout.trim();
      return s === "running" || s === "degraded";
    }, 120_000);

    // cgls: systemd's tree under the machine's group
    const cg = run(["cgls", name]);
    expect(cg.code).toBe(0);
    const lines = cg.stdout.split("\n");
    expect(lines[0]).toBe(`Control group /${machineCgroupRel(name)}:`);
    expect(lines[1]).toBe("-.slice");
    const init = lines.indexOf("├─init.scope");
    expect(init).toBeGreaterThan(0);
    expect(lines[init + 1]).toMatch(/^│ └─\d+ \/(usr\/)?lib\/systemd\/systemd/);
    expect(cg.stdout).toMatch(/^[├└]─system\.slice$/m);
    expect(cg.stdout).toMatch(/^[│ ] [├└]─systemd-journald\.service$/m);
    expect(cg.stdout).toMatch(/^[│ ] [│ ] └─\d+ \/(usr\/)?lib\/systemd\/systemd-journald$/m);
    expect(tool("systemd-cgls", ["-M", name]).stdout).toBe(cg.stdout);

    // top: the machine's row with numbers in the second iteration
    const top = run(["top", "-b", "-n", "2", "-d", "0.5"]);
    expect(top.code).toBe(0);
    const blocks = top.stdout.trimEnd().split("\n\n");
    expect(blocks.length).toBe(2);
    const row = blocks[1]!.split("\n").find((l) => l.startsWith(`/${machineCgroupRel(name)} `))!.trim().split(/\s+/);
    expect(Number(row[1])).toBeGreaterThanOrEqual(4);
    expect(row[2]).toMatch(/^\d+\.\d$/);
    expect(row[3]).toMatch(/^\d+(\.\d)?[KMG]$/);
    expect(row[4]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    expect(row[5]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    // one machine: its own groups, systemd's among them
    const one = tool("systemd-cgtop", ["-M", name, "-b", "-n", "2", "-d", "0.3", "--order=path"]);
    expect(one.code).toBe(0);
    const second = one.stdout.trimEnd().split("\n\n")[1]!;
    expect(second).toMatch(/^\/ +\d+ +\d+\.\d /m);
    expect(second).toMatch(/^\/init\.scope +1 /m);
    expect(second).toMatch(/^\/system\.slice\/systemd-journald\.service +\d+ /m);

    // analyze: the guest's own systemd-analyze
    const time = run(["analyze", name, "time"]);
    expect(time.code).toBe(0);
    expect(time.stdout).toMatch(/^Startup finished in .+\(userspace\)/m);
    expect(time.stdout).toContain("reached after");
    expect(tool("systemd-analyze", ["-M", name, "time"]).stdout).toBe(time.stdout);
    const blame = run(["analyze", name, "blame"]);
    expect(blame.code).toBe(0);
    expect(blame.stdout).toMatch(/^\s*\d+(\.\d+)?(ms|s) systemd-journald\.service$/m);
    const chain = run(["analyze", name, "critical-chain"]);
    expect(chain.code).toBe(0);
    expect(chain.stdout).toMatch(/^(graphical|multi-user)\.target @/m);
    // the guest's own exit status (its parser refuses the value) and its errors
    expect(run(["analyze", name, "critical-chain", "--fuzz=sometime"]).code).toBe(1);
    expect(run(["analyze", name, "critical-chain", "a/b"]).stderr).toContain("Unit name a/b is neither");

    expect(run(["poweroff", name]).code).toBe(0);
    await until(() => !machineNames().includes(name), 60_000);
  }, 300_000);
});
