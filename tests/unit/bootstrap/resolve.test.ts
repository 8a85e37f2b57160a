// Package-set resolution: debootstrap's sets from a bookworm index subset,
// and the choice rules on small synthetic archives.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { PackageIndex } from "../../../src/bootstrap/packages.ts";
import { resolveDebian, type ResolveOptions } from "../../../src/bootstrap/resolve.ts";
import { stanza } from "./stanza.ts";

const FIXTURES = `${import.meta.dir}/fixtures`;
const debootstrap = (name: string) => readFileSync(`${FIXTURES}/debootstrap/${name}.txt`, "utf8").trim().split("\n");

function index(...stanzas: string[]): PackageIndex {
  return PackageIndex.fromPackagesFiles("amd64", [{ text: stanzas.join(""), what: "test Packages" }]);
}

function resolve(idx: PackageIndex, opts: Partial<ResolveOptions> = {}) {
  const r = resolveDebian(idx, { variant: "minbase", include: [], exclude: [], suite: "trixie", arch: "amd64", ...opts });
  return { ...r, names: r.all.map((p) => p.name), essentialNames: r.essential.map((p) => p.name) };
}

describe("debootstrap's package sets (bookworm amd64, from an index subset)", () => {
  const bookworm = PackageIndex.fromPackagesFiles("amd64", [{ text: readFileSync(`${FIXTURES}/bookworm-amd64-Packages-subset`, "utf8"), what: "bookworm subset" }]);
  const names = (variant: ResolveOptions["variant"]) => resolve(bookworm, { variant, suite: "bookworm" }).names;

  test("minbase is debootstrap's 88 packages", () => {
    expect(names("minbase")).toEqual(debootstrap("debootstrap-bookworm-minbase"));
    expect(names("minbase").length).toBe(88);
  });

  test("buildd is debootstrap's 144 and the default (important) its 156", () => {
    expect(names("buildd")).toEqual(debootstrap("debootstrap-bookworm-buildd"));
    expect(names("important")).toEqual(debootstrap("debootstrap-bookworm-default"));
  });

  test("the essential set: Essential: yes and its dependencies, inside every other variant", () => {
    const essential = resolve(bookworm, { variant: "essential", suite: "bookworm" });
    expect(essential.names.length).toBe(61);
    expect(essential.essentialNames).toEqual(essential.names);
    expect(essential.names).toContain("usr-is-merged"); // init-system-helpers: usrmerge | usr-is-merged
    expect(essential.names).not.toContain("usrmerge");
    expect(essential.names).not.toContain("apt");
    for (const variant of ["required", "minbase", "buildd", "important", "standard"] as const) {
      const r = resolve(bookworm, { variant, suite: "bookworm" });
      expect(r.essentialNames).toEqual(essential.names);
      expect(r.names).toEqual(expect.arrayContaining(r.essentialNames));
    }
  });

  test("the variants nest, and standard adds Priority: standard", () => {
    const standard = names("standard");
    expect(standard).toEqual(expect.arrayContaining(names("important")));
    expect(standard.length).toBe(259);
    expect(names("required")).toEqual(names("minbase")); // apt is Priority: required in bookworm
  });

  test("versions and checksums come from the index", () => {
    const apt = resolve(bookworm, { suite: "bookworm" }).all.find((p) => p.name === "apt")!;
    expect(apt.version).toBe("2.6.1");
    expect(apt.filename).toBe("pool/main/a/apt/apt_2.6.1_amd64.deb");
  });

  test("include and exclude", () => {
    const r = resolve(bookworm, { suite: "bookworm", include: ["systemd-sysv"], exclude: ["tzdata"] });
    expect(r.names).toContain("systemd-sysv");
    expect(r.names).toContain("systemd");
    expect(r.names).not.toContain("tzdata");
  });
});

describe("choice rules", () => {
  const libc = stanza("libc6", "2.36-9", { Priority: "required" });

  test("a virtual package goes to the provider with the most important Priority, not the first by name", () => {
    const idx = index(libc, stanza("base-files", "12", { Essential: "yes", Priority: "required", "Pre-Depends": "awk" }), stanza("gawk", "5.2", { Provides: "awk" }), stanza("mawk", "1.3", { Priority: "important", Provides: "awk" }), stanza("original-awk", "1", { Provides: "awk" }));
    expect(resolve(idx, { variant: "essential" }).names).toEqual(["base-files", "mawk"]);
  });

  test("providers of equal Priority: the first by name, so the choice is stable", () => {
    const idx = index(stanza("a", "1", { Essential: "yes", Depends: "v" }), stanza("zz", "1", { Provides: "v" }), stanza("bb", "1", { Provides: "v" }));
    expect(resolve(idx, { variant: "essential" }).names).toEqual(["a", "bb"]);
  });

  test("a dependency a seed already satisfies pulls in no alternative", () => {
    const idx = index(stanza("init-system-helpers", "1.65", { Essential: "yes", Depends: "usrmerge | usr-is-merged" }), stanza("usrmerge", "37", { Provides: "usr-is-merged" }), stanza("usr-is-merged", "37"), stanza("other", "1", { Priority: "required", Depends: "x | usr-is-merged" }), stanza("x", "1"));
    expect(resolve(idx, { suite: "bookworm", variant: "required" }).names).toEqual(["init-system-helpers", "other", "usr-is-merged"]);
  });

  test("after bookworm, usrmerge is never a dependency and nothing else is added", () => {
    const idx = index(stanza("init-system-helpers", "1.66", { Essential: "yes", Depends: "usrmerge | usr-is-merged" }), stanza("usrmerge", "39", { Provides: "usr-is-merged" }), stanza("usr-is-merged", "39"));
    expect(resolve(idx, { suite: "trixie", variant: "required" }).names).toEqual(["init-system-helpers", "usr-is-merged"]);
    // before bookworm the first alternative is taken as usual
    expect(resolve(idx, { suite: "bullseye", variant: "required" }).names).toEqual(["init-system-helpers", "usrmerge"]);
  });

  test("the first alternative any package can satisfy wins", () => {
    const idx = index(stanza("a", "1", { Essential: "yes", Depends: "missing | old (>= 2) | b | c" }), stanza("old", "1"), stanza("b", "1"), stanza("c", "1"));
    expect(resolve(idx, { variant: "essential" }).names).toEqual(["a", "b"]);
  });

  test("versioned dependencies: a virtual package satisfies them only with a versioned Provides", () => {
    const idx = index(stanza("a", "1", { Essential: "yes", Depends: "v (>= 2)" }), stanza("p1", "1", { Provides: "v" }), stanza("p2", "1", { Provides: "v (= 1.5)" }), stanza("p3", "1", { Provides: "v (= 2.1)" }));
    expect(resolve(idx, { variant: "essential" }).names).toEqual(["a", "p3"]);
  });

  test("an unsatisfiable dependency names the package and the dependency", () => {
    const idx = index(stanza("apt", "2.6.1", { Priority: "required", Depends: "libapt-pkg6.0 (>= 2.6.1), gpgv | gpgv2" }), stanza("libapt-pkg6.0", "2.5.0"), stanza("gpgv", "2.2"));
    expect(() => resolve(idx)).toThrow('resolving the minbase package set of trixie/amd64: apt 2.6.1 depends on "libapt-pkg6.0 (>= 2.6.1)", which no package in the index satisfies');
  });

  test("':any' needs Multi-Arch: allowed, ':native' and the own architecture always match", () => {
    const ok = index(stanza("a", "1", { Essential: "yes", Depends: "perl:any, b:native, c:amd64" }), stanza("perl", "5.36", { "Multi-Arch": "allowed" }), stanza("b", "1"), stanza("c", "1", { Architecture: "all" }));
    expect(resolve(ok, { variant: "essential" }).names).toEqual(["a", "b", "c", "perl"]);
    const notAllowed = index(stanza("a", "1", { Essential: "yes", Depends: "perl:any" }), stanza("perl", "5.36"));
    expect(() => resolve(notAllowed, { variant: "essential" })).toThrow('a 1 depends on "perl:any"');
    const foreign = index(stanza("a", "1", { Essential: "yes", Depends: "c:i386" }), stanza("c", "1"));
    expect(() => resolve(foreign, { variant: "essential" })).toThrow('depends on "c:i386"');
  });

  test("--exclude removes a package and drops (and reports) dependencies only it satisfies", () => {
    const idx = index(stanza("a", "1", { Priority: "required", Depends: "b, c | d" }), stanza("b", "1", { Priority: "required" }), stanza("c", "1"), stanza("d", "1"), stanza("apt", "2"));
    const r = resolve(idx, { exclude: ["b", "c"] });
    expect(r.names).toEqual(["a", "apt", "d"]);
    expect(r.dropped).toEqual(['a depends on "b"']);
  });

  test("excluding a dependency of an essential package drops it from the essential set too", () => {
    const idx = index(stanza("e", "1", { Essential: "yes", Depends: "lib" }), stanza("lib", "1"), stanza("apt", "2"));
    const r = resolve(idx, { exclude: ["lib"] });
    expect(r.essentialNames).toEqual(["e"]);
    expect(r.names).toEqual(["apt", "e"]);
    expect(r.dropped).toEqual(['e depends on "lib"']);
  });

  test("--include takes real packages, or the best provider of a virtual one; unknown names are an error", () => {
    const idx = index(stanza("apt", "2"), stanza("mawk", "1", { Priority: "required", Provides: "awk" }), stanza("gawk", "1", { Provides: "awk" }), stanza("hello", "2.10", { Depends: "libc6" }), libc);
    expect(resolve(idx, { include: ["hello", "awk"] }).names).toEqual(["apt", "hello", "libc6", "mawk"]);
    expect(() => resolve(idx, { include: ["nosuch"] })).toThrow("resolving the minbase package set of trixie/amd64: there is no package nosuch (from --include)");
  });

  test("an index of another architecture is refused", () => {
    expect(() => resolveDebian(index(libc), { variant: "minbase", include: [], exclude: [], suite: "bookworm", arch: "arm64" })).toThrow("the package index is for amd64");
  });
});
