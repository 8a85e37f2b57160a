// Running machines' names resolve on the host (hosts = true in the [network]
// table of spawnctl.toml), as nss-mymachines makes them: a block of the hosts
// file that start adds to, the clean-up takes from, and the next command
// repairs after a SIGKILL. (The tests point SPAWNCTL_HOSTS_FILE at a file of
// their own; the host's /etc/hosts is never written.)
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { IS_ROOT, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
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

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME], { env });
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
