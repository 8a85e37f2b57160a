// --pivot-root=NEW[:OLD] (and PivotRoot= in a .nspawn file): a directory of
// the tree becomes the container's root, the tree's own root goes to OLD or
// out of reach; NEW is resolved inside the tree, never on the host.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";

let base = "";
let tree = "";
const before = IS_ROOT ? leftovers() : [];

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  tree = `${base}/ostree`;
  makeBusyboxTree(tree);
  writeFileSync(`${tree}/outer-marker`, "outer\n");
  makeBusyboxTree(`${tree}/deploy/os`, { files: { "etc/os-release": 'ID=inner\nNAME="Inner OS"\n', "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ninner:x:1500:1500::/home/inner:/bin/sh\n" } });
  mkdirSync(`${tree}/deploy/os/home/inner`, { recursive: true });
  // ways out of the tree that must stay inside it
  symlinkSync("/", `${tree}/escape`);
  symlinkSync("../../..", `${tree}/deploy/up`);
});

afterAll(() => {
  if (!IS_ROOT) return;
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

const sh = (args: string[], script: string) => run(["run", "-q", "-P", "-D", tree, ...args, "/bin/sh", "-c", script]);

describe("--pivot-root", () => {
  test("NEW:OLD: the inner tree is /, the tree's root is at OLD", () => {
    const r = sh(["--pivot-root=/deploy/os:/sysroot"], "grep ^ID= /etc/os-release; cat /sysroot/outer-marker; test -e /outer-marker || echo no-outer");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ID=inner\nouter\nno-outer\n");
  });

  test("NEW alone: the tree's root is out of reach; the user is looked up in the inner tree", () => {
    const r = sh(["--pivot-root=/deploy/os", "-u", "inner"], "id -u; grep -c outer-marker /proc/self/mountinfo; ls / | grep -c outer-marker");
    expect(r.stdout).toBe("1500\n0\n0\n");
  });

  test("a .nspawn file's PivotRoot=, and -U", () => {
    writeFileSync(`${base}/ostree.nspawn`, "[Exec]\nPivotRoot=/deploy/os:/sysroot\n");
    try {
      const r = run(["run", "-q", "-P", "--settings=trusted", "-U", "-D", tree, "/bin/sh", "-c", "id -u; grep ^ID= /etc/os-release; cat /sysroot/outer-marker"]);
      expect(r.stdout).toBe("0\nID=inner\nouter\n");
    } finally {
      removeTree(`${base}/ostree.nspawn`);
    }
  });

  test("NEW is resolved inside the tree: a link to / or .. out of it stays in it", () => {
    for (const p of ["/escape", "/deploy/up"]) {
      const r = sh([`--pivot-root=${p}`], "cat /outer-marker; test -e /etc/hostname && echo host || echo tree");
      expect(r.stdout).toBe("outer\ntree\n");
    }
    expect(existsSync("/outer-marker")).toBe(false);
  });

  test("bad values name the option", () => {
    expect(sh(["--pivot-root=/nope"], "true").stderr).toBe(`--pivot-root=: /nope does not exist in ${tree}.\n`);
    expect(sh(["--pivot-root=rel"], "true").stderr).toContain("--pivot-root=: rel is not an absolute, normalized path.");
    expect(sh(["--pivot-root=/a:/b:/c"], "true").stderr).toContain("Failed to parse --pivot-root= argument: /a:/b:/c");
    expect(sh(["--pivot-root=/deploy/os", "--volatile=yes"], "true").stderr).toContain("--pivot-root= and --volatile=yes may not be combined.");
  });
});
