// The check that a spawnctl binary runs on any host with glibc 2.17 or newer
// (or, for a musl build, needs no glibc at all): the binary's own symbol
// versions, and those of the three C objects it embeds (build/nsh.so, the
// supervisor, the stub init), which must be in the binary byte for byte.
// Used by tests/unit/release-glibc.test.ts and by `make release`.
import { readFileSync } from "node:fs";
import { type ElfFacts, compareVersions, highestGlibc, parseElf } from "./elf.ts";

export const GLIBC_FLOOR = "2.17";

export interface PartReport {
  name: string;
  size: number;
  facts: ElfFacts;
  glibc?: string;
}

export interface BinaryReport {
  binary: PartReport;
  parts: PartReport[];
  /** the highest glibc version any of them needs */
  glibc?: string;
  problems: string[];
}

const EXPECTED_MACHINE = { x64: "x86-64", arm64: "aarch64" } as const;

/** Check `binary` and the objects of `buildDir` it embeds, for a target of `arch` and libc. */
export function checkBinary(binary: string, buildDir: string, arch: "x64" | "arm64", musl: boolean, bytes?: Buffer): BinaryReport {
  const problems: string[] = [];
  const bin = bytes ?? readFileSync(binary);
  const report = (name: string, bytes: Buffer): PartReport => {
    const facts = parseElf(bytes, name);
    return { name, size: bytes.length, facts, glibc: highestGlibc(facts) };
  };
  const binReport = report(binary, bin);
  const parts: PartReport[] = [];
  for (const p of ["nsh.so", "nsh-supervisor", "nsh-init"]) {
    const bytes = readFileSync(`${buildDir}/${p}`);
    if (bin.indexOf(bytes) < 0) problems.push(`${binary} does not embed ${buildDir}/${p} byte for byte`);
    parts.push(report(p, bytes));
  }
  for (const r of [binReport, ...parts]) {
    if (r.facts.machine !== EXPECTED_MACHINE[arch]) problems.push(`${r.name} is for ${r.facts.machine}, not ${EXPECTED_MACHINE[arch]}`);
    if (r.glibc && compareVersions(r.glibc.split(".").map(Number), GLIBC_FLOOR.split(".").map(Number)) > 0) {
      const newer = r.facts.versions.filter((v) => /^GLIBC_/.test(v.version)).map((v) => v.version);
      problems.push(`${r.name} needs GLIBC_${r.glibc} (of ${[...new Set(newer)].join(" ")}); the limit is ${GLIBC_FLOOR}`);
    }
    if (musl && r.glibc) problems.push(`${r.name} is for musl but needs GLIBC_${r.glibc}`);
  }
  // the supervisor and the stub init run where no libc may fit: static
  for (const r of parts.slice(1)) {
    if (r.facts.interp || r.facts.needed.length) problems.push(`${r.name} is not static (interpreter ${r.facts.interp ?? "none"}, needs ${r.facts.needed.join(" ") || "nothing"})`);
  }
  const so = parts[0]!;
  const libc = musl ? ["libc.so"] : ["libc.so.6"];
  const odd = so.facts.needed.filter((n) => !libc.includes(n) && !(!musl && n === "libpthread.so.0"));
  if (odd.length) problems.push(`nsh.so needs ${odd.join(" ")} besides ${libc.join(" ")}`);
  // a shim without its libc has one linked in: a second C library in the process
  if (!so.facts.needed.some((n) => libc.includes(n))) problems.push(`nsh.so does not need ${libc.join(" ")} (a static C library linked in?)`);
  const all = [binReport, ...parts].map((r) => r.glibc).filter((v): v is string => !!v);
  const glibc = all.sort((a, b) => compareVersions(a.split(".").map(Number), b.split(".").map(Number))).at(-1);
  return { binary: binReport, parts, glibc, problems };
}
