// e2e: a Debian machine with systemd started in the background: shell into a
// booted systemd guest, login prompt, poweroff.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, onTty, run, tempDir } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";

const ok = IS_ROOT && haveMirror();
const test = needs("root and a Debian mirror", ok);
const NAME = "sctest-debian";
const before = ok ? leftovers() : [];
let tmp = "";
beforeAll(() => {
  if (!ok) return;
  tmp = tempDir();
  const tree = ensureDebianTree();
  mkdirSync("/var/lib/machines", { recursive: true });
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  symlinkSync(tree, `/var/lib/machines/${NAME}`);
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  // the cached tree stays pristine: the machine runs on an overlay
  writeFileSync(`/etc/systemd/nspawn/${NAME}.nspawn`, "[Exec]\nEphemeral=yes\n");
}, 900_000);
afterAll(() => {
  if (!ok) return;
  // an ephemeral machine's name has a suffix: end every one of ours
  for (const n of run(["list", "--no-legend"]).stdout.split("\n").map((l) => l.split(/\s+/)[0]!)) if (n.startsWith(NAME)) run(["terminate", n]);
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  rmSync(tmp, { recursive: true, force: true });
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

async function until(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(100);
  }
}

describe("a booted Debian machine", () => {
  test("start, shell into systemd's world, poweroff", async () => {
    const r = run(["start", NAME], { netns: true });
    expect(r.stderr).toBe("");
    // found by its name, never by its position in the list
    const ours = () => run(["list", "--no-legend"]).stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter((n) => n === NAME || n.startsWith(`${NAME}-`));
    const name = ours()[0]!;
    expect(name).toBeDefined();
    // machinectl's start of an image whose machine runs is a no-op: no second
    // ephemeral instance, the same leader, and at once
    const leader = run(["show", name, "-p", "Leader", "--value"]).stdout.trim();
    const t0 = Date.now();
    const again = run(["start", NAME], { netns: true });
    expect([again.code, again.stderr]).toEqual([0, ""]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(ours()).toEqual([name]);
    expect(run(["show", name, "-p", "Leader", "--value"]).stdout.trim()).toBe(leader);
    await until(() => {
      const s = run(["shell", name, "/bin/systemctl", "is-system-running"]).stdout.trim();
      return s === "running" || s === "degraded";
    }, 120_000);
    const sh = run(["shell", name, "/bin/sh", "-c", "cat /proc/1/comm; . /etc/os-release; echo $VERSION_CODENAME"]);
    expect(sh.stdout).toBe("systemd\nbookworm\n");
    expect(run(["status", name]).stdout).toContain("OS: Debian GNU/Linux 12 (bookworm)");

    // security, with systemd's own processes around (start's defaults: -U):
    // a shell joined with a host file of the caller's open holds stdio only,
    // and no process in the guest holds anything of the host side
    const secret = `${tmp}/host-secret`;
    writeFileSync(secret, "host secret\n", { mode: 0o600 });
    const fd = openSync(secret, "r");
    let scan = "";
    try {
      const p = Bun.spawnSync(["/bin/sh", "-c", `exec 7<&3 3<&-; exec "$@"`, "sh", SPAWNCTL, "shell", name, "/bin/sh", "-c",
        "ls /proc/self/fd | tr '\\n' ' '; echo; for p in /proc/[0-9]*; do readlink $p/exe; for f in $p/fd/*; do readlink $f; done; done 2>/dev/null; true"], {
        stdio: ["ignore", "pipe", "pipe", fd] as never,
      });
      expect(p.exitCode).toBe(0);
      scan = p.stdout.toString();
    } finally {
      closeSync(fd);
    }
    const [own, ...links] = scan.split("\n");
    expect(own!.trim()).toBe("0 1 2 3");
    expect(links.filter((l) => /host-secret|memfd:(spawnctl|nsh)|\.lck$|\/run\/spawnctl|nspawn\/locks|dist\/spawnctl/.test(l))).toEqual([]);
    // systemd's processes were scanned too
    expect(links).toContain("/usr/lib/systemd/systemd");

    // copy-to, copy-from and bind under -U: owners shifted into the machine and back
    writeFileSync(`${tmp}/in`, "into the guest\n");
    expect(run(["copy-to", name, `${tmp}/in`, "/root/in"]).code).toBe(0);
    expect(run(["shell", name, "/bin/sh", "-c", "stat -c '%u:%g %s' /root/in; cat /root/in"]).stdout).toBe("0:0 15\ninto the guest\n");
    expect(run(["shell", name, "/bin/sh", "-c", "echo out of the guest > /root/out; chown 1:1 /root/out"]).code).toBe(0);
    expect(run(["copy-from", name, "/root/out", `${tmp}/out`]).code).toBe(0);
    expect(readFileSync(`${tmp}/out`, "utf8")).toBe("out of the guest\n");
    expect(statSync(`${tmp}/out`).uid).toBe(1);
    mkdirSync(`${tmp}/bound`);
    writeFileSync(`${tmp}/bound/file`, "bound\n");
    expect(run(["bind", "--read-only", "--mkdir", name, `${tmp}/bound`, "/mnt/bound"]).code).toBe(0);
    expect(run(["shell", name, "/bin/sh", "-c", "cat /mnt/bound/file; touch /mnt/bound/x 2>&1 | grep -c Read-only"]).stdout).toBe("bound\n1\n");
    // a writable bind across the mapping: the host's owners show as
    // themselves, and what the guest's root writes is the host's root's
    mkdirSync(`${tmp}/rw`);
    writeFileSync(`${tmp}/rw/users`, "");
    Bun.spawnSync(["chown", "1000:1000", `${tmp}/rw/users`]);
    const missing = run(["bind", name, `${tmp}/rw`, "/mnt/rw"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("/mnt/rw does not exist in the machine (--mkdir creates it).");
    expect(run(["bind", "--mkdir", name, `${tmp}/rw`, "/mnt/rw"]).code).toBe(0);
    expect(run(["shell", name, "/bin/sh", "-c", "stat -c %u:%g /mnt/rw/users; echo guest > /mnt/rw/new && stat -c %u:%g /mnt/rw/new"]).stdout).toBe("1000:1000\n0:0\n");
    expect(statSync(`${tmp}/rw/new`).uid).toBe(0);

    // login and shell on a pty the guest owns: a password login leaves a
    // session on its own tty, owned by the user; the caller's TERM comes along
    expect(run(["shell", name, "/bin/sh", "-c", "useradd -m -s /bin/bash alice && echo alice:s3cret | chpasswd"]).code).toBe(0);
    const login = await onTty(`${SPAWNCTL} login ${name}`, [[2500, "alice\r"], [1500, "s3cret\r"], [2500, "stat -c 'owner=%U mode=%a' $(tty); echo term=$TERM\r"], [800, "exit\r"], [1500, "\x1d\x1d\x1d"]], { TERM: "xterm-256color" });
    expect(login).toContain(`${name} login:`);
    expect(login).toContain("Password:");
    expect(login).not.toContain("Unable to change owner");
    expect(login).toMatch(/owner=alice mode=6[02]0/);
    expect(login).toContain("term=xterm-256color");
    const root = await onTty(`${SPAWNCTL} login ${name}`, [[2500, "root\r"], [2500, "stat -c owner=%U $(tty); su -s /bin/sh alice -c 'echo su-ok'\r"], [800, "exit\r"], [1500, "\x1d\x1d\x1d"]]);
    expect(root).toContain("owner=root");
    expect(root).toContain("su-ok");
    const shell = await onTty(`${SPAWNCTL} shell alice@${name}`, [[2000, "stat -c owner=%U $(tty); id -un\r"], [800, "exit\r"]]);
    expect(shell).toContain("owner=alice");
    expect(shell).toContain("\nalice\n");
    // journal: the guest's own journalctl reads the guest's journal
    const jn = run(["journal", name, "-n", "3", "--no-pager"]);
    expect(jn.code).toBe(0);
    expect(jn.stdout.trim().split("\n")).toHaveLength(3);
    expect(run(["journal", name, "-u", "systemd-logind", "-o", "cat", "--no-pager"]).stdout).toContain("Started systemd-logind.service");
    // status ends with the guest journal's last lines
    expect(run(["status", name]).stdout).toMatch(new RegExp(`\\n\\n(\\w{3} \\d\\d \\d\\d:\\d\\d:\\d\\d ${name} \\S+: .*\\n){1,10}$`));
    // run-in: the guest's systemd-run makes a transient unit of it
    const ri = run(["run-in", name, "--pipe", "-p", "MemoryMax=64M", "--setenv=GREETING=hi", "/bin/sh", "-c", "echo $GREETING; cat /proc/self/cgroup | grep -o 'run-u[0-9a-z]*.service' | head -1"]);
    expect(ri.code).toBe(0);
    expect(ri.stdout).toMatch(/^hi\nrun-u\w+\.service\n$/);
    // console: the current screen (the console getty's prompt), as text when
    // not on a terminal; no replay of raw bytes, no escape sequences
    const con = Bun.spawnSync(["/bin/sh", "-c", `(sleep 1; printf '\\035\\035\\035') | ${SPAWNCTL} console ${name}`], { stdout: "pipe", stderr: "pipe" });
    const screen = con.stdout.toString();
    expect(screen).toContain(`${name} login:`);
    expect(screen).not.toContain("\x1b");
    expect(con.stderr.toString()).toContain(`Detached from machine ${name}.`);
    expect(run(["poweroff", name]).code).toBe(0);
    await until(() => !run(["list", "--no-legend"]).stdout.includes(NAME), 60_000);
    // its supervisor then cleans up: the state file goes, then the locks
    await until(() => !existsSync(`/run/spawnctl/machines/${name}.json`) && !existsSync(`/run/spawnctl/machines/${name}.lock`), 10_000);
  }, 300_000);
});
