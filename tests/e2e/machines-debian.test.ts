// e2e: a Debian machine with systemd started in the background: shell into a
// booted systemd guest, login prompt, poweroff.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, run } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";

const ok = IS_ROOT && haveMirror();
const test = needs("root and a Debian mirror", ok);
const NAME = "sctest-debian";
const before = ok ? leftovers() : [];
beforeAll(() => {
  if (!ok) return;
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
  run(["terminate", NAME]);
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
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
    const name = run(["list", "--no-legend"]).stdout.split("\n")[0]!.split(/\s+/)[0]!;
    expect(name.startsWith(NAME)).toBe(true);
    await until(() => {
      const s = run(["shell", name, "/bin/systemctl", "is-system-running"]).stdout.trim();
      return s === "running" || s === "degraded";
    }, 120_000);
    const sh = run(["shell", name, "/bin/sh", "-c", "cat /proc/1/comm; . /etc/os-release; echo $VERSION_CODENAME"]);
    expect(sh.stdout).toBe("systemd\nbookworm\n");
    expect(run(["status", name]).stdout).toContain("OS: Debian GNU/Linux 12 (bookworm)");
    expect(run(["poweroff", name]).code).toBe(0);
    await until(() => !run(["list", "--no-legend"]).stdout.includes(NAME), 60_000);
    // its supervisor then cleans up: the state file goes, then the locks
    await until(() => !existsSync(`/run/spawnctl/machines/${name}.json`) && !existsSync(`/run/spawnctl/machines/${name}.lock`), 10_000);
  }, 300_000);
});
