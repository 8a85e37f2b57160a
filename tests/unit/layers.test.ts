// The layer rule (docs/ARCHITECTURE.md): imports run one way, never back up:
//   main → cli → machine → oci → image, bootstrap → container → net, userns,
//   cgroup → settings → archive → sys, util
// Every relative import of every module under src/ is checked against it.
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

const SRC = `${import.meta.dir}/../../src`;
export const RANK: Record<string, number> = {
  main: 8, cli: 7, machine: 6, oci: 5.5, image: 5, bootstrap: 5, container: 4, net: 3, userns: 3, cgroup: 3, settings: 2, archive: 1.5, sys: 1, util: 1, version: 1,
};

function walk(d: string): string[] {
  return readdirSync(d).flatMap((e) => {
    const p = `${d}/${e}`;
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") && !p.endsWith(".d.ts") ? [p] : [];
  });
}
const layerOf = (rel: string) => rel.split("/")[0]!.replace(/\.ts$/, "");

/** The imports of src/ that break the rule, as "file -> target". */
export function violations(src = SRC): string[] {
  const bad: string[] = [];
  for (const file of walk(src)) {
    const rel = file.slice(src.length + 1);
    const text = readFileSync(file, "utf8");
    const specs = [...text.matchAll(/(?:import|export)[^"';]*?from\s+["'](\.[^"']+)["']|import\(\s*["'](\.[^"']+)["']\s*\)|require\(\s*["'](\.[^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
    for (const spec of specs) {
      const parts = rel.split("/").slice(0, -1);
      for (const s of spec.split("/")) {
        if (s === "..") parts.pop();
        else if (s !== ".") parts.push(s);
      }
      const target = parts.join("/");
      if (parts.length === 0 || target.startsWith("..") || spec.includes("/build/")) continue; // build/ outputs
      const a = layerOf(rel), b = layerOf(target);
      if (a === b) continue;
      const ra = RANK[a], rb = RANK[b];
      if (ra === undefined || rb === undefined) bad.push(`${rel} -> ${target} (a folder with no layer: add it to RANK and to docs/ARCHITECTURE.md)`);
      else if (!(rb < ra || (ra === 1 && rb === 1))) bad.push(`${rel} (${a}) -> ${target} (${b})`);
    }
  }
  return bad;
}

test("no module imports from a layer above its own", () => {
  expect(violations()).toEqual([]);
});

test("the check finds an upward import (it can fail)", () => {
  const dir = mkdtempSync(`${tmpdir()}/layers-`);
  try {
    mkdirSync(`${dir}/settings`);
    mkdirSync(`${dir}/container`);
    writeFileSync(`${dir}/container/b.ts`, 'import { a } from "../settings/a.ts";\n');
    writeFileSync(`${dir}/settings/a.ts`, 'import { b } from "../container/b.ts";\nexport const a = await import("../util/x.ts");\n');
    expect(violations(dir)).toEqual(["settings/a.ts (settings) -> container/b.ts (container)"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
