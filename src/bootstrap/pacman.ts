// Arch Linux packages and repositories, what `spawnctl bootstrap arch` needs:
//   vercmp()         libalpm's version order (epoch:pkgver-pkgrel, rpmvercmp segments)
//   parsePacmanDb()  a repo database (NAME.db: a tar, any compression, of NAME-VER/desc)
//   resolvePacman()  targets + groups + dependency closure, first repository wins
//   readPkg()        a .pkg.tar.* split into metadata (.PKGINFO, .INSTALL, .MTREE...) and payload
import { SpawnctlError } from "../util/errors.ts";
import { decompress } from "../archive/decompress.ts";
import { readTar, type TarEntry } from "../archive/tar.ts";

// ---------------------------------------------------------------------------
// Versions

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isAlnum = (c: number) => isDigit(c) || isAlpha(c);

/**
 * rpm's segment comparison as libalpm uses it: the strings are cut into
 * runs of digits or letters separated by anything else; numeric runs
 * compare as numbers and beat alphabetic runs; a longer separator wins; when
 * one string runs out, a remaining letter run is older ("1.0alpha" < "1.0")
 * and anything else is newer ("1.0.1" > "1.0").
 */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const si = i;
    const sj = j;
    while (i < a.length && !isAlnum(a.charCodeAt(i))) i++;
    while (j < b.length && !isAlnum(b.charCodeAt(j))) j++;
    if (i >= a.length || j >= b.length) break;
    if (i - si !== j - sj) return i - si < j - sj ? -1 : 1;
    const numeric = isDigit(a.charCodeAt(i));
    const test = numeric ? isDigit : isAlpha;
    let ei = i;
    let ej = j;
    while (ei < a.length && test(a.charCodeAt(ei))) ei++;
    while (ej < b.length && test(b.charCodeAt(ej))) ej++;
    // b's run is of the other kind: numbers are newer than letters.
    if (ej === j) return numeric ? 1 : -1;
    let x = a.slice(i, ei);
    let y = b.slice(j, ej);
    if (numeric) {
      x = x.replace(/^0+/, "");
      y = y.replace(/^0+/, "");
      if (x.length !== y.length) return x.length > y.length ? 1 : -1;
    }
    if (x !== y) return x < y ? -1 : 1;
    i = ei;
    j = ej;
  }
  const restA = i < a.length;
  const restB = j < b.length;
  if (!restA && !restB) return 0;
  // A remaining alphabetic run never beats the end of the other string.
  if ((!restA && !isAlpha(b.charCodeAt(j))) || (restA && isAlpha(a.charCodeAt(i)))) return -1;
  return 1;
}

/** epoch, version and release of "epoch:version-release" (epoch defaults to "0", release may be absent). */
export function parseEvr(evr: string): { epoch: string; version: string; release?: string } {
  let k = 0;
  while (k < evr.length && isDigit(evr.charCodeAt(k))) k++;
  let epoch = "0";
  let rest = evr;
  if (evr[k] === ":") {
    epoch = evr.slice(0, k) || "0";
    rest = evr.slice(k + 1);
  }
  const dash = rest.lastIndexOf("-");
  if (dash < 0) return { epoch, version: rest };
  return { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) };
}

/** alpm_pkg_vercmp: -1, 0 or 1. The release is compared only when both versions have one. */
export function vercmp(a: string, b: string): number {
  if (a === b) return 0;
  const x = parseEvr(a);
  const y = parseEvr(b);
  let r = rpmvercmp(x.epoch, y.epoch);
  if (r === 0) r = rpmvercmp(x.version, y.version);
  if (r === 0 && x.release !== undefined && y.release !== undefined) r = rpmvercmp(x.release, y.release);
  return r;
}

// ---------------------------------------------------------------------------
// Dependencies

export type DepOp = "" | "=" | "<" | "<=" | ">" | ">=";

export interface PacmanDep {
  name: string;
  op: DepOp;
  version: string;
  /** the text as written ("glibc>=2.36") */
  text: string;
}

/** "name", "name>=1.0", "name=1:2-3"; an optdepends description after ": " is dropped. */
export function parseDep(text: string): PacmanDep {
  const t = text.replace(/: .*$/, "").trim();
  const m = /^([^<>=]+?)(<=|>=|=|<|>)(.*)$/.exec(t);
  if (!m) return { name: t, op: "", version: "", text: t };
  return { name: m[1]!, op: m[2] as DepOp, version: m[3]!, text: t };
}

function versionSatisfies(version: string, op: DepOp, want: string): boolean {
  if (op === "") return true;
  const c = vercmp(version, want);
  switch (op) {
    case "=":
      return c === 0;
    case "<":
      return c < 0;
    case "<=":
      return c <= 0;
    case ">":
      return c > 0;
    case ">=":
      return c >= 0;
  }
}

/** Does `pkg` satisfy `dep`, by its own name or one of its provides? */
export function satisfies(pkg: PacmanPackage, dep: PacmanDep): boolean {
  if (pkg.name === dep.name && versionSatisfies(pkg.version, dep.op, dep.version)) return true;
  for (const p of pkg.provides) {
    const pd = parseDep(p);
    if (pd.name !== dep.name) continue;
    if (dep.op === "") return true;
    // A versioned dependency needs a versioned provide ("sh" does not satisfy "sh>=5").
    if (pd.op === "=" && versionSatisfies(pd.version, dep.op, dep.version)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Repository databases

export interface PacmanPackage {
  /** repository name (the db's) */
  repo: string;
  filename: string;
  name: string;
  base: string;
  version: string;
  desc: string;
  csize: number;
  isize: number;
  md5sum: string;
  sha256sum: string;
  /** base64 detached signature, when the repo carries them */
  pgpsig: string;
  arch: string;
  url: string;
  license: string[];
  builddate: number;
  packager: string;
  groups: string[];
  depends: string[];
  optdepends: string[];
  makedepends: string[];
  checkdepends: string[];
  provides: string[];
  conflicts: string[];
  replaces: string[];
  /** every %FIELD% as read, lines as values */
  fields: Record<string, string[]>;
}

export interface PacmanDb {
  name: string;
  packages: PacmanPackage[];
  byName: Map<string, PacmanPackage>;
}

/** "%FIELD%\nvalue\nvalue\n\n%NEXT%..." */
export function parseDesc(text: string, into: Record<string, string[]> = {}): Record<string, string[]> {
  let key: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^%([A-Z0-9_]+)%$/.exec(line);
    if (m) {
      key = m[1]!;
      into[key] = [];
    } else if (line === "") {
      key = undefined;
    } else if (key) {
      into[key]!.push(line);
    }
  }
  return into;
}

function toPackage(repo: string, f: Record<string, string[]>, where: string): PacmanPackage {
  const one = (k: string) => f[k]?.[0] ?? "";
  const name = one("NAME");
  const version = one("VERSION");
  if (!name || !version) throw new SpawnctlError(`reading the pacman database ${repo}: ${where} has no %NAME% or %VERSION%`);
  return {
    repo,
    filename: one("FILENAME"),
    name,
    base: one("BASE") || name,
    version,
    desc: one("DESC"),
    csize: Number(one("CSIZE") || 0),
    isize: Number(one("ISIZE") || 0),
    md5sum: one("MD5SUM"),
    sha256sum: one("SHA256SUM"),
    pgpsig: one("PGPSIG"),
    arch: one("ARCH"),
    url: one("URL"),
    license: f.LICENSE ?? [],
    builddate: Number(one("BUILDDATE") || 0),
    packager: one("PACKAGER"),
    groups: f.GROUPS ?? [],
    depends: f.DEPENDS ?? [],
    optdepends: f.OPTDEPENDS ?? [],
    makedepends: f.MAKEDEPENDS ?? [],
    checkdepends: f.CHECKDEPENDS ?? [],
    provides: f.PROVIDES ?? [],
    conflicts: f.CONFLICTS ?? [],
    replaces: f.REPLACES ?? [],
    fields: f,
  };
}

/**
 * A repo database (core.db, ...): compressed by gzip, zstd or xz (sniffed,
 * whatever the name says) tar of NAME-VERSION/desc, plus NAME-VERSION/depends
 * in old databases and NAME-VERSION/files in .files databases.
 */
export function parsePacmanDb(bytes: Uint8Array, name = "repo"): PacmanDb {
  const tar = decompress(bytes, `the pacman database ${name}`);
  const dirs = new Map<string, Record<string, string[]>>();
  const text = new TextDecoder();
  for (const e of readTar(tar, { name: `the pacman database ${name}` })) {
    if (e.type !== "file") continue;
    const slash = e.path.indexOf("/");
    if (slash < 0) continue;
    const dir = e.path.slice(0, slash);
    const file = e.path.slice(slash + 1);
    if (file !== "desc" && file !== "depends" && file !== "files") continue;
    let f = dirs.get(dir);
    if (!f) dirs.set(dir, (f = {}));
    parseDesc(text.decode(e.data), f);
  }
  const packages = [...dirs].map(([dir, f]) => toPackage(name, f, dir));
  const byName = new Map<string, PacmanPackage>();
  for (const p of packages) if (!byName.has(p.name)) byName.set(p.name, p);
  return { name, packages, byName };
}

// ---------------------------------------------------------------------------
// Resolution

export interface ResolveOptions {
  /** package names to leave out, with whatever only they would pull in */
  ignore?: string[];
}

/**
 * The packages to install for `targets`, dependencies before their
 * dependents (pacman's order). `dbs` are in pacman.conf order: for a name or
 * a provide, the first repository that has a satisfier wins, and among
 * providers the first listed, as pacman chooses without a prompt. A target
 * may be a package, a provide, or a group (all its members).
 */
export function resolvePacman(dbs: PacmanDb[], targets: string[], opts: ResolveOptions = {}): PacmanPackage[] {
  const ignore = new Set(opts.ignore ?? []);
  const chosen = new Map<string, PacmanPackage>();
  const order: PacmanPackage[] = [];
  const fail = (msg: string) => new SpawnctlError(`resolving Arch packages: ${msg}`);

  const findByName = (dep: PacmanDep): PacmanPackage | undefined => {
    for (const db of dbs) {
      const p = db.byName.get(dep.name);
      if (p && satisfies(p, dep)) return p;
    }
    return undefined;
  };
  const findProvider = (dep: PacmanDep): PacmanPackage | undefined => {
    for (const db of dbs) for (const p of db.packages) if (!ignore.has(p.name) && satisfies(p, dep)) return p;
    return undefined;
  };
  const alreadySatisfied = (dep: PacmanDep): boolean => {
    for (const p of chosen.values()) if (satisfies(p, dep)) return true;
    return false;
  };

  // Depth-first so that dependencies land in `order` before dependents;
  // `visiting` breaks cycles (pacman installs cycles in some order too).
  const visiting = new Set<string>();
  const add = (pkg: PacmanPackage, why: string): void => {
    if (chosen.has(pkg.name)) return;
    chosen.set(pkg.name, pkg);
    visiting.add(pkg.name);
    for (const d of pkg.depends) {
      const dep = parseDep(d);
      if (alreadySatisfied(dep)) continue;
      if (ignore.has(dep.name)) continue;
      const p = findByName(dep) ?? findProvider(dep);
      if (!p) throw fail(`${dep.text} (required by ${pkg.name}, ${why}) is not in any repository`);
      add(p, `required by ${pkg.name}`);
    }
    visiting.delete(pkg.name);
    order.push(pkg);
  };

  for (const t of targets) {
    const dep = parseDep(t);
    const direct = findByName(dep);
    if (direct) {
      if (!ignore.has(direct.name)) add(direct, "a target");
      continue;
    }
    // A group: its members from every repository, the first repository's copy of each name.
    const members: PacmanPackage[] = [];
    const seen = new Set<string>();
    for (const db of dbs) {
      for (const p of db.packages) {
        if (p.groups.includes(t) && !seen.has(p.name)) {
          seen.add(p.name);
          members.push(p);
        }
      }
    }
    if (members.length) {
      for (const p of members) if (!ignore.has(p.name)) add(p, `in group ${t}`);
      continue;
    }
    const provider = findProvider(dep);
    if (!provider) throw fail(`target ${JSON.stringify(t)} is neither a package, a provide nor a group in ${dbs.map((d) => d.name).join(", ") || "(no repositories)"}`);
    add(provider, "a target");
  }

  // Conflicts among what was chosen would make pacman stop; say so now.
  for (const p of order) {
    for (const c of p.conflicts) {
      const dep = parseDep(c);
      for (const q of order) {
        if (q !== p && satisfies(q, dep)) throw fail(`${p.name} conflicts with ${q.name} (${dep.text})`);
      }
    }
  }
  return order;
}

// ---------------------------------------------------------------------------
// Packages

export interface PacmanPkgFile {
  /** .PKGINFO as key -> values ("depend" repeats) */
  pkginfo: Record<string, string[]>;
  /** .INSTALL scriptlet text */
  install?: string;
  /** .MTREE, decompressed to its text */
  mtree?: string;
  buildinfo?: string;
  changelog?: string;
  /** the payload: everything but the metadata members */
  entries: TarEntry[];
}

const META = new Set([".PKGINFO", ".INSTALL", ".MTREE", ".BUILDINFO", ".CHANGELOG"]);

/** "key = value" lines; comments start with "#". */
export function parsePkginfo(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const eq = line.indexOf(" = ");
    if (eq < 0) continue;
    const k = line.slice(0, eq).trim();
    (out[k] ??= []).push(line.slice(eq + 3));
  }
  return out;
}

/** A .pkg.tar.{zst,xz,gz} (or plain .pkg.tar): metadata members apart, never to be extracted into the root. */
export function readPkg(bytes: Uint8Array, name = "package"): PacmanPkgFile {
  const tar = decompress(bytes, name);
  const text = new TextDecoder();
  const out: PacmanPkgFile = { pkginfo: {}, entries: [] };
  let sawPkginfo = false;
  for (const e of readTar(tar, { name })) {
    if (META.has(e.path)) {
      if (e.type !== "file") throw new SpawnctlError(`reading ${name}: ${e.path} is not a regular file`);
      switch (e.path) {
        case ".PKGINFO":
          out.pkginfo = parsePkginfo(text.decode(e.data));
          sawPkginfo = true;
          break;
        case ".INSTALL":
          out.install = text.decode(e.data);
          break;
        case ".MTREE":
          out.mtree = text.decode(decompress(e.data, `.MTREE of ${name}`));
          break;
        case ".BUILDINFO":
          out.buildinfo = text.decode(e.data);
          break;
        case ".CHANGELOG":
          out.changelog = text.decode(e.data);
          break;
      }
      continue;
    }
    out.entries.push(e);
  }
  if (!sawPkginfo) throw new SpawnctlError(`reading ${name}: not a pacman package (no .PKGINFO)`);
  return out;
}
