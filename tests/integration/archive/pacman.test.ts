// Arch Linux fixtures made with the real tools (Debian's makepkg, repo-add,
// bsdtar): packages and repository databases must read, resolve and extract
// as pacman would have them.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { extractTar } from "../../../src/archive/extract.ts";
import { parsePacmanDb, readPkg, resolvePacman, vercmp } from "../../../src/bootstrap/pacman.ts";
import { IS_ROOT, needs, removeTree, tempDir } from "../../helpers.ts";
import { hasTool, tool } from "../../unit/archive/fixtures.ts";

const TOOLS = ["makepkg", "repo-add", "bsdtar", "fakeroot", "runuser", "vercmp"];
const base = tempDir("spawnctl-pacman-");
afterAll(() => removeTree(base));

function toolsPresent(): boolean {
  return TOOLS.every(hasTool);
}

// Debian carries the tools; install them when missing (CI runs as root on Debian).
if (IS_ROOT && !toolsPresent() && hasTool("apt-get")) {
  Bun.spawnSync(["apt-get", "install", "-y", "-q", "pacman-package-manager", "makepkg", "libarchive-tools", "fakeroot"], { stdout: "ignore", stderr: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}
const pacTest = needs(`root and ${TOOLS.join(", ")} (apt-get install pacman-package-manager makepkg libarchive-tools fakeroot)`, IS_ROOT && toolsPresent());

interface Spec {
  name: string;
  ver: string;
  rel: string;
  epoch?: string;
  depends?: string[];
  provides?: string[];
  groups?: string[];
  install?: boolean;
  body: string;
}

const SPECS: Spec[] = [
  { name: "libfoo", ver: "2.1", rel: "1", provides: ["libfoo.so=2-64"], body: 'install -Dm644 /dev/null "$pkgdir/usr/lib/libfoo.so.2"' },
  { name: "bashy", ver: "5.2", rel: "2", provides: ["sh"], body: 'install -Dm755 /dev/null "$pkgdir/usr/bin/bashy"; ln -s bashy "$pkgdir/usr/bin/sh"' },
  {
    name: "toy",
    ver: "1.2",
    rel: "3",
    epoch: "1",
    depends: ["sh", "libfoo>=2.0"],
    provides: ["toy-virtual=1.2"],
    groups: ["toygroup"],
    install: true,
    body: [
      'mkdir -p "$pkgdir/usr/bin" "$pkgdir/etc"',
      "printf '#!/bin/sh\\necho toy\\n' > \"$pkgdir/usr/bin/toy\"",
      'chmod 4755 "$pkgdir/usr/bin/toy"',
      'ln "$pkgdir/usr/bin/toy" "$pkgdir/usr/bin/toy2"',
      'ln -s toy "$pkgdir/usr/bin/toy3"',
      'echo conf > "$pkgdir/etc/toy.conf"',
      'mkdir -p "$pkgdir/var/lib/toy" && chmod 2770 "$pkgdir/var/lib/toy"',
    ].join("\n  "),
  },
  { name: "toy-extra", ver: "0.1", rel: "1", depends: ["toy=1:1.2-3"], groups: ["toygroup"], body: 'install -Dm644 /dev/null "$pkgdir/usr/share/toy/extra"' },
];

function pkgbuild(s: Spec): string {
  const arr = (k: string, v?: string[]) => (v?.length ? `${k}=(${v.map((x) => `'${x}'`).join(" ")})\n` : "");
  return `pkgname=${s.name}\npkgver=${s.ver}\npkgrel=${s.rel}\n${s.epoch ? `epoch=${s.epoch}\n` : ""}pkgdesc="${s.name} for tests"\narch=(any)\nlicense=(MIT)\n${arr("depends", s.depends)}${arr("provides", s.provides)}${arr("groups", s.groups)}${s.install ? `install=${s.name}.install\n` : ""}package() {\n  ${s.body}\n}\n`;
}

const pkgs = new Map<string, string>(); // name -> path of the built .pkg.tar.zst
const repo = `${base}/repo`;

beforeAll(() => {
  if (!IS_ROOT || !toolsPresent()) return;
  // makepkg refuses to run as root: build as nobody in a directory it owns.
  mkdirSync(repo, { recursive: true });
  chmodSync(base, 0o755);
  for (const s of SPECS) {
    const dir = `${base}/build/${s.name}`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/PKGBUILD`, pkgbuild(s));
    if (s.install) writeFileSync(`${dir}/${s.name}.install`, "post_install() {\n  echo installed\n}\n");
    tool(["chown", "-R", "nobody", `${base}/build`]);
    tool(["runuser", "-u", "nobody", "--", "makepkg", "--nodeps", "--skipinteg", "-f"], undefined, { cwd: dir, env: { PKGEXT: ".pkg.tar.zst", HOME: dir, PKGDEST: dir, BUILDDIR: `${dir}/b`, SRCDEST: dir } });
    const file = readdirSync(dir).find((f) => f.endsWith(".pkg.tar.zst"))!;
    pkgs.set(s.name, `${dir}/${file}`);
  }
  // One repository per compression; repo-add picks it from the name.
  for (const ext of ["gz", "zst", "xz"]) tool(["repo-add", "-q", `${repo}/test-${ext}.db.tar.${ext}`, ...pkgs.values()]);
}, 180_000);

describe("makepkg and repo-add fixtures", () => {
  pacTest("repository databases in every compression", () => {
    for (const ext of ["gz", "zst", "xz"]) {
      const db = parsePacmanDb(readFileSync(`${repo}/test-${ext}.db.tar.${ext}`), `test-${ext}`);
      expect(db.packages.map((p) => p.name).sort()).toEqual(["bashy", "libfoo", "toy", "toy-extra"]);
      const toy = db.byName.get("toy")!;
      expect(toy).toMatchObject({ version: "1:1.2-3", depends: ["sh", "libfoo>=2.0"], provides: ["toy-virtual=1.2"], groups: ["toygroup"], arch: "any", license: ["MIT"] });
      const bytes = readFileSync(pkgs.get("toy")!);
      expect(toy.csize).toBe(bytes.length);
      expect(toy.sha256sum).toBe(createHash("sha256").update(bytes).digest("hex"));
      expect(toy.filename).toBe(pkgs.get("toy")!.split("/").pop()!);
    }
    // the .db symlink and the .files database read the same way
    expect(parsePacmanDb(readFileSync(`${repo}/test-gz.db`), "test").packages.length).toBe(4);
    const files = parsePacmanDb(readFileSync(`${repo}/test-gz.files`), "test-files");
    expect(files.byName.get("toy")!.fields.FILES).toContain("usr/bin/toy");
  });

  pacTest("resolution: groups, provides, versioned dependencies, order", () => {
    const db = parsePacmanDb(readFileSync(`${repo}/test-zst.db.tar.zst`), "test");
    expect(resolvePacman([db], ["toygroup"]).map((p) => p.name)).toEqual(["bashy", "libfoo", "toy", "toy-extra"]);
    expect(resolvePacman([db], ["toy-extra"]).map((p) => p.name)).toEqual(["bashy", "libfoo", "toy", "toy-extra"]);
    expect(resolvePacman([db], ["sh"]).map((p) => p.name)).toEqual(["bashy"]);
    expect(resolvePacman([db], ["toy-virtual"]).map((p) => p.name)).toEqual(["bashy", "libfoo", "toy"]);
    expect(() => resolvePacman([db], ["toy"], { ignore: ["libfoo"] })).not.toThrow();
    expect(vercmp(db.byName.get("toy")!.version, "1.9-1")).toBe(1); // the epoch wins
  });

  pacTest("package files: metadata apart, payload extracted like bsdtar -xp", () => {
    const p = readPkg(readFileSync(pkgs.get("toy")!), "toy.pkg.tar.zst");
    expect(p.pkginfo.pkgname).toEqual(["toy"]);
    expect(p.pkginfo.pkgver).toEqual(["1:1.2-3"]);
    expect(p.pkginfo.depend).toEqual(["sh", "libfoo>=2.0"]);
    expect(p.pkginfo.group).toEqual(["toygroup"]);
    expect(p.install).toContain("post_install");
    expect(p.mtree).toStartWith("#mtree");
    expect(p.buildinfo).toContain("pkgname = toy");
    expect(p.entries.some((e) => e.path.startsWith("."))).toBe(false);
    expect(p.entries.find((e) => e.path === "usr/bin/toy2")).toMatchObject({ type: "hardlink", linkname: "usr/bin/toy" });

    const ours = `${base}/ours`;
    const theirs = `${base}/theirs`;
    mkdirSync(ours);
    mkdirSync(theirs);
    extractTar(p.entries, ours, { refuseEscapes: true });
    tool(["bsdtar", "-xpf", pkgs.get("toy")!, "-C", theirs, "--exclude", ".PKGINFO", "--exclude", ".INSTALL", "--exclude", ".MTREE", "--exclude", ".BUILDINFO"]);
    const list = (r: string) =>
      new TextDecoder()
        .decode(tool(["find", r, "-mindepth", "1", "-printf", "%P|%y|%m|%U|%G|%s|%l|%n|%T@\n"]))
        .split("\n")
        .filter(Boolean)
        .map((l) => (/^[^|]*\|d\|/.test(l) ? l.replace(/\|[^|]*$/, "") : l))
        .sort();
    expect(list(ours)).toEqual(list(theirs));
    expect(list(ours).find((l) => l.startsWith("usr/bin/toy|"))).toMatch(/^usr\/bin\/toy\|f\|4755\|0\|0\|\d+\|\|2\|/);
    expect(list(ours).find((l) => l.startsWith("var/lib/toy|"))).toMatch(/\|2770\|/);
  });
});
