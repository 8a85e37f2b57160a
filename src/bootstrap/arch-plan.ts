// The pure parts of `spawnctl bootstrap arch`: where repositories and
// packages are, which packages the user asked for, what the target skeleton
// and clean-up are, and the scripts the second stage runs in the container.
// Nothing here touches the file system or the network.
import { SpawnctlError } from "../util/errors.ts";
import { parseDep, satisfies, type PacmanDb, type PacmanPackage } from "./pacman.ts";
import type { Validation } from "./arch-localdb.ts";

/** Paths inside the target tree that the second stage uses. */
export const STAGE2 = {
  /**
   * the packages, bound read-only from spawnctl's cache (or the user's
   * --cache-dir); not at pacman's CacheDir, which pacman wants writable
   */
  pkgDir: "/var/cache/pacman/spawnctl-pkg",
  conf: "/etc/pacman.d/spawnctl-bootstrap.conf",
  script: "/var/lib/pacman/spawnctl-stage2.sh",
  log: "/var/log/spawnctl-bootstrap.log",
} as const;

/** pacstrap's skeleton: made before anything is extracted, with these modes. */
export const SKELETON: ReadonlyArray<{ path: string; mode: number }> = [
  { path: "var/cache/pacman/pkg", mode: 0o755 },
  { path: "var/lib/pacman", mode: 0o755 },
  { path: "var/log", mode: 0o755 },
  { path: "dev", mode: 0o755 },
  { path: "run", mode: 0o755 },
  { path: "etc/pacman.d", mode: 0o755 },
  { path: "tmp", mode: 0o1777 },
  { path: "sys", mode: 0o555 },
  { path: "proc", mode: 0o555 },
];

/**
 * Removed from the finished tree: spawnctl's own files, and what would make
 * two bootstraps of the same packages differ (logs, caches, a lock left by a
 * killed pacman). The package cache var/cache/pacman/pkg stays empty: the
 * packages live in spawnctl's cache (or the --cache-dir given) and were only
 * bound into the container, as `pacstrap -c` uses the host's cache. (The
 * bind's mount point, STAGE2.pkgDir, is removed with rmdir, never
 * recursively: it must be empty once the container is gone.)
 */
export const LEFTOVERS: readonly string[] = [
  STAGE2.conf.slice(1), STAGE2.script.slice(1), STAGE2.log.slice(1),
  "var/log/pacman.log", "var/lib/pacman/db.lck", "var/cache/ldconfig/aux-cache",
];

/**
 * Removed from etc/pacman.d/gnupg after `pacman-key --init --populate`:
 * gpg-agent's sockets and gpg's backups. The local master key stays, as
 * pacstrap leaves the host's: archlinux-keyring's scriptlet signs new
 * packager keys with it on upgrade (`pacman-key --populate`), which would
 * fail without it.
 */
export const GNUPG_LEFTOVERS: readonly string[] = ["S.gpg-agent", "S.gpg-agent.browser", "S.gpg-agent.extra", "S.gpg-agent.ssh", "S.dirmngr", "S.keyboxd", "pubring.gpg~", "pubring.kbx~", "trustdb.gpg~"];

/**
 * A repository's base URL. A mirror may be given as pacman's mirrorlist
 * writes it, with $repo and $arch ("https://HOST/archlinux/$repo/os/$arch"),
 * or as the directory above the repositories, which gets "/$repo/os/$arch".
 */
export function repoUrl(mirror: string, repo: string, arch: string): string {
  const m = mirror.replace(/\/+$/, "");
  if (m.includes("$repo") || m.includes("$arch")) return m.replaceAll("$repo", repo).replaceAll("$arch", arch);
  return `${m}/${repo}/os/${arch}`;
}

/** The first active `Server =` of a pacman mirrorlist, as a mirror for repoUrl(). */
export function firstServer(mirrorlist: string): string | undefined {
  for (const line of mirrorlist.split("\n")) {
    const m = /^\s*Server\s*=\s*(\S+)\s*$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** The line for the target's mirrorlist; file:// mirrors are the host's business and are not written. */
export function mirrorlistLine(mirror: string): string | undefined {
  if (!/^https?:\/\//.test(mirror)) return undefined;
  const m = mirror.replace(/\/+$/, "");
  return `Server = ${m.includes("$repo") ? m : `${m}/$repo/os/$arch`}`;
}

/**
 * The packages the user named (pacman marks them explicitly installed; the
 * rest get %REASON% 1): the same lookup as resolvePacman's for a target: a
 * package by name in the first repository that has it, else every member of
 * a group, else the first provider.
 */
export function explicitNames(dbs: PacmanDb[], targets: string[]): Set<string> {
  const out = new Set<string>();
  for (const t of targets) {
    const dep = parseDep(t);
    const direct = dbs.map((db) => db.byName.get(dep.name)).find((p) => p !== undefined && satisfies(p, dep));
    if (direct) {
      out.add(direct.name);
      continue;
    }
    const members = dbs.flatMap((db) => db.packages.filter((p) => p.groups.includes(t)));
    if (members.length) {
      for (const p of members) out.add(p.name);
      continue;
    }
    const provider = dbs.flatMap((db) => db.packages).find((p) => satisfies(p, dep));
    if (provider) out.add(provider.name);
  }
  return out;
}

const NAME = /^[A-Za-z0-9@_+][A-Za-z0-9@._+-]*$/;
const VERSION = /^[A-Za-z0-9._+~:-]+$/;
const FILENAME = /^[A-Za-z0-9@_+][A-Za-z0-9@._+~:-]*$/;

/**
 * A repository database is only as trusted as its (optional) signature, and
 * its names become paths and shell words: refuse anything that could leave a
 * directory or a quoted word.
 */
export function checkDbEntry(p: PacmanPackage): void {
  const where = `the ${p.repo} database`;
  if (!NAME.test(p.name)) throw new SpawnctlError(`${where} names an invalid package ${JSON.stringify(p.name)}`);
  if (!VERSION.test(p.version)) throw new SpawnctlError(`${where} gives ${p.name} an invalid version ${JSON.stringify(p.version)}`);
  if (!FILENAME.test(p.filename) || p.filename.includes("..")) throw new SpawnctlError(`${where} gives ${p.name} an invalid file name ${JSON.stringify(p.filename)}`);
}

/** pacman's check when it loads a package for a sync target: the file must be the package the database describes. */
export function checkPkginfo(p: PacmanPackage, pkginfo: Record<string, string[]>): void {
  const name = pkginfo.pkgname?.[0];
  const version = pkginfo.pkgver?.[0];
  if (name !== p.name || version !== p.version) {
    throw new SpawnctlError(`${p.filename} from ${p.repo} contains ${name ?? "(no name)"} ${version ?? "(no version)"}, but the database says ${p.name} ${p.version}`);
  }
}

/** The lines of a fingerprint list (archlinux-revoked; archlinux-trusted has "FPR:4:"), upper-case. */
export function parseFingerprints(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([0-9A-Fa-f]{40})\b/.exec(line);
    if (m) out.add(m[1]!.toUpperCase());
  }
  return out;
}

/** pacman-key's keyring layout: NAME.gpg beside NAME-trusted and NAME-revoked. */
export function keyringSibling(keyring: string, kind: "revoked" | "trusted"): string {
  return `${keyring.replace(/\.gpg$/, "")}-${kind}`;
}

/**
 * %VALIDATION% as libalpm's _alpm_pkg_validate_internal would record it for
 * a sync install checked the way spawnctl checked it: the digest (SHA-256,
 * else MD5) unless the signature came from the database, then "pgp".
 */
export function validationOf(pkg: PacmanPackage, verified: boolean): Validation[] {
  const v: Validation[] = [];
  if (!(verified && pkg.pgpsig)) {
    if (pkg.sha256sum) v.push("sha256");
    else if (pkg.md5sum) v.push("md5");
  }
  if (verified) v.push("pgp");
  return v.length ? v : ["none"];
}

export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The pacman.conf the second stage runs the tree's pacman with: signatures
 * were checked in TypeScript against the keyring before anything was
 * extracted, and the tree has no pacman keyring yet, so pacman checks none.
 */
export function pacmanConf(): string {
  return [
    "# spawnctl bootstrap: pacman -U of packages already verified; removed at the end",
    "[options]",
    "RootDir = /",
    "DBPath = /var/lib/pacman/",
    "CacheDir = /var/cache/pacman/pkg/",
    "LogFile = /var/log/pacman.log",
    "HookDir = /etc/pacman.d/hooks/",
    "Architecture = auto",
    "SigLevel = Never",
    "LocalFileSigLevel = Never",
    "",
  ].join("\n");
}

/**
 * Second stage with the tree's own pacman: -U of every package, over the
 * files extracted already (--overwrite '*': they are the same files), so
 * that pacman writes the local database, runs the .INSTALL scriptlets and
 * the libalpm hooks (sysusers, tmpfiles, ldconfig, ...), as `pacstrap`'s
 * `pacman -r NEWROOT -S` would; then the dependencies are marked as such.
 */
export function pacmanScript(files: string[], dependencies: string[]): string {
  const pacman = `pacman --config ${STAGE2.conf} --noconfirm`;
  const lines = [
    "set -e",
    "cd /",
    `exec >>${STAGE2.log} 2>&1`,
    `${pacman} -U --noprogressbar --overwrite '*' ${files.map((f) => shellQuote(`${STAGE2.pkgDir}/${f}`)).join(" ")}`,
  ];
  if (dependencies.length) lines.push(`${pacman} -D --asdeps ${dependencies.map(shellQuote).join(" ")}`);
  return `${lines.join("\n")}\n`;
}

export interface Scriptlet {
  /** NAME-VERSION under /var/lib/pacman/local */
  dir: string;
  version: string;
  functions: Array<"pre_install" | "post_install">;
}

export const SCRIPTLET_FAILED = "spawnctl: scriptlet failed:";

/**
 * Second stage without pacman: each package's scriptlet from its local
 * database entry, as libalpm runs it (`. SCRIPT; FUNCTION VERSION` in the
 * tree's /bin/sh, from /), in installation order. The files are all in place
 * already, so pre_install runs after extraction, not before. A failing
 * scriptlet is reported, not fatal, as with pacman.
 */
export function scriptletScript(scriptlets: Scriptlet[]): string {
  const lines = [
    "cd /",
    `exec >>${STAGE2.log} 2>&1`,
    "run() {",
    '  echo "spawnctl: $2 of $1"',
    `  /bin/sh -c ". /var/lib/pacman/local/$1/install; $2 $3" || echo "${SCRIPTLET_FAILED} $1 $2 (exit $?)"`,
    "}",
  ];
  for (const s of scriptlets) for (const f of s.functions) lines.push(`run ${shellQuote(s.dir)} ${f} ${shellQuote(s.version)}`);
  lines.push("[ -x /usr/bin/ldconfig ] && /usr/bin/ldconfig || true");
  return `${lines.join("\n")}\n`;
}

/** pacman-key as Arch's installation guide has it: a keyring the machine's own pacman can verify with. */
export const PACMAN_KEY_SCRIPT = `set -e\ncd /\nexec >>${STAGE2.log} 2>&1\npacman-key --init\npacman-key --populate\n`;
