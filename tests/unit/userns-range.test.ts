// Choosing a UID range for --private-users: the pure rules, and pick with a
// private lock directory (flock needs no root).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  BASE_MAX,
  BASE_MIN,
  PICK_TRIES,
  anyBigId,
  chooseRange,
  idsInUse,
  lockBase,
  nameCandidate,
  pickCandidates,
  pickRange,
  randomCandidate,
  validBase,
} from "../../src/userns/range.ts";
import { SpawnctlError } from "../../src/util/errors.ts";

const scratch = mkdtempSync(`${tmpdir()}/spawnctl-range-`);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("validBase", () => {
  test.each([
    [0x80000, true],
    [524288 + 65536, true],
    [0x6fff0000, true],
    [0, false],
    [65536, false],
    [0x70000, false],
    [0x80001, false],
    [0x6fff0000 + 65536, false],
    [0xfffe0000, false],
    [524288.5, false],
    [-524288, false],
  ])("%d -> %p", (n, ok) => expect(validBase(n)).toBe(ok));
});

describe("nameCandidate", () => {
  test("stable, valid, and different for different names", () => {
    const a = nameCandidate("web");
    expect(nameCandidate("web")).toBe(a);
    expect(validBase(a)).toBe(true);
    const bases = new Set(["web", "db", "cache", "mail", "build-1", "build-2", "ünïcode"].map(nameCandidate));
    for (const b of bases) expect(validBase(b)).toBe(true);
    expect(bases.size).toBe(7);
  });
  test("spreads over the whole allowed set", () => {
    let lo = Infinity;
    let hi = 0;
    for (let i = 0; i < 2000; i++) {
      const b = nameCandidate(`machine-${i}`);
      expect(validBase(b)).toBe(true);
      lo = Math.min(lo, b);
      hi = Math.max(hi, b);
    }
    expect(lo).toBeLessThan(BASE_MIN + (BASE_MAX - BASE_MIN) / 20);
    expect(hi).toBeGreaterThan(BASE_MAX - (BASE_MAX - BASE_MIN) / 20);
  });
  test("random candidates are valid", () => {
    for (let i = 0; i < 1000; i++) expect(validBase(randomCandidate())).toBe(true);
  });
});

describe("idsInUse", () => {
  const passwd = [
    "root:x:0:0:root:/root:/bin/bash",
    "# a comment 524300",
    "nspawnuser:x:524300:100::/:/bin/false",
    "groupie:x:1000:589830::/:/bin/false",
    "+nisuser::::::",
    "broken line",
    "",
  ].join("\n");
  const group = ["root:x:0:", "big:x:655360:", "edge:x:589823:"].join("\n");
  test("users, primary groups and groups inside the range", () => {
    expect(idsInUse(passwd, "", 524288, 65536)).toEqual(["user nspawnuser (uid 524300)"]);
    expect(idsInUse(passwd, group, 589824, 65536)).toEqual(["user groupie (gid 589830)"]);
    expect(idsInUse(passwd, group, 655360, 65536)).toEqual(["group big (gid 655360)"]);
  });
  test("the range's edges", () => {
    expect(idsInUse("", group, 524288, 65536)).toEqual(["group edge (gid 589823)"]); // base + 65535
    expect(idsInUse("", group, 589824, 65536)).toEqual([]);
    expect(idsInUse(passwd, group, 0x100000, 65536)).toEqual([]);
  });
});

describe("anyBigId", () => {
  // what it stands for: the regular expression it replaces
  const big = /:\d{6,}(:|$)/m;
  test("agrees with /:\\d{6,}(:|$)/m", () => {
    const cases = [
      "", "123456", "a:123456", "a:12345", "a:123456:", "a:123456\nb", "a:1234567:x", "a:12345a6:", "a:x123456:",
      "123456:a", "a:b\n123456:c", "a:\n123456", "root:x:0:0::/root:/bin/sh\nu:x:524300:100::/:/bin/false",
      "g:x:655360:", "g:x:65536:", "a::123456", "a:123456 :b", "a:1234567890123",
    ];
    for (const c of cases) expect([c, anyBigId(c)]).toEqual([c, big.test(c)]);
    // and random texts of digits, colons, newlines and letters
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const alphabet = "0123456789::\nax";
    for (let i = 0; i < 2000; i++) {
      let t = "";
      const n = Math.floor(rnd() * 24);
      for (let j = 0; j < n; j++) t += alphabet[Math.floor(rnd() * alphabet.length)];
      expect([t, anyBigId(t)]).toEqual([t, big.test(t)]);
    }
  });
});

describe("pickCandidates", () => {
  const rnd = (() => {
    let i = 0;
    return () => BASE_MIN + 65536 * ++i;
  })();
  test("owner base, then the name's, then random ones, PICK_TRIES in all", () => {
    const c = [...pickCandidates(0x100000, "web", rnd)];
    expect(c[0]).toBe(0x100000);
    expect(c[1]).toBe(nameCandidate("web"));
    expect(c.length).toBe(PICK_TRIES);
    expect(c[2]).toBe(BASE_MIN + 65536);
  });
  test("an invalid owner base is passed over; no name, no hashed candidate", () => {
    const c = [...pickCandidates(0, "", () => BASE_MIN)];
    expect(c.length).toBe(PICK_TRIES - 1);
    expect(c.every((b) => b === BASE_MIN)).toBe(true);
  });
});

describe("chooseRange without pick", () => {
  test("identity and no", () => {
    expect(chooseRange({ mode: "identity" }, scratch, "x")).toEqual({ shift: 0, range: 65536 });
    expect(chooseRange({ mode: "no" }, scratch, "x")).toEqual({ shift: 0, range: 0 });
  });
  test("fixed ranges are taken as given, within 32 bits", () => {
    expect(chooseRange({ mode: "fixed", base: 1000, range: 100 }, scratch, "x")).toEqual({ shift: 1000, range: 100 });
    expect(chooseRange({ mode: "fixed", base: 0xffffffff - 65536, range: 65536 }, scratch, "x").shift).toBe(0xffffffff - 65536);
    expect(() => chooseRange({ mode: "fixed", base: 0xffffffff - 65535, range: 65536 }, scratch, "x")).toThrow(/beyond 4294967295/);
    expect(() => chooseRange({ mode: "fixed", base: 524288, range: 0 }, scratch, "x")).toThrow(SpawnctlError);
  });
  test("yes reads the base off the tree's root (our own directory here)", () => {
    const uid = process.getuid!();
    const r = chooseRange({ mode: "yes" }, scratch, "x");
    expect(r).toEqual({ shift: (uid & 0xffff0000) >>> 0, range: 65536 });
    expect(() => chooseRange({ mode: "yes" }, `${scratch}/missing`, "x")).toThrow(/missing/);
  });
});

describe("pickRange with a private lock directory", () => {
  const lockDir = `${scratch}/locks`;
  const tree = scratch; // owned by us: base 0 for root, not a valid candidate
  test("the name's base first; while it is held, another; after release, the same again", () => {
    const a = pickRange(tree, "web", { lockDir, passwd: "", group: "" });
    expect(a.shift).toBe(nameCandidate("web"));
    expect(a.range).toBe(65536);
    expect(readdirSync(lockDir)).toEqual([String(a.shift)]);
    const b = pickRange(tree, "web", { lockDir, passwd: "", group: "" });
    expect(b.shift).not.toBe(a.shift);
    expect(validBase(b.shift)).toBe(true);
    b.lock.release();
    a.lock.release();
    expect(readdirSync(lockDir)).toEqual([]);
    const c = pickRange(tree, "web", { lockDir, passwd: "", group: "" });
    expect(c.shift).toBe(a.shift);
    c.lock.release();
  });
  test("a base with a host user in it is passed over and its lock dropped", () => {
    const base = nameCandidate("mail");
    const r = pickRange(tree, "mail", { lockDir, passwd: `squatter:x:${base + 7}:0::/:/bin/false\n`, group: "" });
    expect(r.shift).not.toBe(base);
    expect(readdirSync(lockDir)).toEqual([String(r.shift)]);
    r.lock.release();
  });
  test("held() hands on the lock file and fd; release is idempotent", () => {
    const l = lockBase(BASE_MIN, lockDir)!;
    expect(l.held()).toEqual([{ fd: expect.any(Number), path: `${lockDir}/${BASE_MIN}` }]);
    expect(lockBase(BASE_MIN, lockDir)).toBeUndefined();
    l.release();
    l.release();
    expect(l.held()).toEqual([]);
  });
  test("gives up with a sentence after PICK_TRIES taken candidates", () => {
    const l = lockBase(BASE_MIN, lockDir)!;
    try {
      expect(() => pickRange(tree, "", { lockDir, passwd: "", group: "", random: () => BASE_MIN })).toThrow(/Failed to pick a UID\/GID range/);
    } finally {
      l.release();
    }
  });
});
