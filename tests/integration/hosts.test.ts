// Running machines' names resolve on the host (hosts = true in the [network]
// table of spawnctl.toml), as nss-mymachines makes them: a block of the hosts
// file that start adds to, the clean-up takes from, and the next command
// repairs after a SIGKILL. (The tests point SPAWNCTL_HOSTS_FILE at a file of
// their own; the host's /etc/hosts is never written.)
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
import { HOSTS_BEGIN } from "../../src/container/hosts.ts";

const NAME = "sctest-hosts";
const IMAGE = `/var/lib/machines/${NAME}`;
const ADMIN = "127.0.0.1 localhost\n# the admin's own\n10.9.9.9 db\n";
let base = "";
let env: Record<string, string> = {};
const before = IS_ROOT ? leftovers() : [];

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  writeFileSync(`${base}/spawnctl.toml`, "[network]\nhosts = true\n");
  writeFileSync(`${base}/hosts`, ADMIN, { mode: 0o644 });
  env = { SPAWNCTL_CONFIG: `${base}/spawnctl.toml`, SPAWNCTL_HOSTS_FILE: `${base}/hosts` };
  removeTree(IMAGE);
  makeBusyboxTree(IMAGE, { init: "#!/bin/sh\ntrap 'exit 0' 38\nwhile true; do sleep 1; done\n" });
});

const PEERS = ["sctest-peer-a", "sctest-peer-b"];
const TREE_HOSTS = "127.0.0.1\tlocalhost\n# the guest's own\n";

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME], { env });
  for (const p of PEERS) {
    run(["terminate", p], { env });
    removeTree(`/var/lib/machines/${p}`);
    rmSync(`/etc/systemd/nspawn/${p}.nspawn`, { force: true });
    rmSync(`/var/log/spawnctl/${p}.console`, { force: true });
  }
  removeTree(IMAGE);
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

const hosts = () => readFileSync(`${base}/hosts`, "utf8");

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out; hosts file:\n${hosts()}`);
    await Bun.sleep(50);
  }
}

describe("machine names in the hosts file", () => {
  test("start adds the machine's address under its name; poweroff takes it away; the admin's lines and the mode stay", async () => {
    expect(run(["start", NAME], { netns: true, env }).code).toBe(0);
    const text = hosts();
    expect(text.startsWith(ADMIN)).toBe(true);
    const m = new RegExp(`^(\\d+\\.\\d+\\.\\d+\\.\\d+)\\t${NAME}$`, "m").exec(text);
    expect(m).not.toBeNull();
    // the address its DHCP answer gives it (this guest asks for none)
    const plan = JSON.parse(readFileSync(`/run/spawnctl/net/${NAME}.json`, "utf8"));
    expect(m![1]).toBe(plan.veth.subnet.container);
    expect(statSync(`${base}/hosts`).mode & 0o777).toBe(0o644);
    expect(run(["poweroff", NAME], { env }).code).toBe(0);
    await until(() => hosts() === ADMIN);
  });

  test("a SIGKILLed machine's name goes with the next command", async () => {
    expect(run(["start", NAME], { netns: true, env }).code).toBe(0);
    expect(hosts()).toContain(`\t${NAME}`);
    const st = JSON.parse(readFileSync(`/run/spawnctl/machines/${NAME}.json`, "utf8"));
    process.kill(st.supervisor, 9);
    process.kill(st.leader, 9);
    await until(() => run(["list", "--no-legend"], { env }).code === 0 && !hosts().includes(HOSTS_BEGIN));
    expect(hosts()).toBe(ADMIN);
  });
});

describe("machine names between machines on one zone", () => {
  test("each machine's /etc/hosts lists the others on its zone; the tree's file stays; a stopped machine goes from the others'", async () => {
    const init = "#!/bin/sh\ntrap 'exit 0' 38\nwhile true; do sleep 1; done\n";
    mkdirSync("/etc/systemd/nspawn", { recursive: true });
    for (const p of PEERS) {
      removeTree(`/var/lib/machines/${p}`);
      makeBusyboxTree(`/var/lib/machines/${p}`, { init, files: { "etc/hosts": TREE_HOSTS } });
      writeFileSync(`/etc/systemd/nspawn/${p}.nspawn`, "[Network]\nZone=sctpeer\n");
    }
    // both machines in one network namespace, where their zone's bridge is
    const holder = Bun.spawn(["unshare", "--net", "sleep", "600"]);
    await Bun.sleep(200);
    const inNs = (args: string[]) => {
      const p = Bun.spawnSync(["nsenter", `--net=/proc/${holder.pid}/ns/net`, SPAWNCTL, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env }, timeout: 60_000 });
      return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
    };
    try {
      for (const p of PEERS) expect(inNs(["start", p]).code).toBe(0);
      const addr = (m: string) => JSON.parse(readFileSync(`/run/spawnctl/net/${m}.json`, "utf8")).veth.zone.subnet.container as string;
      const [a, b] = PEERS as [string, string];
      const inA = inNs(["shell", a, "/bin/cat", "/etc/hosts"]).stdout.replace(/\r/g, "");
      expect(inA).toBe(`${TREE_HOSTS}${HOSTS_BEGIN}\n${addr(b)}\t${b}\n# END spawnctl machines\n`);
      const inB = inNs(["shell", b, "/bin/cat", "/etc/hosts"]).stdout.replace(/\r/g, "");
      expect(inB).toContain(`${addr(a)}\t${a}\n`);
      expect(inB).not.toContain(`\t${b}\n`);
      // the guest's resolver finds it (busybox reads /etc/hosts)
      expect(inNs(["shell", b, "/bin/sh", "-c", `ping -c1 -W1 ${a} 2>&1 | head -1`]).stdout).toContain(`PING ${a} (${addr(a)})`);
      // the copy lives on the host's /run: the guest cannot write (and so grow) it
      // (under -U the host's root owns it: "Permission denied" comes before the read-only mount's answer)
      expect(inNs(["shell", b, "/bin/sh", "-c", "(echo 10.6.6.6 evil >> /etc/hosts) 2>&1; true"]).stdout).toMatch(/Read-only file system|Permission denied/);
      expect(readFileSync(`/run/spawnctl/hosts/${b}`, "utf8")).not.toContain("evil");
      // the host's block has both (hosts = true)
      expect(hosts()).toContain(`${addr(a)}\t${a}\n`);
      expect(readFileSync(`/var/lib/machines/${a}/etc/hosts`, "utf8")).toBe(TREE_HOSTS);
      expect(inNs(["poweroff", a]).code).toBe(0);
      await until(() => !existsSync(`/run/spawnctl/hosts/${a}`));
      await until(() => inNs(["shell", b, "/bin/cat", "/etc/hosts"]).stdout.replace(/\r/g, "") === TREE_HOSTS);
      expect(inNs(["poweroff", b]).code).toBe(0);
      await until(() => readdirSync("/run/spawnctl/hosts").filter((f) => !f.startsWith(".")).length === 0);
      await until(() => hosts() === ADMIN);
      for (const p of PEERS) expect(readFileSync(`/var/lib/machines/${p}/etc/hosts`, "utf8")).toBe(TREE_HOSTS);
    } finally {
      for (const p of PEERS) inNs(["terminate", p]);
      holder.kill(9);
      await holder.exited;
    }
  });

  test("without hosts = true, or on a plain veth, the tree's /etc/hosts is the machine's", () => {
    const p = PEERS[0]!;
    const r = run(["run", "-q", "-P", "-M", p, "--network-veth", "/bin/cat", "/etc/hosts"], { netns: true, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(TREE_HOSTS);
    const r2 = run(["run", "-q", "-P", "-M", p, "/bin/cat", "/etc/hosts"], { netns: true });
    expect(r2.stdout).toBe(TREE_HOSTS);
  });
});
