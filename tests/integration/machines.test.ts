// Background machines without machined: start, list, status, show, shell,
// login, console, copy-to/from, bind, poweroff, reboot, kill, terminate,
// set-property, enable/disable/autostart, and a SIGKILLed supervisor. The
// machines are busybox trees whose init is a shell script that logs every
// signal it gets into /log (bound from the host).
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, onTty, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
import { machineCgroupRel } from "../../src/cgroup/cgroup.ts";

const NAME = "sctest-m1";
const IMAGE = `/var/lib/machines/${NAME}`;
const NSPAWN = `/etc/systemd/nspawn/${NAME}.nspawn`;
let base = "";
let log = "";
const before = IS_ROOT ? leftovers() : [];

// init: log each signal by number; 38 (SIGRTMIN+4, poweroff) and 12 (SIGUSR2)
// end the container; 2 (SIGINT, reboot) reboots it the way a real init does
const INIT = `#!/bin/sh
echo "boot" >> /log/events
for s in 1 5 10 12 15 34 37 38; do trap "echo sig-$s >> /log/events; [ $s = 38 -o $s = 12 ] && exit 0" $s; done
trap "echo sig-2 >> /log/events; reboot -f" 2
while true; do sleep 0.05; done
`;

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  log = `${base}/log`;
  mkdirSync(log);
  removeTree(IMAGE);
  mkdirSync("/var/lib/machines", { recursive: true });
  makeBusyboxTree(IMAGE, { init: INIT });
  // passwordless root for `login`
  writeFileSync(`${IMAGE}/etc/passwd`, "root::0:0:root:/root:/bin/sh\ntester:x:1000:1000:Test User:/home/tester:/bin/sh\n");
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  writeFileSync(NSPAWN, `[Files]\nBind=${log}:/log:idmap\n`);
});

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME]);
  removeTree(IMAGE);
  rmSync(NSPAWN, { force: true });
  rmSync(`/etc/spawnctl/properties/${NAME}.conf`, { force: true });
  rmSync(`/etc/spawnctl/autostart/${NAME}`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console.1`, { force: true }); // rotated
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

const events = () => (existsSync(`${log}/events`) ? readFileSync(`${log}/events`, "utf8").trim().split("\n").filter(Boolean) : []);
async function waitFor(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out; events: ${events().join(",")}`);
    await Bun.sleep(20);
  }
}
const running = () => run(["list", "--no-legend"]).stdout.includes(NAME);
async function fresh(): Promise<void> {
  if (running()) {
    run(["terminate", NAME]);
    await waitFor(() => !running());
  }
  writeFileSync(`${log}/events`, "");
  const r = run(["start", NAME], { netns: true });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  await waitFor(() => events().includes("boot"));
}

describe("machines", () => {
  test("start boots the image in the background; list, status and show describe it", async () => {
    await fresh();
    const list = run(["list"]);
    expect(list.stdout).toMatch(new RegExp(`^MACHINE +CLASS +SERVICE +OS +VERSION +ADDRESSES\\n${NAME} +container +spawnctl +busybox +1 +-\\n\\n1 machines listed\\.\\n$`));
    const json = JSON.parse(run(["list", "--json=short"]).stdout);
    expect(json).toEqual([{ machine: NAME, class: "container", service: "spawnctl", os: "busybox", version: "1", addresses: null }]);
    // the init forks a sleep every 50 ms: look until one is caught after its exec
    let status = "";
    await waitFor(() => (status = run(["status", NAME]).stdout).includes("sleep 0.05"), 3000);
    expect(status).toContain(`Root: ${IMAGE}`);
    expect(status).toMatch(/Leader: \d+ \(sh\)/);
    const leader = Number(run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim());
    expect(leader).toBeGreaterThan(1);
    expect(readFileSync(`/proc/${leader}/cmdline`, "utf8")).toContain("init");
    expect(run(["show"]).stdout).toContain("PoolPath=/var/lib/machines");
    // the console went to the log
    expect(existsSync(`/var/log/spawnctl/${NAME}.console`)).toBe(true);
  });

  test("start of a running machine succeeds and changes nothing (machinectl's no-op); unknown names are errors", () => {
    const leader = run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim();
    expect(leader).toMatch(/^\d+$/);
    const again = run(["start", NAME], { netns: true });
    expect(again.stderr).toBe("");
    expect(again.stdout).toBe("");
    expect(again.code).toBe(0);
    expect(run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim()).toBe(leader);
    expect(events().filter((e) => e === "boot")).toHaveLength(1);
    const unknown = run(["start", "sctest-nothere"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("No image for machine 'sctest-nothere'.\n");
    expect(run(["shell", "sctest-nothere", "/bin/true"]).stderr).toBe("No machine 'sctest-nothere' known\n");
  });

  test("start of several: the ones before a failure keep running, the ones after it are undone", async () => {
    const others = ["sctest-m2", "sctest-m3", "sctest-bad"];
    try {
      for (const n of others) {
        makeBusyboxTree(`/var/lib/machines/${n}`, { inittab: "::respawn:/bin/sleep 1000\n" });
        Bun.spawnSync(["ln", "-sf", "busybox", `/var/lib/machines/${n}/usr/bin/init`]);
      }
      // no init anywhere: its child fails at its exec, after the others were begun
      rmSync("/var/lib/machines/sctest-bad/usr/bin/init");
      const listed = () => run(["list", "--no-legend"]).stdout;
      for (const [names, failing] of [[["sctest-m2", "sctest-bad", "sctest-m3"], "sctest-bad"], [["sctest-m2", "sctest-nothere", "sctest-m3"], "sctest-nothere"]] as const) {
        const r = run(["start", ...names], { netns: true });
        expect(r.code).toBe(1);
        expect(r.stderr).toStartWith(`Failed to start machine ${failing}: `);
        // undoing the ones begun after it went without a hitch
        expect(r.stderr).not.toContain("cleaning up");
        expect(r.stderr).toContain(failing === "sctest-bad" ? "init" : "No image for machine 'sctest-nothere'");
        expect(listed()).toContain("sctest-m2");
        expect(listed()).not.toContain("sctest-m3");
        for (const n of ["sctest-m3", failing]) {
          expect(existsSync(`/run/spawnctl/machines/${n}.json`)).toBe(false);
          expect(existsSync(`/sys/fs/cgroup/pids/${machineCgroupRel(n)}`)).toBe(false);
          expect(existsSync(`/run/spawnctl/net/${n}.json`)).toBe(false);
        }
        expect(run(["terminate", "sctest-m2"]).code).toBe(0);
        await waitFor(() => !listed().includes("sctest-m2"));
      }
      // one that runs already is skipped, the others start; a name given twice starts once
      const leader = run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim();
      const r = run(["start", NAME, "sctest-m2", NAME, "sctest-m3", "sctest-m2"], { netns: true });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(listed()).toContain("sctest-m2");
      expect(listed()).toContain("sctest-m3");
      expect(run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim()).toBe(leader);
      expect(run(["terminate", "sctest-m2", "sctest-m3"]).code).toBe(0);
      await waitFor(() => !listed().includes("sctest-m2") && !listed().includes("sctest-m3"));
    } finally {
      run(["terminate", ...others]);
      for (const n of others) {
        removeTree(`/var/lib/machines/${n}`);
        rmSync(`/var/log/spawnctl/${n}.console`, { force: true });
      }
    }
  });

  test("shell runs commands in the running machine, as a user, with its exit status", () => {
    const r = run(["shell", NAME, "/bin/sh", "-c", "echo pid=$$ host=$(hostname); grep -c . /proc/self/cgroup >/dev/null; cat /proc/1/cmdline | tr '\\0' ' '"]);
    expect(r.stdout).toMatch(/^pid=\d+ host=sctest-m1\n\/bin\/sh \/sbin\/init/);
    expect(run(["shell", NAME, "/bin/sh", "-c", "exit 7"]).code).toBe(7);
    expect(run(["shell", `tester@${NAME}`, "/bin/sh", "-c", "id -u; echo $HOME"]).stdout).toBe("1000\n/home/tester\n");
    expect(run(["shell", "--uid=tester", NAME, "/bin/id", "-u"]).stdout).toBe("1000\n");
    expect(run(["shell", "-E", "FOO=bar", NAME, "/bin/sh", "-c", "echo $FOO"]).stdout).toBe("bar\n");
    // the entering process is in the machine's cgroup and its pid namespace, non-dumpable
    expect(run(["shell", NAME, "/bin/sh", "-c", "cat /proc/self/cgroup | grep -c ':/$'"]).stdout.trim()).not.toBe("0");
  });

  test("login gives a login prompt on a new pty, without systemd in the guest", async () => {
    const out = await onTty(`${SPAWNCTL} login ${NAME}`, [[1500, "root\r"], [1000, "echo logged-in-$((40+2)); tty\r"], [500, "exit\r"], [1000, "\x1d\x1d\x1d"]]);
    expect(out).toContain(`${NAME} login:`);
    expect(out).toContain("logged-in-42");
    expect(out).toMatch(/\/dev\/pts\/\d+/);
  });

  test("console attaches to the machine's console and ^]^]^] only detaches", async () => {
    const out = await onTty(`${SPAWNCTL} console ${NAME}`, [[800, "\x1d\x1d\x1d"]]);
    expect(out).toContain(`Connected to the console of machine ${NAME}.`);
    expect(out).toContain(`Detached from machine ${NAME}.`);
    expect(running()).toBe(true);
  });

  test("copy-to and copy-from keep owners, modes and links; --force replaces", () => {
    mkdirSync(`${base}/tree/sub`, { recursive: true });
    writeFileSync(`${base}/tree/sub/f`, "payload");
    // chown first: it clears the setuid bit
    Bun.spawnSync(["chown", "1000:100", `${base}/tree/sub/f`]);
    chmodSync(`${base}/tree/sub/f`, 0o4750);
    Bun.spawnSync(["ln", "-s", "sub/f", `${base}/tree/link`]);
    expect(run(["copy-to", NAME, `${base}/tree`, "/root/tree"]).code).toBe(0);
    expect(run(["shell", NAME, "/bin/sh", "-c", "stat -c '%a %u:%g' /root/tree/sub/f; cat /root/tree/link"]).stdout).toBe("4750 1000:100\npayload");
    const again = run(["copy-to", NAME, `${base}/tree/sub/f`, "/root/tree/sub/f"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("File exists");
    expect(run(["copy-to", "--force", NAME, `${base}/tree/sub/f`, "/root/tree/sub/f"]).code).toBe(0);
    expect(run(["copy-from", NAME, "/root/tree", `${base}/back`]).code).toBe(0);
    const st = statSync(`${base}/back/sub/f`);
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o4750, 1000, 100]);
    expect(lstatSync(`${base}/back/link`).isSymbolicLink()).toBe(true);
    expect(readFileSync(`${base}/back/sub/f`, "utf8")).toBe("payload");
  });

  test("copy-from never follows a link in the machine out to a host file", () => {
    run(["shell", NAME, "/bin/sh", "-c", "ln -sf /etc/hostname /root/evil; mkdir -p /root/d; ln -sf /etc /root/d/etc"]);
    expect(run(["copy-from", NAME, "/root/evil", `${base}/evil`]).code).toBe(0);
    // copied as the link itself, not the host's /etc/hostname
    expect(lstatSync(`${base}/evil`).isSymbolicLink()).toBe(true);
    const r = run(["copy-to", NAME, `${base}/tree/sub/f`, "/root/d/etc/injected"]);
    // the parent resolved inside the machine: its /etc, never the host's
    expect(existsSync("/etc/injected")).toBe(false);
    expect(r.code).toBe(0);
    expect(run(["shell", NAME, "/bin/cat", "/etc/injected"]).stdout).toBe("payload");
  });

  test("bind mounts a host path into the running machine, read-only if asked", () => {
    mkdirSync(`${base}/share`, { recursive: true });
    writeFileSync(`${base}/share/x`, "shared");
    expect(run(["bind", "--mkdir", NAME, `${base}/share`, "/mnt/share"]).code).toBe(0);
    expect(run(["shell", NAME, "/bin/cat", "/mnt/share/x"]).stdout).toBe("shared");
    expect(run(["bind", "--mkdir", "--read-only", NAME, `${base}/share`, "/mnt/ro"]).code).toBe(0);
    expect(run(["shell", NAME, "/bin/sh", "-c", "touch /mnt/ro/y 2>/dev/null || echo ro"]).stdout).toBe("ro\n");
    // nothing appeared on the host's side
    expect(grepMounts("/mnt/share")).toBe(false);
  });

  test("kill signals the leader or every process", async () => {
    expect(run(["kill", "--kill-whom=leader", "-s", "SIGUSR1", NAME]).code).toBe(0);
    await waitFor(() => events().includes("sig-10"));
    expect(run(["kill", "--kill-whom=leader", "--signal=SIGHUP", NAME]).code).toBe(0);
    await waitFor(() => events().includes("sig-1"));
  });

  test("set-property applies live and persists for the next start", async () => {
    expect(run(["set-property", NAME, "MemoryMax=96M", "TasksMax=77"]).code).toBe(0);
    const cg = (h: string) => readFileSync(`/sys/fs/cgroup/${h}`, "utf8").trim();
    expect(cg(`pids/${machineCgroupRel(NAME)}/pids.max`)).toBe("77");
    expect(readFileSync(`/etc/spawnctl/properties/${NAME}.conf`, "utf8")).toContain("TasksMax=77");
    expect(run(["set-property", NAME, "Frobnicate=1"]).stderr).toContain("Unknown or unsupported property: Frobnicate");
    await fresh();
    expect(cg(`pids/${machineCgroupRel(NAME)}/pids.max`)).toBe("77");
    rmSync(`/etc/spawnctl/properties/${NAME}.conf`);
  });

  test("set-property: an unknown machine is an error and nothing is written; a stopped one is told it applies at the next start", async () => {
    const unknown = run(["set-property", "sctest-nothere", "TasksMax=5"]);
    expect(unknown.stderr).toBe("No machine 'sctest-nothere' known.\n");
    expect(unknown.code).toBe(1);
    expect(existsSync("/etc/spawnctl/properties/sctest-nothere.conf")).toBe(false);
    if (running()) {
      expect(run(["terminate", NAME]).code).toBe(0);
      await waitFor(() => !running());
    }
    const stopped = run(["set-property", NAME, "TasksMax=66"]);
    expect(stopped.stderr).toBe(`Machine '${NAME}' is not running; the properties were saved and apply at its next start.\n`);
    expect(stopped.code).toBe(0);
    expect(readFileSync(`/etc/spawnctl/properties/${NAME}.conf`, "utf8")).toBe("TasksMax=66\n");
    // -q: saved without a word
    const quiet = run(["-q", "set-property", NAME, "TasksMax=67"]);
    expect([quiet.code, quiet.stderr]).toEqual([0, ""]);
    try {
      await fresh();
      expect(readFileSync(`/sys/fs/cgroup/pids/${machineCgroupRel(NAME)}/pids.max`, "utf8").trim()).toBe("67");
    } finally {
      rmSync(`/etc/spawnctl/properties/${NAME}.conf`, { force: true });
    }
  });

  test("an ephemeral machine: start of its image while it runs is a no-op; set-property reaches it", async () => {
    const img = "sctest-eph";
    const mine = () => run(["list", "--no-legend"]).stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter((n) => n === img || n.startsWith(`${img}-`));
    try {
      makeBusyboxTree(`/var/lib/machines/${img}`, { inittab: "::respawn:/bin/sleep 1000\n" });
      writeFileSync(`/etc/systemd/nspawn/${img}.nspawn`, "[Exec]\nEphemeral=yes\n");
      const first = run(["start", img], { netns: true });
      expect([first.code, first.stderr]).toEqual([0, ""]);
      // named as systemd-nspawn@.service names it (--machine=%i): no random suffix
      const names = mine();
      expect(names).toEqual([img]);
      const t0 = Date.now();
      const again = run(["start", img], { netns: true });
      expect([again.code, again.stderr]).toEqual([0, ""]);
      // at once: no wait for the name's lock
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(mine()).toEqual(names);
      const sp = run(["set-property", img, "TasksMax=33"]);
      expect([sp.code, sp.stderr]).toEqual([0, ""]);
      expect(readFileSync(`/sys/fs/cgroup/pids/${machineCgroupRel(names[0]!)}/pids.max`, "utf8").trim()).toBe("33");
      expect(readFileSync(`/etc/spawnctl/properties/${img}.conf`, "utf8")).toBe("TasksMax=33\n");
    } finally {
      for (const n of mine()) run(["terminate", n]);
      removeTree(`/var/lib/machines/${img}`);
      for (const f of [`/etc/systemd/nspawn/${img}.nspawn`, `/etc/spawnctl/properties/${img}.conf`, `/var/log/spawnctl/${img}.console`]) rmSync(f, { force: true });
    }
  });

  test("remove takes the image's settings, properties, autostart, console log and journal link with it; a failed one nothing", async () => {
    const img = "sctest-rm";
    const id = "5c7e57aaaaaaaaaaaaaaaaaaaaaaaa01";
    const otherId = "5c7e57aaaaaaaaaaaaaaaaaaaaaaaa02";
    const journal = "/var/log/journal";
    const madeJournal = !existsSync(journal);
    const files = {
      nspawn: `/etc/systemd/nspawn/${img}.nspawn`,
      properties: `/etc/spawnctl/properties/${img}.conf`,
      console: `/var/log/spawnctl/${img}.console`,
      journalLink: `${journal}/${id}`,
    };
    const autostart = [`/etc/spawnctl/autostart/${img}`, `/etc/systemd/system/machines.target.wants/spawnctl@${img}.service`];
    // a link into an image whose name starts the same stays
    const otherLink = `${journal}/${otherId}`;
    const there = (p: string) => {
      try {
        lstatSync(p);
        return true;
      } catch {
        return false;
      }
    };
    try {
      mkdirSync(journal, { recursive: true });
      makeBusyboxTree(`/var/lib/machines/${img}`, { inittab: "::respawn:/bin/sleep 1000\n", machineId: id });
      writeFileSync(files.nspawn, "[Exec]\nKillSignal=SIGUSR2\n");
      Bun.spawnSync(["ln", "-s", `/var/lib/machines/${img}2/var/log/journal/${otherId}`, otherLink]);
      expect(run(["enable", img]).code).toBe(0);
      expect(autostart.some(there)).toBe(true);
      const st = run(["start", img], { netns: true });
      expect([st.code, st.stderr]).toEqual([0, ""]);
      expect(run(["set-property", img, "TasksMax=40"]).code).toBe(0);
      // --link-journal=try-guest made the host's link into the tree
      expect(lstatSync(files.journalLink).isSymbolicLink()).toBe(true);
      // refused while it runs: everything stays
      const busy = run(["remove", img]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toBe(`removing image '${img}': the machine '${img}' is running from it; stop it first (spawnctl poweroff ${img}).\n`);
      for (const p of [`/var/lib/machines/${img}`, ...Object.values(files)]) expect([p, there(p)]).toEqual([p, true]);
      expect(autostart.some(there)).toBe(true);
      expect(run(["terminate", img]).code).toBe(0);
      await waitFor(() => !run(["list", "--no-legend"]).stdout.includes(img));
      const r = run(["remove", img]);
      expect(r.stderr).toBe(`Removed image '${img}'.\n`);
      expect(r.code).toBe(0);
      for (const p of [`/var/lib/machines/${img}`, ...Object.values(files), ...autostart]) expect([p, there(p)]).toEqual([p, false]);
      expect(there(otherLink)).toBe(true);
      // gone for good: a second remove is an error
      const again = run(["remove", img]);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`No image '${img}' known.\n`);
    } finally {
      run(["terminate", img]);
      run(["disable", img]);
      removeTree(`/var/lib/machines/${img}`);
      for (const f of [...Object.values(files), otherLink, ...autostart, `${files.console}.1`]) rmSync(f, { force: true });
      if (madeJournal) rmSync(journal, { recursive: true, force: true });
    }
  });

  test("poweroff sends SIGRTMIN+4, or the machine's KillSignal=; the machine is cleaned up", async () => {
    await fresh();
    expect(run(["poweroff", NAME]).code).toBe(0);
    await waitFor(() => !running());
    expect(events()).toContain("sig-38");
    writeFileSync(NSPAWN, `[Exec]\nKillSignal=SIGUSR2\n[Files]\nBind=${log}:/log:idmap\n`);
    try {
      await fresh();
      run(["poweroff", NAME]);
      await waitFor(() => !running());
      expect(events()).toContain("sig-12");
    } finally {
      writeFileSync(NSPAWN, `[Files]\nBind=${log}:/log:idmap\n`);
    }
    // the clean-up after the container ends removes the state last
    await waitFor(() => !existsSync(`/run/spawnctl/machines/${NAME}.json`));
  });

  test("reboot sends SIGINT; a reboot inside restarts the machine in place", async () => {
    await fresh();
    const leader1 = run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim();
    expect(run(["reboot", NAME]).code).toBe(0);
    await waitFor(() => events().filter((e) => e === "boot").length === 2);
    await waitFor(() => running());
    const leader2 = run(["show", NAME, "-p", "Leader", "--value"]).stdout.trim();
    expect(events()).toContain("sig-2");
    expect(leader2).not.toBe(leader1);
  });

  test("terminate kills everything; a SIGKILLed supervisor leaves nothing terminate cannot clean", async () => {
    await fresh();
    expect(run(["terminate", NAME]).code).toBe(0);
    expect(running()).toBe(false);
    await fresh();
    const sup = Number(run(["show", NAME, "-p", "Supervisor", "--value"]).stdout.trim());
    process.kill(sup, 9);
    await Bun.sleep(200);
    expect(run(["terminate", NAME]).code).toBe(0);
    expect(existsSync(`/run/spawnctl/machines/${NAME}.json`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids/${machineCgroupRel(NAME)}`)).toBe(false);
    expect(running()).toBe(false);
  });

  test("enable, autostart and disable (a host without systemd)", async () => {
    expect(run(["enable", NAME]).code).toBe(0);
    expect(existsSync(`/etc/spawnctl/autostart/${NAME}`)).toBe(true);
    expect(run(["autostart"], { netns: true }).code).toBe(0);
    await waitFor(() => running());
    // a second autostart leaves running machines alone
    expect(run(["autostart"], { netns: true }).code).toBe(0);
    expect(run(["disable", "--now", NAME]).code).toBe(0);
    expect(existsSync(`/etc/spawnctl/autostart/${NAME}`)).toBe(false);
    await waitFor(() => !running());
  });

  test("machinectl through a link speaks the same verbs", () => {
    const link = `${base}/machinectl`;
    Bun.spawnSync(["ln", "-sf", SPAWNCTL, link]);
    const p = Bun.spawnSync([link, "list", "--no-legend"]);
    expect(p.exitCode).toBe(0);
    expect(Bun.spawnSync([link, "--help"]).stdout.toString()).toContain("Machine Commands:");
  });
});

function grepMounts(path: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8").includes(` ${path} `);
}
