// e2e: spawnctl bootstrap against the configured Debian mirror.
import { afterAll, describe, expect } from "bun:test";
import { IS_ROOT, leftovers, needs, removeTree, run, tempDir } from "../helpers.ts";
import { haveMirror } from "./debian.ts";

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
