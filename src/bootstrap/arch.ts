// `spawnctl bootstrap arch DEST [PKG...]`: pacstrap in the binary. Phases,
// each undone on failure or ^C (mmdebstrap's model, as debian.ts):
//   sync      the repository databases (core, extra, ...) from the mirror or
//             the cache directory; a database signature is checked when there
//             is one (pacman's DatabaseOptional)
//   resolve   the targets (default: base) with their dependencies
//   download  the packages and their .sig files, in parallel, size and
//             SHA-256 checked against the database, cached
//   verify    every package: SHA-256, then its detached signature (%PGPSIG%
//             from the database, else the .sig beside it) against the keyring
//   extract   pacstrap's skeleton, then every package's payload into a
//             temporary tree beside DEST
//   install   in a container made by spawnctl itself: the tree's pacman -U
//             registers the packages and runs scriptlets and hooks; without
//             a pacman in the tree, spawnctl writes the local database and
//             runs the scriptlets itself
//   keyring   pacman-key --init --populate, when the tree has pacman-key
//   follow-up mirrorlist (http mirrors), --hostname, --root-password
//   cleanup   no logs, no package cache (var/cache/pacman/pkg stays empty:
//             the packages stay in spawnctl's cache), no gpg-agent sockets,
//             an empty machine-id
//   finish    rename the tree to DEST
//
// Where packages come from:
//   --mirror=URL              URL/$repo/os/$arch (or a URL with $repo/$arch in
//                             it, as in a mirrorlist); http, https, file.
//                             Downloads are kept in --cache-dir (default
//                             /var/cache/spawnctl/packages/arch) and reused.
//   --cache-dir=DIR alone     offline, from a pacman-style cache: the
//                             packages (and their .sig) in DIR, each
//                             repository's database as DIR/$repo.db or
//                             DIR/sync/$repo.db (as in /var/lib/pacman/sync),
//                             with an optional $repo.db.sig beside it.
//   neither                   $SPAWNCTL_ARCH_MIRROR, else the first Server of
//                             the host's /etc/pacman.d/mirrorlist.
//
// Signatures. A package is accepted when its detached signature is good and
// made by a key in the keyring (the embedded archlinux keyring, or
// --keyring=FILE), that key and its binding not expired or revoked as the
// keyring itself says. pacman asks more: its keyring's ownertrust marks only
// the master keys (archlinux-trusted) as trusted, and a packager key counts
// only when at least three of those master keys have certified it (gpg's
// marginal-trust rule: marginals-needed 3), so a key that is merely in the
// file is not enough; and `pacman-key --populate` disables every key listed
// in archlinux-revoked, which catches packager keys that were retired
// without a revocation certificate inside the keyring. Here, with
// --keyring=DIR/NAME.gpg, the list DIR/NAME-revoked is honoured when present
// (a signature by a listed key is refused); the embedded keyring has no such
// list, and the web-of-trust check is not done: every key in the keyring is
// trusted as a signer. Use a keyring that holds only keys you trust.
import { config } from "../settings/config.ts";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, utimesSync } from "node:fs";
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { Progress, formatCount } from "../util/progress.ts";
import { warn } from "../util/log.ts";
import { formatBytes } from "../util/table.ts";
import { runCleanup, type Cleanup } from "../container/prepare.ts";
import { checkTarget, interruption, prepareTarget, treeLstat, treeMkdir, treePath, treeRead, treeRemove, treeWrite } from "./target.ts";
import type { TreeCommand } from "../container/exec.ts";
import { loadKeyring } from "./keyrings.ts";
import { fetchAll } from "../archive/download.ts";
import { verifyDetached, type Keyring } from "../archive/pgp.ts";
import { parsePacmanDb, readPkg, resolvePacman, type PacmanDb, type PacmanPackage } from "./pacman.ts";
import { extractTar } from "../archive/extract.ts";
import { ALPM_DB_VERSION, localDesc, localDirName, localFiles, mtreeTime, scriptletHas } from "./arch-localdb.ts";
import {
  GNUPG_LEFTOVERS, LEFTOVERS, PACMAN_KEY_SCRIPT, SCRIPTLET_FAILED, SKELETON, STAGE2, checkDbEntry, checkPkginfo, explicitNames, firstServer,
  keyringSibling, mirrorlistLine, pacmanConf, pacmanScript, parseFingerprints, repoUrl, scriptletScript, validationOf, type Scriptlet,
} from "./arch-plan.ts";

export interface ArchOptions {
  dest: string;
  /** targets: packages, provides or groups (default: base) */
  packages: string[];
  mirror?: string;
  cacheDir?: string;
  repos: string[];
  keyring?: string;
  verify: boolean;
  /** undefined: leave root's password alone; "": no password (passwd -d) */
  rootPassword?: string;
  hostname?: string;
  arch: string;
}

export const DEFAULT_CACHE = "/var/cache/spawnctl/packages/arch";
const ENOENT = 2;

type Source =
  | { kind: "mirror"; mirror: string; cacheDir: string }
  | { kind: "cache"; dir: string };

/** One package ready to install. */
interface Got {
  pkg: PacmanPackage;
  /** the package file: in the download cache, or the user's cache directory */
  path: string;
  /** detached signature: from %PGPSIG%, else the .sig file */
  sig?: Uint8Array;
  sigFrom?: string;
}

/** What the extraction learns about each package for the local database. */
interface Extracted {
  pkg: PacmanPackage;
  pkginfo: Record<string, string[]>;
  install?: string;
  mtree?: Uint8Array;
  changelog?: string;
  /** modification times of .INSTALL and .CHANGELOG, from the .MTREE */
  installTime?: number;
  changelogTime?: number;
  files: string;
}


function chooseSource(o: ArchOptions): Source {
  let mirror = o.mirror ?? (o.cacheDir === undefined ? process.env.SPAWNCTL_ARCH_MIRROR || config().bootstrap["arch-mirror"] || undefined : undefined);
  if (mirror === undefined && o.cacheDir === undefined) {
    try {
      mirror = firstServer(readFileSync("/etc/pacman.d/mirrorlist", "utf8"));
    } catch {
      /* no pacman on this host */
    }
  }
  // absolute: the directory is bound into the container
  const cacheDir = o.cacheDir !== undefined ? resolve(o.cacheDir) : undefined;
  if (mirror !== undefined) return { kind: "mirror", mirror, cacheDir: cacheDir ?? DEFAULT_CACHE };
  if (cacheDir !== undefined) return { kind: "cache", dir: cacheDir };
  throw new SpawnctlError("No Arch Linux repository: pass --mirror=URL (file:// works), --cache-dir=DIR (a package cache holding the repository databases too), set SPAWNCTL_ARCH_MIRROR, or configure a Server in /etc/pacman.d/mirrorlist.");
}

function notFound(e: unknown): boolean {
  return e instanceof SpawnctlError && e.errno === ENOENT;
}

function readOptional(path: string): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SpawnctlError(`reading ${path}: ${fsMessage(e)}`);
  }
}

class Verifier {
  constructor(
    readonly keyring: Keyring,
    /** primary fingerprints the keyring's revoked list names */
    readonly revoked: Set<string>,
    readonly revokedFile?: string,
  ) {}

  static load(file: string | undefined): Verifier {
    const keyring = loadKeyring("archlinux", file);
    if (!file) return new Verifier(keyring, new Set());
    const list = keyringSibling(file, "revoked");
    const text = file !== list ? readOptional(list) : undefined;
    return new Verifier(keyring, text ? parseFingerprints(new TextDecoder().decode(text)) : new Set(), text ? list : undefined);
  }

  /** Throws unless `sig` is a good signature over `data` by a key of the keyring that is not on the revoked list. */
  check(data: Uint8Array, sig: Uint8Array, what: string): void {
    const { goodSigners } = verifyDetached(data, sig, this.keyring, { what });
    if (goodSigners.every((f) => this.revoked.has(f))) {
      throw new SpawnctlError(`verifying ${what}: signed by key ${goodSigners.join(", ")}, which ${this.revokedFile} lists as revoked`);
    }
  }
}

async function syncDbs(o: ArchOptions, src: Source, verifier: Verifier | null, progress: Progress, signal: AbortSignal): Promise<PacmanDb[]> {
  progress.phase(`Reading the repository databases ${o.repos.join(", ")} from ${src.kind === "mirror" ? src.mirror : src.dir}`);
  const dbs: PacmanDb[] = [];
  for (const repo of o.repos) {
    let bytes: Uint8Array | undefined;
    let sig: Uint8Array | undefined;
    let where: string;
    if (src.kind === "mirror") {
      where = `${repoUrl(src.mirror, repo, o.arch)}/${repo}.db`;
      try {
        bytes = (await fetchAll([{ url: where }], { signal }))[0]!.data!;
      } catch (e) {
        if (notFound(e)) throw new SpawnctlError(`the repository ${repo} has no database at ${where}; is the mirror right, and is ${repo} one of its repositories?`, { cause: e });
        throw e;
      }
      try {
        sig = (await fetchAll([{ url: `${where}.sig` }], { signal }))[0]!.data!;
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    } else {
      const candidates = [`${src.dir}/${repo}.db`, `${src.dir}/sync/${repo}.db`];
      where = candidates.find((c) => existsSync(c)) ?? "";
      if (!where) {
        throw new SpawnctlError(`the package cache ${src.dir} has no database of the repository ${repo}: looked for ${candidates.join(" and ")} (copy it there from a machine's /var/lib/pacman/sync, or pass --mirror=URL)`);
      }
      bytes = readOptional(where)!;
      sig = readOptional(`${where}.sig`);
    }
    // Arch signs packages, not databases; a database signature, when there is one, must be good.
    if (sig && verifier) verifier.check(bytes, sig, `the ${repo} database signature (${where}.sig)`);
    const db = parsePacmanDb(bytes, repo);
    for (const p of db.packages) checkDbEntry(p);
    dbs.push(db);
  }
  return dbs;
}

async function download(o: ArchOptions, src: Source, pkgs: PacmanPackage[], verify: boolean, progress: Progress, signal: AbortSignal): Promise<Got[]> {
  const total = pkgs.reduce((n, p) => n + p.csize, 0);
  if (src.kind === "cache") {
    progress.phase(`Using ${pkgs.length} packages (${formatBytes(total)}) from ${src.dir}`);
    return pkgs.map((pkg) => {
      const path = `${src.dir}/${pkg.filename}`;
      if (!existsSync(path)) throw new SpawnctlError(`${pkg.filename} (${pkg.name} ${pkg.version} from ${pkg.repo}) is not in the package cache ${src.dir}`);
      let sig: Uint8Array | undefined;
      let sigFrom: string | undefined;
      if (verify && !pkg.pgpsig) {
        sig = readOptional(`${path}.sig`);
        sigFrom = `${path}.sig`;
      }
      return { pkg, path, sig, sigFrom };
    });
  }
  progress.phase(`Downloading ${pkgs.length} packages (${formatBytes(total)})`);
  mkdirSync(src.cacheDir, { recursive: true });
  let items = 0, bytes = 0;
  const url = (p: PacmanPackage) => `${repoUrl(src.mirror, p.repo, o.arch)}/${p.filename}`;
  const fetched = await fetchAll(
    pkgs.map((p) => ({ url: url(p), size: p.csize || undefined, sha256: p.sha256sum || undefined })),
    {
      cacheDir: src.cacheDir, concurrency: 8, signal,
      onProgress: (d) => progress.update(formatCount("Downloading", items, pkgs.length, "packages", { done: (bytes = d), total })),
      onItem: (n, of) => progress.update(formatCount("Downloading", (items = n), of, "packages", { done: bytes, total }), n === of),
    },
  );
  progress.clear();
  // Signatures the database does not carry are fetched from beside the package (pacman does the same).
  const needSig = verify ? pkgs.filter((p) => !p.pgpsig) : [];
  const sigs = new Map<string, { data?: Uint8Array; from: string }>();
  await Promise.all(needSig.map(async (p) => {
    const from = `${url(p)}.sig`;
    try {
      const [got] = await fetchAll([{ url: from }], { cacheDir: src.cacheDir, signal });
      sigs.set(p.name, { data: readFileSync(got!.path!), from });
    } catch (e) {
      if (!notFound(e)) throw e;
      sigs.set(p.name, { from });
    }
  }));
  return pkgs.map((pkg, i) => ({ pkg, path: fetched[i]!.path!, sig: sigs.get(pkg.name)?.data, sigFrom: sigs.get(pkg.name)?.from }));
}

/** Size and SHA-256 against the database, then the signature against the keyring; nothing is extracted before all pass. */
function verifyPackages(got: Got[], verifier: Verifier | null, progress: Progress, check: () => void): void {
  progress.phase(verifier ? `Verifying ${got.length} packages (SHA-256 and signatures)` : `Checking ${got.length} packages (SHA-256 only)`);
  let n = 0;
  for (const g of got) {
    check();
    const { pkg } = g;
    const what = `${pkg.filename} (${pkg.name} ${pkg.version} from ${pkg.repo})`;
    let data: Uint8Array;
    try {
      data = readFileSync(g.path);
    } catch (e) {
      throw new SpawnctlError(`reading ${g.path}: ${fsMessage(e)}`);
    }
    if (pkg.csize && data.length !== pkg.csize) throw new SpawnctlError(`${what}: size mismatch: the database says ${pkg.csize} bytes, ${g.path} has ${data.length}`);
    if (pkg.sha256sum) {
      const sum = createHash("sha256").update(data).digest("hex");
      if (sum !== pkg.sha256sum.toLowerCase()) throw new SpawnctlError(`${what}: SHA-256 mismatch: the database says ${pkg.sha256sum}, ${g.path} has ${sum}`);
    }
    if (verifier) {
      let sig = g.sig;
      let from = g.sigFrom ?? "";
      if (pkg.pgpsig) {
        sig = Buffer.from(pkg.pgpsig, "base64");
        from = `%PGPSIG% in the ${pkg.repo} database`;
      }
      if (!sig) throw new SpawnctlError(`${what} has no signature: the ${pkg.repo} database has no %PGPSIG% for it and there is no ${from || `${pkg.filename}.sig`}`);
      verifier.check(data, sig, `the signature of ${what} (${from})`);
    }
    progress.update(formatCount("Verifying", ++n, got.length, "packages", undefined, pkg.name));
  }
  progress.clear();
}

function makeSkeleton(tmp: string): void {
  for (const { path, mode } of SKELETON) {
    mkdirSync(`${tmp}/${path}`, { recursive: true, mode: 0o755 });
    chmodSync(`${tmp}/${path}`, mode); // mkdir's mode goes through the umask; 1777 needs chmod anyway
  }
}

function extractAll(tmp: string, got: Got[], progress: Progress, check: () => void): Extracted[] {
  progress.phase(`Extracting ${got.length} packages`);
  const out: Extracted[] = [];
  let n = 0;
  for (const { pkg, path } of got) {
    check();
    const p = readPkg(readFileSync(path), pkg.filename);
    checkPkginfo(pkg, p.pkginfo);
    // refuseEscapes: a member that is absolute, has "..", goes through a
    // symlink out of the tree or hardlinks to outside refuses the package
    extractTar(p.entries, tmp, { keepDirectorySymlinks: true, devices: false, refuseEscapes: true, name: `${pkg.filename} (${pkg.name} ${pkg.version} from ${pkg.repo})` });
    out.push({
      pkg,
      pkginfo: p.pkginfo,
      install: p.install,
      mtree: p.mtree !== undefined ? Bun.gzipSync(new TextEncoder().encode(p.mtree)) : undefined,
      changelog: p.changelog,
      installTime: mtreeTime(p.mtree, "./.INSTALL"),
      changelogTime: mtreeTime(p.mtree, "./.CHANGELOG"),
      files: localFiles(p.entries, p.pkginfo),
    });
    progress.update(formatCount("Extracting", ++n, got.length, "packages", undefined, pkg.name));
  }
  progress.clear();
  return out;
}

// From here on the tree holds the packages' symlinks: every path in it goes
// through target.ts's tree* functions, which resolve them inside the tree.

/** A path in the tree that exists as a file or a symlink, without following anything outside it. */
function inTree(tmp: string, path: string): boolean {
  const st = treeLstat(tmp, path);
  return !!st && (st.isFile() || st.isSymbolicLink());
}

/** an absolute path of the container ("/etc/x") as a path in the tree ("etc/x") */
const rel = (path: string) => path.replace(/^\/+/, "");

function logTail(tmp: string, lines = 25): string {
  return (treeRead(tmp, rel(STAGE2.log)) ?? "").split("\n").slice(-lines).join("\n");
}

/**
 * pacman -U records %VALIDATION% none, since the temporary pacman.conf told
 * it not to check signatures; say instead how spawnctl checked them.
 */
function fixValidation(tmp: string, extracted: Extracted[], verified: boolean): void {
  for (const e of extracted) {
    const desc = `var/lib/pacman/local/${localDirName(e.pkginfo)}/desc`;
    const text = treeRead(tmp, desc);
    if (text === undefined) continue;
    const fixed = text.replace(/^%VALIDATION%\nnone\n/m, `%VALIDATION%\n${validationOf(e.pkg, verified).join("\n")}\n`);
    if (fixed !== text) treeWrite(tmp, desc, fixed);
  }
}

async function stageWithPacman(tmp: string, got: Got[], extracted: Extracted[], explicit: Set<string>, pkgDir: string, verified: boolean, progress: Progress, check: () => void): Promise<void> {
  progress.phase(`Installing ${got.length} packages with the tree's pacman in a container`);
  treeWrite(tmp, rel(STAGE2.conf), pacmanConf());
  treeMkdir(tmp, rel(STAGE2.pkgDir));
  const deps = got.filter((g) => !explicit.has(g.pkg.name)).map((g) => g.pkg.name);
  treeWrite(tmp, rel(STAGE2.script), pacmanScript(got.map((g) => g.pkg.filename), deps));
  const code = await runStage(tmp, ["/bin/sh", STAGE2.script], {
    // hooks that call systemctl (daemon-reload, enable) act on the files only, as in pacstrap's chroot
    env: ["LC_ALL=C", "PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin", "SYSTEMD_OFFLINE=1", "SYSTEMD_IN_CHROOT=1"],
    bindsRo: [`${pkgDir}:${STAGE2.pkgDir}`],
  }, check);
  if (code !== 0) throw new SpawnctlError(`installing the packages with pacman in the container failed (exit ${code}); the end of its output:\n${logTail(tmp)}`);
  fixValidation(tmp, extracted, verified);
}

/** runInTree, reporting ^C as the interruption it is rather than as the command's failure. */
async function runStage(tmp: string, argv: string[], opts: TreeCommand, check: () => void): Promise<number> {
  const { runInTree } = await import("../container/exec.ts");
  const code = await runInTree(tmp, argv, opts);
  check();
  return code;
}

function writeWithTime(tmp: string, path: string, text: string, time: number | undefined): void {
  treeWrite(tmp, path, text);
  if (time !== undefined) utimesSync(treePath(tmp, path), time, time);
}

async function stageWithoutPacman(tmp: string, extracted: Extracted[], explicit: Set<string>, verified: boolean, progress: Progress, check: () => void): Promise<void> {
  progress.phase(`Registering ${extracted.length} packages in /var/lib/pacman/local (the tree has no pacman)`);
  const local = "var/lib/pacman/local";
  treeMkdir(tmp, local);
  treeWrite(tmp, `${local}/ALPM_DB_VERSION`, `${ALPM_DB_VERSION}\n`);
  const installDate = Math.floor(Date.now() / 1000);
  const scriptlets: Scriptlet[] = [];
  for (const e of extracted) {
    const dir = localDirName(e.pkginfo);
    treeMkdir(tmp, `${local}/${dir}`);
    treeWrite(tmp, `${local}/${dir}/desc`, localDesc({ pkginfo: e.pkginfo, installDate, asDependency: !explicit.has(e.pkg.name), validation: validationOf(e.pkg, verified) }));
    treeWrite(tmp, `${local}/${dir}/files`, e.files);
    if (e.mtree) treeWrite(tmp, `${local}/${dir}/mtree`, e.mtree);
    if (e.changelog !== undefined) writeWithTime(tmp, `${local}/${dir}/changelog`, e.changelog, e.changelogTime);
    if (e.install !== undefined) {
      writeWithTime(tmp, `${local}/${dir}/install`, e.install, e.installTime);
      const functions = (["pre_install", "post_install"] as const).filter((f) => scriptletHas(e.install, f));
      if (functions.length) scriptlets.push({ dir, version: e.pkginfo.pkgver![0]!, functions });
    }
  }
  if (scriptlets.length === 0) return;
  if (!inTree(tmp, "bin/sh") && !inTree(tmp, "usr/bin/sh")) {
    throw new SpawnctlError(`cannot run the install scriptlets of ${scriptlets.map((s) => s.dir).join(", ")}: the tree has no /bin/sh`);
  }
  progress.phase(`Running ${scriptlets.length} install scriptlets in a container`);
  treeWrite(tmp, rel(STAGE2.script), scriptletScript(scriptlets));
  const code = await runStage(tmp, ["/bin/sh", STAGE2.script], { env: ["LC_ALL=C"] }, check);
  if (code !== 0) throw new SpawnctlError(`running the install scriptlets in the container failed (exit ${code}); the end of their output:\n${logTail(tmp)}`);
  const log = treeRead(tmp, rel(STAGE2.log)) ?? "";
  for (const line of log.split("\n")) {
    if (line.startsWith(SCRIPTLET_FAILED)) warn(`warning: ${line.slice("spawnctl: ".length)}`);
  }
}

/** pacman-key --init --populate, so the container's pacman can verify what it installs later; a failure is a warning. */
async function initPacmanKeyring(tmp: string, progress: Progress, check: () => void): Promise<void> {
  if (!inTree(tmp, "usr/bin/pacman-key")) return;
  progress.phase("Initialising the pacman keyring (pacman-key --init, --populate)");
  treeWrite(tmp, rel(STAGE2.script), PACMAN_KEY_SCRIPT);
  const code = await runStage(tmp, ["/bin/sh", STAGE2.script], { env: ["LC_ALL=C"] }, check);
  if (code !== 0) {
    warn(`warning: pacman-key failed in the container (exit ${code}); run "pacman-key --init && pacman-key --populate" in the machine before using pacman. Its output:\n${logTail(tmp, 10)}`);
  }
  for (const f of GNUPG_LEFTOVERS) treeRemove(tmp, `etc/pacman.d/gnupg/${f}`);
}

async function followUps(tmp: string, o: ArchOptions, mirror: string | undefined, check: () => void): Promise<void> {
  if (mirror) {
    const line = mirrorlistLine(mirror);
    if (line) {
      const path = "etc/pacman.d/mirrorlist";
      const old = treeRead(tmp, path) ?? "";
      treeWrite(tmp, path, `# added by spawnctl bootstrap\n${line}\n\n${old}`);
    }
  }
  if (o.hostname) {
    treeWrite(tmp, "etc/hostname", `${o.hostname}\n`);
    const hosts = treeRead(tmp, "etc/hosts") ?? "127.0.0.1\tlocalhost\n";
    if (!hosts.includes(o.hostname)) treeWrite(tmp, "etc/hosts", `${hosts.trimEnd()}\n127.0.1.1\t${o.hostname}\n`);
  }
  if (o.rootPassword !== undefined) {
    const cmd = o.rootPassword === "" ? ["passwd", "-d", "root"] : ["/bin/sh", "-c", 'echo "root:$SPAWNCTL_ROOT_PASSWORD" | chpasswd'];
    const code = await runStage(tmp, cmd, { env: [`SPAWNCTL_ROOT_PASSWORD=${o.rootPassword}`] }, check);
    if (code !== 0) throw new SpawnctlError(`setting the root password failed (exit ${code})`);
  }
}

function cleanupTree(tmp: string): void {
  for (const p of LEFTOVERS) treeRemove(tmp, p);
  // the bind mount point: rmdir, so that nothing below it could ever be deleted
  if (treeLstat(tmp, rel(STAGE2.pkgDir))?.isDirectory()) rmdirSync(treePath(tmp, rel(STAGE2.pkgDir), true));
  // an empty machine-id: the first boot makes one (systemd's post_install wrote one)
  if (treeLstat(tmp, "etc")) treeWrite(tmp, "etc/machine-id", "");
}

/** Make the packages' directory one path that can be bound into the container. */
function packageDir(got: Got[]): string {
  const dirs = [...new Set(got.map((g) => g.path.slice(0, g.path.lastIndexOf("/"))))];
  if (dirs.length !== 1) throw new SpawnctlError(`the packages are not in one directory (${dirs.join(", ")})`);
  if (dirs[0]!.includes(":")) throw new SpawnctlError(`the package directory ${dirs[0]} contains ":", which a bind mount specification cannot hold; use another --cache-dir`);
  return dirs[0]!;
}

export async function bootstrapArch(o: ArchOptions): Promise<void> {
  const progress = new Progress();
  const cleanup: Cleanup = [];
  const intr = interruption();
  const check = intr.check;
  try {
    if (o.packages.length === 0) o.packages = ["base"];
    if (o.repos.length === 0) throw new SpawnctlError("--repos= names no repository.");
    checkTarget(o.dest); // before anything is fetched; prepareTarget checks again
    const src = chooseSource(o);
    let verifier: Verifier | null = null;
    if (o.verify) verifier = Verifier.load(o.keyring);
    else warn("WARNING: --no-verify: package signatures are NOT checked; anyone who can change the mirror, the cache or the connection to it chooses what gets installed.");

    const dbs = await syncDbs(o, src, verifier, progress, intr.signal);
    check();
    const pkgs = resolvePacman(dbs, o.packages);
    for (const p of pkgs) {
      if (p.arch && p.arch !== "any" && p.arch !== o.arch) throw new SpawnctlError(`${p.name} ${p.version} from ${p.repo} is built for ${p.arch}, not ${o.arch}`);
    }
    const explicit = explicitNames(dbs, o.packages);
    const got = await download(o, src, pkgs, o.verify, progress, intr.signal);
    check();
    verifyPackages(got, verifier, progress, check);

    const tmp = prepareTarget(o.dest, cleanup);
    makeSkeleton(tmp);
    const extracted = extractAll(tmp, got, progress, check);
    check();
    if (inTree(tmp, "usr/bin/pacman")) {
      await stageWithPacman(tmp, got, extracted, explicit, packageDir(got), o.verify, progress, check);
      check();
      await initPacmanKeyring(tmp, progress, check);
    } else {
      await stageWithoutPacman(tmp, extracted, explicit, o.verify, progress, check);
    }
    check();
    await followUps(tmp, o, src.kind === "mirror" ? src.mirror : undefined, check);
    check();
    cleanupTree(tmp);
    if (existsSync(o.dest)) rmdirSync(o.dest); // an empty directory given as DEST
    renameSync(tmp, o.dest);
    cleanup.length = 0; // it is DEST now: nothing to undo
    progress.phase(`Bootstrapped Arch Linux (${pkgs.length} packages) in ${o.dest}.`);
  } catch (e) {
    progress.clear();
    // ^C shows up as whatever it broke (a cancelled download, a killed command): say what it was
    check();
    throw e;
  } finally {
    intr.release();
    runCleanup(cleanup);
  }
}
