// tar reading (ustar, GNU, PAX, malformed archives) and writing (round trips,
// and GNU tar reading what TarWriter wrote).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { readTar, TarWriter, type TarEntry } from "../../../src/archive/tar.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";
import { needs } from "../../helpers.ts";
import { concat, fixChecksum, hasTool, putOctal, tarOf, text, tool } from "./fixtures.ts";

const tarTest = needs("GNU tar", hasTool("tar"));
const all = (b: Uint8Array) => [...readTar(b)];
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** One PAX record; its length prefix counts itself. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return `${len}${rest}`;
}

describe("round trips through TarWriter", () => {
  test("every entry type with owners, modes, times and device numbers", () => {
    const w = new TarWriter();
    w.addDir("usr", { mode: 0o755, mtime: 1000 });
    w.addFile("usr/bin/tool", text("#!/bin/sh\n"), { mode: 0o4755, uid: 0, gid: 0, uname: "root", gname: "root", mtime: 1700000000 });
    w.addFile("etc/shadow", text("x"), { mode: 0o640, uid: 0, gid: 42, gname: "shadow" });
    w.addSymlink("bin", "usr/bin");
    w.addHardlink("usr/bin/tool2", "usr/bin/tool");
    w.addDevice("dev/null", "char", 1, 3, { mode: 0o666 });
    w.addDevice("dev/sda", "block", 8, 0, { mode: 0o660, gid: 6 });
    w.addFifo("run/initctl", { mode: 0o600 });
    const es = all(w.finish());
    expect(es.map((e) => [e.path, e.type])).toEqual([
      ["usr", "dir"],
      ["usr/bin/tool", "file"],
      ["etc/shadow", "file"],
      ["bin", "symlink"],
      ["usr/bin/tool2", "hardlink"],
      ["dev/null", "char"],
      ["dev/sda", "block"],
      ["run/initctl", "fifo"],
    ]);
    expect(es[1]).toMatchObject({ mode: 0o4755, uname: "root", mtime: 1700000000, size: 10 });
    expect(str(es[1]!.data)).toBe("#!/bin/sh\n");
    expect(es[2]).toMatchObject({ gid: 42, gname: "shadow", mode: 0o640 });
    expect(es[3]!.linkname).toBe("usr/bin");
    expect(es[4]!.linkname).toBe("usr/bin/tool");
    expect(es[5]).toMatchObject({ devmajor: 1, devminor: 3, mode: 0o666 });
    expect(es[6]).toMatchObject({ devmajor: 8, devminor: 0, gid: 6 });
  });

  test("values that do not fit ustar go through PAX", () => {
    const long = `${"deep/".repeat(60)}file-with-a-long-name`;
    const xattrs = new Map([
      ["user.comment", text("hello")],
      ["security.capability", new Uint8Array([1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
      ["user.with=equals", new Uint8Array([0, 1, 2, 255])],
    ]);
    const es = all(
      tarOf([
        { path: long, type: "file", data: text("x"), uid: 3_000_000, gid: 4_000_000, uname: "a-very-long-user-name-longer-than-32", mtime: 1700000000.25, xattrs },
        { path: "ünïcødé/файл", type: "symlink", linkname: `${"../".repeat(40)}target` },
        { path: "dev/big", type: "char", devmajor: 3_000_000, devminor: 5 },
      ]),
    );
    expect(es[0]).toMatchObject({ path: long, uid: 3_000_000, gid: 4_000_000, uname: "a-very-long-user-name-longer-than-32", mtime: 1700000000.25 });
    expect([...es[0]!.xattrs.keys()].sort()).toEqual(["security.capability", "user.comment", "user.with=equals"]);
    expect(es[0]!.xattrs.get("security.capability")).toEqual(xattrs.get("security.capability")!);
    expect(es[0]!.xattrs.get("user.with=equals")).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(es[1]).toMatchObject({ path: "ünïcødé/файл", linkname: `${"../".repeat(40)}target` });
    expect(es[2]!.devmajor).toBe(3_000_000);
  });

  test("names of 101-256 bytes use the ustar prefix field when they can", () => {
    const name = `${"a".repeat(120)}/${"b".repeat(90)}`;
    const tar = tarOf([{ path: name, type: "file", data: text("1") }]);
    expect(str(tar.subarray(156, 157))).toBe("0"); // no PAX header in front
    expect(all(tar)[0]!.path).toBe(name);
  });

  test("a sink receives the archive in chunks", () => {
    const chunks: Uint8Array[] = [];
    const w = new TarWriter((c) => chunks.push(c));
    w.addFile("a", text("abc"));
    w.finish();
    expect(all(concat(chunks))[0]!.path).toBe("a");
    expect(concat(chunks).length).toBe(512 * 4);
  });

  test("the output is deterministic", () => {
    const make = () => tarOf([{ path: "x", type: "file", data: text("1"), mtime: 5, xattrs: new Map([["user.a", text("b")]]) }]);
    expect(Buffer.from(make()).equals(Buffer.from(make()))).toBe(true);
  });
});

describe("GNU tar interoperability", () => {
  tarTest("GNU tar lists and extracts what TarWriter wrote", () => {
    const dir = mkdtempSync(`${tmpdir()}/spawnctl-tar-`);
    try {
      const long = `${"d".repeat(150)}/${"f".repeat(150)}`;
      const tar = tarOf([
        { path: "dir", type: "dir", mode: 0o750, mtime: 1000 },
        { path: long, type: "file", data: text("long"), mode: 0o600, mtime: 2000 },
        { path: "link", type: "symlink", linkname: "dir" },
      ]);
      writeFileSync(`${dir}/a.tar`, tar);
      const listing = str(tool(["tar", "--numeric-owner", "-tvf", `${dir}/a.tar`]));
      expect(listing).toContain("drwxr-x---");
      expect(listing).toContain(long);
      expect(listing).toContain("link -> dir");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tarTest("reading GNU tar output: gnu (L/K long names) and posix (PAX) formats", () => {
    const dir = mkdtempSync(`${tmpdir()}/spawnctl-tar-`);
    try {
      const long = `${"x".repeat(120)}/${"y".repeat(130)}`;
      mkdirSync(`${dir}/src/${long.split("/")[0]}`, { recursive: true });
      writeFileSync(`${dir}/src/${long}`, "data");
      symlinkSync(`${"t".repeat(150)}`, `${dir}/src/longlink`);
      for (const format of ["gnu", "posix", "ustar", "v7"]) {
        if (format === "ustar" || format === "v7") {
          // ustar/v7 cannot hold these names: GNU tar refuses them, which is fine.
          continue;
        }
        const t = tool(["tar", "-C", `${dir}/src`, `--format=${format}`, "--sort=name", "-cf", "-", "."]);
        const es = all(t);
        const f = es.find((e) => e.path === long);
        expect(f?.type).toBe("file");
        expect(str(f!.data)).toBe("data");
        expect(es.find((e) => e.path === "longlink")?.linkname).toBe("t".repeat(150));
        expect(es[0]!.path).toBe(".");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("malformed archives", () => {
  const good = () => tarOf([{ path: "a", type: "file", data: text("hello") }, { path: "b", type: "file", data: new Uint8Array(1000) }]);

  test("a bad header checksum names the entry", () => {
    const t = good();
    t[5] ^= 1; // inside the name of "a"
    expect(() => all(t)).toThrow(/checksum of entry .* does not match/);
  });

  test("a size larger than the archive is truncation, not a huge allocation", () => {
    const t = good();
    putOctal(t, 124, 12, 0o77777777777);
    fixChecksum(t, 0);
    expect(() => all(t)).toThrow(/claims 8589934591 bytes .*\(truncated/);
    // base-256 sizes beyond 2^53 are refused outright
    const u = good();
    u.set([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 124);
    fixChecksum(u, 0);
    expect(() => all(u)).toThrow(/too large/);
  });

  test("truncation inside data or inside a header", () => {
    const t = good();
    expect(() => all(t.subarray(0, 512 + 512 + 100))).toThrow(/truncated/);
    expect(() => all(t.subarray(0, 512 + 512 + 300))).toThrow(/truncated/);
    expect(() => all(t.subarray(0, 512 * 2 + 200))).toThrow(SpawnctlError);
  });

  test("a missing end-of-archive marker is accepted", () => {
    const t = good();
    expect(all(t.subarray(0, t.length - 1024)).length).toBe(2);
  });

  test("non-octal numbers, sparse and multi-volume entries, unknown types", () => {
    const t = good();
    t.set(text("12x4"), 124);
    fixChecksum(t, 0);
    expect(() => all(t)).toThrow(/not an octal number/);
    for (const [flag, msg] of [["S", /sparse/], ["M", /multi-volume/], ["Z", /unknown type/]] as const) {
      const u = good();
      u[156] = flag.charCodeAt(0);
      fixChecksum(u, 0);
      expect(() => all(u)).toThrow(msg);
    }
    const pax = tarOf([{ path: "s", type: "file", data: text("x"), xattrs: new Map() }]);
    // A PAX header announcing GNU sparse data
    const rec = text(paxRecord("GNU.sparse.major", "1"));
    const p = tarOf([{ path: "PaxHeaders/s", type: "file", data: rec }, { path: "s", type: "file", data: text("x") }]);
    p[156] = "x".charCodeAt(0);
    fixChecksum(p, 0);
    expect(() => all(p)).toThrow(/sparse/);
    expect(all(pax).length).toBe(1);
  });

  test("malformed PAX records", () => {
    for (const rec of ["99 path=x\n", "x path=y\n", "10 pathxx\n", "9 path=y"]) {
      const p = tarOf([{ path: "PaxHeaders/s", type: "file", data: text(rec) }, { path: "s", type: "file", data: text("x") }]);
      p[156] = "x".charCodeAt(0);
      fixChecksum(p, 0);
      expect(() => all(p)).toThrow(/PAX extended header record/);
    }
  });

  test("GNU base-256 numbers, negative mtimes, and the PAX global header", () => {
    const t = tarOf([{ path: "f", type: "file", data: text("1"), uid: 5 }]);
    t.set([0x80, 0, 0, 0, 0, 0, 0, 0x01], 108); // uid 1 in base-256
    t.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], 136); // mtime -2
    fixChecksum(t, 0);
    expect(all(t)[0]).toMatchObject({ uid: 1, mtime: -2 });
    const g = tarOf([
      { path: "PaxHeaders/global", type: "file", data: text(paxRecord("uname", "alice")) },
      { path: "one", type: "file", data: text("1") },
      { path: "two", type: "file", data: text("2"), uname: "bob" },
    ]);
    g[156] = "g".charCodeAt(0);
    fixChecksum(g, 0);
    const es = all(g);
    expect(es.map((e) => e.uname)).toEqual(["alice", "alice"]); // the global value overrides header fields
  });

  test("LIBARCHIVE.xattr records (URL-encoded name, base64 value)", () => {
    const rec = paxRecord("LIBARCHIVE.xattr.user.a%3Db", Buffer.from([1, 2, 3, 4, 5]).toString("base64"));
    const p = tarOf([{ path: "PaxHeaders/s", type: "file", data: text(rec) }, { path: "s", type: "file", data: text("x") }]);
    p[156] = "x".charCodeAt(0);
    fixChecksum(p, 0);
    expect(all(p)[0]!.xattrs.get("user.a=b")).toEqual(new Uint8Array([1, 2, 3, 4, 5]));
  });
});

test("entries are subarrays of the input, not copies", () => {
  const t = tarOf([{ path: "big", type: "file", data: new Uint8Array(100_000).fill(7) }]);
  const e = all(t)[0] as TarEntry;
  expect(e.data.buffer).toBe(t.buffer);
  expect(e.data.byteOffset).toBe(t.byteOffset + 512);
});
