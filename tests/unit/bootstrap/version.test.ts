// Debian version comparison: a fixed table of dpkg's answers, and (when dpkg
// is installed) a few hundred generated pairs checked against the real thing.
import { describe, expect, test } from "bun:test";
import { compareVersions, satisfiesVersion } from "../../../src/bootstrap/version.ts";
import { needs } from "../../helpers.ts";

// Each row was checked with `dpkg --compare-versions`.
const KNOWN: Array<[string, string, number]> = [
  ["1.0", "1.0", 0],
  ["1.0", "1.0-0", 0], // a missing revision is "0"
  ["0:1.0", "1.0", 0], // a missing epoch is 0
  ["1:2.3", "1:2.3-0", 0],
  ["007", "7", 0], // digit runs compare as numbers
  ["1.0", "1.00", 0],
  ["1.0~rc1", "1.0", -1], // '~' sorts before the end
  ["1.0~", "1.0", -1],
  ["1.0~~", "1.0~", -1],
  ["1.0~~a", "1.0~~", 1],
  ["1.0~beta", "1.0~alpha", 1],
  ["1.0", "1.0+b1", -1],
  ["1.0", "1.0a", -1], // the end sorts before letters
  ["1.0a", "1.0+", -1], // letters sort before non-letters
  ["1.0.", "1.0", 1],
  ["1.0-a", "1.0-A", 1], // letters by ASCII
  ["1:0.9", "2.0", 1], // the epoch wins
  ["10:1", "9:2", 1],
  ["2:1.0", "1:9.9", 1],
  ["2.30-1", "2.4-1", 1],
  ["1.0-1", "1.0-1~bpo1", 1],
  ["1.0-1", "1.0-1.1", -1],
  ["1-2-3", "1-2", 1], // the revision starts after the last hyphen
  ["1.2.3-4ubuntu1", "1.2.3-4", 1],
  ["1.0-0ubuntu0.1", "1.0-0", 1],
  ["2.36-9+deb12u4", "2.36-9+deb12u10", -1],
  ["3.0.11-1~deb12u2", "3.0.11-1", -1],
  ["5.2.15-2+b2", "5.2.15-2", 1],
  ["1.2+dfsg", "1.2", 1],
];

describe("compareVersions", () => {
  test.each(KNOWN)("%s vs %s", (a, b, want) => {
    expect(compareVersions(a, b)).toBe(want);
    expect(compareVersions(b, a)).toBe(want === 0 ? 0 : -want);
  });

  test("satisfiesVersion implements the five relations", () => {
    expect(satisfiesVersion("1.0", "<<", "1.1")).toBe(true);
    expect(satisfiesVersion("1.1", "<<", "1.1")).toBe(false);
    expect(satisfiesVersion("1.1", "<=", "1.1")).toBe(true);
    expect(satisfiesVersion("1.1-0", "=", "1.1")).toBe(true);
    expect(satisfiesVersion("2.36-9", ">=", "2.34")).toBe(true);
    expect(satisfiesVersion("1.0~rc1", ">=", "1.0")).toBe(false);
    expect(satisfiesVersion("1.0+b1", ">>", "1.0")).toBe(true);
  });
});

/** A random valid Debian version, biased towards the characters that make comparison interesting. */
function randomVersion(rand: () => number): string {
  const pick = (s: string) => s[Math.floor(rand() * s.length)]!;
  const run = (alphabet: string, max: number) => Array.from({ length: 1 + Math.floor(rand() * max) }, () => pick(alphabet)).join("");
  const part = (alphabet: string) => {
    let s = pick("0123456789");
    for (let i = Math.floor(rand() * 4); i > 0; i--) s += rand() < 0.5 ? run("0012789", 3) : run(alphabet, 2);
    return s;
  };
  const epoch = rand() < 0.15 ? `${Math.floor(rand() * 3)}:` : "";
  const upstream = part("..~+abzAZ");
  const revision = rand() < 0.6 ? `-${part(".~+abz")}` : "";
  return epoch + upstream + revision;
}

const haveDpkg = Bun.spawnSync(["dpkg", "--version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

describe("compareVersions against dpkg", () => {
  needs("dpkg", haveDpkg)("400 generated pairs agree with dpkg --compare-versions", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < 400; i++) {
      const a = randomVersion(rand);
      // Half the pairs are near-misses of each other, where the rules matter most.
      const b = rand() < 0.5 ? randomVersion(rand) : nearMiss(a, rand);
      pairs.push([a, b]);
    }
    // One shell runs all comparisons: spawning dpkg from the test 800 times would be slow.
    const script = pairs.map(([a, b]) => `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`).join("\n");
    const p = Bun.spawnSync(["sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
    expect(p.stderr.toString()).toBe("");
    const answers = p.stdout.toString().trim().split("\n").map(Number);
    expect(answers.length).toBe(pairs.length);
    const disagreements = pairs.filter(([a, b], i) => compareVersions(a, b) !== answers[i]).map(([a, b]) => `${a} vs ${b}`);
    expect(disagreements).toEqual([]);
  });
});

/** `v` with its last character changed, or something appended, keeping it a valid version */
function nearMiss(v: string, rand: () => number): string {
  const options = ["~", "+", ".", "a", "0", "9", "~~", "00", ""];
  const changed = v.slice(0, -1) + options[Math.floor(rand() * options.length)]!;
  return /^(\d+:)?\d[A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$/.test(changed) ? changed : `${v}${options[Math.floor(rand() * 6)]}`;
}
