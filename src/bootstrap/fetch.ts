// Downloads for a bootstrap: parallel, checked against the size and SHA-256
// the signed index promised, from http(s):// or file:// mirrors, reusing
// files already in a cache directory when their hash matches.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { decompress } from "./decompress.ts";
import { verifyClearsigned, verifyDetached, type Keyring } from "./pgp.ts";
import { checkValidUntil, parseRelease, type Release } from "./release.ts";

const ENOENT = 2;

export interface FetchItem {
  url: string;
  /** expected size and SHA-256 (hex); a download that differs is an error */
  size?: number;
  sha256?: string;
  /** where to store the file; default: cacheDir/<last URL component>, or in memory without a cacheDir */
  dest?: string;
}

export interface FetchOptions {
  /** parallel downloads (default 8) */
  concurrency?: number;
  /** where earlier downloads may be found (by file name, reused only if the SHA-256 matches) and new ones go */
  cacheDir?: string;
  onProgress?(bytesDone: number, bytesTotal: number): void;
  signal?: AbortSignal;
}

export interface Fetched {
  url: string;
  /** where the file is, unless it was kept in memory */
  path?: string;
  data?: Uint8Array;
  size: number;
  sha256: string;
  /** reused from the cache (or dest) instead of downloaded */
  cached: boolean;
}

/**
 * Fetch every item; results are in the order of `items`. The first failure
 * cancels the downloads still running and is thrown, naming the URL; no
 * partial file is left behind, since files are written to NAME.PID.tmp and
 * renamed into place only once their size and hash are right.
 */
export async function fetchAll(items: FetchItem[], opts: FetchOptions = {}): Promise<Fetched[]> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  let done = 0;
  const total = items.reduce((n, it) => n + (it.size ?? 0), 0);
  const progress = (n: number) => {
    done += n;
    opts.onProgress?.(done, total);
  };

  const results: Fetched[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fetchOne(items[i]!, opts.cacheDir, controller.signal, progress);
      } catch (e) {
        if (failure === undefined) failure = e;
        controller.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 8, items.length)) }, worker));
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  if (opts.signal?.aborted) throw new SpawnctlError(`downloading ${items.length} file(s): cancelled`, { cause: opts.signal.reason });
  if (failure !== undefined) throw failure;
  return results;
}

async function fetchOne(item: FetchItem, cacheDir: string | undefined, signal: AbortSignal, progress: (n: number) => void): Promise<Fetched> {
  try {
    const name = basename(new URL(item.url).pathname);
    const cachePath = cacheDir !== undefined && name !== "" ? join(cacheDir, name) : undefined;
    const target = item.dest ?? cachePath;
    if (item.sha256 !== undefined && target !== undefined) {
      for (const candidate of new Set([target, cachePath])) {
        const size = candidate === undefined ? undefined : await matchingSize(candidate, item);
        if (size === undefined) continue;
        if (candidate !== target) await place(target, (tmp) => copyFile(candidate!, tmp));
        progress(size);
        return { url: item.url, path: target, size, sha256: item.sha256.toLowerCase(), cached: true };
      }
    }
    if (target === undefined) {
      const chunks: Uint8Array[] = [];
      const got = await transfer(item, signal, progress, (c) => void chunks.push(c));
      return { url: item.url, data: Buffer.concat(chunks, got.size), ...got, cached: false };
    }
    let got: { size: number; sha256: string } | undefined;
    await place(target, async (tmp) => {
      const fh = await open(tmp, "w", 0o644);
      try {
        got = await transfer(item, signal, progress, (c) => fh.write(c));
      } finally {
        await fh.close();
      }
    });
    return { url: item.url, path: target, ...got!, cached: false };
  } catch (e) {
    throw describe(e, item.url);
  }
}

/** Stream the URL through the hash into `write`, then check size and hash. */
async function transfer(item: FetchItem, signal: AbortSignal, progress: (n: number) => void, write: (chunk: Uint8Array) => unknown): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of await openSource(item.url, signal)) {
    size += chunk.length;
    // Stop early rather than fill the disk from a mirror that sends too much.
    if (item.size !== undefined && size > item.size) throw new SpawnctlError(`size mismatch: expected ${item.size} bytes, got more`);
    hash.update(chunk);
    await write(chunk);
    progress(chunk.length);
  }
  const sha256 = hash.digest("hex");
  if (item.size !== undefined && size !== item.size) throw new SpawnctlError(`size mismatch: expected ${item.size} bytes, got ${size}`);
  if (item.sha256 !== undefined && sha256 !== item.sha256.toLowerCase()) throw new SpawnctlError(`SHA-256 mismatch: expected ${item.sha256.toLowerCase()}, got ${sha256}`);
  return { size, sha256 };
}

async function openSource(url: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  const scheme = url.slice(0, url.indexOf(":"));
  if (scheme === "http" || scheme === "https") {
    const res = await fetch(url, { signal });
    if (!res.ok || !res.body) {
      await res.body?.cancel(); // release the connection
      throw new SpawnctlError(`HTTP ${res.status} ${res.statusText}`.trim(), { errno: res.status === 404 || res.status === 410 ? ENOENT : undefined });
    }
    return res.body;
  }
  if (scheme === "file") return createReadStream(fileURLToPath(url), { signal });
  throw new SpawnctlError(`unsupported URL scheme ${JSON.stringify(scheme)} (use http, https or file)`);
}

/**
 * Write through `fill(tmp)` and rename into place: a reader never sees a
 * half-written file, and a failure leaves none behind. No fsync: a file
 * damaged by a crash is caught by the hash check when it is next reused.
 */
async function place(target: string, fill: (tmp: string) => Promise<unknown>): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    await fill(tmp);
    await rename(tmp, target);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** The size of the file at `path` if it is what `item` describes (size and SHA-256), else undefined. */
async function matchingSize(path: string, item: FetchItem): Promise<number | undefined> {
  try {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of createReadStream(path)) {
      size += chunk.length;
      if (item.size !== undefined && size > item.size) return undefined;
      hash.update(chunk);
    }
    return (item.size === undefined || size === item.size) && hash.digest("hex") === item.sha256!.toLowerCase() ? size : undefined;
  } catch {
    return undefined; // not there (or unreadable): download it
  }
}

function describe(e: unknown, url: string): SpawnctlError {
  if (e instanceof SpawnctlError) return new SpawnctlError(`downloading ${url}: ${e.message}`, { errno: e.errno, cause: e });
  if ((e as Error)?.name === "AbortError") return new SpawnctlError(`downloading ${url}: cancelled`, { cause: e });
  const code = (e as NodeJS.ErrnoException)?.code;
  return new SpawnctlError(`downloading ${url}: ${fsMessage(e)}`, { errno: code === "ENOENT" ? ENOENT : undefined, cause: e });
}

function notFound(e: unknown): boolean {
  return e instanceof SpawnctlError && e.errno === ENOENT;
}

// ---------------------------------------------------------------------------
// Archive indexes

function suiteUrl(mirror: string, suite: string, path: string): string {
  return `${mirror.replace(/\/+$/, "")}/dists/${suite}/${path}`;
}

/** Decompress an index; `name` ("Packages.xz") is for error messages. */
export type Decompress = (bytes: Uint8Array, name: string) => Uint8Array;

export interface IndexOptions {
  /** default: decompress.ts, which tells gzip, xz and zstd apart by their magic numbers */
  decompress?: Decompress;
  cacheDir?: string;
  signal?: AbortSignal;
}

/**
 * Fetch and decompress COMPONENT/binary-ARCH/Packages as listed in the
 * Release file: Packages.gz if listed (gzip is native in Bun, several times
 * faster than a JS xz decoder), else Packages.xz, else the plain file. With
 * Acquire-By-Hash the file is asked for by its hash first, which cannot race
 * with a mirror update; a 404 there falls back to the plain path, and a 404
 * on one compression to the next. The decompressed text is checked against
 * the uncompressed file's entry when the Release lists one.
 */
export async function fetchIndex(mirror: string, suite: string, component: string, arch: string, release: Release, opts: IndexOptions = {}): Promise<{ text: string; url: string; raw: Uint8Array; path: string }> {
  const dir = `${component}/binary-${arch}`;
  const names = ["Packages.gz", "Packages.xz", "Packages"].filter((n) => release.files.has(`${dir}/${n}`));
  if (names.length === 0) throw new SpawnctlError(`fetching the ${suite} ${component} index for ${arch}: the Release file lists no ${dir}/Packages`);
  const decode = opts.decompress ?? decompress;
  const plain = release.files.get(`${dir}/Packages`);
  let lastError: unknown;
  for (const name of names) {
    const entry = release.files.get(`${dir}/${name}`)!;
    const urls = [suiteUrl(mirror, suite, `${dir}/${name}`)];
    if (release.acquireByHash) urls.unshift(suiteUrl(mirror, suite, `${dir}/by-hash/SHA256/${entry.sha256}`));
    for (const url of urls) {
      let got: Fetched;
      try {
        [got] = (await fetchAll([{ url, size: entry.size, sha256: entry.sha256 }], { cacheDir: opts.cacheDir, signal: opts.signal })) as [Fetched];
      } catch (e) {
        if (!notFound(e)) throw e;
        lastError = e;
        continue;
      }
      const bytes = got.data ?? new Uint8Array(await readFile(got.path!));
      let data: Uint8Array;
      try {
        data = decode(bytes, name);
      } catch (e) {
        throw new SpawnctlError(`fetching ${url}: ${e instanceof Error ? e.message : e}`, { cause: e });
      }
      if (plain && name !== "Packages") {
        const sha256 = createHash("sha256").update(data).digest("hex");
        if (data.length !== plain.size || sha256 !== plain.sha256) {
          throw new SpawnctlError(`decompressing ${url}: the result (${data.length} bytes, SHA-256 ${sha256}) is not the ${dir}/Packages the Release file lists (${plain.size} bytes, ${plain.sha256})`);
        }
      }
      // raw and path (under the mirror root) let a caller bundle the file as fetched
      return { text: new TextDecoder().decode(data), url, raw: bytes, path: `dists/${suite}/${dir}/${name}` };
    }
  }
  throw lastError;
}

export interface VerifiedRelease {
  release: Release;
  signedText: string;
  /** primary fingerprints of the keys that signed it */
  goodSigners: string[];
  url: string;
}

/**
 * Fetch dists/SUITE/InRelease (or, if the mirror has none, Release and
 * Release.gpg), verify it against `keyring`, parse it and refuse it past its
 * Valid-Until unless `allowExpired`.
 */
export async function fetchRelease(mirror: string, suite: string, keyring: Keyring, opts: { now?: Date; allowExpired?: boolean; signal?: AbortSignal } = {}): Promise<VerifiedRelease> {
  const now = opts.now ?? new Date();
  const inRelease = suiteUrl(mirror, suite, "InRelease");
  let signedText: string;
  let goodSigners: string[];
  let url = inRelease;
  try {
    const [got] = await fetchAll([{ url: inRelease }], { signal: opts.signal });
    ({ signedText, goodSigners } = verifyClearsigned(new TextDecoder().decode(got!.data), keyring, { now, what: inRelease }));
  } catch (e) {
    if (!notFound(e)) throw e;
    url = suiteUrl(mirror, suite, "Release");
    const [release, signature] = await fetchAll([{ url }, { url: `${url}.gpg` }], { signal: opts.signal });
    ({ goodSigners } = verifyDetached(release!.data!, signature!.data!, keyring, { now, what: `${url}.gpg` }));
    signedText = new TextDecoder().decode(release!.data);
  }
  const release = parseRelease(signedText, url);
  checkValidUntil(release, now, opts.allowExpired ?? false);
  return { release, signedText, goodSigners, url };
}
