#!/usr/bin/env bun
// make release: the release artifacts in dist/release/ (or $RELEASE_DIR):
//   spawnctl-VERSION-linux-x64, -linux-arm64, -linux-x64-musl  and each .xz
//   man/*.1, completion/*                                      (build.ts docs)
//   SHA256SUMS, RELEASE-NOTES.md
// Each variant is the same program compiled into the Bun runtime of that CPU
// and C library, from the npm registry's @oven/bun-linux-* package of the
// project's Bun version (checked against the integrity pinned below), with
// the C parts built by Debian's compilers for it (build.ts). Nothing else is
// downloaded. The same commit gives the same bytes: no build path, time or
// random build ID goes into any file (tests/release/reproducible.test.ts).
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { type Target, buildDocs, buildKeyrings, buildShim, compile, generateData } from "../build.ts";
import { type BinaryReport, checkBinary } from "./check.ts";

const root = resolve(import.meta.dir, "..");

export const TARGETS: Target[] = [
  { name: "linux-x64", arch: "x64", musl: false },
  { name: "linux-arm64", arch: "arm64", musl: false },
  { name: "linux-x64-musl", arch: "x64", musl: true },
  { name: "linux-arm64-musl", arch: "arm64", musl: true },
];

/** The Bun runtime package of each target and the npm registry's integrity of its tarball, per Bun version. */
const RUNTIMES: Record<string, { pkg: string; integrity: Record<string, string> }> = {
  "linux-x64": {
    pkg: "@oven/bun-linux-x64",
    integrity: { "1.4.5": "sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVPZtt1aJ1g==" },
  },
  "linux-arm64": {
    pkg: "@oven/bun-linux-aarch64",
    integrity: { "1.4.5": "sha512-4BXmsSKnjOrlGWqZV4x/oWa7AVoR+B6lCXddMzOAXBIm3t50eslg9wb66gmtW1AamEQ1l1CDvmmruysEhqOWMg==" },
  },
  "linux-x64-musl": {
    pkg: "@oven/bun-linux-x64-musl",
    integrity: { "1.4.5": "sha512-10QoW/YfTgnURaGEaHpJCiXjLI2e5iTtfVDaA5JKcyUzaa1cq6cVUY9/Uq5XkYzvtRjHLRe9Oj/lTDIQcxy8HQ==" },
  },
  "linux-arm64-musl": {
    pkg: "@oven/bun-linux-aarch64-musl",
    integrity: { "1.4.5": "sha512-XCNc+WvvMAdNNb+OWTogpy+N9wm62fkVeEVLb6how0RZhW5LPi6c7BlkeVCuWps7XjEl2saFpHFa20/1E+PAHg==" },
  },
};

function sh(cmd: string[], what: string, opts: { cwd?: string; stdout?: "pipe" | "inherit" } = {}): string {
  const p = Bun.spawnSync(cmd, { cwd: opts.cwd ?? root, stdout: opts.stdout ?? "pipe", stderr: "inherit", env: { ...process.env, SOURCE_DATE_EPOCH: sourceDateEpoch() } });
  if (p.exitCode !== 0) throw new Error(`${what} failed: ${cmd.join(" ")} (exit ${p.exitCode})`);
  return p.stdout ? p.stdout.toString() : "";
}

let epoch: string | undefined;
/** SOURCE_DATE_EPOCH, else the commit's time: the mtime the artifacts get. */
export function sourceDateEpoch(): string {
  if (epoch) return epoch;
  epoch = process.env.SOURCE_DATE_EPOCH;
  if (!epoch) {
    const p = Bun.spawnSync(["git", "log", "-1", "--format=%ct"], { cwd: root, stdout: "pipe", stderr: "ignore" });
    epoch = p.exitCode === 0 ? p.stdout.toString().trim() : "0";
  }
  return epoch;
}

function bunVersion(): string {
  const pkg = JSON.parse(readFileSync(`${root}/package.json`, "utf8"));
  return pkg.devDependencies.bun as string;
}

/** The runtime executable of a target: its npm package fetched with `npm pack` (once), checked, unpacked. */
export function runtimeFor(t: Target, cache = `${root}/build/release/runtimes`): { bin: string; pkg: string; version: string; integrity: string } {
  const version = bunVersion();
  const r = RUNTIMES[t.name]!;
  const integrity = r.integrity[version];
  if (!integrity) throw new Error(`no pinned integrity for ${r.pkg}@${version}: add the registry's (npm view ${r.pkg}@${version} dist.integrity) to .ci/release.ts`);
  mkdirSync(cache, { recursive: true });
  const tgz = `${cache}/${r.pkg.replace(/^@/, "").replace("/", "-")}-${version}.tgz`;
  if (!existsSync(tgz)) sh(["npm", "pack", "--silent", `${r.pkg}@${version}`, "--pack-destination", cache], `fetching ${r.pkg}@${version}`);
  const got = `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`;
  if (got !== integrity) {
    rmSync(tgz, { force: true });
    throw new Error(`${r.pkg}@${version}: the tarball's integrity is ${got}, not the pinned ${integrity}`);
  }
  const dir = `${cache}/${t.name}`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  sh(["tar", "-xzf", tgz, "-C", dir, "package/bin/bun"], `unpacking ${tgz}`);
  return { bin: `${dir}/package/bin/bun`, pkg: r.pkg, version, integrity };
}

/**
 * A copy of the sources with the target's own build/ (the imports of the
 * embedded objects are relative: ../../build/nsh.so), compiled into the
 * target's runtime.
 */
export async function buildTarget(t: Target, out: string): Promise<ReturnType<typeof runtimeFor>> {
  const stage = `${root}/build/release/stage/${t.name}`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  cpSync(`${root}/src`, `${stage}/src`, { recursive: true });
  cpSync(`${root}/package.json`, `${stage}/package.json`);
  symlinkSync(`${root}/node_modules`, `${stage}/node_modules`);
  await buildShim(`${stage}/build`, t);
  await generateData(`${stage}/build/gen`);
  cpSync(`${root}/build/keyrings`, `${stage}/build/keyrings`, { recursive: true });
  const rt = runtimeFor(t);
  compile(stage, out, rt.bin);
  chmodSync(out, 0o755);
  return rt;
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

async function main(): Promise<void> {
  const outDir = process.env.RELEASE_DIR ?? `${root}/dist/release`;
  const only = process.argv.slice(2);
  const version = JSON.parse(readFileSync(`${root}/package.json`, "utf8")).version as string;
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await buildShim();
  await generateData();
  await buildKeyrings();
  await buildDocs();

  const files: string[] = [];
  const rows: string[] = [];
  const runtimes: string[] = [];
  for (const t of TARGETS) {
    if (only.length && !only.includes(t.name)) continue;
    const name = `spawnctl-${version}-${t.name}`;
    const bin = `${outDir}/${name}`;
    console.error(`release: ${name}`);
    const rt = await buildTarget(t, bin);
    const report: BinaryReport = checkBinary(bin, `${root}/build/release/stage/${t.name}/build`, t.arch, t.musl);
    if (report.problems.length) throw new Error(`${name}:\n  ${report.problems.join("\n  ")}`);
    // xz for busybox's unxz: CRC32, and blocks of a fixed size (the bytes do
    // not depend on the number of CPUs)
    sh(["xz", "-6", "-k", "-f", "--threads=2", "--block-size=16MiB", "--check=crc32", bin], `xz ${name}`);
    chmodSync(`${bin}.xz`, 0o644);
    files.push(name, `${name}.xz`);
    runtimes.push(`- ${t.name}: \`${rt.pkg}@${rt.version}\`, npm integrity \`${rt.integrity}\``);
    const f = report.binary.facts;
    rows.push(`| ${name} | ${report.binary.size} | ${readFileSync(`${bin}.xz`).length} | ${f.machine} | ${f.interp ?? "static"} | ${t.musl ? `musl (${f.needed.join(", ")})` : `GLIBC_${report.glibc}`} |`);
  }
  for (const dir of ["man", "completion"]) {
    if (!existsSync(`${root}/build/${dir}`)) continue;
    cpSync(`${root}/build/${dir}`, `${outDir}/${dir}`, { recursive: true });
    for (const f of readdirSync(`${outDir}/${dir}`).sort()) files.push(`${dir}/${f}`);
  }
  const notes = [
    `# spawnctl ${version}`,
    "",
    "| artifact | bytes | .xz bytes | CPU | loader | needs |",
    "|---|---|---|---|---|---|",
    ...rows,
    "",
    "Bun runtimes (from the npm registry, checked against these integrities):",
    "",
    ...runtimes,
    "",
    "x86-64 builds need a CPU with SSE4.2 (Nehalem, 2008, and newer); arm64 builds ARMv8.0.",
    "",
  ].join("\n");
  writeFileSync(`${outDir}/RELEASE-NOTES.md`, notes);
  files.push("RELEASE-NOTES.md");
  const sums = files.map((f) => `${sha256(`${outDir}/${f}`)}  ${f}\n`).join("");
  writeFileSync(`${outDir}/SHA256SUMS`, sums);
  const mtime = Number(sourceDateEpoch());
  for (const f of [...files, "SHA256SUMS"]) utimesSync(`${outDir}/${f}`, mtime, mtime);
  console.error(`release: ${outDir}\n${sums}`);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`release: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
}
