// Hostile archives and hostile mirrors, as an attacker would build them:
// every one must be refused by name (the package or archive, and the member
// or index field), with exit code 1, no stack trace, nothing written outside
// the target and no half-made target or image left behind. And trees whose
// packages carry symlinks out of the tree (legitimate inside a container)
// must not lead the host-side steps of a bootstrap (policy-rc.d, dpkg's
// status, the hostname, machine-id, the local pacman database) out of it.
//
// No network: the Debian mirrors are file:// directories made here from
// synthetic .debs (index unsigned, --no-verify), the Arch repository is a
// package cache directory (--cache-dir, --no-verify), import-tar writes into
// a private pool (SPAWNCTL_IMAGE_PATH).
import { afterAll, describe, expect } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { IS_ROOT, leftovers, removeTree, rootTest, run, tempDir, type Result } from "../helpers.ts";
import { gzip, makeDeb, tarOf, text, zstd } from "../unit/archive/fixtures.ts";
import type { TarWriteEntry } from "../../src/archive/tar.ts";

const base = tempDir("spawnctl-secarch-");
const before = IS_ROOT ? leftovers() : [];
afterAll(() => {
  removeTree(base);
  if (IS_ROOT) expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

let seq = 0;
/** A fresh directory for one test. */
function work(what: string): string {
  const d = `${base}/${what}-${++seq}`;
  mkdirSync(d);
  return d;
}

const dir = (path: string, mode = 0o755): TarWriteEntry => ({ path, type: "dir", mode });
const file = (path: string, content = "pwned\n", mode = 0o644): TarWriteEntry => ({ path, type: "file", data: text(content), mode });
const symlink = (path: string, linkname: string): TarWriteEntry => ({ path, type: "symlink", linkname });
const hardlink = (path: string, linkname: string): TarWriteEntry => ({ path, type: "hardlink", linkname });
/** directory entries for every prefix of an absolute host path, as members of a tree ("./var/", "./var/tmp/", ...) */
const dirsFor = (abs: string): TarWriteEntry[] => abs.split("/").filter(Boolean).map((_, i, a) => dir(`./${a.slice(0, i + 1).join("/")}/`));

/** a name with a NUL byte (a PAX path record carries it; readTar passes it on) */
const NUL_NAME = `etc/pass\0wd-${"x".repeat(110)}`;

/** What every refusal must look like. */
function expectRefused(r: Result, ...names: string[]): void {
  if (r.code !== 1) throw new Error(`expected exit 1, got ${r.code}:\n${r.stderr}${r.stdout}`);
  for (const n of names) expect(r.stderr).toContain(n);
  expect(r.stderr).not.toContain("internal error");
  expect(r.stderr).not.toContain("    at ");
}

/** Neither DEST nor the temporary tree beside it. */
function expectNoTarget(dest: string): void {
  expect(existsSync(dest)).toBe(false);
  const parent = dest.slice(0, dest.lastIndexOf("/"));
  const name = dest.slice(dest.lastIndexOf("/") + 1);
  expect(readdirSync(parent).filter((e) => e.startsWith(`.#${name}.`))).toEqual([]);
}

// ---------------------------------------------------------------------------
// Debian: synthetic .debs in a file:// mirror

interface DebSpec {
  name: string;
  version: string;
  data: TarWriteEntry[];
  essential?: boolean;
  /** the Packages stanza's fields, replacing the computed ones (Filename, Package, ...) */
  stanza?: Record<string, string>;
  /** where the .deb is written, relative to the mirror (default pool/main/NAME_VERSION_amd64.deb) */
  at?: string;
}

function deb(s: DebSpec): Uint8Array {
  const control = `Package: ${s.name}\nVersion: ${s.version}\nArchitecture: amd64\n${s.essential === false ? "" : "Essential: yes\n"}Priority: required\nMaintainer: nobody <nobody@invalid>\nDescription: a test package\n`;
  return makeDeb(tarOf([dir("./"), file("./control", control)]), tarOf(s.data), { dataComp: "xz" });
}

/** A mirror for bookworm/amd64/main; the InRelease is not signed (the tests pass --no-verify). */
function mirror(root: string, specs: DebSpec[]): string {
  const stanzas: string[] = [];
  for (const s of specs) {
    const bytes = deb(s);
    const filename = `pool/main/${s.name}_${s.version}_amd64.deb`;
    const at = `${root}/${s.at ?? filename}`;
    mkdirSync(at.slice(0, at.lastIndexOf("/")), { recursive: true });
    writeFileSync(at, bytes);
    const f: Record<string, string> = {
      Package: s.name, Version: s.version, Architecture: "amd64", ...(s.essential === false ? {} : { Essential: "yes" }), Priority: "required",
      Filename: filename, Size: String(bytes.length), SHA256: createHash("sha256").update(bytes).digest("hex"), ...s.stanza,
    };
    stanzas.push(Object.entries(f).map(([k, v]) => `${k}: ${v}\n`).join(""));
  }
  const packages = Buffer.from(stanzas.join("\n"));
  mkdirSync(`${root}/dists/bookworm/main/binary-amd64`, { recursive: true });
  writeFileSync(`${root}/dists/bookworm/main/binary-amd64/Packages`, packages);
  const sum = ` ${createHash("sha256").update(packages).digest("hex")} ${packages.length} main/binary-amd64/Packages`;
  writeFileSync(`${root}/dists/bookworm/InRelease`, ["Origin: spawnctl-test", "Suite: stable", "Codename: bookworm", "Architectures: amd64", "Components: main", `Date: ${new Date().toUTCString()}`, "SHA256:", sum, ""].join("\n"));
  return `file://${root}`;
}

function bootDebian(dest: string, url: string, cache: string, ...args: string[]): Result {
  return run(["bootstrap", "debian", "bookworm", dest, `--mirror=${url}`, "--no-verify", "--variant=essential", `--cache-dir=${cache}`, ...args], { timeout: 180_000 });
}

/** a harmless essential package the hostile one comes with */
const plain: DebSpec = { name: "plain", version: "1.0", data: [dir("./"), dir("./usr/"), dir("./usr/share/"), file("./usr/share/plain", "plain\n")] };

describe("bootstrap debian: a .deb with unsafe member names is refused by name", () => {
  // `escape` is where a naive extractor would write; it must not exist afterwards
  // `member` is the name as the error shows it (readTar drops a leading "./")
  const cases: Array<{ what: string; member: (w: string) => string; data: (w: string) => TarWriteEntry[]; escape: (w: string) => string; why: string; prepare?: (w: string) => void }> = [
    { what: "an absolute member", member: (w) => `${w}/escaped-abs`, data: (w) => [dir("./"), file(`${w}/escaped-abs`)], escape: (w) => `${w}/escaped-abs`, why: "is absolute" },
    { what: "a ../ member", member: () => "../escaped-dotdot", data: () => [dir("./"), dir("./usr/"), file("./../escaped-dotdot")], escape: (w) => `${w}/escaped-dotdot`, why: 'contains ".."' },
    { what: "a ../ member below a directory", member: () => "usr/../../escaped-dotdot2", data: () => [dir("./"), dir("./usr/"), file("./usr/../../escaped-dotdot2")], escape: (w) => `${w}/escaped-dotdot2`, why: 'contains ".."' },
    {
      what: "a symlink ./etc -> outside, then ./etc/passwd through it", member: () => "etc/passwd",
      data: (w) => [dir("./"), symlink("./etc", `${w}/outside-etc`), file("./etc/passwd", "root::0:0::/:/bin/sh\n")],
      escape: (w) => `${w}/outside-etc/passwd`, why: "goes through the symlink", prepare: (w) => mkdirSync(`${w}/outside-etc`),
    },
    {
      what: "a relative symlink that climbs out, then a file through it", member: () => "usr/up/escaped-rel",
      data: () => [dir("./"), dir("./usr/"), symlink("./usr/up", "../../.."), file("./usr/up/escaped-rel")],
      escape: (w) => `${w}/escaped-rel`, why: "goes through the symlink",
    },
    { what: "a NUL byte in a member name", member: () => NUL_NAME, data: () => [dir("./"), dir("./etc/"), file(`./${NUL_NAME}`)], escape: () => "", why: "contains a NUL byte" },
    {
      what: "a hardlink to an absolute host file", member: () => "pw",
      data: (w) => [dir("./"), hardlink("./pw", `${w}/victim`)], escape: () => "", why: "is absolute",
    },
    {
      what: "a hardlink to ../ outside the tree", member: () => "pw",
      data: () => [dir("./"), hardlink("./pw", "../victim")], escape: () => "", why: 'contains ".."',
    },
    {
      what: "a hardlink through a symlink out of the tree", member: () => "pw",
      data: (w) => [dir("./"), symlink("./out", w), hardlink("./pw", "./out/victim")], escape: () => "", why: "goes through the symlink",
    },
  ];

  for (const c of cases) {
    for (const where of ["essential (unpacked by spawnctl)", "not essential (unpacked by dpkg in the second stage)"]) {
      rootTest(`${c.what}; the package is ${where}`, () => {
        const w = work("deb");
        writeFileSync(`${w}/victim`, "host file\n");
        c.prepare?.(w);
        const essential = where.startsWith("essential");
        const evil: DebSpec = { name: "evil", version: "6.6-1", data: c.data(w), essential };
        const url = mirror(`${w}/mirror`, [plain, evil]);
        const dest = `${w}/dest`;
        const r = bootDebian(dest, url, `${w}/cache`, ...(essential ? [] : ["--include=evil"]));
        expectRefused(r, "evil 6.6-1", "pool/main/evil_6.6-1_amd64.deb", JSON.stringify(c.member(w)), c.why);
        expectNoTarget(dest);
        if (c.escape(w)) expect(existsSync(c.escape(w))).toBe(false);
        expect(readFileSync(`${w}/victim`, "utf8")).toBe("host file\n");
        expect(statSync(`${w}/victim`).nlink).toBe(1);
      });
    }
  }

  rootTest("a symlink out of the tree from one package, written through by the next", () => {
    const w = work("deb");
    mkdirSync(`${w}/outside`);
    const a: DebSpec = { name: "aaa-link", version: "1", data: [dir("./"), dir("./usr/"), symlink("./usr/share", `${w}/outside`)] };
    const b: DebSpec = { name: "zzz-write", version: "2", data: [dir("./"), dir("./usr/"), dir("./usr/share/"), file("./usr/share/doc")] };
    const dest = `${w}/dest`;
    const r = bootDebian(dest, mirror(`${w}/mirror`, [a, b]), `${w}/cache`);
    expectRefused(r, "zzz-write 2", "pool/main/zzz-write_2_amd64.deb", '"usr/share/doc"', `"usr/share" -> ${JSON.stringify(`${w}/outside`)}`);
    expectNoTarget(dest);
    expect(readdirSync(`${w}/outside`)).toEqual([]);
  });
});

describe("bootstrap debian: a hostile Packages index is refused, naming the index and the field", () => {
  // The .deb the index points at is real and its size and hash match: only the path is wrong.
  const cases: Array<{ what: string; stanza: (w: string) => Record<string, string>; at: (w: string) => string; field: string; value: (w: string) => string }> = [
    { what: "Filename with ../", stanza: () => ({ Filename: "../outside/evil_1_amd64.deb" }), at: () => "../outside/evil_1_amd64.deb", field: "Filename", value: () => "../outside/evil_1_amd64.deb" },
    { what: "Filename with ../ inside the pool path", stanza: () => ({ Filename: "pool/main/../../../outside/evil_1_amd64.deb" }), at: () => "../outside/evil_1_amd64.deb", field: "Filename", value: () => "pool/main/../../../outside/evil_1_amd64.deb" },
    { what: "an absolute Filename", stanza: (w) => ({ Filename: `${w}/outside/evil_1_amd64.deb` }), at: () => "../outside/evil_1_amd64.deb", field: "Filename", value: (w) => `${w}/outside/evil_1_amd64.deb` },
    { what: "a Filename with shell syntax", stanza: () => ({ Filename: "pool/main/evil;touch${IFS}pwned.deb" }), at: () => "pool/main/evil;touch${IFS}pwned.deb", field: "Filename", value: () => "pool/main/evil;touch${IFS}pwned.deb" },
    { what: "a package name with /", stanza: () => ({ Package: "../../evil" }), at: () => "pool/main/evil_1_amd64.deb", field: "Package", value: () => "../../evil" },
  ];
  for (const c of cases) {
    rootTest(c.what, () => {
      const w = work("index");
      const evil: DebSpec = { name: "evil", version: "1", data: [dir("./"), file("./evil")], stanza: c.stanza(w), at: c.at(w) };
      const dest = `${w}/dest`;
      const r = bootDebian(dest, mirror(`${w}/mirror`, [plain, evil]), `${w}/cache`);
      expectRefused(r, "bookworm main amd64 Packages", `the ${c.field} field`, JSON.stringify(c.value(w)));
      expectNoTarget(dest);
      // nothing was fetched from outside the mirror, nothing went into (or beside) the cache
      expect(existsSync(`${w}/cache`) ? readdirSync(`${w}/cache`, { recursive: true }).filter((f) => String(f).includes("evil")) : []).toEqual([]);
      expect(existsSync(`${w}/pwned`)).toBe(false);
      // with --download-only the bundle is not written either
      const d = run(["bootstrap", "debian", "bookworm", `--mirror=file://${w}/mirror`, "--no-verify", "--variant=essential", `--cache-dir=${w}/cache`, "--download-only", `--bundle=${w}/b.bundle`]);
      expectRefused(d, `the ${c.field} field`);
      expect(existsSync(`${w}/b.bundle`)).toBe(false);
    });
  }
});

// A tree whose packages ship symlinks out of the tree at the very paths the
// bootstrap writes from the host. Legitimate inside the container (an
// absolute target starts at the tree's root there), so the bootstrap goes
// through; but the host's files those links name must stay untouched. The
// second stage runs for real, in a container: the host's dash (with its
// libc) as /bin/sh and a dpkg that does nothing. (Not busybox: its shell
// runs its own dpkg applet whatever PATH says.)
function hostDash(): TarWriteEntry[] {
  const libs = new TextDecoder().decode(Bun.spawnSync(["ldd", "/bin/dash"]).stdout).split("\n").map((l) => /(\/\S+) \(0x/.exec(l)?.[1]).filter((l): l is string => !!l);
  if (!libs.some((l) => l.includes("ld-linux"))) throw new Error(`ldd /bin/dash: no dynamic loader in ${JSON.stringify(libs)}`);
  const out: TarWriteEntry[] = [{ path: "./usr/bin/sh", type: "file", data: readFileSync("/bin/dash"), mode: 0o755 }];
  for (const l of libs) {
    // into the tree as its merged-/usr path: /lib64/x -> ./usr/lib64/x, /lib/x86_64-linux-gnu/x -> ./usr/lib/x86_64-linux-gnu/x
    const inTree = l.startsWith("/usr/") ? l : `/usr${l}`;
    out.push(...dirsFor(inTree.slice(0, inTree.lastIndexOf("/"))), { path: `.${inTree}`, type: "file", data: readFileSync(l), mode: 0o755 });
  }
  return out;
}

describe("bootstrap debian: host-side writes stay inside the tree", () => {
  rootTest("policy-rc.d, dpkg's status, machine-id, hostname, the password, logs and the bind mount point", () => {
    const w = work("links");
    const v = `${w}/victim`; // host files the tree's symlinks name
    mkdirSync(`${v}/dpkg`, { recursive: true });
    mkdirSync(`${v}/log`);
    mkdirSync(`${v}/cache`);
    const bait: Record<string, string> = {
      "policy-rc.d": "host policy-rc.d\n", "machine-id": "host machine-id\n", hostname: "host hostname\n", hosts: "host hosts\n", passwd: "root:host:0:0::/:/bin/sh\n",
      "dpkg/status": "host dpkg status\n", "dpkg/arch": "host arch\n", "log/dpkg.log": "host dpkg.log\n", "log/alternatives.log": "host log\n",
    };
    for (const [p, c] of Object.entries(bait)) writeFileSync(`${v}/${p}`, c);
    const toy: DebSpec = {
      name: "base-toy", version: "1.0",
      data: [
        dir("./"), dir("./usr/"), dir("./usr/bin/"), ...hostDash(),
        file("./usr/bin/dpkg", "#!/bin/sh\necho \"fake dpkg $*\"\n", 0o755), dir("./etc/"), file("./etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        file("./etc/os-release", "ID=toy\n"), dir("./var/"), dir("./var/lib/"), dir("./var/log/"),
      ],
    };
    const links: DebSpec = {
      name: "links-toy", version: "1.0",
      data: [
        dir("./"), ...dirsFor(`${v}/dpkg`), dir(`./${v.slice(1)}/log/`), dir(`./${v.slice(1)}/cache/`),
        dir("./usr/"), dir("./usr/sbin/"), symlink("./usr/sbin/policy-rc.d", `${v}/policy-rc.d`),
        dir("./etc/"), symlink("./etc/machine-id", `${v}/machine-id`), symlink("./etc/hostname", `${v}/hostname`), symlink("./etc/hosts", `${v}/hosts`),
        dir("./var/"), dir("./var/lib/"), symlink("./var/lib/dpkg", `${v}/dpkg`), symlink("./var/log", `${v}/log`), symlink("./var/cache", `${v}/cache`),
      ],
    };
    const dest = `${w}/dest`;
    const r = bootDebian(dest, mirror(`${w}/mirror`, [toy, links]), `${w}/cache`, "--hostname=toyhost", "--root-password=secret");
    if (r.code !== 0) throw new Error(`bootstrap failed (exit ${r.code}):\n${r.stderr}`);
    expect(r.stderr).toContain("Bootstrapped debian bookworm (2 packages)");
    // the host's files are as they were, and nothing new appeared beside them
    for (const [p, c] of Object.entries(bait)) expect(readFileSync(`${v}/${p}`, "utf8")).toBe(c);
    expect(readdirSync(v, { recursive: true }).map(String).sort()).toEqual([...Object.keys(bait), "cache", "dpkg", "log"].sort());
    // what the bootstrap wrote went where the container sees those links point
    const inTree = `${dest}${v}`;
    expect(readFileSync(`${inTree}/hostname`, "utf8")).toBe("toyhost\n");
    expect(readFileSync(`${inTree}/hosts`, "utf8")).toContain("127.0.1.1\ttoyhost");
    expect(readFileSync(`${inTree}/machine-id`, "utf8")).toBe("");
    expect(readFileSync(`${inTree}/dpkg/arch`, "utf8")).toBe("amd64\n");
    expect(readFileSync(`${inTree}/policy-rc.d`, "utf8")).toContain("exit 101");
    expect(readFileSync(`${dest}/etc/passwd`, "utf8")).toMatch(/^root:\$6\$/);
    expect(lstatSync(`${dest}/usr/sbin/policy-rc.d`, { throwIfNoEntry: false })).toBeUndefined();
  }, 120_000);
});

// ---------------------------------------------------------------------------
// import-tar into a private pool

describe("import-tar: a hostile archive is refused by name and leaves no image", () => {
  const cases: Array<{ what: string; entries: (w: string) => TarWriteEntry[]; member: (w: string) => string; escape: (w: string) => string; why: string; prepare?: (w: string) => void }> = [
    { what: "an absolute member", entries: (w) => [dir("./"), dir("./etc/"), file(`${w}/escaped-abs`)], member: (w) => `${w}/escaped-abs`, escape: (w) => `${w}/escaped-abs`, why: "is absolute" },
    { what: "a ../ member", entries: () => [dir("./"), dir("./etc/"), file("./etc/../../../escaped-dotdot")], member: () => "etc/../../../escaped-dotdot", escape: (w) => `${w}/escaped-dotdot`, why: 'contains ".."' },
    {
      what: "a symlink ./etc -> outside, then ./etc/passwd through it", entries: (w) => [dir("./"), symlink("./etc", `${w}/outside-etc`), file("./etc/passwd")],
      member: () => "etc/passwd", escape: (w) => `${w}/outside-etc/passwd`, why: "goes through the symlink", prepare: (w) => mkdirSync(`${w}/outside-etc`),
    },
    {
      what: "a relative symlink that climbs out, then a file through it", entries: () => [dir("./"), symlink("./up", "../../../.."), file("./up/escaped-rel")],
      member: () => "up/escaped-rel", escape: (w) => `${w}/escaped-rel`, why: "leads above the root",
    },
    { what: "a NUL byte in a member name", entries: () => [dir("./"), dir("./etc/"), file(`./${NUL_NAME}`)], member: () => NUL_NAME, escape: () => "", why: "contains a NUL byte" },
    { what: "a hardlink to an absolute host file", entries: (w) => [dir("./"), hardlink("./pw", `${w}/victim`)], member: () => "pw", escape: () => "", why: "is absolute" },
    { what: "a hardlink to ../ outside", entries: () => [dir("./"), hardlink("./pw", "../../victim")], member: () => "pw", escape: () => "", why: 'contains ".."' },
  ];
  for (const c of cases) {
    rootTest(c.what, () => {
      const w = work("import");
      const pool = `${w}/pool`;
      mkdirSync(pool);
      writeFileSync(`${w}/victim`, "host file\n");
      c.prepare?.(w);
      const archive = `${w}/hostile.tar.gz`;
      writeFileSync(archive, gzip(tarOf(c.entries(w))));
      const r = run(["import-tar", archive, "hostile"], { env: { SPAWNCTL_IMAGE_PATH: pool } });
      expectRefused(r, archive, JSON.stringify(c.member(w)), c.why);
      expect(readdirSync(pool)).toEqual([]);
      if (c.escape(w)) expect(existsSync(c.escape(w))).toBe(false);
      expect(readFileSync(`${w}/victim`, "utf8")).toBe("host file\n");
      expect(statSync(`${w}/victim`).nlink).toBe(1);
    });
  }

  rootTest("an OS tree with absolute symlink targets and hardlinks inside is imported (and removed again)", () => {
    const w = work("import");
    const pool = `${w}/pool`;
    mkdirSync(pool);
    const archive = `${w}/tree.tar`;
    writeFileSync(archive, tarOf([
      dir("./"), dir("./etc/"), dir("./usr/"), dir("./usr/bin/"), file("./usr/bin/tool", "#!/bin/sh\n", 0o755), hardlink("./usr/bin/tool2", "./usr/bin/tool"),
      symlink("./bin", "usr/bin"), symlink("./etc/mtab", "/proc/self/mounts"), symlink("./usr/bin/abs", "/usr/bin/tool"), file("./bin/through-relative-link", "ok\n"),
    ]));
    const env = { SPAWNCTL_IMAGE_PATH: pool };
    const r = run(["import-tar", archive, "okimage"], { env });
    if (r.code !== 0) throw new Error(`import failed (exit ${r.code}):\n${r.stderr}`);
    expect(lstatSync(`${pool}/okimage/etc/mtab`).isSymbolicLink()).toBe(true);
    expect(readFileSync(`${pool}/okimage/usr/bin/through-relative-link`, "utf8")).toBe("ok\n");
    expect(statSync(`${pool}/okimage/usr/bin/tool2`).nlink).toBe(2);
    expect(run(["remove", "okimage"], { env }).code).toBe(0);
    expect(readdirSync(pool)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Arch: synthetic packages in a pacman cache directory

function pkg(name: string, version: string, entries: TarWriteEntry[]): Uint8Array {
  const pkginfo = `pkgname = ${name}\npkgbase = ${name}\npkgver = ${version}\npkgdesc = test\narch = x86_64\nsize = 1\n`;
  return zstd(tarOf([file(".PKGINFO", pkginfo), ...entries]));
}

/** DIR/core.db and the packages: a cache directory for --cache-dir (offline) */
function archCache(root: string, pkgs: Array<{ name: string; version: string; entries: TarWriteEntry[] }>): string {
  mkdirSync(root, { recursive: true });
  const db: TarWriteEntry[] = [];
  for (const p of pkgs) {
    const bytes = pkg(p.name, p.version, p.entries);
    const filename = `${p.name}-${p.version}-x86_64.pkg.tar.zst`;
    writeFileSync(`${root}/${filename}`, bytes);
    const desc = `%FILENAME%\n${filename}\n\n%NAME%\n${p.name}\n\n%VERSION%\n${p.version}\n\n%ARCH%\nx86_64\n\n%CSIZE%\n${bytes.length}\n\n%SHA256SUM%\n${createHash("sha256").update(bytes).digest("hex")}\n\n`;
    db.push(dir(`${p.name}-${p.version}`), file(`${p.name}-${p.version}/desc`, desc));
  }
  writeFileSync(`${root}/core.db`, gzip(tarOf(db)));
  return root;
}

function bootArch(dest: string, cache: string, ...args: string[]): Result {
  return run(["bootstrap", "arch", dest, ...args, `--cache-dir=${cache}`, "--repos=core", "--no-verify"], { timeout: 120_000 });
}

describe("bootstrap arch: a package with unsafe member names is refused by name", () => {
  const cases: Array<{ what: string; entries: (w: string) => TarWriteEntry[]; member: (w: string) => string; escape: (w: string) => string; why: string; prepare?: (w: string) => void }> = [
    { what: "an absolute member", entries: (w) => [dir("usr/"), file(`${w}/escaped-abs`)], member: (w) => `${w}/escaped-abs`, escape: (w) => `${w}/escaped-abs`, why: "is absolute" },
    { what: "a ../ member", entries: () => [dir("usr/"), file("usr/../../escaped-dotdot")], member: () => "usr/../../escaped-dotdot", escape: (w) => `${w}/escaped-dotdot`, why: 'contains ".."' },
    {
      what: "a symlink usr -> outside, then usr/passwd through it", entries: (w) => [symlink("usr", `${w}/outside-usr`), file("usr/passwd")],
      member: () => "usr/passwd", escape: (w) => `${w}/outside-usr/passwd`, why: "goes through the symlink", prepare: (w) => mkdirSync(`${w}/outside-usr`),
    },
    { what: "a NUL byte in a member name", entries: () => [dir("etc/"), file(NUL_NAME)], member: () => NUL_NAME, escape: () => "", why: "contains a NUL byte" },
    { what: "a hardlink to an absolute host file", entries: (w) => [hardlink("pw", `${w}/victim`)], member: () => "pw", escape: () => "", why: "is absolute" },
  ];
  for (const c of cases) {
    rootTest(c.what, () => {
      const w = work("arch");
      writeFileSync(`${w}/victim`, "host file\n");
      c.prepare?.(w);
      const cache = archCache(`${w}/cache`, [{ name: "evil", version: "6.6-1", entries: c.entries(w) }]);
      const dest = `${w}/dest`;
      const r = bootArch(dest, cache, "evil");
      expectRefused(r, "evil-6.6-1-x86_64.pkg.tar.zst", "evil 6.6-1", JSON.stringify(c.member(w)), c.why);
      expectNoTarget(dest);
      if (c.escape(w)) expect(existsSync(c.escape(w))).toBe(false);
      expect(readFileSync(`${w}/victim`, "utf8")).toBe("host file\n");
      expect(statSync(`${w}/victim`).nlink).toBe(1);
    });
  }

  rootTest("host-side writes (local database, hostname, machine-id) stay inside the tree", () => {
    const w = work("arch");
    const v = `${w}/victim`;
    mkdirSync(`${v}/local`, { recursive: true });
    const bait: Record<string, string> = { "machine-id": "host machine-id\n", hostname: "host hostname\n", hosts: "host hosts\n", "local/ALPM_DB_VERSION": "host\n" };
    for (const [p, c] of Object.entries(bait)) writeFileSync(`${v}/${p}`, c);
    const cache = archCache(`${w}/cache`, [{
      name: "links", version: "1-1",
      entries: [
        ...dirsFor(`${v}/local`).map((e) => ({ ...e, path: e.path.slice(2) })), dir("etc/"),
        symlink("etc/machine-id", `${v}/machine-id`), symlink("etc/hostname", `${v}/hostname`), symlink("etc/hosts", `${v}/hosts`),
        dir("var/"), dir("var/lib/"), dir("var/lib/pacman/"), symlink("var/lib/pacman/local", `${v}/local`),
      ],
    }]);
    const dest = `${w}/dest`;
    const r = bootArch(dest, cache, "links", "--hostname=toyhost");
    if (r.code !== 0) throw new Error(`bootstrap failed (exit ${r.code}):\n${r.stderr}`);
    for (const [p, c] of Object.entries(bait)) expect(readFileSync(`${v}/${p}`, "utf8")).toBe(c);
    expect(readdirSync(v, { recursive: true }).map(String).sort()).toEqual([...Object.keys(bait), "local"].sort());
    const inTree = `${dest}${v}`;
    expect(readFileSync(`${inTree}/hostname`, "utf8")).toBe("toyhost\n");
    expect(readFileSync(`${inTree}/machine-id`, "utf8")).toBe("");
    expect(readFileSync(`${inTree}/local/links-1-1/desc`, "utf8")).toContain("%NAME%\nlinks\n");
  });
});
