// dist/spawnctl runs on glibc 2.17 and newer: neither the binary nor the C
// objects it embeds (and runs: the shim is dlopened, the supervisor and the
// stub init are executed) need a newer symbol version, and the two programs
// are static. .ci/check.ts does the reading; here it meets the real build.
import { expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { checkBinary } from "../../.ci/check.ts";
import { highestGlibc, parseElf } from "../../.ci/elf.ts";
import { ROOT, SPAWNCTL } from "../helpers.ts";

const arch = process.arch === "arm64" ? "arm64" : "x64";

test("dist/spawnctl and its embedded objects need at most GLIBC_2.17", () => {
  const r = checkBinary(SPAWNCTL, `${ROOT}/build`, arch, false);
  expect(r.problems).toEqual([]);
  expect(r.glibc).toBe("2.17"); // Bun's own runtime needs exactly that
  const so = r.parts.find((p) => p.name === "nsh.so")!;
  expect(so.facts.needed).toContain("libc.so.6");
  expect(so.facts.versions.length).toBeGreaterThan(0);
  for (const name of ["nsh-supervisor", "nsh-init"]) {
    const p = r.parts.find((x) => x.name === name)!;
    expect(p.facts.interp).toBeUndefined();
    expect(p.facts.needed).toEqual([]);
  }
});

test("the check finds a symbol version above 2.17 and a part the binary does not embed", () => {
  // the system's libc needs nothing itself but defines GLIBC_2.34 and up; a
  // program linked against it today needs __libc_start_main@GLIBC_2.34
  const path = `${ROOT}/build/glibc-probe`;
  const cc = Bun.spawnSync(["cc", "-x", "c", "-o", path, "-"], { stdin: Buffer.from("int main(void){return 0;}\n"), stderr: "pipe" });
  expect(cc.exitCode).toBe(0);
  let probeBytes: Buffer;
  try {
    probeBytes = readFileSync(path);
  } finally {
    rmSync(path, { force: true });
  }
  const probe = parseElf(probeBytes);
  expect(Number(highestGlibc(probe)!.split(".")[1])).toBeGreaterThan(17);
  expect(probe.interp).toMatch(/ld-linux/);
  // a binary that is not the one the parts were embedded in
  const r = checkBinary(path, `${ROOT}/build`, arch, false, probeBytes);
  expect(r.problems.some((p) => /needs GLIBC_2\.(1[89]|[2-9]\d)/.test(p))).toBe(true);
  expect(r.problems.some((p) => p.includes("does not embed") && p.includes("nsh.so"))).toBe(true);
  // and a glibc build called musl
  expect(checkBinary(SPAWNCTL, `${ROOT}/build`, arch, true).problems.some((p) => p.includes("is for musl but needs GLIBC_"))).toBe(true);
});
