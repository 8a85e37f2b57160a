// The package index: merging Packages files, duplicates, Provides, and
// relationship fields.
import { describe, expect, test } from "bun:test";
import { formatDependency, PackageIndex, parseDependencies, parseProvides } from "../../../src/bootstrap/packages.ts";
import { SHA, stanza } from "./stanza.ts";


describe("parseDependencies", () => {
  test("alternatives, version relations and architecture qualifiers", () => {
    expect(parseDependencies("libc6 (>= 2.34), gpgv | gpgv2 | gpgv1, perl:any, python3:native (>= 3.11~), libfoo (<< 2:1.0-1)", "t")).toEqual([
      [{ name: "libc6", op: ">=", version: "2.34" }],
      [{ name: "gpgv" }, { name: "gpgv2" }, { name: "gpgv1" }],
      [{ name: "perl", arch: "any" }],
      [{ name: "python3", arch: "native", op: ">=", version: "3.11~" }],
      [{ name: "libfoo", op: "<<", version: "2:1.0-1" }],
    ]);
  });

  test("dpkg's obsolete < and > mean <= and >=; spacing and folded lines do not matter", () => {
    expect(parseDependencies("a (<1.0),\n b(>2),c ( = 3 )", "t")).toEqual([[{ name: "a", op: "<=", version: "1.0" }], [{ name: "b", op: ">=", version: "2" }], [{ name: "c", op: "=", version: "3" }]]);
    expect(parseDependencies("", "t")).toEqual([]);
  });

  test("what binary packages cannot have is an error naming the field", () => {
    expect(() => parseDependencies("foo [amd64]", "the Depends field of x 1")).toThrow('parsing the Depends field of x 1: cannot read "foo [amd64]"');
    expect(() => parseDependencies("foo (>= )", "t")).toThrow("cannot read");
    expect(() => parseDependencies("a | | b", "t")).toThrow('cannot read ""');
  });

  test("Provides: names, optionally with = versions", () => {
    expect(parseProvides("awk, apt-transport-https (= 2.6.1)", "t")).toEqual([{ name: "awk" }, { name: "apt-transport-https", version: "2.6.1" }]);
    expect(() => parseProvides("foo (>= 1)", "p")).toThrow("parsing p:");
    expect(() => parseProvides("a | b", "p")).toThrow("parsing p:");
  });

  test("formatDependency writes a dependency back", () => {
    expect(formatDependency(parseDependencies("a:any (>= 1) | b", "t")[0]!)).toBe("a:any (>= 1) | b");
  });
});

describe("PackageIndex", () => {
  test("keeps the fields a bootstrap needs", () => {
    const index = PackageIndex.fromPackagesFiles("amd64", [
      {
        text: stanza("dash", "0.5.12-2", { Essential: "yes", Priority: "required", Section: "shells", "Multi-Arch": "foreign", "Pre-Depends": "libc6 (>= 2.34)", Depends: "debianutils (>= 5.6-0.1)", Description: "POSIX shell\n long text", "Installed-Size": "200" }),
        what: "t",
      },
    ]);
    const p = index.get("dash")!;
    expect(p).toMatchObject({ name: "dash", version: "0.5.12-2", architecture: "amd64", essential: true, priority: "required", section: "shells", multiArch: "foreign", filename: "pool/main/dash_0.5.12-2_amd64.deb", size: 100, sha256: SHA });
    expect(p.preDepends).toEqual([[{ name: "libc6", op: ">=", version: "2.34" }]]);
    expect(p.depends).toEqual([[{ name: "debianutils", op: ">=", version: "5.6-0.1" }]]);
    expect(p.provides).toEqual([]);
    expect(`${p}`).toBe("dash 0.5.12-2");
  });

  test("a duplicate keeps the highest version, whatever the order (debootstrap's unsorted-packages-files test)", () => {
    for (const order of [
      ["1.0", "2.6.1", "2.6.1~rc1"],
      ["2.6.1", "1.0", "2.6.1~rc1"],
      ["2.6.1~rc1", "1.0", "2.6.1"],
    ]) {
      const index = new PackageIndex("amd64");
      for (const v of order) index.addPackagesFile(stanza("apt", v, { Filename: `pool/apt_${v}.deb` }), "t");
      expect(index.get("apt")!.version).toBe("2.6.1");
      expect(index.get("apt")!.filename).toBe("pool/apt_2.6.1.deb");
      expect(index.size).toBe(1);
    }
  });

  test("merges components and skips other architectures", () => {
    const index = PackageIndex.fromPackagesFiles("amd64", [
      { text: stanza("a", "1") + stanza("b", "1", { Architecture: "all" }), what: "main" },
      { text: stanza("c", "1", { Architecture: "i386" }) + stanza("d", "1"), what: "contrib" },
    ]);
    expect([...index.packages()].map((p) => p.name).sort()).toEqual(["a", "b", "d"]);
  });

  test("indexes Provides, with versions, from the winning stanzas only", () => {
    const index = PackageIndex.fromPackagesFiles("amd64", [
      { text: stanza("mawk", "1.3.4", { Provides: "awk" }) + stanza("gawk", "5.2", { Provides: "awk" }) + stanza("apt", "2.6.1", { Provides: "apt-transport-https (= 2.6.1)" }), what: "t" },
    ]);
    expect(index.providers("awk").map((p) => p.pkg.name).sort()).toEqual(["gawk", "mawk"]);
    expect(index.providers("apt-transport-https")).toEqual([{ pkg: index.get("apt")!, version: "2.6.1" }]);
    expect(index.providers("nothing")).toEqual([]);
    // a newer gawk that no longer provides awk replaces the old one in the provider list
    index.addPackagesFile(stanza("gawk", "6.0"), "t");
    expect(index.providers("awk").map((p) => p.pkg.name)).toEqual(["mawk"]);
  });

  test("a stanza without what a download needs is an error naming the file and package", () => {
    const bad = stanza("x", "1").replace(`SHA256: ${SHA}\n`, "");
    expect(() => PackageIndex.fromPackagesFiles("amd64", [{ text: bad, what: "bookworm main Packages" }])).toThrow("reading bookworm main Packages: package x has no SHA256 field");
    expect(() => PackageIndex.fromPackagesFiles("amd64", [{ text: stanza("x", "1", { Size: "big" }), what: "p" }])).toThrow("reading p: package x has a malformed Size or SHA256 field");
  });

  test("a malformed dependency is reported when it is first read", () => {
    const index = PackageIndex.fromPackagesFiles("amd64", [{ text: stanza("x", "1", { Depends: "a (>= 1" }), what: "t" }]);
    expect(() => index.get("x")!.depends).toThrow('parsing the Depends field of x 1: cannot read "a (>= 1"');
  });
});
