// The day-2 verbs against a running busybox machine: cgls (and a link named
// systemd-cgls with -M), top in batch mode (and systemd-cgtop -M), analyze
// time for a guest without systemd. The machine's init makes a sub-group
// "worker" with a process in it, and prints a login prompt on its console a
// second after it starts.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

const NAME = "sctest-day2bb";
const IMAGE = `/var/lib/machines/${NAME}`;
const LOG = `/var/log/spawnctl/${NAME}.console`;
const mine = (l: string) => l.includes(NAME) || l.startsWith("sysctl:");
const before = IS_ROOT ? leftovers().filter(mine) : [];
let links = "";

// the first cgroup directory that takes a new group: name=systemd on v1 and
// hybrid hosts, the unified one on v2
const RC = `#!/bin/sh
for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if mkdir -p $d/worker 2>/dev/null; then
    sh -c "echo \\$\\$ > $d/worker/cgroup.procs; exec sleep 100001" &
    break
  fi
done
`;
const PROMPT = `#!/bin/sh
sleep 1
printf '\\nday2 login: '
exec sleep 100002
`;

beforeAll(() => {
  if (!IS_ROOT) return;
  removeTree(IMAGE);
  rmSync(LOG, { force: true });
  mkdirSync("/var/lib/machines", { recursive: true });
  makeBusyboxTree(IMAGE, { inittab: "::sysinit:/etc/rc.sh\n::once:/etc/prompt.sh\n", files: { "etc/rc.sh": RC, "etc/prompt.sh": PROMPT } });
  links = tempDir();
  for (const tool of ["systemd-cgls", "systemd-cgtop", "systemd-analyze"]) symlinkSync(SPAWNCTL, `${links}/${tool}`);
  const r = run(["start", NAME], { netns: true });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
});

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME]);
  removeTree(IMAGE);
  rmSync(LOG, { force: true });
  rmSync(`${LOG}.1`, { force: true });
  if (links) removeTree(links);
  // only what is ours: other suites may run machines meanwhile
  expect(leftovers().filter(mine).filter((l) => !before.includes(l))).toEqual([]);
});

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(50);
  }
}
const tool = (name: string, args: string[]) => {
  const p = Bun.spawnSync([`${links}/${name}`, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
};
const promptShown = () => existsSync(LOG) && readFileSync(LOG, "utf8").includes("day2 login: ");

describe("day-2 verbs on a busybox machine", () => {
  test("cgls draws the machine's tree with its processes and sub-group", async () => {
    await until(() => run(["cgls", NAME]).stdout.includes("sleep 100001"));
    const r = run(["cgls", NAME]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`Control group /${machineCgroupRel(NAME)}:`);
    // the init first, by pid; the sub-group last, its process under it
    expect(lines[1]).toMatch(/^├─\d+ init$/);
    expect(lines.at(-2)).toBe("└─worker");
    expect(lines.at(-1)).toMatch(/^ {2}└─\d+ sleep 100001$/);
    // no "-.slice": this guest is no systemd
    expect(r.stdout).not.toContain("-.slice");

    // the link with -M prints the same
    const link = tool("systemd-cgls", ["-M", NAME]);
    expect(link.code).toBe(0);
    expect(link.stdout).toBe(r.stdout);

    // without a name: every machine, ours among them
    const all = run(["cgls"]);
    expect(all.code).toBe(0);
    expect(all.stdout.split("\n")[0]).toBe("Control group /machine.slice:");
    expect(all.stdout).toMatch(new RegExp(`^[├└]─${NAME}$`, "m"));
    expect(all.stdout).toMatch(/^[│ ] {3}└─\d+ sleep 100001$/m);

    const unknown = run(["cgls", "sctest-no-such-machine"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("sctest-no-such-machine");
    expect(unknown.stdout).toBe("");
    const bad = run(["cgls", "--frobnicate", NAME]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--frobnicate");
    expect(run(["cgls", "--help"]).stdout).toContain("--all");
  });

  test("top -b -n 2: two tables, the first without rates, the second with numbers", () => {
    const t0 = Date.now();
    const r = run(["top", "-b", "-n", "2", "-d", "0.5"]);
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    const blocks = r.stdout.trimEnd().split("\n\n");
    expect(blocks.length).toBe(2);
    const row = (block: string) => block.split("\n").find((l) => l.startsWith(`/${machineCgroupRel(NAME)} `));
    const first = row(blocks[0]!)!.trim().split(/\s+/);
    const second = row(blocks[1]!)!.trim().split(/\s+/);
    // Tasks %CPU Memory Input/s Output/s: init, two sleeps (and sh's)
    expect(Number(first[1])).toBeGreaterThanOrEqual(3);
    expect(first[2]).toBe("-");
    expect(first[3]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    expect(first[4]).toBe("-");
    expect(Number(second[1])).toBeGreaterThanOrEqual(3);
    expect(second[2]).toMatch(/^\d+\.\d$/);
    expect(second[3]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    expect(second[4]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    expect(second[5]).toMatch(/^\d+(\.\d)?[BKMG]$/);
    // no terminal control in batch mode
    expect(r.stdout).not.toContain("\x1b");

    // one machine (systemd-cgtop -M): its own root and its sub-group
    const one = tool("systemd-cgtop", ["-M", NAME, "-b", "-1"]);
    expect(one.code).toBe(0);
    const lines = one.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\/ +\d+ +- +\S+ +- +-$/);
    expect(lines[1]).toMatch(/^\/worker +1 /);

    const bad = run(["top", "-b", "--wobble"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--wobble");
    const unknown = run(["top", "-b", "-1", "sctest-no-such-machine"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("sctest-no-such-machine");
  });

  test("analyze time: from the start until the console's login prompt; blame needs systemd", async () => {
    await until(promptShown);
    const r = run(["analyze", NAME]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const m = /^Startup finished in (\d+(?:\.\d+)?)(ms|s) \(container\)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    const secs = Number(m![1]) / (m![2] === "ms" ? 1000 : 1);
    // the prompt comes a second after the start
    expect(secs).toBeGreaterThanOrEqual(0.9);
    expect(secs).toBeLessThan(15);
    expect(r.stdout).toContain("showed a login prompt");
    expect(tool("systemd-analyze", ["-M", NAME, "time"]).stdout).toBe(r.stdout);

    const blame = run(["analyze", NAME, "blame"]);
    expect(blame.code).toBe(1);
    expect(blame.stderr).toContain(`Machine ${NAME} does not run systemd`);
    const unknown = run(["analyze", "sctest-no-such-machine", "time"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("sctest-no-such-machine");
    const bad = run(["analyze", "--wobble", NAME]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--wobble");
  });

  test("a stopped machine is named in the error", async () => {
    expect(run(["terminate", NAME]).code).toBe(0);
    await until(() => !run(["list", "--no-legend"]).stdout.includes(NAME));
    for (const verb of [["cgls", NAME], ["analyze", NAME], ["top", "-b", "-1", NAME]]) {
      const r = run(verb);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`'${NAME}'`);
    }
  });
});
