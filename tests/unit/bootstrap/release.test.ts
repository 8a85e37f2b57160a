// Release files: fields, the SHA256 table, dates and Valid-Until.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { checkValidUntil, formatDuration, parseRelease, parseRfc2822 } from "../../../src/bootstrap/release.ts";

/** The Release part of the checked-in bookworm InRelease (its signature is tested in pgp.test.ts). */
function bookwormRelease(): string {
  const text = readFileSync(`${import.meta.dir}/fixtures/bookworm-InRelease`, "utf8");
  return text.split("\n\n").slice(1).join("\n\n").split("-----BEGIN PGP SIGNATURE-----")[0]!;
}

const SMALL = `Origin: Debian
Suite: unstable
Codename: sid
Date: Fri, 30 Oct 2026 08:12:01 UTC
Valid-Until: Fri, 06 Nov 2026 08:12:01 UTC
Architectures: amd64 arm64
Components: main contrib
SHA256:
 ${"a".repeat(64)}  1234 main/binary-amd64/Packages
 ${"B".repeat(64)}   567 main/binary-amd64/Packages.xz
`;

describe("parseRelease", () => {
  test("bookworm: suite, codename, by-hash, arch-all rule and the file table", () => {
    const r = parseRelease(bookwormRelease(), "bookworm InRelease");
    expect(r.suite).toBe("oldstable");
    expect(r.codename).toBe("bookworm");
    expect(r.date).toEqual(new Date("2026-07-11T10:16:37Z"));
    expect(r.validUntil).toBeUndefined();
    expect(r.acquireByHash).toBe(true);
    expect(r.noSupportForArchitectureAll).toBe(true);
    expect(r.architectures).toEqual(["all", "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "s390x"]);
    expect(r.components).toEqual(["main", "contrib", "non-free-firmware", "non-free"]);
    expect(r.files.get("main/binary-amd64/Packages.gz")).toEqual({ size: 12084798, sha256: "6777ea16514725f9427f48c240d92e0a6b8496138e37a1491d8597e66774e309" });
    expect(r.files.get("main/binary-amd64/Packages")).toEqual({ size: 50060337, sha256: "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f" });
    // the MD5Sum table is not used: only SHA256 entries, with lower-case hashes
    expect([...r.files.values()].every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
  });

  test("a small Release: Valid-Until, hashes lower-cased, absent fields default", () => {
    const r = parseRelease(SMALL);
    expect(r.validUntil).toEqual(new Date("2026-11-06T08:12:01Z"));
    expect(r.acquireByHash).toBe(false);
    expect(r.noSupportForArchitectureAll).toBe(false);
    expect(r.files.get("main/binary-amd64/Packages.xz")).toEqual({ size: 567, sha256: "b".repeat(64) });
    expect(r.files.size).toBe(2);
    // field names are case-insensitive
    expect(parseRelease(`${SMALL}acquire-by-hash: Yes\n`).acquireByHash).toBe(true);
  });

  test("errors name the file and the problem", () => {
    expect(() => parseRelease("Suite: x\n", "sid Release")).toThrow("parsing sid Release: it has no SHA256 field, so its files cannot be verified");
    expect(() => parseRelease(SMALL.replace("  1234", "  12x4"), "sid Release")).toThrow("parsing sid Release: malformed SHA256 line");
    expect(() => parseRelease(SMALL.replace("Fri, 06 Nov", "Fri, 06 Nox"), "sid Release")).toThrow('parsing sid Release: Valid-Until is not a date: "Fri, 06 Nox 2026 08:12:01 UTC"');
    expect(() => parseRelease(`${SMALL}\nSuite: other\n`, "sid Release")).toThrow("expected one stanza, found 2");
  });
});

describe("dates and Valid-Until", () => {
  test("RFC 2822 dates with the zones archives use", () => {
    expect(parseRfc2822("Sat, 11 Jul 2026 10:16:37 UTC")).toEqual(new Date("2026-07-11T10:16:37Z"));
    expect(parseRfc2822("Sat, 11 Jul 2026 10:16:37 GMT")).toEqual(new Date("2026-07-11T10:16:37Z"));
    expect(parseRfc2822("Sat, 11 Jul 2026 12:16:37 +0200")).toEqual(new Date("2026-07-11T10:16:37Z"));
    expect(parseRfc2822("1 Jan 2026 00:00:00 -0130")).toEqual(new Date("2026-01-01T01:30:00Z"));
    expect(parseRfc2822("2026-07-11 10:16:37")).toBeUndefined();
  });

  test("an expired Release is refused with apt's wording, unless allowed", () => {
    const r = parseRelease(SMALL);
    const now = new Date("2026-11-29T09:39:30Z");
    expect(() => checkValidUntil(r, now, false)).toThrow("Release file for sid is expired (invalid since 23d 1h 27min)");
    expect(() => checkValidUntil(r, now, true)).not.toThrow();
    expect(() => checkValidUntil(r, new Date("2026-11-06T08:12:00Z"), false)).not.toThrow();
    expect(() => checkValidUntil(parseRelease(bookwormRelease()), new Date("2099-01-01T00:00:00Z"), false)).not.toThrow();
  });

  test("durations read like apt's", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(65)).toBe("1min 5s");
    expect(formatDuration(3600 + 27 * 60 + 5)).toBe("1h 27min 5s");
    expect(formatDuration(23 * 86400 + 3600 + 27 * 60 + 5)).toBe("23d 1h 27min");
  });
});
