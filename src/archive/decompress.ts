// Decompression by content, not by file name: repo-add writes .db files that
// are really .tar.zst, mirrors serve Packages.xz, .debs carry any of
// data.tar.{xz,zst,gz}. The magic number decides; a name (the hint) only
// makes error messages say what was being read.
import * as zlib from "node:zlib";
import { SpawnctlError } from "../util/errors.ts";
import { xzDecompress, xzDecompressParallel, type XzBackend } from "./xz.ts";

export type Compression = "gzip" | "zstd" | "xz" | "bzip2" | "lzma" | "none";

export function sniffCompression(b: Uint8Array): Compression {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return "gzip";
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return "zstd";
  if (b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a && b[5] === 0x00) return "xz";
  if (b.length >= 3 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return "bzip2"; // "BZh"
  // Legacy .lzma ("LZMA alone"): properties byte 0x5d and a 4-byte dictionary size; only trusted with the name.
  if (b.length >= 13 && b[0] === 0x5d && b[1] === 0x00 && b[2] === 0x00) return "lzma";
  return "none";
}

export interface DecompressOptions {
  xzBackend?: XzBackend;
}

/** The decompressed bytes, or the input itself when it is not compressed. */
export function decompress(bytes: Uint8Array, hint = "data", opts: DecompressOptions = {}): Uint8Array {
  const kind = sniffCompression(bytes);
  if (kind === "bzip2") throw new SpawnctlError(`decompressing ${hint}: bzip2 compression is not supported (recompress with xz, zstd or gzip)`);
  if (kind === "lzma" && /\.lzma$/.test(hint)) throw new SpawnctlError(`decompressing ${hint}: legacy .lzma compression is not supported (recompress with xz, zstd or gzip)`);
  try {
    // (Bun's typings want an ArrayBuffer-backed view; shared ones work too.)
    if (kind === "gzip") return Bun.gunzipSync(bytes as Uint8Array<ArrayBuffer>);
    if (kind === "zstd") return Bun.zstdDecompressSync(bytes as Uint8Array<ArrayBuffer>);
    if (kind === "xz") return xzDecompress(bytes, { backend: opts.xzBackend });
  } catch (e) {
    throw failure(hint, kind, e, bytes);
  }
  return bytes;
}

function failure(hint: string, kind: Compression, e: unknown, bytes?: Uint8Array): SpawnctlError {
  // xz.ts errors already say "decompressing xz data: ..."; keep one prefix.
  const msg = e instanceof Error ? e.message.replace(/^decompressing xz data: /, "") : String(e);
  const why = (kind === "gzip" || kind === "zstd") && bytes ? diagnose(kind, bytes) : undefined;
  return new SpawnctlError(`decompressing ${hint} (${kind}): ${why ?? msg}`, { cause: e });
}

/** Prefixes up to this size are searched for the byte where damage shows (a few passes over the data). */
const SEARCH_LIMIT = 64 << 20;

/**
 * Why a gzip or zstd stream does not decode, in words: it ends early (the
 * file is truncated: the offset is its length), or its data is corrupt (the
 * offset is where the decoder first notices, found by decoding ever shorter
 * prefixes, for files up to 64 MiB). Bun's one-shot decoders say only
 * "Decompression failed: ZstdDecompressionError" or "Zlib returned an error";
 * node:zlib's tell the two apart. Undefined when it decodes after all.
 */
export function diagnose(kind: "gzip" | "zstd", bytes: Uint8Array): string | undefined {
  const total = bytes.length;
  // does this prefix hold no damage? (a prefix is a truncated stream, and that is fine here)
  const clean = (n: number): boolean => {
    try {
      if (kind === "gzip") zlib.gunzipSync(bytes.subarray(0, n), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      else zlib.zstdDecompressSync(bytes.subarray(0, n));
      return true;
    } catch {
      return false;
    }
  };
  let reason: string;
  try {
    if (kind === "gzip") zlib.gunzipSync(bytes);
    else {
      // node's zstd decoder returns what it has for a stream that stops short; Bun's refuses it
      zlib.zstdDecompressSync(bytes);
      return `the zstd stream ends early at byte ${total} (the file is truncated or incomplete)`;
    }
    return undefined;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === "Z_BUF_ERROR" || /unexpected end/i.test(err.message ?? "")) return `the gzip stream ends early at byte ${total} (the file is truncated or incomplete)`;
    reason = (err.message ?? String(e)).replace(/\.$/, "");
  }
  let where = "";
  if (total <= SEARCH_LIMIT && !clean(total)) {
    // the shortest prefix that fails: the damage is at or before its last byte
    let lo = 0, hi = total;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (clean(mid)) lo = mid;
      else hi = mid;
    }
    where = ` (noticed at byte ${hi - 1} of ${total})`;
  }
  return `corrupt ${kind} data${where}: ${reason}`;
}

/** Like decompress(), with multi-block xz spread over Workers. */
export async function decompressAsync(bytes: Uint8Array, hint = "data", opts: DecompressOptions & { workers?: number } = {}): Promise<Uint8Array> {
  if (sniffCompression(bytes) !== "xz") return decompress(bytes, hint, opts);
  try {
    return await xzDecompressParallel(bytes, { workers: opts.workers, backend: opts.xzBackend });
  } catch (e) {
    throw failure(hint, "xz", e);
  }
}
