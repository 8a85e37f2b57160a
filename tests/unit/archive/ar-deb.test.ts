// ar archives (GNU and BSD name forms, malformed headers), decompression by
// magic number, and .deb packages built from parts.
import { describe, expect, test } from "bun:test";
import { readAr } from "../../../src/archive/ar.ts";
import { decompress, decompressAsync, sniffCompression } from "../../../src/archive/decompress.ts";
import { readDeb, readDebAsync } from "../../../src/archive/deb.ts";
import { needs } from "../../helpers.ts";
import { concat, gzip, hasTool, makeAr, makeDeb, tarOf, text, tool, zstd } from "./fixtures.ts";

const xzTest = needs("the xz command (xz-utils)", hasTool("xz"));
const str = (b: Uint8Array) => new TextDecoder().decode(b);

describe("ar", () => {
  test("plain, GNU-terminated and odd-sized members keep their order and bytes", () => {
    const ar = makeAr([
      { rawName: "debian-binary", data: text("2.0\n") },
      { rawName: "odd/", data: text("abc") },
      { rawName: "even", data: text("abcd") },
    ]);
    expect(readAr(ar).map((m) => [m.name, str(m.data)])).toEqual([
      ["debian-binary", "2.0\n"],
      ["odd", "abc"],
      ["even", "abcd"],
    ]);
  });

  test("GNU symbol and long-name tables, BSD #1/ names", () => {
    const table = text("a-very-long-member-name-indeed.o/\nanother-long-member-name.o/\n");
    const ar = makeAr([
      { rawName: "/", data: new Uint8Array(8) },
      { rawName: "//", data: table },
      { rawName: "/0", data: text("first") },
      { rawName: "/34", data: text("second") },
      { rawName: "#1/20", data: concat([text("bsd-long-name-20byte"), text("payload")]) },
    ]);
    expect(readAr(ar).map((m) => [m.name, str(m.data)])).toEqual([
      ["a-very-long-member-name-indeed.o", "first"],
      ["another-long-member-name.o", "second"],
      ["bsd-long-name-20byte", "payload"],
    ]);
  });

  test("malformed archives fail with what is wrong", () => {
    expect(() => readAr(text("not an archive at all"))).toThrow(/magic is missing/);
    const m = [{ rawName: "x", data: text("1234") }];
    expect(() => readAr(makeAr(m, { badTerminator: true }))).toThrow(/does not end with/);
    expect(() => readAr(makeAr(m, { sizeOverride: 99999 }))).toThrow(/claims 99999 bytes .*truncated/);
    expect(() => readAr(makeAr(m).subarray(0, 30))).toThrow(/truncated/);
    const bad = makeAr(m);
    bad.set(text("12a4      "), 8 + 48);
    expect(() => readAr(bad)).toThrow(/invalid size field/);
    expect(() => readAr(makeAr([{ rawName: "/5", data: text("x") }]))).toThrow(/long-name table that is missing/);
  });
});

describe("decompress", () => {
  const data = text("hello ".repeat(1000));
  test("gzip, zstd and plain data by magic", () => {
    expect(str(decompress(gzip(data)))).toBe(str(data));
    expect(str(decompress(zstd(data)))).toBe(str(data));
    expect(decompress(data)).toBe(data);
    expect(sniffCompression(gzip(data))).toBe("gzip");
  });
  xzTest("xz, sync and with Workers", async () => {
    const x = tool(["xz", "-c"], data);
    expect(sniffCompression(x)).toBe("xz");
    expect(str(decompress(x))).toBe(str(data));
    expect(str(await decompressAsync(x, "x.xz", { workers: 2 }))).toBe(str(data));
  });
  test("bzip2 and legacy lzma are refused; corrupt data names the input", () => {
    expect(() => decompress(text("BZh91AY&SY..."), "Packages.bz2")).toThrow(/decompressing Packages.bz2: bzip2 compression is not supported/);
    expect(() => decompress(new Uint8Array([0x5d, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]), "data.tar.lzma")).toThrow(/legacy .lzma/);
    expect(() => decompress(new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3]), "x.gz")).toThrow(/decompressing x.gz \(gzip\)/);
    expect(() => decompress(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]), "x.zst")).toThrow(/decompressing x.zst \(zstd\)/);
    expect(() => decompress(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]), "x.xz")).toThrow(/decompressing x.xz \(xz\): (?!decompressing)/);
  });
});

describe("deb", () => {
  const control = tarOf([
    { path: "./", type: "dir" },
    { path: "./control", type: "file", data: text("Package: toy\nVersion: 1.0\n") },
    { path: "./postinst", type: "file", data: text("#!/bin/sh\n"), mode: 0o755 },
    { path: "./md5sums", type: "file", data: text("0123  usr/bin/toy\n") },
  ]);
  const data = tarOf([
    { path: "./", type: "dir" },
    { path: "./usr/", type: "dir" },
    { path: "./usr/bin/toy", type: "file", data: text("toy"), mode: 0o755 },
  ]);

  for (const [cc, dc] of [["gz", "xz"], ["xz", "zst"], ["zst", "gz"], ["", ""]] as const) {
    const needsXz = cc === "xz" || dc === "xz";
    (needsXz ? xzTest : test)(`control.tar${cc ? `.${cc}` : ""} + data.tar${dc ? `.${dc}` : ""}`, () => {
      const deb = readDeb(makeDeb(control, data, { controlComp: cc, dataComp: dc }), { name: "toy.deb" });
      expect([...deb.control.keys()].sort()).toEqual(["control", "md5sums", "postinst"]);
      expect(str(deb.control.get("control")!)).toContain("Package: toy");
      expect([...deb.data()].map((e) => e.path)).toEqual([".", "usr", "usr/bin/toy"]);
      expect(deb.dataMember.name).toBe(`data.tar${dc ? `.${dc}` : ""}`);
    });
  }

  xzTest("readDebAsync decompresses data.tar up front", async () => {
    const deb = await readDebAsync(makeDeb(control, data), { workers: 2 });
    expect([...deb.data()].length).toBe(3);
  });

  test("signature members are allowed, anything else is refused", () => {
    const sig = { rawName: "_gpgorigin", data: text("sig") };
    expect(readDeb(makeDeb(control, data, { dataComp: "gz", extra: [sig] })).control.size).toBe(3);
    expect(() => readDeb(makeDeb(control, data, { dataComp: "gz", extra: [{ rawName: "evil.sh", data: text("x") }] }), { name: "x.deb" })).toThrow(/reading x.deb: unexpected member "evil.sh"/);
    expect(() => readDeb(makeAr([{ rawName: "control.tar.gz", data: gzip(control) }]))).toThrow(/first member is "control.tar.gz"/);
    expect(() => readDeb(makeAr([{ rawName: "debian-binary", data: text("3.0\n") }]))).toThrow(/format version "3.0"/);
    expect(() => readDeb(makeAr([{ rawName: "debian-binary", data: text("2.0\n") }, { rawName: "control.tar.gz", data: gzip(control) }]))).toThrow(/data.tar member is missing/);
    expect(() => readDeb(text("!<arch>\nbroken"), { name: "b.deb" })).toThrow(/reading b.deb: not a valid .deb/);
  });
});
