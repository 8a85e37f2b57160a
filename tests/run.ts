#!/usr/bin/env bun
// The test entry point used by `make test` and CI: runs the tiers in order
// (unit, integration, e2e), then checks that nothing was left behind.
//   bun tests/run.ts [types|unit|integration|e2e ...]
import { leftovers } from "./helpers.ts";

const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ["types", "unit", "integration", "e2e"];
const bun = process.execPath;
let failed = false;
const before = leftovers();
for (const t of tiers) {
  if (t === "types") {
    // the type check: every module, the FFI symbol tables and the tests
    console.log("\n=== tsc --noEmit ===");
    const p = Bun.spawnSync([bun, "node_modules/typescript/bin/tsc", "--noEmit", "-p", "."], { stdout: "inherit", stderr: "inherit", cwd: `${import.meta.dir}/..` });
    if (p.exitCode !== 0) {
      console.log("tsc: FAILED");
      failed = true;
    } else console.log("tsc: no errors");
    continue;
  }
  console.log(`\n=== tests/${t} ===`);
  const p = Bun.spawnSync([bun, "test", "--timeout", "600000", `tests/${t}`], { stdout: "inherit", stderr: "inherit", cwd: `${import.meta.dir}/..` });
  if (p.exitCode !== 0) {
    console.log(`tests/${t}: FAILED (exit ${p.exitCode})`);
    failed = true;
  }
}
const after = leftovers().filter((l) => !before.includes(l));
if (after.length) {
  console.log(`\nLeft behind by the tests:\n  ${after.join("\n  ")}`);
  failed = true;
} else {
  console.log("\nNo leftovers: mounts, cgroups, processes, links and state files are clean.");
}
process.exit(failed ? 1 : 0);
