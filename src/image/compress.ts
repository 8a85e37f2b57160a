// Compressed output for export-tar and export-raw, and streamed
// decompression for raw images. gzip and zstd are Bun's own (node:zlib
// streams); xz compression shells out to the host's xz when there is one
// (there is no xz encoder in the binary), while xz *decompression* never
// needs it: without xz on the host the in-process decoder of
// archive/xz.ts does the job, in memory.
import { once } from "node:events";
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, readSync, writeSync } from "node:fs";
import { finished } from "node:stream/promises";
import * as zlib from "node:zlib";
import { decompressAsync, sniffCompression } from "../archive/decompress.ts";
import { SpawnctlError } from "../util/errors.ts";
import type { Format } from "./names.ts";

export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
  /** flush and wait until everything reached the file */
  end(): Promise<void>;
  /** stop at once (the caller removes the file) */
  abort(): void;
}

function xzMissing(doing: string): SpawnctlError {
  return new SpawnctlError(`${doing}: xz compression needs the xz program, which is not installed on this host (apt-get install xz-utils); --format=zstd or --format=gzip work without it.`);
}

export function checkFormatAvailable(format: Format, doing: string): void {
  if (format === "bzip2") throw new SpawnctlError(`${doing}: bzip2 compression is not supported; use --format=xz, zstd or gzip.`);
  if (format === "xz" && !Bun.which("xz")) throw xzMissing(doing);
}

/** A sink writing `format` to the file descriptor `fd` (which stays open). */
export function openSink(format: Format, fd: number, doing: string): ByteSink {
  checkFormatAvailable(format, doing);
  if (format === "uncompressed") {
    return {
      async write(chunk) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      },
      async end() {},
      abort() {},
    };
  }
  if (format === "xz") {
    const proc = Bun.spawn(["xz", "--compress", "--stdout", "--threads=0", "--quiet"], { stdin: "pipe", stdout: fd, stderr: "pipe" });
    let buffered = 0;
    const failed = async () => {
      const code = await proc.exited;
      const err = (await new Response(proc.stderr).text()).trim();
      return new SpawnctlError(`${doing}: xz exited with status ${code}${err ? `: ${err}` : ""}`);
    };
    return {
      async write(chunk) {
        if (proc.exitCode !== null) throw await failed();
        proc.stdin.write(chunk);
        buffered += chunk.length;
        if (buffered >= 4 << 20) {
          buffered = 0;
          await proc.stdin.flush();
        }
      },
      async end() {
        await proc.stdin.end();
        if ((await proc.exited) !== 0) throw await failed();
      },
      abort() {
        proc.kill(9);
      },
    };
  }
  const z = format === "gzip" ? zlib.createGzip({ level: 6 }) : zlib.createZstdCompress();
  const out = createWriteStream("", { fd, autoClose: false });
  z.pipe(out);
  let error: Error | undefined;
  // one promise for the first error of either stream, raced against every wait for "drain"
  const failed = new Promise<never>((_, reject) => {
    const onError = (e: Error) => {
      error ??= e;
      reject(new SpawnctlError(`${doing}: ${e.message}`, { cause: e }));
    };
    z.on("error", onError);
    out.on("error", onError);
  });
  failed.catch(() => {}); // reported by write() or end()
  const check = () => {
    if (error) throw new SpawnctlError(`${doing}: ${error.message}`, { cause: error });
  };
  return {
    async write(chunk) {
      check();
      if (!z.write(chunk)) await Promise.race([once(z, "drain"), failed]);
    },
    async end() {
      check();
      z.end();
      await Promise.race([finished(out), failed]);
    },
    abort() {
      z.destroy();
      out.destroy();
    },
  };
}

/** The first bytes of a file (for sniffing its compression). */
export function fileHead(path: string, n = 16): Uint8Array {
  const b = new Uint8Array(n);
  const h = openSync(path, "r");
  try {
    return b.subarray(0, readSync(h, b, 0, n, 0));
  } finally {
    closeSync(h);
  }
}

/**
 * The decompressed contents of `path` as a stream of chunks, whatever the
 * compression (told by content: gzip, zstd, xz or none). gzip and zstd
 * stream; xz streams through the host's xz when present, and is decoded in
 * memory otherwise.
 */
export async function* decompressedChunks(path: string, what: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const kind = sniffCompression(fileHead(path));
  if (kind === "bzip2") throw new SpawnctlError(`decompressing ${what}: bzip2 compression is not supported (recompress with xz, zstd or gzip).`);
  if (kind === "none" || kind === "lzma") {
    yield* createReadStream(path, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Uint8Array>;
    return;
  }
  if (kind === "gzip" || kind === "zstd") {
    const d = kind === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress();
    const src = createReadStream(path, { highWaterMark: 1 << 20, signal });
    src.on("error", (e) => d.destroy(e));
    src.pipe(d);
    try {
      for await (const c of d as AsyncIterable<Uint8Array>) yield c;
    } catch (e) {
      const err = e as { code?: string; message?: string };
      const why = err.code === "Z_BUF_ERROR" || /unexpected end/i.test(err.message ?? "")
        ? `the ${kind} stream ends early (the file is truncated or incomplete)`
        : `corrupt ${kind} data after ${d.bytesWritten} compressed bytes: ${err.message}`;
      throw new SpawnctlError(`decompressing ${what} (${kind}): ${why}`, { cause: e });
    }
    return;
  }
  // xz
  if (Bun.which("xz")) {
    const proc = Bun.spawn(["xz", "--decompress", "--stdout", "--quiet", "--", path], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const kill = () => proc.kill(9);
    signal?.addEventListener("abort", kill, { once: true });
    try {
      for await (const c of proc.stdout as unknown as AsyncIterable<Uint8Array>) yield c;
      const code = await proc.exited;
      if (code !== 0) throw new SpawnctlError(`decompressing ${what} (xz): xz exited with status ${code}: ${(await new Response(proc.stderr).text()).trim()}`);
    } finally {
      signal?.removeEventListener("abort", kill);
      if (proc.exitCode === null) proc.kill(9);
    }
    return;
  }
  const out = await decompressAsync(readFileSync(path), what);
  for (let off = 0; off < out.length; off += 1 << 20) yield out.subarray(off, Math.min(out.length, off + (1 << 20)));
}
