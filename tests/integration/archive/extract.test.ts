// extractTar as root: hostile archives must never touch anything outside the
// root (clamped by default, refused with refuseEscapes), and metadata must
// come out as GNU tar would make it.
import { afterAll, describe, expect } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { extractTar, type ExtractOptions } from "../../../src/archive/extract.ts";
import { readTar, type TarWriteEntry } from "../../../src/archive/tar.ts";
import { listXattrs } from "../../../src/sys/ffi.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";
import { rootTest, removeTree, tempDir } from "../../helpers.ts";
import { fixChecksum, putOctal, tarOf, text } from "../../unit/archive/fixtures.ts";

const base = tempDir("spawnctl-extract-");
afterAll(() => removeTree(base));
const outside = `${base}/outside`;
mkdirSync(outside);
writeFileSync(`${outside}/victim`, "original");
const HOST_EVIL = `/etc/spawnctl-evil-${process.pid}`;

let n = 0;
function freshRoot(): string {
  const r = `${base}/root${n++}`;
  mkdirSync(r);
  return r;
}

function extract(entries: TarWriteEntry[], root: string, opts: ExtractOptions = {}) {
  return extractTar(readTar(tarOf(entries)), root, opts);
}

/** Everything under `dir`, as relative paths. */
function walk(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = `${dir}/${name}`;
    out.push(prefix + name);
    if (lstatSync(p).isDirectory()) out.push(...walk(p, `${prefix}${name}/`));
  }
  return out.sort();
}

function outsideUntouched(): void {
  expect(walk(outside)).toEqual(["victim"]);
  expect(readFileSync(`${outside}/victim`, "utf8")).toBe("original");
  expect(existsSync(HOST_EVIL)).toBe(false);
  expect(existsSync(`${base}/evil`)).toBe(false);
  expect(existsSync("/evil")).toBe(false);
}

const file = (path: string, content = "evil"): TarWriteEntry => ({ path, type: "file", data: text(content), mode: 0o644 });
const link = (path: string, linkname: string): TarWriteEntry => ({ path, type: "symlink", linkname });
const hard = (path: string, linkname: string): TarWriteEntry => ({ path, type: "hardlink", linkname });
const dir = (path: string, mode = 0o755): TarWriteEntry => ({ path, type: "dir", mode });

// Each hostile archive, what the clamped extraction must produce inside the
// root (or "error"), and the entry refuseEscapes must name.
const HOSTILE: Array<{ name: string; entries: TarWriteEntry[]; clamped: string[] | "error"; refusedAt: string }> = [
  { name: "../evil", entries: [file("../evil"), file("a/../../evil")], clamped: ["evil"], refusedAt: "../evil" },
  { name: "absolute name", entries: [file(HOST_EVIL)], clamped: ["etc", HOST_EVIL.slice(1)], refusedAt: HOST_EVIL },
  { name: "link -> /abs/outside, then link/x", entries: [link("link", outside), file("link/x")], clamped: ["link", ...prefixes(`${outside.slice(1)}/x`)], refusedAt: "link/x" },
  { name: "link -> ../../.., then link/x", entries: [link("link", "../../.."), file("link/x")], clamped: ["link", "x"], refusedAt: "link/x" },
  { name: "nested relative escape", entries: [dir("a"), link("a/up", "../../../../.."), file("a/up/evil")], clamped: ["a", "a/up", "evil"], refusedAt: "a/up/evil" },
  { name: "hardlink to /etc/passwd", entries: [hard("pw", "/etc/passwd")], clamped: "error", refusedAt: "pw" },
  { name: "hardlink through a symlink", entries: [link("l", "/etc"), hard("pw", "l/passwd")], clamped: "error", refusedAt: "pw" },
  { name: "hardlink to a symlink that points outside", entries: [link("s", `${outside}/victim`), hard("h", "s")], clamped: "error", refusedAt: "h" },
  { name: "symlink replaced by a directory", entries: [link("d", outside), dir("d"), file("d/x")], clamped: ["d", "d/x"], refusedAt: "" },
  { name: "symlink chain loop", entries: [link("l1", "l2"), link("l2", "l1"), file("l1/x")], clamped: "error", refusedAt: "l1/x" },
];

function prefixes(p: string): string[] {
  const parts = p.split("/");
  return parts.map((_, i) => parts.slice(0, i + 1).join("/"));
}

describe("hostile archives, clamped (the default)", () => {
  for (const h of HOSTILE) {
    rootTest(h.name, () => {
      const root = freshRoot();
      if (h.clamped === "error") {
        expect(() => extract(h.entries, root)).toThrow(SpawnctlError);
      } else {
        extract(h.entries, root);
        expect(walk(root)).toEqual([...new Set(h.clamped)].sort());
      }
      outsideUntouched();
    });
  }

  rootTest("a hardlink to /etc/passwd links the tree's own /etc/passwd", () => {
    const root = freshRoot();
    extract([dir("etc"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), hard("pw", "/etc/passwd"), link("l", "/etc"), hard("pw2", "l/passwd")], root);
    const inode = lstatSync(`${root}/etc/passwd`).ino;
    expect(lstatSync(`${root}/pw`).ino).toBe(inode);
    expect(lstatSync(`${root}/pw2`).ino).toBe(inode);
    expect(inode).not.toBe(lstatSync("/etc/passwd").ino);
  });

  rootTest("symlinks planted in the tree are replaced, never written through", () => {
    const root = freshRoot();
    symlinkSync(`${outside}/victim`, `${root}/victim`);
    symlinkSync(outside, `${root}/dirlink`);
    symlinkSync(`${outside}/newfile`, `${root}/dangling`);
    extract([file("victim", "mine"), file("dangling", "mine"), { path: "dirlink", type: "fifo", mode: 0o600 }], root);
    expect(lstatSync(`${root}/victim`).isFile()).toBe(true);
    expect(readFileSync(`${root}/victim`, "utf8")).toBe("mine");
    expect(lstatSync(`${root}/dirlink`).isFIFO()).toBe(true);
    outsideUntouched();
  });

  rootTest("keepDirectorySymlinks keeps a link that leads to a directory inside the root, and follows it clamped", () => {
    const root = freshRoot();
    mkdirSync(`${root}${outside}`, { recursive: true });
    symlinkSync(outside, `${root}/keep`);
    symlinkSync(`${outside}/missing`, `${root}/dangling`);
    const before = statSync(outside).mode;
    extract([dir("keep", 0o777), file("keep/x"), dir("dangling", 0o700), file("dangling/y")], root, { keepDirectorySymlinks: true });
    expect(statSync(outside).mode).toBe(before);
    expect(readlinkSync(`${root}/keep`)).toBe(outside);
    expect(existsSync(`${root}${outside}/x`)).toBe(true);
    // a link that does not lead to a directory in the tree is replaced
    expect(lstatSync(`${root}/dangling`).isDirectory()).toBe(true);
    expect(existsSync(`${root}/dangling/y`)).toBe(true);
    outsideUntouched();
  });

  rootTest("malformed archives fail before anything escapes", () => {
    const root = freshRoot();
    const t = tarOf([file("a", "x".repeat(2000)), file("b")]);
    const bad = t.slice();
    bad[0] ^= 1;
    expect(() => extractTar(readTar(bad), root)).toThrow(/checksum/);
    const huge = t.slice();
    putOctal(huge, 124, 12, 0o77777777777);
    fixChecksum(huge, 0);
    expect(() => extractTar(readTar(huge), root)).toThrow(/truncated/);
    expect(() => extractTar(readTar(t.subarray(0, 1200)), root)).toThrow(/truncated/);
    outsideUntouched();
  });

  rootTest("the root itself can only be a directory", () => {
    const root = freshRoot();
    expect(() => extract([file(".")], root)).toThrow(/names the root directory/);
    expect(() => extract([link("..", "/")], root)).toThrow(/names the root directory/);
    extract([dir(".", 0o750)], root);
    expect(statSync(root).mode & 0o7777).toBe(0o750);
  });
});

describe("hostile archives, refused (refuseEscapes)", () => {
  for (const h of HOSTILE.filter((x) => x.refusedAt !== "")) {
    rootTest(h.name, () => {
      const root = freshRoot();
      let err: unknown;
      try {
        extract(h.entries, root, { refuseEscapes: true });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SpawnctlError);
      expect((err as Error).message).toContain(`extracting ${JSON.stringify(h.refusedAt)}`);
      outsideUntouched();
    });
  }

  rootTest("ordinary trees with relative symlinks still extract", () => {
    const root = freshRoot();
    const stats = extract(
      [dir("usr"), dir("usr/lib"), dir("usr/share/doc"), link("lib", "usr/lib"), link("usr/lib/doc", "../share/doc"), file("lib/x"), file("usr/lib/doc/readme"), hard("usr/readme2", "lib/doc/readme"), link("etc/mtab", "/proc/self/mounts")],
      root,
      { refuseEscapes: true, keepDirectorySymlinks: true },
    );
    expect(stats.entries).toBe(9);
    expect(existsSync(`${root}/usr/lib/x`)).toBe(true);
    expect(existsSync(`${root}/usr/share/doc/readme`)).toBe(true);
    expect(lstatSync(`${root}/usr/readme2`).ino).toBe(lstatSync(`${root}/usr/share/doc/readme`).ino);
  });

  rootTest("device nodes: skipped, refused or created as asked", () => {
    const dev: TarWriteEntry = { path: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 };
    const r1 = freshRoot();
    expect(extract([dev], r1).skipped).toBe(1);
    expect(existsSync(`${r1}/dev/null`)).toBe(false);
    expect(() => extract([dev], freshRoot(), { refuseDevices: true })).toThrow(/extracting "dev\/null".*device nodes are not allowed/);
    const r3 = freshRoot();
    extract([dev, { path: "dev/sda", type: "block", devmajor: 8, devminor: 1, mode: 0o660, gid: 6 }], r3, { devices: true });
    const st = lstatSync(`${r3}/dev/null`);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0x103);
    expect(st.mode & 0o7777).toBe(0o666);
    const sda = lstatSync(`${r3}/dev/sda`);
    expect(sda.isBlockDevice() && sda.rdev === 0x801 && sda.gid === 6).toBe(true);
  });
});

describe("metadata", () => {
  rootTest("owners, setuid after chown, times, symlink owners, hardlinks, deferred directory modes", () => {
    const root = freshRoot();
    const stats = extract(
      [
        { path: "ro", type: "dir", mode: 0o555, uid: 1000, gid: 1000, mtime: 1234567890 },
        { path: "ro/sub", type: "dir", mode: 0o700, mtime: 1000000000 },
        { path: "ro/sub/suid", type: "file", data: text("#!/bin/sh\n"), mode: 0o6755, uid: 1000, gid: 1001, mtime: 1700000000.5 },
        { path: "ro/sub/link", type: "symlink", linkname: "suid", uid: 1002, gid: 1003, mtime: 1600000000 },
        { path: "ro/sub/hard", type: "hardlink", linkname: "ro/sub/suid" },
        { path: "ro/fifo", type: "fifo", mode: 0o620, uid: 5, gid: 6, mtime: 1500000000 },
      ],
      root,
    );
    expect(stats).toMatchObject({ entries: 6, files: 1, dirs: 2, symlinks: 1, hardlinks: 1, fifos: 1, bytes: 10 });
    const f = lstatSync(`${root}/ro/sub/suid`);
    expect([f.mode & 0o7777, f.uid, f.gid, f.mtimeMs]).toEqual([0o6755, 1000, 1001, 1700000000500]);
    expect(f.nlink).toBe(2);
    expect(lstatSync(`${root}/ro/sub/hard`).ino).toBe(f.ino);
    const l = lstatSync(`${root}/ro/sub/link`);
    expect([l.uid, l.gid, l.mtimeMs]).toEqual([1002, 1003, 1600000000000]);
    const d = lstatSync(`${root}/ro`);
    expect([d.mode & 0o7777, d.uid, d.gid, d.mtimeMs]).toEqual([0o555, 1000, 1000, 1234567890000]);
    expect(lstatSync(`${root}/ro/sub`).mtimeMs).toBe(1000000000000);
    const fifo = lstatSync(`${root}/ro/fifo`);
    expect([fifo.isFIFO(), fifo.mode & 0o7777, fifo.uid, fifo.gid]).toEqual([true, 0o620, 5, 6]);
  });

  rootTest("owners: false keeps the extracting user's ownership", () => {
    const root = freshRoot();
    extract([{ ...file("f"), uid: 1000, gid: 1000, mode: 0o4755 }], root, { owners: false });
    const st = lstatSync(`${root}/f`);
    expect([st.uid, st.mode & 0o7777]).toEqual([0, 0o4755]);
  });

  rootTest("extended attributes, security.capability surviving chown", () => {
    const root = freshRoot();
    // VFS_CAP_REVISION_2 with the effective bit, permitted = CAP_NET_RAW (13)
    const cap = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const xattrs = new Map([
      ["security.capability", cap],
      ["user.note", text("hello")],
    ]);
    const stats = extract([{ path: "ping", type: "file", data: text("x"), mode: 0o755, uid: 1000, gid: 1000, xattrs }, { path: "d", type: "dir", xattrs: new Map([["user.d", text("dir")]]) }], root);
    // the test directory's file system (/var/tmp) must keep extended attributes
    expect(stats.xattrsSkipped).toBeFalsy();
    const got = listXattrs(`${root}/ping`);
    expect(got.get("security.capability")).toEqual(cap);
    expect(new TextDecoder().decode(got.get("user.note")!)).toBe("hello");
    expect(new TextDecoder().decode(listXattrs(`${root}/d`).get("user.d")!)).toBe("dir");
    expect(lstatSync(`${root}/ping`).uid).toBe(1000);
  });

  rootTest("replacing: file over file, directory over empty directory, non-empty directory is an error", () => {
    const root = freshRoot();
    extract([file("a", "1"), hard("a2", "a"), dir("b"), dir("c"), file("c/x")], root);
    extract([file("a", "2"), file("b", "now a file")], root);
    expect(readFileSync(`${root}/a`, "utf8")).toBe("2");
    expect(readFileSync(`${root}/a2`, "utf8")).toBe("1"); // unlinked and recreated, not written in place
    expect(lstatSync(`${root}/b`).isFile()).toBe(true);
    expect(() => extract([file("c")], root)).toThrow(/extracting "c".*rmdir/);
  });

  rootTest("skip and onEntry", () => {
    const root = freshRoot();
    const seen: string[] = [];
    const stats = extract([dir("usr"), file("usr/share/doc/x"), file("usr/bin/y")], root, { skip: (p) => p.startsWith("usr/share/doc"), onEntry: (e) => seen.push(e.path) });
    expect(seen).toEqual(["usr", "usr/share/doc/x", "usr/bin/y"]);
    expect(stats.skipped).toBe(1);
    expect(existsSync(`${root}/usr/share`)).toBe(false);
  });
});

describe("TarWriter output in GNU tar", () => {
  rootTest("GNU tar --xattrs extracts it to the same tree as extractTar", () => {
    const entries: TarWriteEntry[] = [
      { path: "etc", type: "dir", mode: 0o755, mtime: 1000 },
      { path: "etc/shadow", type: "file", data: text("root:*:1::::::\n"), mode: 0o640, uid: 0, gid: 42, mtime: 2000 },
      { path: "usr/bin/ping", type: "file", data: text("\x7fELF"), mode: 0o4755, uid: 0, gid: 0, mtime: 3000.5, xattrs: new Map([["user.origin", text("test")]]) },
      { path: "usr/bin/ping6", type: "hardlink", linkname: "usr/bin/ping" },
      { path: `usr/share/${"long-".repeat(40)}name`, type: "symlink", linkname: "../../bin/ping", uid: 7, gid: 8, mtime: 4000 },
      { path: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666, mtime: 5000 },
      { path: "run/fifo", type: "fifo", mode: 0o600, uid: 1000, gid: 1000, mtime: 6000 },
    ];
    const tarFile = `${base}/writer.tar`;
    writeFileSync(tarFile, tarOf(entries));
    const ours = freshRoot();
    const theirs = freshRoot();
    extract(entries, ours, { devices: true });
    const p = Bun.spawnSync(["tar", "-C", theirs, "--xattrs", "--xattrs-include=*", "--same-owner", "--same-permissions", "--numeric-owner", "-xf", tarFile], { stderr: "pipe" });
    expect(p.stderr.toString()).toBe("");
    const list = (r: string) => new TextDecoder().decode(Bun.spawnSync(["find", r, "-mindepth", "1", "-printf", "%P|%y|%m|%U|%G|%s|%l|%n|%T@|%D\n"]).stdout).split("\n").filter(Boolean).map((l) => (/^[^|]*\|d\|/.test(l) ? l.replace(/\|[^|]*\|[^|]*$/, "") : l.replace(/\|[^|]*$/, ""))).sort();
    expect(list(ours)).toEqual(list(theirs));
    expect(new TextDecoder().decode(listXattrs(`${theirs}/usr/bin/ping`).get("user.origin")!)).toBe("test");
    expect(lstatSync(`${theirs}/dev/null`).rdev).toBe(0x103);
  });
});
