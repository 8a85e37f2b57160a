// Arch Linux: version order (against a table and the host's vercmp),
// repository databases, resolution and package files, on synthetic data.
// tests/integration/archive/pacman.test.ts runs the same on makepkg output.
import { describe, expect, test } from "bun:test";
import { parseDep, parsePacmanDb, readPkg, resolvePacman, vercmp, type PacmanDb } from "../../../src/bootstrap/pacman.ts";
import { needs } from "../../helpers.ts";
import { gzip, hasTool, noise, tarOf, text, tool, zstd } from "./fixtures.ts";
import type { TarWriteEntry } from "../../../src/archive/tar.ts";

// [a, b, expected]: the sign of vercmp(a, b) as libalpm computes it.
const TABLE: Array<[string, string, number]> = [
  ["1.5.0", "1.5.0", 0],
  ["1.5.1", "1.5.0", 1],
  ["1.5.1", "1.5", 1],
  ["1.5.0-1", "1.5.0-2", -1],
  ["1.5.0-2", "1.5.1-1", -1],
  ["1.5-1", "1.5", 0], // the release counts only when both have one
  ["1.0alpha", "1.0", -1],
  ["1.0a", "1.0alpha", -1],
  ["1.0alpha", "1.0beta", -1],
  ["1.0rc1", "1.0", -1],
  ["1.0rc1", "1.0.1", -1],
  ["1.0", "1.0.a", -1],
  ["2.0", "2.0.0", -1],
  ["1.0..1", "1.0.1", 1], // a longer separator wins
  ["1.0.1", "1.0_1", 0],
  ["1:1.0", "2.0", 1],
  ["1.0", "1:0.5", -1],
  ["0:1.0", "1.0", 0],
  ["1:1.0-1", "1:1.1-1", -1],
  ["001", "1", 0],
  ["1.10", "1.9", 1],
  ["a", "1", -1],
  ["1a", "1.a", -1],
  ["1.0-1.1", "1.0-1", 1],
  ["1.0~rc1", "1.0", 1], // no tilde rule in alpm, unlike dpkg
  ["20240101", "2.0", 1],
];

describe("vercmp", () => {
  test("the table", () => {
    for (const [a, b, want] of TABLE) {
      expect([a, b, vercmp(a, b)]).toEqual([a, b, want]);
      expect([b, a, vercmp(b, a)]).toEqual([b, a, want === 0 ? 0 : -want]);
    }
  });

  needs("vercmp (pacman-package-manager)", hasTool("vercmp"))("agrees with the host's vercmp on generated versions", () => {
    const bytes = noise(4000, 5);
    const parts = ["0", "1", "01", "2", "10", "a", "b", "rc", "alpha", ".", "..", "-", "_", "+", ":", "1:", "2:"];
    const gen = (k: number) => {
      let s = "";
      for (let i = 0; i < 1 + (bytes[k]! % 5); i++) s += parts[bytes[k + i + 1]! % parts.length];
      return s;
    };
    const pairs: Array<[string, string]> = [];
    for (let k = 0; k < 3000; k += 20) pairs.push([gen(k), gen(k + 10)]);
    const script = pairs.map(([a, b]) => `vercmp '${a}' '${b}'`).join("; ");
    const host = new TextDecoder().decode(tool(["sh", "-c", script])).trim().split("\n").map(Number);
    const ours = pairs.map(([a, b]) => vercmp(a, b));
    const diff = pairs.filter((_, i) => Math.sign(host[i]!) !== ours[i]).map(([a, b], i) => `${a} vs ${b}: host ${host[i]} ours ${ours[i]}`);
    expect(diff).toEqual([]);
  });
});

test("dependency strings", () => {
  expect(parseDep("glibc>=2.36")).toMatchObject({ name: "glibc", op: ">=", version: "2.36" });
  expect(parseDep("sh")).toMatchObject({ name: "sh", op: "", version: "" });
  expect(parseDep("foo=1:2.0-3")).toMatchObject({ name: "foo", op: "=", version: "1:2.0-3" });
  expect(parseDep("bar<5")).toMatchObject({ name: "bar", op: "<" });
  expect(parseDep("python: for the scripts")).toMatchObject({ name: "python", op: "" });
});

interface Pkg {
  name: string;
  version: string;
  depends?: string[];
  provides?: string[];
  groups?: string[];
  conflicts?: string[];
}

function desc(p: Pkg): string {
  const block = (k: string, v: string[] | undefined) => (v?.length ? `%${k}%\n${v.join("\n")}\n\n` : "");
  return `%FILENAME%\n${p.name}-${p.version}-x86_64.pkg.tar.zst\n\n%NAME%\n${p.name}\n\n%VERSION%\n${p.version}\n\n%CSIZE%\n100\n\n%ISIZE%\n200\n\n%SHA256SUM%\n${"ab".repeat(32)}\n\n%ARCH%\nx86_64\n\n${block("GROUPS", p.groups)}${block("DEPENDS", p.depends)}${block("PROVIDES", p.provides)}${block("CONFLICTS", p.conflicts)}`;
}

function db(name: string, pkgs: Pkg[], comp: (b: Uint8Array) => Uint8Array = gzip): PacmanDb {
  const entries: TarWriteEntry[] = [];
  for (const p of pkgs) {
    entries.push({ path: `${p.name}-${p.version}`, type: "dir" });
    entries.push({ path: `${p.name}-${p.version}/desc`, type: "file", data: text(desc(p)) });
  }
  return parsePacmanDb(comp(tarOf(entries)), name);
}

describe("repository databases and resolution", () => {
  const core = db("core", [
    { name: "glibc", version: "2.38-7" },
    { name: "bash", version: "5.2.021-1", depends: ["glibc>=2.36", "readline"], provides: ["sh"] },
    { name: "readline", version: "8.2.007-1", depends: ["glibc"] },
    { name: "filesystem", version: "2023.09.18-1", groups: ["base-min"] },
    { name: "coreutils", version: "9.4-2", depends: ["glibc", "acl", "sh"], groups: ["base-min"] },
    { name: "acl", version: "2.3.1-3", depends: ["glibc"] },
    { name: "dash", version: "0.5.12-1", provides: ["sh"] },
    { name: "base", version: "3-2", depends: ["filesystem", "coreutils", "bash"] },
    { name: "oldlib", version: "1.0-1" },
    { name: "needs-new", version: "1-1", depends: ["oldlib>=2"] },
  ]);
  const extra = db(
    "extra",
    [
      { name: "bash", version: "9.9-1", provides: ["sh"] }, // core comes first: never chosen
      { name: "oldlib", version: "2.0-1" },
      { name: "vim", version: "9.0-1", depends: ["glibc", "vim-runtime=9.0-1"], groups: ["editors"] },
      { name: "vim-runtime", version: "9.0-1" },
      { name: "nano", version: "7.2-1", groups: ["editors"], conflicts: ["vim"] },
      { name: "pulls-sh5", version: "1-1", depends: ["sh>=5"] },
    ],
    zstd,
  );

  test("parsePacmanDb reads desc records from any compression", () => {
    expect(core.packages.length).toBe(10);
    expect(core.byName.get("bash")).toMatchObject({ version: "5.2.021-1", depends: ["glibc>=2.36", "readline"], provides: ["sh"], csize: 100, isize: 200, arch: "x86_64", repo: "core" });
    expect(extra.byName.get("vim")!.groups).toEqual(["editors"]);
    expect(parsePacmanDb(tarOf([]), "plain").packages).toEqual([]);
  });

  test("dependencies come before dependents; first repository wins", () => {
    const order = resolvePacman([core, extra], ["base"]).map((p) => `${p.repo}/${p.name}`);
    expect(order[order.length - 1]).toBe("core/base");
    expect(order).toContain("core/bash");
    expect(order).not.toContain("extra/bash");
    expect(order.indexOf("core/glibc")).toBeLessThan(order.indexOf("core/bash"));
    expect(order.indexOf("core/acl")).toBeLessThan(order.indexOf("core/coreutils"));
    expect(new Set(order).size).toBe(order.length);
    // coreutils needs "sh": bash (already chosen) satisfies it, dash is not added
    expect(order).not.toContain("core/dash");
  });

  test("provides, versioned dependencies across repositories, groups", () => {
    expect(resolvePacman([core, extra], ["sh"]).map((p) => p.name)).toEqual(["glibc", "readline", "bash"]); // the first provider in the first repo
    expect(resolvePacman([core, extra], ["needs-new"]).map((p) => `${p.repo}/${p.name}`)).toEqual(["extra/oldlib", "core/needs-new"]);
    expect(resolvePacman([core, extra], ["base-min"]).map((p) => p.name).sort()).toEqual(["acl", "bash", "coreutils", "filesystem", "glibc", "readline"]);
    expect(() => resolvePacman([core, extra], ["pulls-sh5"])).toThrow(/sh>=5 \(required by pulls-sh5/); // unversioned provides cannot satisfy
    expect(() => resolvePacman([core, extra], ["editors"])).toThrow(/nano conflicts with vim|vim.*conflicts/);
    expect(() => resolvePacman([core], ["vim"])).toThrow(/target "vim" is neither a package/);
    expect(resolvePacman([core, extra], ["base"], { ignore: ["acl"] }).map((p) => p.name)).not.toContain("acl");
  });
});

describe("package files", () => {
  const pkg = (comp: (b: Uint8Array) => Uint8Array) =>
    comp(
      tarOf([
        { path: ".BUILDINFO", type: "file", data: text("format = 2\n") },
        { path: ".PKGINFO", type: "file", data: text("# Generated by makepkg\npkgname = toy\npkgver = 1:1.2-3\ndepend = glibc>=2.36\ndepend = sh\nsize = 24\n") },
        { path: ".INSTALL", type: "file", data: text("post_install() { :; }\n") },
        { path: ".MTREE", type: "file", data: gzip(text("#mtree\n./usr/bin/toy time=1.0 mode=755\n")) },
        { path: "usr", type: "dir" },
        { path: "usr/bin/toy", type: "file", data: text("toy"), mode: 0o4755 },
        { path: "usr/bin/toy2", type: "hardlink", linkname: "usr/bin/toy" },
      ]),
    );

  test("metadata members are kept apart from the payload", () => {
    for (const comp of [zstd, gzip, (b: Uint8Array) => b]) {
      const p = readPkg(pkg(comp), "toy.pkg.tar");
      expect(p.pkginfo.pkgname).toEqual(["toy"]);
      expect(p.pkginfo.depend).toEqual(["glibc>=2.36", "sh"]);
      expect(p.install).toContain("post_install");
      expect(p.mtree).toContain("#mtree");
      expect(p.buildinfo).toBe("format = 2\n");
      expect(p.entries.map((e) => e.path)).toEqual(["usr", "usr/bin/toy", "usr/bin/toy2"]);
      expect(p.entries[1]!.mode).toBe(0o4755);
    }
  });

  test("a tar without .PKGINFO is not a package", () => {
    expect(() => readPkg(gzip(tarOf([{ path: "x", type: "file", data: text("1") }])), "x.pkg.tar.gz")).toThrow(/reading x.pkg.tar.gz: not a pacman package/);
  });
});
