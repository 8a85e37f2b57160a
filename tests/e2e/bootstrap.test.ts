// e2e: spawnctl bootstrap against the configured Debian mirror.
import { afterAll, describe, expect } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { IS_ROOT, leftovers, needs, removeTree, run, tempDir } from "../helpers.ts";
import { haveMirror } from "./debian.ts";
import { defaultMirror } from "../../src/bootstrap/mirror.ts";

const test = needs("root and a Debian mirror", IS_ROOT && haveMirror());
const base = IS_ROOT ? tempDir() : "";
const before = IS_ROOT ? leftovers() : [];
afterAll(() => {
  if (!IS_ROOT) return;
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

describe("bootstrap from the network", () => {
  test("bookworm minbase: debootstrap's 88 packages, dpkg --audit empty, apt-get check passes", () => {
    const dest = `${base}/minbase`;
    const r = run(["bootstrap", "debian", "bookworm", dest], { timeout: 600_000 });
    expect(r.stderr).toContain("Bootstrapped debian bookworm (88 packages)");
    expect(r.code).toBe(0);
    const c = run(["run", "-q", "-P", "--settings=no", "-D", dest, "/bin/sh", "-c", "dpkg --audit; echo audit=$?; apt-get check >/dev/null 2>&1; echo check=$?; dpkg-query -W -f '${db:Status-Abbrev}\\n' | grep -c '^ii'"]);
    expect(c.stdout).toBe("audit=0\ncheck=0\n88\n");
  }, 700_000);
});

describe("checks against the mirror before any package is fetched", () => {
  test("an unknown suite names the mirror's dists path, not its host; unknown --include and --arch name the index", () => {
    const mirror = new URL(defaultMirror("bookworm")!);
    const dest = `${base}/refused`;
    const cache = `${base}/cache-refused`;
    const boot = (suite: string, ...opts: string[]) => run(["bootstrap", "debian", suite, dest, `--cache-dir=${cache}`, ...opts], { timeout: 120_000 });
    const path = mirror.pathname.replace(/\/+$/, "");
    const errorOf = (stderr: string) => stderr.trimEnd().split("\n").at(-1)!;

    const u = boot("nosuchsuite");
    expect(errorOf(u.stderr)).toStartWith(`Unknown suite nosuchsuite: the mirror has no ${path}/dists/nosuchsuite/InRelease.`);
    expect(errorOf(u.stderr)).not.toContain(mirror.host);
    expect(u.code).toBe(1);

    const i = boot("bookworm", "--include=nosuchpackage");
    expect(errorOf(i.stderr)).toBe("--include=nosuchpackage: no package nosuchpackage in bookworm main (amd64).");
    expect(i.code).toBe(1);

    const a = boot("bookworm", "--arch=nosucharch");
    expect(errorOf(a.stderr)).toStartWith(`--arch=nosucharch: the mirror's ${path}/dists/bookworm/InRelease lists no architecture nosucharch (it lists `);
    expect(a.code).toBe(1);

    for (const r of [u, i, a]) expect(r.stderr).not.toContain("Downloading");
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(cache)).toBe(false);
    expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
  }, 200_000);
});
