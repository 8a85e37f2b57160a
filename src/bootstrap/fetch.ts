// The archive's indices for a bootstrap: Release (signed) and Packages,
// fetched through the checked downloads of archive/download.ts.
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { SpawnctlError } from "../util/errors.ts";
import { fetchAll, notFound, type Fetched } from "../archive/download.ts";
import { decompress } from "../archive/decompress.ts";
import { verifyClearsigned, verifyDetached, type Keyring } from "../archive/pgp.ts";
import { checkValidUntil, parseRelease, type Release } from "./release.ts";

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

/**
 * The suites a mirror has, for the error about one it does not: the
 * directories of its dists/, read from a file:// mirror or from an HTTP
 * server's directory listing (most mirrors serve one). Undefined when that is
 * not to be had within a few seconds: the error is then given without them.
 */
export async function mirrorSuites(mirror: string, timeoutMs = 5000): Promise<string[] | undefined> {
  const url = `${mirror.replace(/\/+$/, "")}/dists/`;
  const plain = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/;
  let names: string[];
  try {
    if (url.startsWith("file:")) {
      names = (await readdir(fileURLToPath(url), { withFileTypes: true })).filter((d) => d.isDirectory() || d.isSymbolicLink()).map((d) => d.name);
    } else if (/^https?:/.test(url)) {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok || !/html/i.test(res.headers.get("content-type") ?? "")) {
        await res.body?.cancel();
        return undefined;
      }
      const html = (await res.text()).slice(0, 1 << 20);
      names = [...html.matchAll(/href="(?:\.\/)?([^"/?#]+)\/"/g)].map((m) => decodeURIComponent(m[1]!));
    } else return undefined;
  } catch {
    return undefined;
  }
  const suites = [...new Set(names.filter((n) => plain.test(n)))].sort();
  return suites.length > 0 ? suites.slice(0, 40) : undefined;
}
