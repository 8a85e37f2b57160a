#!/usr/bin/env bun
// The test entry point used by `make test` and CI: runs the tiers in order
// (unit, integration, e2e), then checks that nothing was left behind.
//   bun tests/run.ts [types|unit|integration|e2e ...]
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { IN_CI, leftovers } from "./helpers.ts";

const root = `${import.meta.dir}/..`;
mkdirSync(`${root}/build`, { recursive: true });
const totals = { passed: 0, failed: 0, skipped: 0 };

const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ["types", "unit", "integration", "e2e"];
const bun = process.execPath;
let failed = false;
const before = leftovers();
for (const t of tiers) {
  if (t === "types") {
    // the type check: every module, the FFI symbol tables and the tests
    console.log("\n=== tsc --noEmit ===");
    const p = Bun.spawnSync([bun, "node_modules/typescript/bin/tsc", "--noEmit", "-p", "."], { stdout: "inherit", stderr: "inherit", cwd: root });
    if (p.exitCode !== 0) {
      console.log("tsc: FAILED");
      failed = true;
    } else console.log("tsc: no errors");
    continue;
  }
  console.log(`\n=== tests/${t} ===`);
  const report = `${root}/build/junit-${t}.xml`;
  rmSync(report, { force: true });
  const p = Bun.spawnSync([bun, "test", "--timeout", "600000", "--reporter=junit", `--reporter-outfile=${report}`, `tests/${t}`], { stdout: "inherit", stderr: "inherit", cwd: root });
  if (p.exitCode !== 0) {
    console.log(`tests/${t}: FAILED (exit ${p.exitCode})`);
    failed = true;
  }
  const r = readReport(report);
  totals.passed += r.passed;
  totals.failed += r.failed;
  totals.skipped += r.skipped.length;
  // a skipped test or one that asserted nothing tested nothing: in CI that
  // is a failure (a requirement is declared with needs(), never branched on)
  const empty = [...r.skipped.map((c) => `skipped: ${c}`), ...r.noAssertions.map((c) => `no assertion: ${c}`)];
  if (empty.length) {
    console.log(`\ntests/${t}: ${empty.length} test(s) that checked nothing:\n  ${empty.join("\n  ")}`);
    if (IN_CI) {
      console.log(`tests/${t}: FAILED (CI=true: every test must run and assert)`);
      failed = true;
    }
  }
}

interface Report { passed: number; failed: number; skipped: string[]; noAssertions: string[] }

/** The test cases of bun's JUnit report: what passed, failed, was skipped, asserted nothing. */
function readReport(path: string): Report {
  const out: Report = { passed: 0, failed: 0, skipped: [], noAssertions: [] };
  if (!existsSync(path)) {
    out.failed++;
    return out;
  }
  const xml = readFileSync(path, "utf8");
  const attr = (tag: string, name: string) => new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const tag = m[1]!;
    const body = m[3] ?? "";
    const name = `${attr(tag, "file")}: ${(attr(tag, "classname") ? `${attr(tag, "classname")} > ` : "")}${attr(tag, "name")}`.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
    if (/<skipped\b/.test(body)) out.skipped.push(name);
    else if (/<(failure|error)\b/.test(body)) out.failed++;
    else {
      out.passed++;
      if (attr(tag, "assertions") === "0") out.noAssertions.push(name);
    }
  }
  return out;
}
const after = leftovers().filter((l) => !before.includes(l));
if (after.length) {
  console.log(`\nLeft behind by the tests:\n  ${after.join("\n  ")}`);
  failed = true;
} else {
  console.log("\nNo leftovers: mounts, cgroups, processes, links and state files are clean.");
}
// the plain closing line CI reads
console.log(`\ntests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failed ? 1 : 0);
