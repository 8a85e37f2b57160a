// importd's work without importd: import-tar, import-fs, import-raw,
// export-tar, export-raw, pull-tar and pull-raw. Every new image is built
// under a hidden temporary name in the pool and renamed into place at the
// end; errors, SIGINT and SIGTERM roll back (job.ts). Downloads are checked
// as importd checks them: SHA256SUMS (or FILE.sha256) beside the URL for
// --verify=checksum, plus its OpenPGP signature SHA256SUMS.gpg (or .asc) for
// --verify=signature, against /etc/systemd/import-pubring.gpg, else
// /usr/lib/systemd/import-pubring.gpg (SPAWNCTL_IMPORT_KEYRING overrides).
import { fullJit } from "../util/jit.ts";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, statSync } from "node:fs";
import { decompressAsync, sniffCompression } from "../archive/decompress.ts";
import { fetchAll } from "../archive/download.ts";
import { parseKeyring, verifyDetached } from "../archive/pgp.ts";
import { isatty } from "../sys/ffi.ts";
import { SpawnctlError, fsMessage, usage } from "../util/errors.ts";
import { info } from "../util/log.ts";
import { formatBytes } from "../util/table.ts";
import { createSubvolume, isBtrfs, isSubvolume, setSubvolumeReadOnly, snapshot, snapshotRecursive } from "./btrfs.ts";
import { checkFormatAvailable, decompressedChunks, fileHead, openSink } from "./compress.ts";
import { copyTreeAsync, treeBytes } from "../util/copy.ts";
import { removePath, runJob, type Job } from "./job.ts";
import {
  checkNewMachineName, checkPullUrl, chooseFormat, localNameFor, stripRawSuffix, stripTarSuffix, sumsListed, tempPath, urlLastComponent,
  urlSibling, type VerifyMode,
} from "./names.ts";
import { setImmutable, removeImage } from "./ops.ts";
import { ensurePool, findImage, isHost, lockImage, lockName, requireImage } from "./pool.ts";
import { Progress } from "./progress.ts";
import { copyRawFile, createRawFile, isQcow2, SparseWriter } from "./raw.ts";
import { renameInto } from "./sys.ts";
import { mountStackView, readStack } from "../container/stack.ts";
import { resetMachineId } from "./identity.ts";
import { extractTarBytes, writeTreeAsTar } from "./tar-io.ts";

// image transfers are long computations (hashing, compression)
fullJit();

export interface ImportOptions {
  readOnly: boolean;
  force: boolean;
  /** create device nodes from tar archives */
  devices: boolean;
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** Refuse early when the name is taken (and --force cannot replace it). */
export function checkTarget(local: string, pool: string, force: boolean, doing: string): void {
  const existing = findImage(local);
  if (!existing) return;
  if (!force) throw new SpawnctlError(`${doing}: an image called '${local}' already exists (${existing.path}); use --force to replace it.`);
  if (dirOf(existing.path) !== pool) throw new SpawnctlError(`${doing}: the image '${local}' in ${dirOf(existing.path)} would hide the new one in ${pool}; remove it first.`);
}

/** Move the finished temporary image into place, replacing an old one with --force. */
export function install(tmp: string, target: string, local: string, pool: string, force: boolean, job: Job, doing: string): void {
  job.check();
  checkTarget(local, pool, force, doing);
  if (findImage(local)) removeImage(local, { quiet: true, keepSettings: true });
  job.onUndo(`removing ${target}`, () => removePath(target));
  renameInto(tmp, target, doing);
}

/**
 * Run the work that makes the new image `local` as a job, holding the name
 * lock, after checking the name is free (or --force may replace it). The
 * signal handlers are in place from the start, so even a ^C while waiting
 * for stdin leaves no lock file behind.
 */
export function withNewImage(doing: string, local: string, pool: string, force: boolean, fn: (job: Job) => Promise<void>): Promise<void> {
  return runJob(doing, async (job) => {
    const nameLock = lockName(local, doing);
    try {
      checkTarget(local, pool, force, doing);
      await fn(job);
    } finally {
      nameLock.release();
    }
  });
}

/** A directory (a subvolume on btrfs, as importd makes) for a new tree. */
function makeTreeDir(path: string, pool: string): boolean {
  if (isBtrfs(pool) && createSubvolume(path) === 0) return true;
  try {
    mkdirSync(path, { mode: 0o755 });
  } catch (e) {
    throw new SpawnctlError(`creating ${path}: ${fsMessage(e)}`, { cause: e });
  }
  return false;
}

function markTreeReadOnly(path: string, subvolume: boolean, doing: string): void {
  if (subvolume) setSubvolumeReadOnly(path, true);
  else setImmutable(path, true, doing);
}

async function readSource(source: string): Promise<Uint8Array> {
  if (source === "-") {
    if (isatty(0)) throw usage("Refusing to read an archive from a terminal; give a file or pipe one in.");
    return new Uint8Array(await Bun.stdin.arrayBuffer());
  }
  let st;
  try {
    st = statSync(source);
  } catch (e) {
    throw new SpawnctlError(`reading ${source}: ${fsMessage(e)}`, { cause: e });
  }
  if (st.isDirectory()) throw usage(`${source} is a directory; use import-fs for directories.`);
  // a mapping, not a copy: an uncompressed archive is read straight from the page cache
  if (st.isFile() && st.size > 0) {
    try {
      return Bun.mmap(source, { shared: false });
    } catch {
      /* a file system without mmap: read it */
    }
  }
  try {
    return new Uint8Array(readFileSync(source));
  } catch (e) {
    throw new SpawnctlError(`reading ${source}: ${fsMessage(e)}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------
// import-tar / import-fs

async function importTarInto(bytes: Uint8Array, label: string, local: string, pool: string, o: ImportOptions, job: Job, doing: string): Promise<string> {
  const progress = new Progress(`Importing '${local}'`);
  const kind = sniffCompression(bytes.subarray(0, 16));
  const data = kind === "none" ? bytes : await decompressAsync(bytes, label);
  job.check();
  const tmp = tempPath(pool, `import-${local}`);
  job.removeOnFailure(tmp);
  const sub = makeTreeDir(tmp, pool);
  const st = await extractTarBytes(data, tmp, job, { devices: o.devices, name: label, progress: (b) => progress.update(b, data.length) });
  progress.clear();
  // the new image is a machine of its own
  resetMachineId(tmp, doing);
  if (o.readOnly && sub) setSubvolumeReadOnly(tmp, true);
  const target = `${pool}/${local}`;
  install(tmp, target, local, pool, o.force, job, doing);
  if (o.readOnly && !sub) markTreeReadOnly(target, false, doing);
  info(`Imported image '${local}' from ${label}: ${st.entries} entries, ${formatBytes(st.bytes)} of file data${o.readOnly ? ", read-only" : ""}.`);
  return target;
}

/** The name, wording and pool of an import from `source` (a file, or "-" for standard input). */
function importTarget(kind: "tar" | "raw", source: string, name: string | undefined): { name: string; label: string; doing: string; pool: string } {
  if (source !== "-" && !name) name = localNameFor(kind, source, false);
  if (!name) throw usage("Importing from standard input needs a NAME for the new image.");
  checkNewMachineName(name);
  const label = source === "-" ? "standard input" : source;
  return { name, label, doing: `importing ${label} as image '${name}'`, pool: ensurePool() };
}

export async function importTar(source: string, given: string | undefined, o: ImportOptions): Promise<void> {
  const { name, label, doing, pool } = importTarget("tar", source, given);
  await withNewImage(doing, name, pool, o.force, async (job) => {
    const bytes = await job.race(readSource(source));
    await importTarInto(bytes, label, name, pool, o, job, doing);
  });
}

export async function importFs(dir: string, name: string | undefined, o: ImportOptions): Promise<void> {
  let src: string;
  try {
    src = realpathSync(dir);
    if (!statSync(src).isDirectory()) throw new Error("Not a directory");
  } catch (e) {
    throw new SpawnctlError(`importing ${dir}: ${fsMessage(e)}`, { cause: e });
  }
  const local = name ?? localNameFor("fs", src, false);
  checkNewMachineName(local);
  const doing = `importing ${dir} as image '${local}'`;
  const pool = ensurePool();
  if (src === "/") throw new SpawnctlError(`${doing}: copying the host's own root is not supported.`);
  if (pool === src || pool.startsWith(`${src}/`)) throw new SpawnctlError(`${doing}: the pool ${pool} lies inside ${src}; the copy would contain itself.`);
  await withNewImage(doing, local, pool, o.force, async (job) => {
    const progress = new Progress(`Importing '${local}'`);
    const tmp = tempPath(pool, `import-${local}`);
    job.removeOnFailure(tmp);
    let sub = false;
    let roDone = false;
    // a snapshot is writable at first: its machine ID is reset
    if (isSubvolume(src) && snapshotRecursive(src, tmp, false) === 0) {
      sub = true;
    } else {
      sub = isBtrfs(pool) && createSubvolume(tmp) === 0;
      const total = progress.live ? treeBytes(src) : undefined;
      await copyTreeAsync(src, tmp, { intoExisting: sub, progress: (_n, b) => progress.update(b, total), yield: () => job.tick() });
    }
    progress.clear();
    // the new image is a machine of its own
    resetMachineId(tmp, doing);
    if (o.readOnly && sub && !roDone) {
      setSubvolumeReadOnly(tmp, true);
      roDone = true;
    }
    const target = `${pool}/${local}`;
    install(tmp, target, local, pool, o.force, job, doing);
    if (o.readOnly && !roDone) markTreeReadOnly(target, false, doing);
    info(`Imported image '${local}' from ${dir}${o.readOnly ? " (read-only)" : ""}.`);
  });
}

// ---------------------------------------------------------------------------
// import-raw

async function importRawFrom(file: string, label: string, local: string, pool: string, o: ImportOptions, job: Job, doing: string): Promise<void> {
  const progress = new Progress(`Importing '${local}'`);
  const tmp = tempPath(pool, `import-${local}.raw`);
  job.removeOnFailure(tmp);
  const head = fileHead(file);
  const qcow = () => new SpawnctlError(`${doing}: ${label} is a qcow2 image, which spawnctl does not convert; convert it first (qemu-img convert -O raw ${label} ${local}.raw).`);
  const kind = sniffCompression(head);
  const total = statSync(file).size;
  if (kind === "none") {
    if (isQcow2(head)) throw qcow();
    await copyRawFile(file, tmp, job, (d) => progress.update(d, total));
  } else {
    const fd = createRawFile(tmp);
    try {
      const w = new SparseWriter(fd, tmp);
      let first = true;
      for await (const chunk of decompressedChunks(file, label, job.signal)) {
        if (first && isQcow2(chunk)) throw qcow();
        first = false;
        w.write(chunk);
        progress.update(w.size);
        await job.tick();
      }
      w.finish();
    } finally {
      closeSync(fd);
    }
  }
  progress.clear();
  chmodSync(tmp, o.readOnly ? 0o444 : 0o644);
  install(tmp, `${pool}/${local}.raw`, local, pool, o.force, job, doing);
  info(`Imported image '${local}' from ${label}: ${formatBytes(statSync(`${pool}/${local}.raw`).size)}${o.readOnly ? ", read-only" : ""}.`);
}

export async function importRaw(source: string, given: string | undefined, o: ImportOptions): Promise<void> {
  const { name, label, doing, pool } = importTarget("raw", source, given);
  await withNewImage(doing, name, pool, o.force, async (job) => {
    let file = source;
    if (source === "-") {
      if (isatty(0)) throw usage("Refusing to read an image from a terminal; give a file or pipe one in.");
      // spooled to a hidden file in the pool first, then imported like a file
      file = tempPath(pool, `stdin-${name}`);
      job.removeOnFailure(file);
      await job.race(Bun.write(file, Bun.stdin));
    } else if (!existsSync(source)) {
      throw new SpawnctlError(`${doing}: ${source}: No such file or directory`);
    }
    await importRawFrom(file, label, name, pool, o, job, doing);
    if (file !== source) removePath(file);
  });
}

// ---------------------------------------------------------------------------
// export-tar / export-raw

interface Output {
  fd: number;
  /** the temporary file, renamed to `file` by commit() */
  tmp?: string;
  file?: string;
}

function openOutput(file: string | undefined, job: Job, doing: string): Output {
  if (file === undefined || file === "-") {
    if (isatty(1)) throw usage("Refusing to write an archive to a terminal; give a FILE or redirect the output.");
    return { fd: 1 };
  }
  const dir = dirOf(file.startsWith("/") ? file : `${process.cwd()}/${file}`);
  const tmp = tempPath(dir, `export-${file.slice(file.lastIndexOf("/") + 1)}`);
  job.removeOnFailure(tmp);
  try {
    return { fd: openSync(tmp, "wx", 0o644), tmp, file };
  } catch (e) {
    throw new SpawnctlError(`${doing}: creating ${tmp}: ${fsMessage(e)}`, { cause: e });
  }
}

function commitOutput(out: Output, doing: string): void {
  if (out.tmp) {
    closeSync(out.fd);
    try {
      renameSync(out.tmp, out.file!); // replaces an old FILE, as machinectl's O_TRUNC does
    } catch (e) {
      throw new SpawnctlError(`${doing}: renaming ${out.tmp} to ${out.file}: ${fsMessage(e)}`, { cause: e });
    }
  }
}

export async function exportTar(name: string, file: string | undefined, formatFlag: string | undefined): Promise<void> {
  const doing = `exporting image '${name}'${file && file !== "-" ? ` to ${file}` : ""}`;
  const img = requireImage(name);
  if (isHost(img)) throw new SpawnctlError(`${doing}: exporting the host's own root (.host) is not supported.`);
  if (img.type === "raw" || img.type === "block") throw new SpawnctlError(`${doing}: it is a ${img.type === "raw" ? "raw disk image" : "block device"}; use export-raw.`);
  const format = chooseFormat(formatFlag, file === "-" ? undefined : file);
  checkFormatAvailable(format, doing);
  // shared: a writable container running from it would make the archive inconsistent
  const lock = lockImage(img, true, doing);
  try {
    await runJob(doing, async (job) => {
      let root = realpathSync(img.path);
      // an OCI image flattens: its layers and its own changes, as one tree (a read-only overlay)
      const stack = img.type === "oci" ? readStack(root) : undefined;
      const view = stack ? mountStackView(stack, `export-${name}`) : undefined;
      if (view) {
        job.onUndo(`unmounting ${view.path}`, () => view.release());
        root = view.path;
      }
      // a btrfs subvolume is exported from a read-only snapshot, as importd does: a consistent state
      if (img.type === "subvolume" && !img.readOnly) {
        const snap = tempPath(dirOf(root), `export-${name}`);
        job.onUndo(`removing ${snap}`, () => removePath(snap));
        if (snapshot(root, snap, true) === 0) root = snap;
      }
      const out = openOutput(file, job, doing);
      const sink = openSink(format, out.fd, doing);
      job.onUndo("stopping the compressor", () => sink.abort());
      const progress = new Progress(`Exporting '${name}'`);
      const total = progress.live ? treeBytes(root, true) : undefined;
      const st = await writeTreeAsTar(root, sink, job, (b) => progress.update(b, total));
      await sink.end();
      progress.clear();
      commitOutput(out, doing);
      if (img.type === "subvolume" && root !== realpathSync(img.path)) removePath(root);
      view?.release();
      info(`Exported image '${name}'${out.file ? ` to ${out.file}` : ""} (${format}): ${st.entries} entries, ${formatBytes(st.bytes)} of tar.`);
    });
  } finally {
    lock.release();
  }
}

export async function exportRaw(name: string, file: string | undefined, formatFlag: string | undefined): Promise<void> {
  const doing = `exporting image '${name}'${file && file !== "-" ? ` to ${file}` : ""}`;
  const img = requireImage(name);
  if (img.type !== "raw") throw new SpawnctlError(`${doing}: it is a ${img.type === "block" ? "block device" : "directory tree"}; ${img.type === "block" ? "export-raw handles raw image files only" : "use export-tar"}.`);
  const format = chooseFormat(formatFlag, file === "-" ? undefined : file);
  checkFormatAvailable(format, doing);
  const lock = lockImage(img, true, doing);
  try {
    await runJob(doing, async (job) => {
      const progress = new Progress(`Exporting '${name}'`);
      const total = statSync(img.path).size;
      if (format === "uncompressed" && file && file !== "-") {
        // a sparse (or reflinked) copy
        const dir = dirOf(file.startsWith("/") ? file : `${process.cwd()}/${file}`);
        const tmp = tempPath(dir, `export-${file.slice(file.lastIndexOf("/") + 1)}`);
        job.removeOnFailure(tmp);
        await copyRawFile(img.path, tmp, job, (d) => progress.update(d, total));
        chmodSync(tmp, 0o644);
        renameSync(tmp, file);
      } else {
        const out = openOutput(file, job, doing);
        const sink = openSink(format, out.fd, doing);
        job.onUndo("stopping the compressor", () => sink.abort());
        let done = 0;
        for await (const chunk of decompressedChunks(img.path, img.path, job.signal)) {
          await sink.write(chunk);
          done += chunk.length;
          progress.update(done, total);
          await job.tick();
        }
        await sink.end();
        commitOutput(out, doing);
      }
      progress.clear();
      info(`Exported image '${name}'${file && file !== "-" ? ` to ${file}` : ""} (${format}).`);
    });
  } finally {
    lock.release();
  }
}

// ---------------------------------------------------------------------------
// pull-tar / pull-raw

/** The keyring for --verify=signature. */
export function importKeyringPath(env: Record<string, string | undefined> = process.env, exists: (p: string) => boolean = existsSync): string {
  const override = env.SPAWNCTL_IMPORT_KEYRING;
  if (override) {
    if (!exists(override)) throw new SpawnctlError(`The keyring ${override} (from SPAWNCTL_IMPORT_KEYRING) does not exist.`);
    return override;
  }
  for (const p of ["/etc/systemd/import-pubring.gpg", "/usr/lib/systemd/import-pubring.gpg"]) if (exists(p)) return p;
  throw new SpawnctlError(
    "No keyring for signature verification: neither /etc/systemd/import-pubring.gpg nor /usr/lib/systemd/import-pubring.gpg exists. " +
      "Put the image signer's public key there (gpg --export KEY > /etc/systemd/import-pubring.gpg), or use --verify=checksum or --verify=no.",
  );
}

const ENOENT = 2;
function notFound(e: unknown): boolean {
  return e instanceof SpawnctlError && e.errno === ENOENT;
}

async function fetchSmall(urls: string[], job: Job): Promise<{ url: string; data: Uint8Array } | undefined> {
  for (const url of urls) {
    try {
      const [got] = await fetchAll([{ url }], { signal: job.signal });
      return { url, data: got!.data! };
    } catch (e) {
      if (!notFound(e)) throw e;
    }
  }
  return undefined;
}

interface Verification {
  sums?: { url: string; text: string };
}

/** Fetch and check what --verify asks for, before the image itself is downloaded. */
async function fetchVerification(url: string, mode: VerifyMode, job: Job, doing: string): Promise<Verification> {
  if (mode === "no") return {};
  const fn = urlLastComponent(url);
  // SHA256SUMS for the directory, as importd asks first for pull-tar; then the SUSE-style FILE.sha256
  const got = await fetchSmall([urlSibling(url, "SHA256SUMS"), urlSibling(url, `${fn}.sha256`)], job);
  if (!got) throw new SpawnctlError(`${doing}: --verify=${mode} needs ${urlSibling(url, "SHA256SUMS")} (or ${fn}.sha256), which does not exist; use --verify=no to skip verification.`);
  const text = new TextDecoder().decode(got.data);
  if (mode === "signature") {
    const base = urlLastComponent(got.url);
    const sigs = base === "SHA256SUMS" ? ["SHA256SUMS.gpg", "SHA256SUMS.asc"] : [`${base}.asc`, `${base}.gpg`];
    const sig = await fetchSmall(sigs.map((s) => urlSibling(url, s)), job);
    if (!sig) throw new SpawnctlError(`${doing}: --verify=signature needs ${urlSibling(url, sigs[0]!)}, which does not exist; use --verify=checksum to check the checksum only.`);
    const keyringPath = importKeyringPath();
    let keyringBytes: Uint8Array;
    try {
      keyringBytes = readFileSync(keyringPath);
    } catch (e) {
      throw new SpawnctlError(`${doing}: reading the keyring ${keyringPath}: ${fsMessage(e)}`, { cause: e });
    }
    const keyring = parseKeyring(keyringBytes, keyringPath);
    try {
      const r = verifyDetached(got.data, sig.data, keyring, { what: sig.url });
      info(`Signature of ${got.url} is good (key ${r.goodSigners.join(", ")}).`);
    } catch (e) {
      throw new SpawnctlError(`${doing}: DOWNLOAD INVALID: ${(e as Error).message}`, { cause: e });
    }
  }
  return { sums: { url: got.url, text } };
}

function checkSum(v: Verification, fileUrl: string, sha256: string, doing: string): void {
  if (!v.sums) return;
  const fn = urlLastComponent(fileUrl);
  if (!sumsListed(v.sums.text, fn, sha256)) {
    throw new SpawnctlError(`${doing}: DOWNLOAD INVALID: the SHA-256 of ${fn} (${sha256}) is not what ${v.sums.url} lists; the file may have been tampered with.`);
  }
  info(`SHA-256 checksum of ${fileUrl} is valid.`);
}

async function download(url: string, dest: string, job: Job, label: string): Promise<string> {
  const progress = new Progress(`Downloading ${label}`);
  job.removeOnFailure(dest);
  const [got] = await fetchAll([{ url, dest }], { signal: job.signal, onProgress: (d, t) => progress.update(d, t || undefined) });
  progress.clear();
  return got!.sha256;
}

export interface PullOptions extends ImportOptions {
  verify: VerifyMode;
}

export async function pull(kind: "tar" | "raw", url: string, name: string | undefined, o: PullOptions): Promise<void> {
  checkPullUrl(url);
  const local = name ?? localNameFor(kind, url, true);
  checkNewMachineName(local);
  const doing = `pulling ${url} as image '${local}'`;
  const pool = ensurePool();
  await withNewImage(doing, local, pool, o.force, async (job) => {
    const v = await fetchVerification(url, o.verify, job, doing);
    const file = tempPath(pool, `download-${local}`);
    const sha256 = await download(url, file, job, urlLastComponent(url));
    checkSum(v, url, sha256, doing);
    // a settings file published beside the image comes along, as importd's pull-tar does
    const fn = urlLastComponent(url);
    const settingsName = `${kind === "tar" ? stripTarSuffix(fn) : stripRawSuffix(fn)}.nspawn`;
    let settings: string | undefined;
    const s = await fetchSmall([urlSibling(url, settingsName)], job);
    if (s) {
      if (v.sums) {
        const hash = new Bun.CryptoHasher("sha256").update(s.data).digest("hex");
        checkSum(v, s.url, hash, doing);
      }
      settings = tempPath(pool, `settings-${local}`);
      job.removeOnFailure(settings);
      await Bun.write(settings, s.data);
    }
    if (kind === "tar") await importTarInto(await readSource(file), url, local, pool, o, job, doing);
    else await importRawFrom(file, url, local, pool, o, job, doing);
    removePath(file);
    if (settings) {
      const to = `${pool}/${local}.nspawn`;
      if (o.force) removePath(to);
      job.onUndo(`removing ${to}`, () => removePath(to));
      renameInto(settings, to, `installing the settings file ${to}`);
      info(`Installed ${to} from ${s!.url}.`);
    }
  });
}
