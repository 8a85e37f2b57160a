// A toy Arch Linux repository built with the real tools (Debian's makepkg,
// repo-add, gpg), since no Arch mirror is reachable from here:
//   core:  toy-base (a static busybox with its applets, merged-/usr links,
//          passwd/group/shadow, os-release; provides "sh"), base (meta)
//   extra: toy-marker (an .INSTALL whose pre/post_install write marker files;
//          provides toy-virtual=2.0), toy-slow (a post_install that sleeps)
//   base depends on toy-base, "sh" (virtual, through toy-base's provides)
//   and toy-virtual>=1.5 (a versioned provide of toy-marker).
// Every package is signed by a throw-away key. core's database carries the
// signatures as %PGPSIG% and is itself signed (core.db.sig); extra's does not
// (Arch's real databases no longer do), so its packages are verified from the
// .sig files beside them. With `withPacman`, a toy-pacman package in extra
// carries the host's pacman binary with its shared-library closure, so the
// second stage can run a real pacman inside the container.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { IS_ROOT, busyboxPath, tempDir } from "../../helpers.ts";
import { hasTool, tool } from "../../unit/archive/fixtures.ts";

export const TOOLS = ["makepkg", "repo-add", "bsdtar", "fakeroot", "runuser", "gpg", "zstd"];
export const INSTALL_HINT = "apt-get install pacman-package-manager makepkg libarchive-tools fakeroot gnupg busybox-static zstd";

/** Install the tools when missing (CI runs as root on Debian); true when everything needed is there. */
export function ensureTools(): boolean {
  const ok = () => TOOLS.every(hasTool) && busyboxPath() !== undefined;
  if (IS_ROOT && !ok() && hasTool("apt-get")) {
    Bun.spawnSync(["apt-get", "install", "-y", "-q", ...INSTALL_HINT.split(" ").slice(2)], {
      stdout: "ignore", stderr: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  }
  return ok();
}

export interface Spec {
  name: string;
  ver: string;
  rel: string;
  arch?: string;
  depends?: string[];
  provides?: string[];
  backup?: string[];
  install?: string;
  body: string;
}

export interface Fixture {
  dir: string;
  /** file:// URL of the mirror: $dir/mirror/$repo/os/x86_64 */
  mirror: string;
  mirrorDir: string;
  /** the throw-away public key (armored) that signed everything */
  pubkey: string;
  /** another key, which signed nothing */
  otherPubkey: string;
  /** gpg home directories of the two keys */
  gnupg: string;
  otherGnupg: string;
  /** package name → file name */
  files: Map<string, string>;
  /** package name → repository */
  repoOf: Map<string, string>;
}

const BB_LINKS = ["bin", "sbin", "lib", "lib64"];

export function toySpecs(busybox: string, withPacman: boolean): Spec[] {
  const specs: Spec[] = [
    {
      name: "toy-base",
      ver: "1.0",
      rel: "1",
      arch: "x86_64",
      provides: ["sh"],
      backup: ["etc/passwd", "etc/group", "etc/shadow"],
      body: [
        'install -Dm755 /bin/busybox "$pkgdir/usr/bin/busybox"',
        `for a in $(${busybox} --list); do [ "$a" = busybox ] || ln -s busybox "$pkgdir/usr/bin/$a"; done`,
        'mkdir -p "$pkgdir/usr/lib" "$pkgdir/etc" "$pkgdir/root" "$pkgdir/var/lib"',
        `for d in ${BB_LINKS.join(" ")}; do case $d in *bin) ln -s usr/bin "$pkgdir/$d";; *) ln -s usr/lib "$pkgdir/$d";; esac; done`,
        "printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/:/bin/false\\n' > \"$pkgdir/etc/passwd\"",
        "printf 'root:x:0:\\nnobody:x:65534:\\n' > \"$pkgdir/etc/group\"",
        "printf 'root:*:19000::::::\\nnobody:*:19000::::::\\n' > \"$pkgdir/etc/shadow\"",
        'chmod 600 "$pkgdir/etc/shadow"',
        "printf 'NAME=\"Toy Arch\"\\nID=toyarch\\nID_LIKE=arch\\n' > \"$pkgdir/etc/os-release\"",
        'chmod 700 "$pkgdir/root"',
        // Debian's busybox-static has no chpasswd applet; shadow's is what Arch has
        "printf '#!/bin/sh\\nwhile IFS=: read -r u p; do h=$(mkpasswd -m sha512 \"$p\"); sed -i \"s|^$u:[^:]*:|$u:$h:|\" /etc/shadow; done\\n' > \"$pkgdir/usr/bin/chpasswd\"",
        'chmod 755 "$pkgdir/usr/bin/chpasswd"',
      ].join("\n  "),
    },
    {
      name: "toy-marker",
      ver: "2.0",
      rel: "3",
      depends: ["sh"],
      provides: ["toy-virtual=2.0"],
      install: [
        "pre_install() {",
        "  mkdir -p /var/lib/toy-marker",
        "  echo \"pre $1\" > /var/lib/toy-marker/pre",
        "}",
        "post_install() {",
        "  # proof that this ran inside the container: its own PID namespace",
        "  echo \"post $1 pid=$$ ns=$(readlink /proc/1/exe)\" > /var/lib/toy-marker/installed",
        "}",
        "",
      ].join("\n"),
      body: [
        'mkdir -p "$pkgdir/usr/bin" "$pkgdir/usr/share/toy-marker"',
        "printf '#!/bin/sh\\necho toy-marker says hello\\n' > \"$pkgdir/usr/bin/toy-marker\"",
        'chmod 755 "$pkgdir/usr/bin/toy-marker"',
        'echo data > "$pkgdir/usr/share/toy-marker/data"',
      ].join("\n  "),
    },
    {
      name: "base",
      ver: "3",
      rel: "1",
      depends: ["toy-base", "sh", "toy-virtual>=1.5"],
      body: ":",
    },
  ];
  // for ^C during the second stage: its scriptlet takes its time
  specs.push({ name: "toy-slow", ver: "1", rel: "1", depends: ["sh"], install: "post_install() {\n  touch /var/lib/toy-slow-started\n  sleep 60\n}\n", body: ":" });
  if (withPacman) specs.push(pacmanSpec());
  return specs;
}

/** The host's pacman with its shared-library closure, laid out for a merged-/usr tree (lib64 → usr/lib). */
function pacmanSpec(): Spec {
  const pacman = realpathSync(Bun.which("pacman")!);
  const ldd = new TextDecoder().decode(tool(["ldd", pacman]));
  const libs = [...ldd.matchAll(/=> (\/\S+)/g)].map((m) => m[1]!);
  const loader = /^\s*(\/\S*ld-linux\S*)/m.exec(ldd)?.[1];
  if (!loader) throw new Error(`no dynamic loader in ldd ${pacman}`);
  return {
    name: "toy-pacman",
    ver: "6.0.2",
    rel: "1",
    arch: "x86_64",
    provides: ["pacman=6.0.2"],
    install: "post_install() {\n  echo \"pacman post $1\" > /var/lib/toy-pacman-installed\n}\n",
    body: [
      'mkdir -p "$pkgdir/usr/bin" "$pkgdir/usr/lib" "$pkgdir/usr/share/libalpm/hooks" "$pkgdir/etc"',
      `install -m755 ${pacman} "$pkgdir/usr/bin/pacman"`,
      ...libs.map((l) => `install -m755 ${realpathSync(l)} "$pkgdir/usr/lib/${basename(l)}"`),
      `install -m755 ${realpathSync(loader)} "$pkgdir/usr/lib/${basename(loader)}"`,
      // a libalpm hook, run by pacman after the transaction
      "printf '[Trigger]\\nOperation = Install\\nType = Path\\nTarget = usr/share/toy-marker/*\\n\\n[Action]\\nDescription = toy hook\\nWhen = PostTransaction\\nExec = /bin/sh -c \"echo hook ran > /var/lib/toy-hook-ran\"\\n' > \"$pkgdir/usr/share/libalpm/hooks/toy.hook\"",
      "printf '[options]\\nArchitecture = auto\\n' > \"$pkgdir/etc/pacman.conf\"",
      // a stand-in for pacman-key (Arch's is a bash script around gpg): records its calls, leaves an agent socket
      "printf '#!/bin/sh\\nmkdir -p /etc/pacman.d/gnupg\\necho \"$*\" >> /etc/pacman.d/gnupg/calls\\n: > /etc/pacman.d/gnupg/S.gpg-agent\\n' > \"$pkgdir/usr/bin/pacman-key\"",
      'chmod 755 "$pkgdir/usr/bin/pacman-key"',
    ].join("\n  "),
  };
}

function pkgbuild(s: Spec): string {
  const arr = (k: string, v?: string[]) => (v?.length ? `${k}=(${v.map((x) => `'${x}'`).join(" ")})\n` : "");
  return (
    `pkgname=${s.name}\npkgver=${s.ver}\npkgrel=${s.rel}\npkgdesc="${s.name} for spawnctl tests"\narch=(${s.arch ?? "any"})\n` +
    `url="https://example.invalid/${s.name}"\nlicense=(MIT)\noptions=(!strip !debug emptydirs)\n` +
    `${arr("depends", s.depends)}${arr("provides", s.provides)}${arr("backup", s.backup)}${s.install ? `install=${s.name}.install\n` : ""}` +
    `package() {\n  ${s.body}\n}\n`
  );
}

function gpgKey(home: string, uid: string): string {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  tool(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"]);
  return new TextDecoder().decode(tool(["gpg", "--homedir", home, "--batch", "--export", "--armor"]));
}

export function sign(home: string, file: string, out = `${file}.sig`): void {
  tool(["gpg", "--homedir", home, "--batch", "--yes", "--detach-sign", "--output", out, file]);
}

/** Build the packages, sign them, and lay out a mirror with core and extra. */
export function buildFixture(opts: { withPacman?: boolean; prefix?: string } = {}): Fixture {
  const dir = tempDir(opts.prefix ?? "spawnctl-arch-");
  chmodSync(dir, 0o755);
  const bb = busyboxPath()!;
  const gnupg = `${dir}/gnupg`;
  const otherGnupg = `${dir}/gnupg-other`;
  writeFileSync(`${dir}/pubkey.asc`, gpgKey(gnupg, "Spawnctl Test Packager <packager@example.invalid>"));
  writeFileSync(`${dir}/other.asc`, gpgKey(otherGnupg, "Someone Else <else@example.invalid>"));

  const files = new Map<string, string>();
  const repoOf = new Map<string, string>();
  const build = `${dir}/build`;
  mkdirSync(build, { recursive: true, mode: 0o777 });
  chmodSync(build, 0o777); // makepkg refuses root: it runs as nobody here
  for (const s of toySpecs(bb, opts.withPacman ?? false)) {
    const d = `${build}/${s.name}`;
    mkdirSync(d, { recursive: true });
    writeFileSync(`${d}/PKGBUILD`, pkgbuild(s));
    if (s.install) writeFileSync(`${d}/${s.name}.install`, s.install);
    tool(["chown", "-R", "nobody", d]);
    tool(["runuser", "-u", "nobody", "--", "makepkg", "--nodeps", "--skipinteg", "-f"], undefined, {
      cwd: d,
      env: { PKGEXT: ".pkg.tar.zst", HOME: d, PKGDEST: d, BUILDDIR: `${d}/b`, SRCDEST: d, PACKAGER: "Spawnctl Tests <packager@example.invalid>", LC_ALL: "C" },
    });
    const file = readdirSync(d).find((f) => f.endsWith(".pkg.tar.zst"))!;
    files.set(s.name, file);
    repoOf.set(s.name, ["toy-marker", "toy-pacman", "toy-slow"].includes(s.name) ? "extra" : "core");
  }
  const mirrorDir = `${dir}/mirror`;
  for (const repo of ["core", "extra"]) {
    const rd = `${mirrorDir}/${repo}/os/x86_64`;
    mkdirSync(rd, { recursive: true });
    const mine = [...files].filter(([n]) => repoOf.get(n) === repo);
    for (const [n, f] of mine) copyFileSync(`${build}/${n}/${f}`, `${rd}/${f}`);
    if (repo === "core") {
      // signatures first: repo-add puts them into the database as %PGPSIG%
      for (const [, f] of mine) sign(gnupg, `${rd}/${f}`);
      tool(["repo-add", "-q", `${rd}/core.db.tar.gz`, ...mine.map(([, f]) => `${rd}/${f}`)]);
      sign(gnupg, `${rd}/core.db.tar.gz`, `${rd}/core.db.sig`);
    } else {
      tool(["repo-add", "-q", `${rd}/extra.db.tar.zst`, ...mine.map(([, f]) => `${rd}/${f}`)]);
      for (const [, f] of mine) sign(gnupg, `${rd}/${f}`);
    }
  }
  return { dir, mirror: `file://${mirrorDir}`, mirrorDir, pubkey: `${dir}/pubkey.asc`, otherPubkey: `${dir}/other.asc`, gnupg, otherGnupg, files, repoOf };
}

/** A pacman-style cache: every package and .sig in one directory, the databases in DIR/sync. */
export function makeCacheDir(f: Fixture, dest: string): string {
  mkdirSync(`${dest}/sync`, { recursive: true });
  for (const repo of ["core", "extra"]) {
    const rd = `${f.mirrorDir}/${repo}/os/x86_64`;
    for (const e of readdirSync(rd)) {
      if (/\.pkg\.tar\.zst(\.sig)?$/.test(e)) copyFileSync(`${rd}/${e}`, `${dest}/${e}`);
    }
    copyFileSync(realpathSync(`${rd}/${repo}.db`), `${dest}/sync/${repo}.db`);
    if (existsSync(`${rd}/${repo}.db.sig`)) copyFileSync(`${rd}/${repo}.db.sig`, `${dest}/sync/${repo}.db.sig`);
  }
  return dest;
}

export function pathOf(f: Fixture, name: string): string {
  return `${f.mirrorDir}/${f.repoOf.get(name)}/os/x86_64/${f.files.get(name)}`;
}

export function readText(p: string): string {
  return readFileSync(p, "utf8");
}
