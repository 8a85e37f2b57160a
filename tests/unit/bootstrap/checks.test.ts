// The checks a Debian bootstrap makes before it fetches a package or writes
// into DEST: the request against a bundle or a Release file, --include and
// --exclude against the index, the resolved set against the bundle, and DEST.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { PackageIndex, type Pkg } from "../../../src/bootstrap/packages.ts";
import { parseRelease } from "../../../src/bootstrap/release.ts";
import { checkBundleRequest, checkBundleSet, checkNames, checkReleaseRequest, describeBundle, orList, unknownSuite, urlPath, type BundleFacts, type Request } from "../../../src/bootstrap/checks.ts";
import { checkTarget } from "../../../src/bootstrap/target.ts";
import { stanza, SHA } from "./stanza.ts";

const B = "/srv/b.bundle";
const bookworm: BundleFacts = { distro: "debian", suite: "bookworm", arch: "amd64", components: ["main"], variant: "minbase" };
const req = (r: Partial<Request> = {}): Request => ({ distro: "debian", include: [], exclude: [], ...r });
const thrown = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error, none was thrown");
};

describe("a bundle against the command line", () => {
  test("what the command line leaves out is the bundle's; what it names must match", () => {
    expect(() => checkBundleRequest(B, bookworm, req())).not.toThrow();
    expect(() => checkBundleRequest(B, bookworm, req({ suite: "bookworm", arch: "amd64", variant: "minbase", components: ["main"] }))).not.toThrow();
    // the Codename of the bundle's signed Release names the same suite
    expect(() => checkBundleRequest(B, { ...bookworm, suite: "stable" }, req({ suite: "bookworm" }), ["bookworm"])).not.toThrow();
    expect(() => checkBundleRequest(B, bookworm, req({ components: ["main"] }))).not.toThrow();
  });

  test("each mismatch names both sides", () => {
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ suite: "trixie" })))).toBe("--from-bundle=/srv/b.bundle holds bookworm (amd64, minbase), not trixie.");
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ arch: "arm64" })))).toBe("--from-bundle=/srv/b.bundle holds bookworm (amd64, minbase), not bookworm (arm64).");
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ suite: "bookworm", variant: "essential" })))).toBe("--from-bundle=/srv/b.bundle holds bookworm (amd64, minbase), not bookworm (essential).");
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ suite: "trixie", arch: "arm64", variant: "buildd" })))).toBe("--from-bundle=/srv/b.bundle holds bookworm (amd64, minbase), not trixie (arm64, buildd).");
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ distro: "ubuntu", suite: "noble" })))).toBe("--from-bundle=/srv/b.bundle holds debian bookworm (amd64, minbase), not ubuntu noble.");
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ components: ["main", "contrib"] })))).toBe("--from-bundle=/srv/b.bundle holds bookworm main (amd64, minbase), not bookworm main,contrib.");
    // "stable" is no codename: only the manifest's suite and the Release's Codename count
    expect(thrown(() => checkBundleRequest(B, bookworm, req({ suite: "stable" }), ["bookworm"]))).toContain("not stable.");
  });

  test("components are shown when they are not just main", () => {
    expect(describeBundle({ ...bookworm, components: ["main", "contrib"] }, { components: true, distro: true })).toBe("debian bookworm main,contrib (amd64, minbase)");
    expect(thrown(() => checkBundleRequest(B, { ...bookworm, components: ["main", "contrib"] }, req({ suite: "trixie" })))).toBe("--from-bundle=/srv/b.bundle holds bookworm main,contrib (amd64, minbase), not trixie.");
  });
});

function index(...stanzas: string[]): PackageIndex {
  return PackageIndex.fromPackagesFiles("amd64", [{ text: stanzas.join(""), what: "test Packages" }]);
}

const idx = index(
  stanza("bash", "5.2", { Essential: "yes", Priority: "required" }),
  stanza("mawk", "1.3", { Priority: "required", Provides: "awk" }),
  stanza("gawk", "5.2", { Provides: "awk" }),
  stanza("systemd", "252"),
);

describe("--include and --exclude against the index", () => {
  const mirror = { index: "bookworm main (amd64)" };

  test("real and virtual names pass", () => {
    expect(() => checkNames(idx, ["bash", "awk", "systemd"], ["gawk", "awk"], mirror)).not.toThrow();
  });

  test("from a mirror: a name the index lacks, with the suite, components and architecture", () => {
    expect(thrown(() => checkNames(idx, ["foo"], [], mirror))).toBe("--include=foo: no package foo in bookworm main (amd64).");
    expect(thrown(() => checkNames(idx, ["bash", "foo", "bar"], [], mirror))).toBe("--include=foo,bar: no package foo or bar in bookworm main (amd64).");
    expect(thrown(() => checkNames(idx, [], ["sytemd"], mirror))).toBe("--exclude=sytemd: no package sytemd in bookworm main (amd64).");
  });

  test("from a bundle: an --include must be among its packages, an --exclude known to its index", () => {
    const inBundle = new Set(["bash", "mawk"]);
    const bundle = { ...mirror, bundle: { path: B, has: (p: Pkg) => inBundle.has(p.name) } };
    expect(() => checkNames(idx, ["bash", "awk"], ["gawk", "systemd"], bundle)).not.toThrow();
    expect(thrown(() => checkNames(idx, ["foo"], [], bundle))).toBe("--include=foo: /srv/b.bundle has no package foo.");
    // in the suite, but not in the bundle
    expect(thrown(() => checkNames(idx, ["systemd"], [], bundle))).toBe("--include=systemd: /srv/b.bundle has no package systemd.");
    expect(thrown(() => checkNames(idx, [], ["foo"], bundle))).toBe("--exclude=foo: no package foo in the bookworm main (amd64) index of /srv/b.bundle.");
    // a virtual name only some provider of which is in the bundle
    const onlyGawk = { ...mirror, bundle: { path: B, has: (p: Pkg) => p.name === "gawk" } };
    expect(() => checkNames(idx, ["awk"], [], onlyGawk)).not.toThrow();
  });
});

describe("the resolved set against a bundle", () => {
  const pkgs = [...idx.packages()];
  test("every package must be in it", () => {
    expect(() => checkBundleSet(pkgs, () => true, B, "bookworm (amd64, minbase)", req())).not.toThrow();
    expect(thrown(() => checkBundleSet(pkgs, (p) => p.name !== "gawk", B, "bookworm (amd64, minbase)", req({ exclude: ["mawk"] }))))
      .toBe("--from-bundle=/srv/b.bundle has no package gawk, which bookworm (amd64, minbase) needs with --exclude=mawk.");
    expect(thrown(() => checkBundleSet(pkgs, (p) => p.name === "bash", B, "bookworm (amd64, minbase)", req())))
      .toBe("--from-bundle=/srv/b.bundle has no package mawk, gawk or systemd, which bookworm (amd64, minbase) needs.");
  });

  test("a long list is cut", () => {
    const many = index(...Array.from({ length: 12 }, (_, i) => stanza(`p${i}`, "1", { SHA256: SHA })));
    const m = thrown(() => checkBundleSet([...many.packages()], () => false, B, "x", req({ include: ["p0"] })));
    expect(m).toContain("p6, p7 or 4 more, which x needs with --include=p0.");
  });
});

describe("the request against the Release file", () => {
  const release = parseRelease(["Suite: stable", "Codename: bookworm", "Architectures: amd64 arm64 all", "Components: main contrib updates/non-free", "SHA256:", ""].join("\n"));
  const where = "the mirror's /debian/dists/bookworm/InRelease";

  test("an architecture and components it lists pass", () => {
    expect(() => checkReleaseRequest(release, "arm64", ["main", "contrib", "non-free"], where)).not.toThrow();
  });

  test("others are refused with what it does list", () => {
    expect(thrown(() => checkReleaseRequest(release, "riscv64", ["main"], where))).toBe("--arch=riscv64: the mirror's /debian/dists/bookworm/InRelease lists no architecture riscv64 (it lists amd64, arm64).");
    expect(thrown(() => checkReleaseRequest(release, "all", ["main"], where))).toContain("lists no architecture all");
    expect(thrown(() => checkReleaseRequest(release, "amd64", ["main", "bogus"], where))).toBe("--components=main,bogus: the mirror's /debian/dists/bookworm/InRelease lists no component bogus (it lists main, contrib, updates/non-free).");
  });

  test("a Release that lists neither is not held against the request", () => {
    const bare = parseRelease("Codename: x\nSHA256:\n");
    expect(() => checkReleaseRequest(bare, "s390x", ["whatever"], where)).not.toThrow();
  });
});

describe("an unknown suite", () => {
  test("is named with the path of the mirror's dists URL, never the host", () => {
    const e = unknownSuite("trixy", "http://mirror.invalid:8080/debian/dists/trixy/InRelease");
    expect(e.message).toBe("Unknown suite trixy: the mirror has no /debian/dists/trixy/InRelease.");
    expect(e.message).not.toContain("mirror.invalid");
    expect(urlPath("file:///srv/mirror/dists/x/InRelease")).toBe("/srv/mirror/dists/x/InRelease");
    expect(urlPath("https://user:pw@h.invalid/a%20b/")).toBe("/a b/");
  });

  test("orList", () => {
    expect(orList(["a"])).toBe("a");
    expect(orList(["a", "b"])).toBe("a or b");
    expect(orList(["a", "b", "c"])).toBe("a, b or c");
  });
});

describe("DEST before anything is fetched", () => {
  const dir = mkdtempSync(`${tmpdir()}/spawnctl-checktarget-`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("missing, or an empty directory (lost+found aside): accepted, and nothing is written", () => {
    expect(() => checkTarget(`${dir}/new`)).not.toThrow();
    expect(() => checkTarget(`${dir}/deeper/still/new`)).not.toThrow();
    mkdirSync(`${dir}/empty`);
    expect(() => checkTarget(`${dir}/empty`)).not.toThrow();
    mkdirSync(`${dir}/lf/lost+found`, { recursive: true });
    expect(() => checkTarget(`${dir}/lf`)).not.toThrow();
    expect(readdirSync(dir).sort()).toEqual(["empty", "lf"]);
  });

  test("anything else is refused, naming it", () => {
    mkdirSync(`${dir}/full`);
    writeFileSync(`${dir}/full/x`, "");
    expect(thrown(() => checkTarget(`${dir}/full`))).toBe(`${dir}/full exists and is not empty.`);
    expect(thrown(() => checkTarget(`${dir}/full/x`))).toBe(`${dir}/full/x exists and is not a directory.`);
    expect(thrown(() => checkTarget(`${dir}/full/x/y/z`))).toBe(`${dir}/full/x/y/z: ${dir}/full/x exists and is not a directory.`);
    expect(thrown(() => checkTarget("/"))).toBe("Refusing to bootstrap into the root directory.");
    expect(thrown(() => checkTarget("//"))).toBe("Refusing to bootstrap into the root directory.");
  });
});
