// /etc/spawnctl/spawnctl.toml ($SPAWNCTL_CONFIG here) as an admin uses it:
// an image directory of their own, a bad file refused with file:line.
import { afterAll, beforeAll, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { IS_ROOT, busyboxPath, makeBusyboxTree, needs, removeTree, run, tempDir } from "../helpers.ts";

const test = needs("root and busybox-static", IS_ROOT && !!busyboxPath());
let base = "";
beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  mkdirSync(`${base}/pool`);
  makeBusyboxTree(`${base}/pool/cfgtest`);
});
afterAll(() => {
  if (base) removeTree(base);
});

test("[images] path: images there are listed, run by name and new ones made there", () => {
  writeFileSync(`${base}/spawnctl.toml`, `# ours\n[images]\npath = ["${base}/pool"]\n`);
  const env = { SPAWNCTL_CONFIG: `${base}/spawnctl.toml` };
  expect(run(["list-images", "--no-legend"], { env }).stdout).toContain("cfgtest");
  const r = run(["run", "-q", "-P", "-M", "cfgtest", "/bin/cat", "/etc/os-release"], { env });
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("BusyBox test tree");
  expect(run(["clone", "cfgtest", "cfgcopy"], { env }).code).toBe(0);
  expect(run(["image-status", "cfgcopy"], { env }).stdout).toContain(`${base}/pool/cfgcopy`);
  expect(run(["remove", "cfgcopy"], { env }).code).toBe(0);
});

test("a bad file: file:line for TOML, file and setting for a value; nothing runs", () => {
  writeFileSync(`${base}/bad.toml`, "[images]\npath = [\n");
  let r = run(["list-images"], { env: { SPAWNCTL_CONFIG: `${base}/bad.toml` } });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`^${base}/bad\\.toml:\\d+:\\d+: `));
  writeFileSync(`${base}/bad.toml`, '[network]\nveth-pool = "10.0.0.1/8"\n');
  r = run(["run", "-q", "-P", "-M", "cfgtest", "/bin/true"], { env: { SPAWNCTL_CONFIG: `${base}/bad.toml` } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("network.veth-pool: an IPv4 prefix of /8 to /24");
  expect(r.stderr).not.toContain("internal error");
  // not a file, or not there when named
  r = run(["list-images"], { env: { SPAWNCTL_CONFIG: base } });
  expect(r.stderr).toBe(`Failed to read ${base}: Is a directory.\n`);
  r = run(["list-images"], { env: { SPAWNCTL_CONFIG: `${base}/missing.toml` } });
  expect(r.stderr).toBe(`Failed to read ${base}/missing.toml: No such file or directory.\n`);
});

test("[start] options replace the service's defaults; a bad one names the file", async () => {
  writeFileSync(`${base}/start.toml`, `[images]\npath = ["${base}/pool"]\n[start]\noptions = ["--quiet", "--keep-unit", "--boot", "--private-network"]\n`);
  const env = { SPAWNCTL_CONFIG: `${base}/start.toml` };
  try {
    const r = run(["start", "cfgtest"], { env, netns: true });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // no -U, no veth: not the service's defaults
    const st = JSON.parse(readFileSync("/run/spawnctl/machines/cfgtest.json", "utf8"));
    expect(st.uidShift).toBeUndefined();
    expect(st.privateNetwork).toBe(true);
    expect(run(["show", "cfgtest", "-p", "NetworkInterfaces", "--value"], { env }).stdout.trim()).toBe("");
  } finally {
    run(["terminate", "cfgtest"], { env });
    for (let i = 0; i < 100 && existsSync("/run/spawnctl/machines/cfgtest.json"); i++) await Bun.sleep(50);
  }
  writeFileSync(`${base}/start.toml`, `[images]\npath = ["${base}/pool"]\n[start]\noptions = ["--boot", "--no-such-option"]\n`);
  const bad = run(["start", "cfgtest"], { env, netns: true });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain(`[start] options of ${base}/start.toml: `);
  expect(bad.stderr).toContain("--no-such-option");
  expect(existsSync("/run/spawnctl/machines/cfgtest.json")).toBe(false);
});

