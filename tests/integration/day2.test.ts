// The day-2 tools on a busybox machine (a guest without journald or
// systemd): journal from its console log, run-in with spawnctl's own unit
// cgroups, and the journalctl / systemd-run links with -M.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
import { detectCgroups } from "../../src/cgroup/facts.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

const NAME = "sctest-d2";
const IMAGE = `/var/lib/machines/${NAME}`;
let base = "";
const before = IS_ROOT ? leftovers() : [];
const INIT = "#!/bin/sh\necho \"\x1b[1;32mday2 booted\x1b[0m\"\necho second line\nexec sleep 100000\n";

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  removeTree(IMAGE);
  mkdirSync("/var/lib/machines", { recursive: true });
  makeBusyboxTree(IMAGE, { init: INIT });
  for (const tool of ["journalctl", "systemd-run"]) symlinkSync(SPAWNCTL, `${base}/${tool}`);
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  const r = run(["start", NAME], { netns: true });
  expect(r.code).toBe(0);
});

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME]);
  removeTree(IMAGE);
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

async function until(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(50);
  }
}

const unitDir = (unit: string, controller: string) => {
  const facts = detectCgroups(readFileSync("/proc/self/mountinfo", "utf8"));
  const h = facts.v1.find((x) => x.controllers.includes(controller));
  return h ? `${h.mountpoint}/${machineCgroupRel(NAME)}/${unit}` : `${facts.unified}/${machineCgroupRel(NAME)}/${unit}`;
};

describe("journal of a guest without journald", () => {
  test("its console log, without escape sequences on a pipe; -n; journalctl -M through a link", async () => {
    await until(() => run(["journal", NAME]).stdout.includes("second line"));
    const all = run(["journal", NAME]);
    expect(all.code).toBe(0);
    expect(all.stdout).toBe("day2 booted\nsecond line\n");
    expect(run(["journal", NAME, "-n", "1"]).stdout).toBe("second line\n");
    expect(run(["journal", NAME, "--lines=1", "--no-pager", "-o", "cat"]).stdout).toBe("second line\n");
    const link = Bun.spawnSync([`${base}/journalctl`, "-M", NAME, "-n", "1"], { stdout: "pipe", stderr: "pipe" });
    expect(link.stdout.toString()).toBe("second line\n");
    const noM = Bun.spawnSync([`${base}/journalctl`, "-n", "1"], { stdout: "pipe", stderr: "pipe" });
    expect(noM.exitCode).toBe(1);
    expect(noM.stderr.toString()).toContain("only machines are supported here; use journalctl -M NAME");
  });

  test("status ends with the last lines of the console log", () => {
    const st = run(["status", NAME]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/Leader: \d+/);
    expect(st.stdout.endsWith("\n\nday2 booted\nsecond line\n")).toBe(true);
  });

  test("what needs a journal is refused, naming the option", () => {
    const r = run(["journal", NAME, "-u", "ssh"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`journal: -u: machine ${NAME} has no journal`);
    expect(run(["journal", "sctest-nosuch"]).stderr).toContain("No machine or image 'sctest-nosuch' known.");
  });

  test("-f follows what the guest writes next", async () => {
    const p = Bun.spawn([SPAWNCTL, "journal", NAME, "-f", "-n", "0"], { stdout: "pipe", stderr: "pipe" });
    try {
      await Bun.sleep(300);
      expect(run(["shell", NAME, "/bin/sh", "-c", "echo followed-line > /dev/console"]).code).toBe(0);
      const reader = p.stdout.getReader();
      let text = "";
      const end = Date.now() + 5000;
      while (!text.includes("followed-line") && Date.now() < end) {
        const { value, done } = await Promise.race([reader.read(), Bun.sleep(500).then(() => ({ value: undefined, done: false }))]);
        if (done) break;
        if (value) text += new TextDecoder().decode(value);
      }
      expect(text).toContain("followed-line");
    } finally {
      p.kill();
      await p.exited;
    }
  });
});

describe("run-in on a guest without systemd", () => {
  test("--wait: its own unit cgroup with the properties, systemd-run's summary, the exit status, the unit removed", () => {
    const r = run(["run-in", NAME, "--wait", "--unit=sctest-w", "-p", "TasksMax=17", "-E", "GREETING=hi", "/bin/sh", "-c",
      "grep -c sctest-w.service /proc/self/cgroup >/dev/null && echo in-unit; echo $GREETING; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("in-unit\nhi\n");
    expect(r.stderr).toContain("Running as unit: sctest-w.service");
    expect(r.stderr).toContain("Finished with result: exit-code");
    expect(r.stderr).toContain("Main processes terminated with: code=exited/status=3");
    expect(r.stderr).toMatch(/Service runtime: \d+m?s/);
    expect(existsSync(unitDir("sctest-w.service", "pids"))).toBe(false);
  });

  test("detached by default: the unit runs on with its limit, and a unit of that name is taken meanwhile", async () => {
    const r = run(["run-in", NAME, "--unit=sctest-bg", "-p", "TasksMax=5", "/bin/sleep", "30"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("Running as unit: sctest-bg.service\n");
    const dir = unitDir("sctest-bg.service", "pids");
    expect(readFileSync(`${dir}/pids.max`, "utf8").trim()).toBe("5");
    await until(() => run(["shell", NAME, "/bin/sh", "-c", "ps | grep -v grep | grep -c 'sleep 30'"]).stdout.trim() === "1");
    const again = run(["run-in", NAME, "--unit=sctest-bg", "/bin/true"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`Unit sctest-bg.service exists already in machine ${NAME}.`);
  });

  test("systemd-run -M NAME -P --uid=USER through a link; bad options name themselves", () => {
    const p = Bun.spawnSync([`${base}/systemd-run`, "-M", NAME, "-P", "-q", "--uid=tester", "/bin/id", "-un"], { stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString()).toBe("tester\n");
    expect(p.stderr.toString()).toBe("");
    const bad = run(["run-in", NAME, "--bogus", "true"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("run-in: unknown option --bogus");
    const prop = run(["run-in", NAME, "-p", "NoSuch=1", "true"]);
    expect(prop.code).toBe(1);
    expect(prop.stderr).toContain("run-in: --property=NoSuch=1");
  });
});
