// A cached Debian bookworm tree with systemd for the e2e tests, made by
// spawnctl bootstrap itself from the host's configured mirror (once; the
// cache is honest because the tree is only ever run with -x).
import { existsSync, mkdirSync } from "node:fs";
import { SPAWNCTL } from "../helpers.ts";
import { defaultMirror } from "../../src/bootstrap/mirror.ts";

export const CACHE = process.env.SPAWNCTL_TEST_CACHE ?? "/var/cache/spawnctl-test";
export const DEBIAN_TREE = `${CACHE}/debian-bookworm-systemd-v2`;

export function haveMirror(): boolean {
  return !!defaultMirror("bookworm");
}

export function ensureDebianTree(): string {
  if (existsSync(`${DEBIAN_TREE}/usr/lib/systemd/systemd`)) return DEBIAN_TREE;
  mkdirSync(CACHE, { recursive: true });
  const p = Bun.spawnSync([SPAWNCTL, "bootstrap", "debian", "bookworm", DEBIAN_TREE, "--include=systemd-sysv,dbus", "--root-password="], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`spawnctl bootstrap failed (${p.exitCode})`);
  return DEBIAN_TREE;
}
