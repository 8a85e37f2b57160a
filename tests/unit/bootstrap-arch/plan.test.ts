// The pure parts of `spawnctl bootstrap arch`: mirror URLs, which targets are
// explicit, what a database may name, fingerprint lists, the tables and the
// second-stage scripts.
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  LEFTOVERS, SKELETON, STAGE2, checkDbEntry, checkPkginfo, explicitNames, firstServer, keyringSibling, mirrorlistLine, pacmanConf,
  pacmanScript, parseFingerprints, repoUrl, scriptletScript, shellQuote, validationOf,
} from "../../../src/bootstrap/arch-plan.ts";
import type { PacmanDb, PacmanPackage } from "../../../src/bootstrap/pacman.ts";

function pkg(p: Partial<PacmanPackage> & { name: string }, repo = "core"): PacmanPackage {
  return {
    repo, filename: `${p.name}-${p.version ?? "1-1"}-any.pkg.tar.zst`, base: p.name, version: "1-1", desc: "", csize: 1, isize: 1, md5sum: "",
    sha256sum: "", pgpsig: "", arch: "any", url: "", license: [], builddate: 0, packager: "", groups: [], depends: [], optdepends: [],
    makedepends: [], checkdepends: [], provides: [], conflicts: [], replaces: [], fields: {}, ...p,
  };
}

function db(name: string, pkgs: PacmanPackage[]): PacmanDb {
  const byName = new Map<string, PacmanPackage>();
  for (const p of pkgs) if (!byName.has(p.name)) byName.set(p.name, { ...p, repo: name });
  return { name, packages: [...byName.values()], byName };
}

describe("mirrors", () => {
  test("repoUrl: a base directory gets /$repo/os/$arch; a mirrorlist-style URL is filled in", () => {
    expect(repoUrl("https://m.example/archlinux", "core", "x86_64")).toBe("https://m.example/archlinux/core/os/x86_64");
    expect(repoUrl("https://m.example/archlinux///", "extra", "x86_64")).toBe("https://m.example/archlinux/extra/os/x86_64");
    expect(repoUrl("file:///srv/arch/$repo/os/$arch", "core", "aarch64")).toBe("file:///srv/arch/core/os/aarch64");
    expect(repoUrl("http://h/$arch/$repo/", "extra", "x86_64")).toBe("http://h/x86_64/extra");
  });

  test("firstServer: the first active Server line of a mirrorlist", () => {
    const list = "## Worldwide\n#Server = https://a.example/$repo/os/$arch\n\n  Server = https://b.example/$repo/os/$arch  \nServer = https://c.example/$repo/os/$arch\n";
    expect(firstServer(list)).toBe("https://b.example/$repo/os/$arch");
    expect(firstServer("#Server = x\n")).toBeUndefined();
  });

  test("mirrorlistLine: http(s) only, always with $repo/os/$arch", () => {
    expect(mirrorlistLine("https://m.example/archlinux/")).toBe("Server = https://m.example/archlinux/$repo/os/$arch");
    expect(mirrorlistLine("http://m.example/$repo/os/$arch")).toBe("Server = http://m.example/$repo/os/$arch");
    expect(mirrorlistLine("file:///srv/arch")).toBeUndefined();
  });
});

describe("explicit targets", () => {
  const core = db("core", [
    pkg({ name: "base", depends: ["bash", "filesystem"] }),
    pkg({ name: "bash", provides: ["sh"], groups: [] }),
    pkg({ name: "filesystem" }),
    pkg({ name: "gcc", groups: ["base-devel"] }),
    pkg({ name: "make", groups: ["base-devel"] }),
    pkg({ name: "libfoo", version: "1.0-1", provides: ["libfoo.so=1-64"] }),
  ]);
  const extra = db("extra", [pkg({ name: "libfoo", version: "2.0-1" }, "extra"), pkg({ name: "vim", provides: ["editor"] }, "extra")]);

  test("a package, a group's members, a provider; never their dependencies", () => {
    expect([...explicitNames([core, extra], ["base"])]).toEqual(["base"]);
    expect([...explicitNames([core, extra], ["base-devel", "vim"])].sort()).toEqual(["gcc", "make", "vim"]);
    expect([...explicitNames([core, extra], ["sh"])]).toEqual(["bash"]);
    expect([...explicitNames([core, extra], ["editor"])]).toEqual(["vim"]);
    expect([...explicitNames([core, extra], ["nothing-like-this"])]).toEqual([]);
  });

  test("a versioned target is the package that satisfies it", () => {
    expect([...explicitNames([core, extra], ["libfoo>=2"])]).toEqual(["libfoo"]);
    expect([...explicitNames([core, extra], ["libfoo.so=1-64"])]).toEqual(["libfoo"]);
  });
});

describe("what a database may name", () => {
  test("ordinary names, versions and file names pass", () => {
    for (const p of [
      pkg({ name: "gtk+3", version: "1:3.24.41-1", filename: "gtk+3-1:3.24.41-1-x86_64.pkg.tar.zst" }),
      pkg({ name: "python-a_b", version: "2.0.0.r12.gabc~rc1-2" }),
      pkg({ name: "@scope", version: "1-1" }),
    ]) expect(() => checkDbEntry(p)).not.toThrow();
  });

  test("anything that could leave a directory or a shell word is refused, naming the repository", () => {
    const bad: Array<Partial<PacmanPackage> & { name: string }> = [
      { name: "../etc" },
      { name: "-rf" },
      { name: "a b" },
      { name: "ok", version: "1/../../x" },
      { name: "ok", version: "1$(id)" },
      { name: "ok", filename: "../../../etc/shadow" },
      { name: "ok", filename: "a..pkg.tar.zst" },
      { name: "ok", filename: "x'y.pkg.tar.zst" },
      { name: "ok", filename: ".hidden.pkg.tar.zst" },
    ];
    for (const b of bad) expect(() => checkDbEntry(pkg(b, "extra"))).toThrow(/the extra database/);
  });

  test("checkPkginfo: the file must hold the package the database names", () => {
    const p = pkg({ name: "bash", version: "5.2-1" });
    expect(() => checkPkginfo(p, { pkgname: ["bash"], pkgver: ["5.2-1"] })).not.toThrow();
    expect(() => checkPkginfo(p, { pkgname: ["evil"], pkgver: ["5.2-1"] })).toThrow("bash-5.2-1-any.pkg.tar.zst from core contains evil 5.2-1, but the database says bash 5.2-1");
    expect(() => checkPkginfo(p, { pkgname: ["bash"] })).toThrow("(no version)");
  });
});

describe("keyrings", () => {
  test("parseFingerprints: archlinux-revoked and archlinux-trusted lines, upper-cased", () => {
    const fpr = "a".repeat(40);
    const got = parseFingerprints(`${fpr}\n# comment\n${"B".repeat(40)}:4:\n\nshort123\n`);
    expect([...got]).toEqual(["A".repeat(40), "B".repeat(40)]);
  });

  test("keyringSibling: pacman-key's layout", () => {
    expect(keyringSibling("/usr/share/pacman/keyrings/archlinux.gpg", "revoked")).toBe("/usr/share/pacman/keyrings/archlinux-revoked");
    expect(keyringSibling("/k/mine.asc", "trusted")).toBe("/k/mine.asc-trusted");
  });
});

describe("validation records", () => {
  test("as libalpm: the digest unless the signature came from the database", () => {
    expect(validationOf(pkg({ name: "a", sha256sum: "x", pgpsig: "sig" }), true)).toEqual(["pgp"]);
    expect(validationOf(pkg({ name: "a", sha256sum: "x" }), true)).toEqual(["sha256", "pgp"]);
    expect(validationOf(pkg({ name: "a", md5sum: "m" }), true)).toEqual(["md5", "pgp"]);
    expect(validationOf(pkg({ name: "a", sha256sum: "x", md5sum: "m", pgpsig: "s" }), false)).toEqual(["sha256"]);
    expect(validationOf(pkg({ name: "a" }), false)).toEqual(["none"]);
  });
});

describe("tables and scripts", () => {
  test("the skeleton is pacstrap's: 0755 directories, tmp 1777, sys and proc 0555", () => {
    const modes = Object.fromEntries(SKELETON.map((s) => [s.path, s.mode.toString(8)]));
    expect(modes).toEqual({
      "var/cache/pacman/pkg": "755", "var/lib/pacman": "755", "var/log": "755", dev: "755", run: "755", "etc/pacman.d": "755",
      tmp: "1777", sys: "555", proc: "555",
    });
  });

  test("every file the second stage writes is in the clean-up list; the package mount point is not (it is rmdir'd)", () => {
    for (const p of [STAGE2.conf, STAGE2.script, STAGE2.log]) expect(LEFTOVERS).toContain(p.slice(1));
    expect(LEFTOVERS).not.toContain(STAGE2.pkgDir.slice(1));
    expect(STAGE2.pkgDir).not.toBe("/var/cache/pacman/pkg");
  });

  test("pacman.conf: no signature checks, pacman's own paths", () => {
    const conf = pacmanConf();
    expect(conf).toContain("[options]\n");
    expect(conf).toContain("SigLevel = Never\n");
    expect(conf).toContain("LocalFileSigLevel = Never\n");
    expect(conf).toContain("DBPath = /var/lib/pacman/\n");
    expect(conf).toContain("CacheDir = /var/cache/pacman/pkg/\n");
    expect(conf).not.toMatch(/^\[(core|extra)\]/m);
  });

  test("shellQuote survives single quotes", () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
    const out = Bun.spawnSync(["sh", "-c", `printf %s ${shellQuote("it's $(not) `run`")}`]).stdout.toString();
    expect(out).toBe("it's $(not) `run`");
  });

  test("pacmanScript: -U of every file from the bound directory, then --asdeps", () => {
    const s = pacmanScript(["a-1-1-any.pkg.tar.zst", "b-1:2-3-x86_64.pkg.tar.zst"], ["b"]);
    expect(s).toStartWith("set -e\n");
    expect(s).toContain(`pacman --config ${STAGE2.conf} --noconfirm -U --noprogressbar --overwrite '*' '${STAGE2.pkgDir}/a-1-1-any.pkg.tar.zst' '${STAGE2.pkgDir}/b-1:2-3-x86_64.pkg.tar.zst'\n`);
    expect(s).toContain(`pacman --config ${STAGE2.conf} --noconfirm -D --asdeps 'b'\n`);
    expect(pacmanScript(["a.pkg.tar.zst"], [])).not.toContain("--asdeps");
  });

  test("scriptletScript: pacman's `. SCRIPT; FUNCTION VERSION`, failures reported, not fatal", () => {
    const s = scriptletScript([{ dir: "foo-1:2-3", version: "1:2-3", functions: ["pre_install", "post_install"] }]);
    expect(s).not.toContain("set -e");
    expect(s).toContain(`/bin/sh -c ". /var/lib/pacman/local/$1/install; $2 $3"`);
    expect(s).toContain("run 'foo-1:2-3' pre_install '1:2-3'\nrun 'foo-1:2-3' post_install '1:2-3'\n");
    expect(s.indexOf("pre_install '")).toBeLessThan(s.indexOf("post_install '"));
  });

  test("scriptletScript runs as a shell script: order, arguments, a failure does not stop the rest", () => {
    // the same script with the local database moved into a temporary directory
    const dir = mkdtempSync(`${tmpdir()}/spawnctl-scriptlet-`);
    mkdirSync(`${dir}/a-1-1`);
    mkdirSync(`${dir}/b-2-1`);
    writeFileSync(`${dir}/a-1-1/install`, `post_install() { echo "a post $1" >> ${dir}/out; return 3; }\n`);
    writeFileSync(`${dir}/b-2-1/install`, `pre_install() { echo "b pre $1" >> ${dir}/out; }\npost_install() { echo "b post $1" >> ${dir}/out; }\n`);
    const script = scriptletScript([
      { dir: "a-1-1", version: "1-1", functions: ["post_install"] },
      { dir: "b-2-1", version: "2-1", functions: ["pre_install", "post_install"] },
    ]).replaceAll("/var/lib/pacman/local", dir).replace(/^exec .*$/m, `exec >>${dir}/log 2>&1`).replace(/^cd \/$/m, "");
    const p = Bun.spawnSync(["sh", "-c", script]);
    expect(p.exitCode).toBe(0);
    expect(readFileSync(`${dir}/out`, "utf8")).toBe("a post 1-1\nb pre 2-1\nb post 2-1\n");
    expect(readFileSync(`${dir}/log`, "utf8")).toContain("spawnctl: scriptlet failed: a-1-1 post_install (exit 3)");
    rmSync(dir, { recursive: true, force: true });
  });
});
