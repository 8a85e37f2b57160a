// Downloads: parallel, checked against the size and SHA-256 a signed index
// promised, from http(s):// or file:// URLs, reusing files already in a
// cache directory when their hash matches. Used by the bootstrappers and by
// the image transfers.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { httpReason, networkReason } from "../util/neterr.ts";

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
  /** bytes so far, and in all: the promised sizes, plus what the server announced for items without one (0: unknown) */
  onProgress?(bytesDone: number, bytesTotal: number): void;
  /** an item is complete (downloaded or found in the cache): how many are, of how many */
  onItem?(itemsDone: number, items: number): void;
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
  let total = items.reduce((n, it) => n + (it.size ?? 0), 0);
  const progress = (n: number, announced?: number) => {
    if (announced !== undefined) total += announced;
    done += n;
    opts.onProgress?.(done, total);
  };
  let itemsDone = 0;

  const results: Fetched[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fetchOne(items[i]!, opts.cacheDir, controller.signal, progress);
        opts.onItem?.(++itemsDone, items.length);
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

type Progress = (bytes: number, announcedTotal?: number) => void;

async function fetchOne(item: FetchItem, cacheDir: string | undefined, signal: AbortSignal, progress: Progress): Promise<Fetched> {
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
async function transfer(item: FetchItem, signal: AbortSignal, progress: Progress, write: (chunk: Uint8Array) => unknown): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  const source = await openSource(item.url, signal);
  if (item.size === undefined && source.length !== undefined) progress(0, source.length);
  for await (const chunk of source.body) {
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

/** The body, and its length when the server announced one (file:// sizes are not looked up: those are local and fast). */
async function openSource(url: string, signal: AbortSignal): Promise<{ body: AsyncIterable<Uint8Array>; length?: number }> {
  const scheme = url.slice(0, url.indexOf(":"));
  if (scheme === "http" || scheme === "https") {
    const res = await fetch(url, { signal });
    if (!res.ok || !res.body) {
      await res.body?.cancel(); // release the connection
      throw new SpawnctlError(httpReason(res.status, res.statusText), { errno: res.status === 404 || res.status === 410 ? ENOENT : undefined });
    }
    const length = Number(res.headers.get("content-length") ?? "");
    return { body: res.body, length: Number.isSafeInteger(length) && length > 0 ? length : undefined };
  }
  if (scheme === "file") return { body: createReadStream(fileURLToPath(url), { signal }) };
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
  const net = networkReason(e, url);
  if (net !== undefined) return new SpawnctlError(`downloading ${url}: ${net}`, { cause: e });
  const code = (e as NodeJS.ErrnoException)?.code;
  return new SpawnctlError(`downloading ${url}: ${fsMessage(e)}`, { errno: code === "ENOENT" ? ENOENT : undefined, cause: e });
}

export function notFound(e: unknown): boolean {
  return e instanceof SpawnctlError && e.errno === ENOENT;
}

