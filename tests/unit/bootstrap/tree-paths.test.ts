// target.ts's tree* functions: what the bootstrap writes, reads and removes
// in a tree from the host resolves the tree's symlinks inside the tree, as
// the container sees them, so "etc/hostname -> /etc/hostname" never leads to
// the host's file. No root needed: a temporary directory with symlinks.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { treeLstat, treeMkdir, treePath, treeRead, treeRemove, treeWrite } from "../../../src/bootstrap/target.ts";

const base = mkdtempSync(`${tmpdir()}/spawnctl-treepaths-`);
afterAll(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
/** a tree and, beside it, host files its symlinks name */
function setup(): { root: string; host: string } {
  const root = `${base}/root${++n}`;
  const host = `${base}/host${n}`;
  mkdirSync(`${root}/etc`, { recursive: true });
  mkdirSync(`${host}/etc`, { recursive: true });
  writeFileSync(`${host}/etc/hostname`, "host\n");
  writeFileSync(`${host}/etc/passwd`, "root:host:0:0::/:/bin/sh\n");
  return { root, host };
}

describe("treePath", () => {
  test("an absolute symlink restarts at the tree's root, .. stops there, a missing rest is appended", () => {
    const { root, host } = setup();
    symlinkSync(`${host}/etc/hostname`, `${root}/etc/hostname`);
    symlinkSync("../../../../..", `${root}/etc/up`);
    symlinkSync("/etc", `${root}/e`);
    expect(treePath(root, "etc/hostname")).toBe(`${root}${host}/etc/hostname`);
    expect(treePath(root, "etc/hostname", true)).toBe(`${root}/etc/hostname`);
    expect(treePath(root, "etc/up/x")).toBe(`${root}/x`);
    expect(treePath(root, "e/missing/deeper")).toBe(`${root}/etc/missing/deeper`);
    expect(treePath(root, "")).toBe(root);
  });

  test("a symlink loop is an error, not a hang", () => {
    const { root } = setup();
    symlinkSync("b", `${root}/a`);
    symlinkSync("a", `${root}/b`);
    expect(() => treePath(root, "a/x")).toThrow("too many levels of symbolic links");
  });
});

describe("writes, reads and removals stay in the tree", () => {
  test("treeWrite through an absolute symlink writes the tree's copy, never the host's file", () => {
    const { root, host } = setup();
    symlinkSync(`${host}/etc/hostname`, `${root}/etc/hostname`);
    mkdirSync(`${root}${host}/etc`, { recursive: true });
    treeWrite(root, "etc/hostname", "tree\n");
    expect(readFileSync(`${host}/etc/hostname`, "utf8")).toBe("host\n");
    expect(readFileSync(`${root}${host}/etc/hostname`, "utf8")).toBe("tree\n");
    expect(lstatSync(`${root}/etc/hostname`).isSymbolicLink()).toBe(true);
  });

  test("treeWrite through a symlinked parent directory, and with a missing parent in the tree it fails instead", () => {
    const { root, host } = setup();
    rmSync(`${root}/etc`, { recursive: true });
    symlinkSync(`${host}/etc`, `${root}/etc`);
    expect(() => treeWrite(root, "etc/passwd", "evil\n")).toThrow(/writing etc\/passwd in the new tree/);
    expect(readFileSync(`${host}/etc/passwd`, "utf8")).toBe("root:host:0:0::/:/bin/sh\n");
    expect(readdirSync(`${host}/etc`).sort()).toEqual(["hostname", "passwd"]);
  });

  test("treeWrite gives a new file the mode asked for; a FIFO in the way is replaced, a directory is an error", () => {
    const { root } = setup();
    treeWrite(root, "etc/policy", "#!/bin/sh\n", 0o755);
    expect(statSync(`${root}/etc/policy`).mode & 0o7777).toBe(0o755);
    Bun.spawnSync(["mkfifo", `${root}/etc/fifo`]);
    expect(lstatSync(`${root}/etc/fifo`).isFIFO()).toBe(true);
    treeWrite(root, "etc/fifo", "x"); // would block forever if opened as a FIFO
    expect(lstatSync(`${root}/etc/fifo`).isFile()).toBe(true);
    mkdirSync(`${root}/etc/dir`);
    expect(() => treeWrite(root, "etc/dir", "x")).toThrow("it is a directory");
  });

  test("treeRead follows symlinks inside the tree only", () => {
    const { root, host } = setup();
    symlinkSync(`${host}/etc/passwd`, `${root}/etc/passwd`);
    expect(treeRead(root, "etc/passwd")).toBeUndefined();
    mkdirSync(`${root}${host}/etc`, { recursive: true });
    writeFileSync(`${root}${host}/etc/passwd`, "root:tree:0:0::/:/bin/sh\n");
    expect(treeRead(root, "etc/passwd")).toBe("root:tree:0:0::/:/bin/sh\n");
  });

  test("treeRemove removes the link itself; through a symlinked parent it removes the tree's file, not the host's", () => {
    const { root, host } = setup();
    symlinkSync(`${host}/etc/hostname`, `${root}/etc/hostname`);
    treeRemove(root, "etc/hostname");
    expect(existsSync(`${root}/etc/hostname`)).toBe(false);
    expect(existsSync(`${host}/etc/hostname`)).toBe(true);
    symlinkSync(`${host}/etc`, `${root}/log`);
    treeRemove(root, "log/passwd");
    expect(existsSync(`${host}/etc/passwd`)).toBe(true);
    treeRemove(root, "missing/file"); // nothing there: nothing to do
  });

  test("treeMkdir creates inside the tree through symlinks, and refuses a non-directory", () => {
    const { root, host } = setup();
    symlinkSync("/srv", `${root}/var`);
    mkdirSync(`${root}/srv`);
    treeMkdir(root, "var/lib/dpkg/info");
    expect(statSync(`${root}/srv/lib/dpkg/info`).isDirectory()).toBe(true);
    writeFileSync(`${root}/etc/file`, "");
    expect(() => treeMkdir(root, "etc/file/sub")).toThrow("etc/file is not a directory");
    expect(readdirSync(host)).toEqual(["etc"]);
    expect(treeLstat(root, "var")?.isSymbolicLink()).toBe(true);
  });
});
