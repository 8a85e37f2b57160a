// deb822 control syntax: stanzas, continuation lines, case-insensitive names,
// comments, and speed on a Packages-sized input.
import { describe, expect, test } from "bun:test";
import { parseControl } from "../../../src/bootstrap/deb822.ts";

const plain = (records: Array<Record<string, string>>) => records.map((r) => ({ ...r }));

describe("parseControl", () => {
  test("splits stanzas at blank and whitespace-only lines", () => {
    const text = "Package: a\nVersion: 1\n\n\nPackage: b\nVersion: 2\n \t\nPackage: c\n";
    expect(plain(parseControl(text))).toEqual([
      { Package: "a", Version: "1" },
      { Package: "b", Version: "2" },
      { Package: "c" },
    ]);
  });

  test("joins continuation lines with newlines, minus their first blank", () => {
    const text = "Description: short\n long line one\n .\n   indented\nSHA256:\n abc 12 main/Packages\n def 34 main/Packages.gz\n";
    const [s] = parseControl(text);
    expect(s!.Description).toBe("short\nlong line one\n.\n  indented");
    expect(s!.SHA256).toBe("\nabc 12 main/Packages\ndef 34 main/Packages.gz");
  });

  test("field names are case-insensitive and keep the first spelling seen", () => {
    const [a, b] = parseControl("Package: a\nPRE-DEPENDS: x\n\npackage: b\npre-depends: y\n");
    expect(plain([a!, b!])).toEqual([
      { Package: "a", "PRE-DEPENDS": "x" },
      { Package: "b", "PRE-DEPENDS": "y" },
    ]);
  });

  test("trims values, accepts CRLF, skips comments and a missing final newline", () => {
    const text = "# a comment\r\nPackage:   a  \r\n# another\r\nVersion:1\r\n\r\nPackage: b";
    expect(plain(parseControl(text))).toEqual([{ Package: "a", Version: "1" }, { Package: "b" }]);
  });

  test("records have no prototype, so a field named like an Object method is safe", () => {
    const [s] = parseControl("Constructor: x\nToString: y\n");
    expect(s!.Constructor).toBe("x");
    expect(Object.getPrototypeOf(s)).toBeNull();
  });

  test("`only` keeps the listed fields, in the listed spelling, and skips the rest with their continuation lines", () => {
    const text = "package: a\nDescription: x\n more\nPRE-DEPENDS: b\nDepends: c\n\nPackage: d\nTag: t\n";
    expect(plain(parseControl(text, "x", ["Package", "Pre-Depends"]))).toEqual([{ Package: "a", "Pre-Depends": "b" }, { Package: "d" }]);
  });

  test("empty input has no stanzas", () => {
    expect(parseControl("")).toEqual([]);
    expect(parseControl("\n\n  \n")).toEqual([]);
  });

  test("errors name the input and the line", () => {
    expect(() => parseControl("Package: a\nnot a field\n", "test Packages")).toThrow('parsing test Packages: line 2: expected "Field: value", got "not a field"');
    expect(() => parseControl(" continued\n", "x")).toThrow("parsing x: line 1: continuation line outside a field");
    expect(() => parseControl("Package: a\npackage: b\n", "x")).toThrow("parsing x: line 2: field Package appears twice in one stanza");
    expect(() => parseControl(": value\n", "x")).toThrow("line 1: expected");
  });

  test("parses a 50 MB Packages-like file in well under two seconds", () => {
    const stanza = (i: number) =>
      `Package: pkg${i}\nVersion: 1.${i}-1\nInstalled-Size: ${i}\nMaintainer: Someone <someone@example.invalid>\nArchitecture: amd64\n` +
      `Depends: libc6 (>= 2.34), libfoo${i % 100} | libbar, zlib1g (>= 1:1.2)\nDescription: package ${i}\n a longer description of package ${i}\n .\n which goes on for a while\n` +
      `Description-md5: 0123456789abcdef0123456789abcdef\nSection: utils\nPriority: optional\nFilename: pool/main/p/pkg${i}/pkg${i}_1.${i}-1_amd64.deb\n` +
      `Size: ${1000 + i}\nMD5sum: 0123456789abcdef0123456789abcdef\nSHA256: ${"0123456789abcdef".repeat(4)}\n\n`;
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < 50e6; i++) {
      const s = stanza(i);
      parts.push(s);
      size += s.length;
    }
    const text = parts.join("");
    const t = performance.now();
    const records = parseControl(text);
    const ms = performance.now() - t;
    expect(records.length).toBe(parts.length);
    expect(records[records.length - 1]!.Package).toBe(`pkg${parts.length - 1}`);
    // bookworm's real 50 MB Packages parses in ~0.3 s here; the bound leaves room for slow CI.
    expect(ms).toBeLessThan(2000);
  });
});
