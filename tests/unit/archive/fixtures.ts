// Builders for archive test fixtures: ar archives, .debs, raw tar headers
// (for the malformed cases TarWriter would never produce) and host tools.
import { TarWriter, type TarWriteEntry } from "../../../src/archive/tar.ts";
import { concat } from "../../../src/util/bytes.ts";

export { concat };

const enc = new TextEncoder();

/** An ar archive with 60-byte headers; `rawName` is written as given (GNU "/", "//", "/N", BSD "#1/N"). */
export function makeAr(members: Array<{ rawName: string; data: Uint8Array }>, opts: { sizeOverride?: number; badTerminator?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [enc.encode("!<arch>\n")];
  for (const m of members) {
    const size = opts.sizeOverride ?? m.data.length;
    const h = `${m.rawName.padEnd(16)}${"0".padEnd(12)}${"0".padEnd(6)}${"0".padEnd(6)}${"100644".padEnd(8)}${String(size).padEnd(10)}${opts.badTerminator ? "xx" : "`\n"}`;
    parts.push(enc.encode(h), m.data);
    if (m.data.length & 1) parts.push(enc.encode("\n"));
  }
  return concat(parts);
}

export function tarOf(entries: TarWriteEntry[]): Uint8Array {
  const w = new TarWriter();
  for (const e of entries) w.add(e);
  return w.finish();
}

export function text(s: string): Uint8Array<ArrayBuffer> {
  return enc.encode(s);
}

/** Bun's compressors, typed for any Uint8Array. */
export const gzip = (b: Uint8Array): Uint8Array => Bun.gzipSync(b as Uint8Array<ArrayBuffer>);
export const zstd = (b: Uint8Array): Uint8Array => Bun.zstdCompressSync(b as Uint8Array<ArrayBuffer>);

/** Recompute a raw tar header's checksum after a test patched it. */
export function fixChecksum(tar: Uint8Array, headerOffset: number): void {
  const h = tar.subarray(headerOffset, headerOffset + 512);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
}

/** Write an octal field into a raw header. */
export function putOctal(tar: Uint8Array, off: number, len: number, v: number): void {
  tar.set(enc.encode(`${v.toString(8).padStart(len - 1, "0")}\0`), off);
}

export function hasTool(name: string): boolean {
  return Bun.which(name) !== null;
}

/** Run a host tool; throws with its stderr on failure. */
export function tool(cmd: string[], input?: Uint8Array, opts: { cwd?: string; env?: Record<string, string> } = {}): Uint8Array {
  const p = Bun.spawnSync(cmd, { stdin: input ?? "ignore", stdout: "pipe", stderr: "pipe", cwd: opts.cwd, env: opts.env ? { ...process.env, ...opts.env } : undefined });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: exit ${p.exitCode}: ${p.stderr.toString()}`);
  return new Uint8Array(p.stdout);
}

/** A .deb from parts: control.tar and data.tar, compressed by the given commands (or stored plain). */
export function makeDeb(control: Uint8Array, data: Uint8Array, opts: { controlComp?: "gz" | "xz" | "zst" | ""; dataComp?: "gz" | "xz" | "zst" | ""; extra?: Array<{ rawName: string; data: Uint8Array }> } = {}): Uint8Array {
  const comp = (b: Uint8Array, kind: string | undefined): Uint8Array => {
    if (!kind) return b;
    if (kind === "gz") return gzip(b);
    if (kind === "zst") return zstd(b);
    return tool(["xz", "-c", "-T1"], b);
  };
  const cc = opts.controlComp ?? "gz";
  const dc = opts.dataComp ?? "xz";
  return makeAr([
    { rawName: "debian-binary", data: enc.encode("2.0\n") },
    ...(opts.extra ?? []),
    { rawName: `control.tar${cc ? `.${cc}` : ""}`, data: comp(control, cc) },
    { rawName: `data.tar${dc ? `.${dc}` : ""}`, data: comp(data, dc) },
  ]);
}

/** Deterministic pseudo-random bytes (xorshift), for incompressible fixtures. */
export function noise(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
