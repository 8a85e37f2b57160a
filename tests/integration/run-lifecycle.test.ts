// Lifecycle: poweroff and reboot from inside, SIGTERM and --kill-signal with a
// busybox init that logs what it gets, the -a stub init, the parent-death
// signal, and the directory lock.
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { SPAWNCTL, rootTest as test, run } from "../helpers.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

let base = "";
let tree = "";
let log = "";

// The init logs each boot and its shutdown actions into /log (bound from the host).
const INITTAB = [
  "::sysinit:/etc/boot.sh",
  "::respawn:/bin/sleep 1000",
  "::shutdown:/bin/sh -c 'echo shutdown >> /log/events'",
  "::restart:/bin/init",
].join("\n") + "\n";
const BOOT_SH = `#!/bin/sh
echo booted >> /log/events
n=$(grep -c booted /log/events)
case "$(cat /log/mode 2>/dev/null)" in
  poweroff) poweroff -f ;;
  reboot) reboot -f ;;
  reboot-once) if [ "$n" -lt 2 ]; then reboot -f; else poweroff -f; fi ;;
esac
exit 0
`;

busyboxFixture({ inittab: INITTAB, files: { "etc/boot.sh": BOOT_SH } }, (b, t) => {
  base = b;
  tree = t;
}, {
  setup: (b, t) => {
    Bun.spawnSync(["ln", "-sf", "busybox", `${t}/usr/bin/init`]);
    log = `${b}/log`;
    mkdirSync(log);
  },
});

function reset(mode: string): void {
  writeFileSync(`${log}/events`, "");
  writeFileSync(`${log}/mode`, `${mode}\n`);
}
const events = () => readFileSync(`${log}/events`, "utf8").trim().split("\n").filter(Boolean);
const boot = (...opts: string[]) => run(["run", "-b", "--console=read-only", "-D", tree, `--bind=${log}:/log`, ...opts], { timeout: 30_000 });

async function waitFor(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await Bun.sleep(20);
  }
}

function start(args: string[]) {
  return Bun.spawn([SPAWNCTL, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
}

describe("booted containers", () => {
  test("poweroff inside ends the container with 0", () => {
    reset("poweroff");
    const r = boot();
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("Container bb has been shut down.");
    expect(events()).toEqual(["booted"]);
  });

  test("reboot inside with --keep-unit exits 133", () => {
    reset("reboot");
    const r = boot("--keep-unit");
    expect(r.code).toBe(133);
    expect(r.stderr).toContain("is being rebooted");
  });

  test("reboot inside without --keep-unit restarts the container in place", () => {
    reset("reboot-once");
    const r = boot();
    expect(r.code).toBe(0);
    expect(events()).toEqual(["booted", "booted"]);
  });

  test("SIGTERM sends SIGRTMIN+3 once; busybox init ignores it, so a second SIGTERM kills", async () => {
    reset("stay");
    const p = start(["run", "-b", "--console=read-only", "-D", tree, `--bind=${log}:/log`]);
    await waitFor(() => events().includes("booted"));
    p.kill("SIGTERM");
    await Bun.sleep(300);
    expect(p.exitCode).toBeNull();
    p.kill("SIGTERM");
    expect(await p.exited).toBe(1);
    expect(await new Response(p.stderr).text()).toContain("Trying to halt container. Send SIGTERM again to trigger immediate termination.");
  });

  test("--kill-signal=SIGUSR2 is busybox's poweroff: a clean shutdown with 0", async () => {
    reset("stay");
    const p = start(["run", "-b", "--console=read-only", "-D", tree, `--bind=${log}:/log`, "--kill-signal=SIGUSR2"]);
    await waitFor(() => events().includes("booted"));
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(events()).toEqual(["booted", "shutdown"]);
  });

  test("--kill-signal=SIGTERM is busybox's reboot: 133 with --keep-unit", async () => {
    reset("stay");
    const p = start(["run", "-b", "--console=read-only", "--keep-unit", "-D", tree, `--bind=${log}:/log`, "--kill-signal=SIGTERM"]);
    await waitFor(() => events().includes("booted"));
    p.kill("SIGINT");
    expect(await p.exited).toBe(133);
  });
});

describe("plain payloads", () => {
  test("without a kill signal, SIGTERM kills at once and exits 1", async () => {
    const p = start(["run", "-q", "-P", "-D", tree, "/bin/sh", "-c", "echo up; sleep 100"]);
    const reader = p.stdout.getReader();
    await reader.read();
    p.kill("SIGTERM");
    expect(await p.exited).toBe(1);
  });

  test("--kill-signal=SIGTERM reaches a payload that traps it", async () => {
    const p = start(["run", "-q", "-P", "-D", tree, "--kill-signal=SIGTERM", "/bin/sh", "-c", "trap 'echo got-TERM; exit 3' TERM; echo up; while true; do sleep 0.05; done"]);
    const reader = p.stdout.getReader();
    await reader.read();
    p.kill("SIGTERM");
    expect(await p.exited).toBe(3);
  });

  test("-a runs the payload as PID 2 under a stub init that reaps and forwards", async () => {
    expect(run(["run", "-q", "-P", "-a", "-D", tree, "/bin/sh", "-c", "echo $$"]).stdout).toBe("2\n");
    const z = run(["run", "-q", "-P", "-a", "-D", tree, "/bin/sh", "-c", "(sleep 0.05 &); sleep 0.3; ps -o stat,comm | grep -c '^Z' || true"]);
    expect(z.stdout).toBe("0\n");
    expect(run(["run", "-q", "-P", "-a", "-D", tree, "/bin/sh", "-c", "exit 9"]).code).toBe(9);
    const p = start(["run", "-q", "-P", "-a", "-D", tree, "--kill-signal=SIGTERM", "/bin/sh", "-c", "trap 'exit 3' TERM; echo up; while true; do sleep 0.05; done"]);
    await p.stdout.getReader().read();
    p.kill("SIGTERM");
    expect(await p.exited).toBe(3);
    // a payload killed by a signal makes the stub exit 255
    expect(run(["run", "-q", "-P", "-a", "-D", tree, "/bin/sh", "-c", "kill -9 $$"]).code).toBe(255);
  });

  test("a SIGKILLed spawnctl takes its container with it; the next start cleans up", async () => {
    const p = start(["run", "-q", "-P", "-D", tree, "-M", "killed", "/bin/sh", "-c", "echo up; exec sleep 100"]);
    await p.stdout.getReader().read();
    const cg = `/sys/fs/cgroup/pids/${machineCgroupRel("killed")}`;
    const pids = readFileSync(`${cg}/cgroup.procs`, "utf8").trim().split("\n").filter(Boolean);
    expect(pids.length).toBe(1);
    p.kill("SIGKILL");
    await p.exited;
    await waitFor(() => !existsSync(`/proc/${pids[0]}`));
    // the cgroup is still there, empty; the next start of the machine reclaims it
    expect(run(["run", "-q", "-P", "-D", tree, "-M", "killed", "/bin/true"]).code).toBe(0);
    expect(existsSync(cg)).toBe(false);
  });
});

describe("the directory lock", () => {
  test("a second writable user of the tree is refused; read-only users share", async () => {
    const p = start(["run", "-q", "-P", "-D", tree, "/bin/sh", "-c", "echo up; sleep 5"]);
    await p.stdout.getReader().read();
    const r = run(["run", "-q", "-P", "-D", tree, "-M", "second", "/bin/true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Directory tree ${tree} is currently busy.\n`);
    p.kill("SIGTERM");
    await p.exited;
    const a = start(["run", "-q", "-P", "--read-only", "-D", tree, "-M", "ro1", "/bin/sh", "-c", "echo up; sleep 5"]);
    await a.stdout.getReader().read();
    expect(run(["run", "-q", "-P", "--read-only", "-D", tree, "-M", "ro2", "/bin/true"]).code).toBe(0);
    expect(run(["run", "-q", "-P", "-x", "-D", tree, "/bin/true"]).code).toBe(0);
    a.kill("SIGKILL");
    await a.exited;
    // lock files are removed by the last holder
    await Bun.sleep(50);
    run(["run", "-q", "-P", "-D", tree, "-M", "ro1", "/bin/true"]);
    expect(readdirSync(base).filter((f) => f.endsWith(".lck"))).toEqual([]);
  });
});
