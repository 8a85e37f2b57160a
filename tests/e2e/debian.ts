// A cached Debian bookworm tree with systemd, for the e2e tests. Built once
// with Debian's mmdebstrap from the host's configured mirror (until spawnctl
// bootstrap can build it itself), under a temporary name, then renamed.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { defaultMirror } from "../../src/bootstrap/mirror.ts";

export const CACHE = process.env.SPAWNCTL_TEST_CACHE ?? "/var/cache/spawnctl-test";
export const DEBIAN_TREE = `${CACHE}/debian-bookworm-systemd`;

export function haveMmdebstrap(): boolean {
  return Bun.spawnSync(["sh", "-c", "command -v mmdebstrap"]).exitCode === 0;
}

export function ensureDebianTree(): string {
  if (existsSync(`${DEBIAN_TREE}/usr/lib/systemd/systemd`)) return DEBIAN_TREE;
  const mirror = defaultMirror("bookworm");
  if (!mirror) throw new Error("no Debian mirror: set SPAWNCTL_MIRROR or configure apt");
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${CACHE}/.tmp-debian-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const p = Bun.spawnSync(["mmdebstrap", "--quiet", "--variant=minbase", "--include=systemd-sysv,dbus", "bookworm", tmp, mirror], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`mmdebstrap failed (${p.exitCode})`);
  }
  renameSync(tmp, DEBIAN_TREE);
  return DEBIAN_TREE;
}
