// A pure-TypeScript .xz decoder, with liblzma as an optional accelerator.
//
// Format (xz-file-format 1.1): one or more streams, each
//   header (12: magic FD 37 7A 58 5A 00, 2 flag bytes, CRC32 of the flags)
//   blocks  (header with filter chain, compressed data, padding to 4, check)
//   index   (0x00, record count, {unpadded size, uncompressed size}..., CRC32)
//   footer  (12: CRC32, backward size, the same flag bytes, "YZ")
// optionally separated by stream padding (NUL bytes in multiples of four).
//
// We read the container from the end, as liblzma's file-info decoder does:
// footer -> index -> every block's offset and exact uncompressed size. That
// gives one output allocation of the right size and independent blocks that
// Workers can decode in parallel (see xz-worker.ts and xzDecompressParallel).
//
// The LZMA decoder writes straight into the block's slice of the output and
// uses it as the dictionary: there is no ring buffer and no copying, which is
// what makes a JS implementation reasonably fast. The hot loop keeps the
// range coder in local int32 variables (JSC keeps those unboxed); the bit
// decoding is written out at each site because a helper function could not
// update the caller's range/code locals.
import { dlopen, ptr } from "bun:ffi";
import { createHash } from "node:crypto";
import { SpawnctlError } from "../util/errors.ts";

// ---------------------------------------------------------------------------
// Checks

const CHECK_NONE = 0;
const CHECK_CRC32 = 1;
const CHECK_CRC64 = 4;
const CHECK_SHA256 = 10;
/** Size of the check field for each of the 16 check ids (the spec reserves sizes for unknown ids). */
const CHECK_SIZE = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
const CHECK_NAME: Record<number, string> = { 0: "none", 1: "CRC32", 4: "CRC64", 10: "SHA-256" };

export function crc32(data: Uint8Array): number {
  return Bun.hash.crc32(data) >>> 0;
}

// CRC64 (ECMA-182, reflected) has no native helper; slicing-by-4 tables in
// two 32-bit halves keep everything in int32 arithmetic.
let crc64Tables: { lo: Int32Array; hi: Int32Array } | undefined;
function crc64TablesInit(): { lo: Int32Array; hi: Int32Array } {
  if (crc64Tables) return crc64Tables;
  const lo = new Int32Array(4 * 256);
  const hi = new Int32Array(4 * 256);
  const POLY_LO = 0xd7870f42 | 0;
  const POLY_HI = 0xc96c5795 | 0;
  for (let n = 0; n < 256; n++) {
    let l = n;
    let h = 0;
    for (let k = 0; k < 8; k++) {
      const bit = l & 1;
      l = (l >>> 1) | (h << 31);
      h = h >>> 1;
      if (bit) {
        l ^= POLY_LO;
        h ^= POLY_HI;
      }
    }
    lo[n] = l;
    hi[n] = h;
  }
  for (let t = 1; t < 4; t++) {
    for (let n = 0; n < 256; n++) {
      const pl = lo[(t - 1) * 256 + n]!;
      const ph = hi[(t - 1) * 256 + n]!;
      const i = pl & 0xff;
      lo[t * 256 + n] = ((pl >>> 8) | (ph << 24)) ^ lo[i]!;
      hi[t * 256 + n] = (ph >>> 8) ^ hi[i]!;
    }
  }
  crc64Tables = { lo, hi };
  return crc64Tables;
}

/** CRC64 (ECMA-182, as xz uses it). */
export function crc64(data: Uint8Array): bigint {
  const { lo: TL, hi: TH } = crc64TablesInit();
  let l = -1;
  let h = -1;
  let i = 0;
  const n = data.length;
  const end4 = n - (n & 3);
  for (; i < end4; i += 4) {
    const a = l ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    // Four table lookups consume the low word; the high word shifts down.
    const nl = TL[768 + (a & 0xff)]! ^ TL[512 + ((a >>> 8) & 0xff)]! ^ TL[256 + ((a >>> 16) & 0xff)]! ^ TL[a >>> 24]! ^ h;
    const nh = TH[768 + (a & 0xff)]! ^ TH[512 + ((a >>> 8) & 0xff)]! ^ TH[256 + ((a >>> 16) & 0xff)]! ^ TH[a >>> 24]!;
    l = nl;
    h = nh;
  }
  for (; i < n; i++) {
    const x = (l ^ data[i]!) & 0xff;
    l = ((l >>> 8) | (h << 24)) ^ TL[x]!;
    h = (h >>> 8) ^ TH[x]!;
  }
  return (BigInt(~h >>> 0) << 32n) | BigInt(~l >>> 0);
}

function verifyCheck(type: number, data: Uint8Array, stored: Uint8Array, what: string): void {
  let ok = true;
  if (type === CHECK_CRC32) ok = crc32(data) === readU32(stored, 0);
  else if (type === CHECK_CRC64) ok = crc64(data) === ((BigInt(readU32(stored, 4)) << 32n) | BigInt(readU32(stored, 0)));
  else if (type === CHECK_SHA256) ok = Buffer.from(createHash("sha256").update(data).digest()).equals(Buffer.from(stored.buffer, stored.byteOffset, stored.length));
  // Unknown check ids are skipped, as `xz` does by default (with a warning there).
  if (!ok) throw xzError(`${what}: the ${CHECK_NAME[type]} check does not match the decompressed data`);
}

// ---------------------------------------------------------------------------
// Container

export interface XzBlock {
  /** offset of the block header in the input */
  offset: number;
  /** block header + compressed data + check, without the padding (as the index records it) */
  unpaddedSize: number;
  uncompressedSize: number;
  /** where the block's output starts in the concatenated output */
  outOffset: number;
  checkType: number;
  /** index of the block in the file, for messages */
  number: number;
}

export interface XzLayout {
  blocks: XzBlock[];
  uncompressedSize: number;
}

const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

function xzError(message: string): SpawnctlError {
  return new SpawnctlError(`decompressing xz data: ${message}`);
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** xz's variable-length integer (7 bits per byte, little-endian, at most 9 bytes). */
function readVli(b: Uint8Array, pos: number, end: number, what: string): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 9; i++) {
    if (pos >= end) throw xzError(`${what} is truncated`);
    const byte = b[pos++]!;
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) {
      // The encoding must be minimal: a trailing 0x00 byte is invalid.
      if (byte === 0 && i > 0) throw xzError(`${what} is not minimally encoded`);
      if (v > Number.MAX_SAFE_INTEGER) throw xzError(`${what} is too large`);
      return [v, pos];
    }
    mul *= 128;
  }
  throw xzError(`${what} is longer than 9 bytes`);
}

export function isXz(b: Uint8Array): boolean {
  return b.length >= 6 && HEADER_MAGIC.every((m, i) => b[i] === m);
}

/**
 * Every block of every stream, located from the stream footers and indexes.
 * Validates stream headers/footers and index CRCs; block contents are checked
 * when decoded.
 */
export function xzLayout(input: Uint8Array): XzLayout {
  const streams: XzBlock[][] = [];
  let end = input.length;
  // Streams are found back to front; block numbers and output offsets are
  // assigned front to back afterwards.
  while (end > 0) {
    // Stream padding: NUL bytes in multiples of four.
    let pad = 0;
    while (end > 0 && input[end - 1] === 0) {
      end--;
      pad++;
    }
    if (end === 0 && streams.length > 0) throw xzError("the file starts with stream padding");
    if (pad % 4 !== 0) throw xzError("stream padding is not a multiple of four bytes");
    if (end === 0) throw xzError("no xz stream found");
    if (end < 24) throw xzError("the data is too short to be an xz stream (truncated?)");
    const f = end - 12;
    if (input[f + 10] !== 0x59 || input[f + 11] !== 0x5a) {
      throw xzError(isXz(input) ? "the stream footer is missing (truncated file?)" : "not an xz file (bad magic)");
    }
    if (crc32(input.subarray(f + 4, f + 10)) !== readU32(input, f)) throw xzError("the stream footer CRC32 does not match");
    if (input[f + 8] !== 0 || (input[f + 9]! & 0xf0) !== 0) throw xzError("the stream footer has unsupported flags");
    const checkType = input[f + 9]!;
    const indexSize = (readU32(input, f + 4) + 1) * 4;
    const indexStart = f - indexSize;
    if (indexStart < 12) throw xzError("the index size in the stream footer points outside the file");
    const records = parseIndex(input, indexStart, f, checkType);
    let blocksSize = 0;
    // Unpadded size = header + data + check; the padding before the check makes it a multiple of four.
    for (const r of records) blocksSize += (r.unpadded + 3) & ~3;
    const streamStart = indexStart - blocksSize - 12;
    if (streamStart < 0) throw xzError("the index describes more data than the file holds");
    const h = streamStart;
    for (let i = 0; i < 6; i++) if (input[h + i] !== HEADER_MAGIC[i]) throw xzError("stream header not found where the index says a stream starts (corrupt or truncated file)");
    if (crc32(input.subarray(h + 6, h + 8)) !== readU32(input, h + 8)) throw xzError("the stream header CRC32 does not match");
    if (input[h + 6] !== input[f + 8] || input[h + 7] !== input[f + 9]) throw xzError("the stream header and footer flags differ");
    const blocks: XzBlock[] = [];
    let off = h + 12;
    for (const r of records) {
      blocks.push({ offset: off, unpaddedSize: r.unpadded, uncompressedSize: r.uncompressed, outOffset: 0, checkType, number: 0 });
      off += (r.unpadded + 3) & ~3;
    }
    streams.unshift(blocks);
    end = streamStart;
  }
  const blocks = streams.flat();
  let out = 0;
  blocks.forEach((b, i) => {
    b.number = i;
    b.outOffset = out;
    out += b.uncompressedSize;
  });
  if (out > 0x7fffffff) throw xzError(`the decompressed size (${out} bytes) is too large to hold in memory`);
  return { blocks, uncompressedSize: out };
}

function parseIndex(b: Uint8Array, start: number, end: number, checkType: number): Array<{ unpadded: number; uncompressed: number }> {
  if (b[start] !== 0) throw xzError("the index indicator byte is missing");
  let [count, pos] = readVli(b, start + 1, end - 4, "the index record count");
  const records: Array<{ unpadded: number; uncompressed: number }> = [];
  if (count > (end - start) / 2) throw xzError("the index record count is larger than the index");
  for (let i = 0; i < count; i++) {
    let unpadded: number;
    let uncompressed: number;
    [unpadded, pos] = readVli(b, pos, end - 4, "an index record");
    [uncompressed, pos] = readVli(b, pos, end - 4, "an index record");
    if (unpadded < 5 + 1 + CHECK_SIZE[checkType]!) throw xzError("an index record has an impossible block size");
    records.push({ unpadded, uncompressed });
  }
  while (pos & 3) if (b[pos++] !== 0) throw xzError("the index padding is not zero");
  if (pos !== end - 4) throw xzError("the index size does not match the stream footer");
  if (crc32(b.subarray(start, end - 4)) !== readU32(b, end - 4)) throw xzError("the index CRC32 does not match");
  return records;
}

// ---------------------------------------------------------------------------
// Block header and filters

const FILTER_DELTA = 0x03;
const FILTER_X86 = 0x04;
const FILTER_LZMA2 = 0x21;
const FILTER_NAMES: Record<number, string> = { 0x04: "x86 BCJ", 0x05: "PowerPC BCJ", 0x06: "IA-64 BCJ", 0x07: "ARM BCJ", 0x08: "ARM-Thumb BCJ", 0x09: "SPARC BCJ", 0x0a: "ARM64 BCJ", 0x0b: "RISC-V BCJ", 0x03: "delta", 0x21: "LZMA2" };

interface Filter {
  id: number;
  props: Uint8Array;
}

interface BlockHeader {
  filters: Filter[];
  headerSize: number;
  compressedSize?: number;
  uncompressedSize?: number;
}

function parseBlockHeader(b: Uint8Array, off: number, what: string): BlockHeader {
  const sizeByte = b[off];
  if (sizeByte === undefined) throw xzError(`${what}: the block header is truncated`);
  if (sizeByte === 0) throw xzError(`${what}: an index was found where a block header was expected`);
  const headerSize = (sizeByte + 1) * 4;
  const end = off + headerSize;
  if (end > b.length) throw xzError(`${what}: the block header is truncated`);
  if (crc32(b.subarray(off, end - 4)) !== readU32(b, end - 4)) throw xzError(`${what}: the block header CRC32 does not match`);
  const flags = b[off + 1]!;
  if (flags & 0x3c) throw xzError(`${what}: the block header has unsupported flags`);
  let pos = off + 2;
  const h: BlockHeader = { filters: [], headerSize };
  if (flags & 0x40) [h.compressedSize, pos] = readVli(b, pos, end - 4, `${what}: the compressed size`);
  if (flags & 0x80) [h.uncompressedSize, pos] = readVli(b, pos, end - 4, `${what}: the uncompressed size`);
  const n = (flags & 3) + 1;
  for (let i = 0; i < n; i++) {
    let id: number;
    let propSize: number;
    [id, pos] = readVli(b, pos, end - 4, `${what}: a filter id`);
    [propSize, pos] = readVli(b, pos, end - 4, `${what}: filter properties`);
    if (pos + propSize > end - 4) throw xzError(`${what}: the filter properties run past the block header`);
    h.filters.push({ id, props: b.subarray(pos, pos + propSize) });
    pos += propSize;
  }
  while (pos < end - 4) if (b[pos++] !== 0) throw xzError(`${what}: the block header padding is not zero`);
  const last = h.filters[h.filters.length - 1]!;
  if (last.id !== FILTER_LZMA2) throw xzError(`${what}: the last filter is ${FILTER_NAMES[last.id] ?? `0x${last.id.toString(16)}`}, only LZMA2 is supported there`);
  for (const f of h.filters.slice(0, -1)) {
    if (f.id !== FILTER_X86 && f.id !== FILTER_DELTA) {
      throw xzError(`${what}: the ${FILTER_NAMES[f.id] ?? `0x${f.id.toString(16)}`} filter is not supported (only x86 BCJ and delta before LZMA2)`);
    }
  }
  if (last.props.length !== 1 || last.props[0]! > 40) throw xzError(`${what}: invalid LZMA2 properties`);
  return h;
}

/**
 * Decode one block into `out`, which must be exactly `block.uncompressedSize`
 * long (a slice of the whole output, or a Worker's shared buffer).
 */
export function xzDecodeBlock(input: Uint8Array, block: XzBlock, out: Uint8Array): void {
  const what = `block ${block.number}`;
  if (out.length !== block.uncompressedSize) throw xzError(`${what}: output buffer has the wrong size`);
  const h = parseBlockHeader(input, block.offset, what);
  const dataStart = block.offset + h.headerSize;
  const checkSize = CHECK_SIZE[block.checkType]!;
  const dataEnd = block.offset + block.unpaddedSize - checkSize;
  if (dataEnd <= dataStart || dataEnd > input.length) throw xzError(`${what}: the index gives an impossible block size`);
  if (h.compressedSize !== undefined && h.compressedSize !== dataEnd - dataStart) throw xzError(`${what}: the compressed size in the block header differs from the index`);
  if (h.uncompressedSize !== undefined && h.uncompressedSize !== block.uncompressedSize) throw xzError(`${what}: the uncompressed size in the block header differs from the index`);
  const used = decodeLzma2(input, dataStart, dataEnd, out, what);
  if (used !== dataEnd) throw xzError(`${what}: the LZMA2 data ends before the block does`);
  // Non-last filters are applied in reverse order of the chain.
  for (let i = h.filters.length - 2; i >= 0; i--) {
    const f = h.filters[i]!;
    if (f.id === FILTER_X86) {
      if (f.props.length !== 0 && f.props.length !== 4) throw xzError(`${what}: invalid x86 BCJ properties`);
      x86Decode(out, f.props.length === 4 ? readU32(f.props, 0) : 0);
    } else {
      if (f.props.length !== 1) throw xzError(`${what}: invalid delta properties`);
      deltaDecode(out, f.props[0]! + 1);
    }
  }
  const checkAt = block.offset + ((block.unpaddedSize + 3) & ~3) - checkSize;
  for (let p = dataEnd; p < checkAt; p++) if (input[p] !== 0) throw xzError(`${what}: the block padding is not zero`);
  if (checkAt + checkSize > input.length) throw xzError(`${what}: the check field is truncated`);
  if (block.checkType !== CHECK_NONE) verifyCheck(block.checkType, out, input.subarray(checkAt, checkAt + checkSize), what);
}

// ---------------------------------------------------------------------------
// LZMA2 and LZMA

// Probability array layout (one Uint16Array per decoder; every entry starts at 1024 = 0.5).
const IS_MATCH = 0; // [state << 4 | posState]  (12 * 16)
const IS_REP = 192; // [state]
const IS_REP_G0 = 204;
const IS_REP_G1 = 216;
const IS_REP_G2 = 228;
const IS_REP0_LONG = 240; // [state << 4 | posState]
const POS_SLOT = 432; // [lenState * 64 + tree index], 4 * 64
const SPEC_POS = 688; // 115 reverse bit trees for distance slots 4..13
const ALIGN = 803; // 16
const LEN = 819; // choice, choice2, low[16][8], mid[16][8], high[256] = 514
const REP_LEN = 1333; // same layout
const LITERAL = 1847; // 0x300 per literal context

const LEN_CHOICE2 = 1;
const LEN_LOW = 2;
const LEN_MID = 130;
const LEN_HIGH = 258;

interface LzmaState {
  probs: Uint16Array;
  lc: number;
  lp: number;
  pb: number;
  state: number;
  rep0: number;
  rep1: number;
  rep2: number;
  rep3: number;
}

function newLzmaState(): LzmaState {
  return { probs: new Uint16Array(LITERAL + (0x300 << 4)), lc: 0, lp: 0, pb: 0, state: 0, rep0: 0, rep1: 0, rep2: 0, rep3: 0 };
}

function resetLzmaState(s: LzmaState): void {
  s.probs.fill(1024, 0, LITERAL + (0x300 << (s.lc + s.lp)));
  s.state = 0;
  s.rep0 = s.rep1 = s.rep2 = s.rep3 = 0;
}

/** Decode an LZMA2 chunk sequence; returns the input position after the end marker. */
function decodeLzma2(inp: Uint8Array, pos: number, end: number, out: Uint8Array, what: string): number {
  const s = newLzmaState();
  let outPos = 0;
  let dictStart = 0;
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    if (pos >= end) throw xzError(`${what}: the LZMA2 data is truncated`);
    const control = inp[pos++]!;
    if (control === 0x00) return pos;
    if (control >= 0xe0 || control === 0x01) {
      // A dictionary reset also requires new properties before the next
      // LZMA chunk (as liblzma insists), whatever kind of chunk made it.
      needDictReset = false;
      needProps = true;
      dictStart = outPos;
    } else if (needDictReset) {
      throw xzError(`${what}: the first LZMA2 chunk does not reset the dictionary`);
    }
    if (control < 0x80) {
      // 0x01 / 0x02: an uncompressed chunk, 16-bit size - 1 (big-endian).
      if (control > 0x02) throw xzError(`${what}: invalid LZMA2 control byte 0x${control.toString(16)}`);
      if (pos + 2 > end) throw xzError(`${what}: the LZMA2 data is truncated`);
      const size = ((inp[pos]! << 8) | inp[pos + 1]!) + 1;
      pos += 2;
      if (pos + size > end) throw xzError(`${what}: an uncompressed LZMA2 chunk is truncated`);
      if (outPos + size > out.length) throw xzError(`${what}: the data decompresses to more than the index says`);
      out.set(inp.subarray(pos, pos + size), outPos);
      pos += size;
      outPos += size;
      continue;
    }
    // 0x80-0xFF: an LZMA chunk. Bits 5-6 say what to reset, bits 0-4 are the
    // top of the 21-bit uncompressed size - 1; then 16-bit compressed size - 1.
    if (pos + 4 > end) throw xzError(`${what}: the LZMA2 data is truncated`);
    const unpacked = ((control & 0x1f) << 16) + (inp[pos]! << 8) + inp[pos + 1]! + 1;
    const packed = ((inp[pos + 2]! << 8) | inp[pos + 3]!) + 1;
    pos += 4;
    const reset = (control >>> 5) & 3;
    if (reset >= 2) {
      if (pos >= end) throw xzError(`${what}: the LZMA2 data is truncated`);
      let d = inp[pos++]!;
      if (d >= 9 * 5 * 5) throw xzError(`${what}: invalid LZMA properties`);
      s.lc = d % 9;
      d = (d / 9) | 0;
      s.lp = d % 5;
      s.pb = (d / 5) | 0;
      if (s.lc + s.lp > 4) throw xzError(`${what}: LZMA2 allows lc + lp <= 4`);
      needProps = false;
    } else if (needProps) {
      throw xzError(`${what}: an LZMA2 chunk has no properties`);
    }
    if (reset >= 1) resetLzmaState(s);
    if (pos + packed > end) throw xzError(`${what}: an LZMA2 chunk is truncated`);
    if (outPos + unpacked > out.length) throw xzError(`${what}: the data decompresses to more than the index says`);
    const used = lzmaChunk(s, inp, pos, pos + packed, out, outPos, outPos + unpacked, dictStart);
    if (used < 0) throw xzError(`${what}: corrupt LZMA data (${LZMA_ERRORS[-used - 1]})`);
    if (used !== pos + packed) throw xzError(`${what}: an LZMA chunk's compressed size does not match its data`);
    pos += packed;
    outPos += unpacked;
    if (outPos === out.length && pos < end && inp[pos] !== 0x00) {
      // More chunks after the index's size: report it as such rather than as
      // an overrun inside the next chunk.
      throw xzError(`${what}: the data decompresses to more than the index says`);
    }
  }
}

const LZMA_ERRORS = ["a match distance reaches before the start of the dictionary", "a match runs past the end of the chunk", "the range decoder did not finish cleanly", "bad range coder initialisation"];

/**
 * One LZMA chunk: decode symbols until exactly outEnd is reached. Returns the
 * input position after the chunk, or -(1 + error index).
 *
 * range and code hold unsigned 32-bit values as int32 bit patterns; unsigned
 * comparisons flip the sign bit on both sides.
 */
function lzmaChunk(s: LzmaState, inp: Uint8Array, inPos: number, inEnd: number, out: Uint8Array, outPos: number, outEnd: number, dictStart: number): number {
  // Range coder initialisation: a zero byte, then 4 bytes of code.
  if (inPos + 5 > inEnd || inp[inPos] !== 0) return -4;
  let code = (inp[inPos + 1]! << 24) | (inp[inPos + 2]! << 16) | (inp[inPos + 3]! << 8) | inp[inPos + 4]!;
  let range = -1;
  inPos += 5;
  const probs = s.probs;
  const lc = s.lc;
  const lpMask = (1 << s.lp) - 1;
  const pbMask = (1 << s.pb) - 1;
  let state = s.state;
  let rep0 = s.rep0;
  let rep1 = s.rep1;
  let rep2 = s.rep2;
  let rep3 = s.rep3;
  let pos = outPos;
  let bound = 0;
  let p = 0;
  let i = 0;
  let err = 0;

  while (pos < outEnd) {
    const posState = (pos - dictStart) & pbMask;
    // is this a match?
    i = IS_MATCH + (state << 4) + posState;
    p = probs[i]!;
    bound = Math.imul(range >>> 11, p);
    if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
      range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      if ((range & 0xff000000) === 0) {
        range <<= 8;
        code = (code << 8) | inp[inPos++]!;
      }
      // Literal: the context is the low lp bits of the position and the top lc bits of the previous byte.
      const prev = pos > dictStart ? out[pos - 1]! : 0;
      const base = LITERAL + 0x300 * ((((pos - dictStart) & lpMask) << lc) + (prev >>> (8 - lc)));
      let sym = 1;
      if (state >= 7) {
        // After a match the literal is coded relative to the byte at rep0
        // ("matched literal") until the first differing bit.
        let matchByte = out[pos - rep0 - 1]!;
        do {
          const matchBit = (matchByte >>> 7) & 1;
          matchByte <<= 1;
          i = base + ((1 + matchBit) << 8) + sym;
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          let bit: number;
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            bit = 0;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            bit = 1;
          }
          if ((range & 0xff000000) === 0) {
            range <<= 8;
            code = (code << 8) | inp[inPos++]!;
          }
          sym = (sym << 1) | bit;
          if (matchBit !== bit) break;
        } while (sym < 0x100);
      }
      while (sym < 0x100) {
        i = base + sym;
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          sym <<= 1;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          sym = (sym << 1) | 1;
        }
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
      }
      out[pos++] = sym;
      state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
      continue;
    }
    range = (range - bound) | 0;
    code = (code - bound) | 0;
    probs[i] = p - (p >>> 5);
    if ((range & 0xff000000) === 0) {
      range <<= 8;
      code = (code << 8) | inp[inPos++]!;
    }

    let lenBase: number;
    // is it a repeated match (one of the last four distances)?
    i = IS_REP + state;
    p = probs[i]!;
    bound = Math.imul(range >>> 11, p);
    if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
      range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      if ((range & 0xff000000) === 0) {
        range <<= 8;
        code = (code << 8) | inp[inPos++]!;
      }
      // A new match: the distance follows the length.
      rep3 = rep2;
      rep2 = rep1;
      rep1 = rep0;
      lenBase = LEN;
      state = state < 7 ? 7 : 10;
    } else {
      range = (range - bound) | 0;
      code = (code - bound) | 0;
      probs[i] = p - (p >>> 5);
      if ((range & 0xff000000) === 0) {
        range <<= 8;
        code = (code << 8) | inp[inPos++]!;
      }
      lenBase = REP_LEN;
      i = IS_REP_G0 + state;
      p = probs[i]!;
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
        // rep0: a single byte ("short rep") or a longer match.
        i = IS_REP0_LONG + (state << 4) + posState;
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          if ((range & 0xff000000) === 0) {
            range <<= 8;
            code = (code << 8) | inp[inPos++]!;
          }
          if (rep0 >= pos - dictStart) {
            err = 1;
            break;
          }
          out[pos] = out[pos - rep0 - 1]!;
          pos++;
          state = state < 7 ? 9 : 11;
          continue;
        }
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
        let dist: number;
        i = IS_REP_G1 + state;
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          dist = rep1;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          if ((range & 0xff000000) === 0) {
            range <<= 8;
            code = (code << 8) | inp[inPos++]!;
          }
          i = IS_REP_G2 + state;
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            dist = rep2;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            dist = rep3;
            rep3 = rep2;
          }
          rep2 = rep1;
        }
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
        rep1 = rep0;
        rep0 = dist;
      }
      state = state < 7 ? 8 : 11;
    }

    // Length: choice bit -> low (3 bits, per posState), choice2 -> mid (3 bits) or high (8 bits).
    let len: number;
    let treeBase: number;
    let treeBits: number;
    p = probs[lenBase]!;
    bound = Math.imul(range >>> 11, p);
    if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
      range = bound;
      probs[lenBase] = p + ((2048 - p) >>> 5);
      treeBase = lenBase + LEN_LOW + (posState << 3);
      treeBits = 3;
      len = 0;
    } else {
      range = (range - bound) | 0;
      code = (code - bound) | 0;
      probs[lenBase] = p - (p >>> 5);
      if ((range & 0xff000000) === 0) {
        range <<= 8;
        code = (code << 8) | inp[inPos++]!;
      }
      i = lenBase + LEN_CHOICE2;
      p = probs[i]!;
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        treeBase = lenBase + LEN_MID + (posState << 3);
        treeBits = 3;
        len = 8;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        treeBase = lenBase + LEN_HIGH;
        treeBits = 8;
        len = 16;
      }
    }
    if ((range & 0xff000000) === 0) {
      range <<= 8;
      code = (code << 8) | inp[inPos++]!;
    }
    {
      let sym = 1;
      const limit = 1 << treeBits;
      while (sym < limit) {
        i = treeBase + sym;
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          sym <<= 1;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          sym = (sym << 1) | 1;
        }
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
      }
      len += sym - limit;
    }

    if (lenBase === LEN) {
      // Distance: a 6-bit slot (per length state), then extra bits: reverse
      // bit trees for slots 4-13, direct bits + 4 aligned bits above.
      const slotBase = POS_SLOT + ((len < 3 ? len : 3) << 6);
      let slot = 1;
      while (slot < 64) {
        i = slotBase + slot;
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          slot <<= 1;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          slot = (slot << 1) | 1;
        }
        if ((range & 0xff000000) === 0) {
          range <<= 8;
          code = (code << 8) | inp[inPos++]!;
        }
      }
      slot -= 64;
      if (slot < 4) {
        rep0 = slot;
      } else {
        const direct = (slot >>> 1) - 1;
        let dist = (2 | (slot & 1)) << direct;
        let rbase: number;
        let rbits: number;
        if (slot < 14) {
          rbase = SPEC_POS + dist - slot;
          rbits = direct;
        } else {
          for (let k = direct - 4; k > 0; k--) {
            range >>>= 1;
            code = (code - range) | 0;
            const t = code >> 31; // -1 if code was below range (bit 0)
            code = (code + (range & t)) | 0;
            dist = (dist + ((t + 1) << (k + 3))) | 0;
            if ((range & 0xff000000) === 0) {
              range <<= 8;
              code = (code << 8) | inp[inPos++]!;
            }
          }
          rbase = ALIGN;
          rbits = 4;
        }
        let m = 1;
        for (let k = 0; k < rbits; k++) {
          i = rbase + m;
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            m <<= 1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            m = (m << 1) | 1;
            dist |= 1 << k;
          }
          if ((range & 0xff000000) === 0) {
            range <<= 8;
            code = (code << 8) | inp[inPos++]!;
          }
        }
        // Distances >= 2^31 come out negative, including the end marker
        // (0xFFFFFFFF), which LZMA2 does not allow: both fail the check below.
        rep0 = dist;
      }
    }

    // Copy the match: distance rep0 + 1, length len + 2.
    if (rep0 < 0 || rep0 >= pos - dictStart) {
      err = 1;
      break;
    }
    len += 2;
    if (pos + len > outEnd) {
      err = 2;
      break;
    }
    let from = pos - rep0 - 1;
    if (rep0 + 1 >= len && len > 32) {
      out.copyWithin(pos, from, from + len);
      pos += len;
    } else {
      const stop = pos + len;
      while (pos < stop) out[pos++] = out[from++]!;
    }
  }
  if (err) return -err;
  // A cleanly finished chunk leaves code == 0 (liblzma and xz-embedded check this too).
  if (code !== 0) return -3;
  s.state = state;
  s.rep0 = rep0;
  s.rep1 = rep1;
  s.rep2 = rep2;
  s.rep3 = rep3;
  return inPos;
}

// ---------------------------------------------------------------------------
// Non-LZMA filters

/** Undo the delta filter: each byte is stored as the difference to the byte `distance` before. */
function deltaDecode(buf: Uint8Array, distance: number): void {
  for (let i = distance; i < buf.length; i++) buf[i] = (buf[i]! + buf[i - distance]!) & 0xff;
}

/**
 * Undo the x86 branch converter: E8 (call) / E9 (jmp) followed by a 32-bit
 * operand whose top byte is 00 or FF had its relative target made absolute
 * by the encoder. The "prevMask" bookkeeping remembers E8/E9 bytes seen in
 * the last three positions, since an opcode byte inside another candidate's
 * operand is not converted; the rules follow the xz format's BCJ description.
 */
function x86Decode(buf: Uint8Array, startOffset: number): void {
  const ALLOWED = [true, true, true, false, true, false, false, false];
  const BIT_NUM = [0, 1, 2, 2, 3, 3, 3, 3];
  const isMsByte = (b: number) => b === 0x00 || b === 0xff;
  let prevMask = 0;
  let prevPos = -1;
  const limit = buf.length - 4;
  let i = 0;
  for (; i < limit; i++) {
    if ((buf[i]! & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[i + 4 - BIT_NUM[prevMask]!]!;
        if (!ALLOWED[prevMask] || isMsByte(b)) {
          prevPos = i;
          prevMask = (prevMask << 1) | 1;
          continue;
        }
      }
    }
    prevPos = i;
    if (!isMsByte(buf[i + 4]!)) {
      prevMask = (prevMask << 1) | 1;
      continue;
    }
    let src = (buf[i + 1]! | (buf[i + 2]! << 8) | (buf[i + 3]! << 16) | (buf[i + 4]! << 24)) | 0;
    let dest: number;
    for (;;) {
      dest = (src - ((startOffset + i + 5) | 0)) | 0;
      if (prevMask === 0) break;
      const j = BIT_NUM[prevMask]! * 8;
      if (!isMsByte((dest >>> (24 - j)) & 0xff)) break;
      src = dest ^ ((2 ** (32 - j) - 1) | 0);
    }
    // Sign-extend bit 24 into the top byte.
    dest &= 0x01ffffff;
    if (dest & 0x01000000) dest |= 0xff000000;
    buf[i + 1] = dest & 0xff;
    buf[i + 2] = (dest >>> 8) & 0xff;
    buf[i + 3] = (dest >>> 16) & 0xff;
    buf[i + 4] = (dest >>> 24) & 0xff;
    i += 4;
  }
}

// ---------------------------------------------------------------------------
// Whole-file API and backends

export type XzBackend = "auto" | "ts" | "liblzma";

let defaultBackend: XzBackend = (process.env.SPAWNCTL_XZ as XzBackend | undefined) ?? "auto";

/** Choose the decoder used when a call does not say: "ts", "liblzma" or "auto" (liblzma when loadable). */
export function setXzBackend(b: XzBackend): void {
  defaultBackend = b;
}

/** Decompress a whole .xz file (all streams) synchronously. */
export function xzDecompress(input: Uint8Array, opts: { backend?: XzBackend } = {}): Uint8Array {
  const layout = xzLayout(input);
  const backend = opts.backend ?? defaultBackend;
  if (backend !== "ts") {
    const lib = liblzma();
    if (!lib && backend === "liblzma") throw xzError("liblzma.so.5 is not available on this host");
    // (liblzma declines files whose dictionary exceeds its memory limit: the TS decoder takes those)
    const done = lib ? liblzmaDecode(lib, input, layout.uncompressedSize) : undefined;
    if (done) return done;
  }
  const out = new Uint8Array(layout.uncompressedSize);
  for (const b of layout.blocks) xzDecodeBlock(input, b, out.subarray(b.outOffset, b.outOffset + b.uncompressedSize));
  return out;
}

// liblzma (xz-utils) through bun:ffi: lzma_stream_buffer_decode does the
// whole file in one call. Only an accelerator: the TS decoder is used when
// the library cannot be loaded.
type LzmaLib = { lzma_stream_buffer_decode: (...a: unknown[]) => number };
let lzmaLib: LzmaLib | null | undefined;

export function liblzma(): LzmaLib | null {
  if (lzmaLib === undefined) {
    try {
      lzmaLib = dlopen("liblzma.so.5", {
        lzma_stream_buffer_decode: { args: ["ptr", "u32", "ptr", "ptr", "ptr", "u64", "ptr", "ptr", "u64"], returns: "i32" },
      }).symbols as unknown as LzmaLib;
    } catch {
      lzmaLib = null;
    }
  }
  return lzmaLib;
}

const LZMA_CONCATENATED = 0x08;
const LZMA_MEMLIMIT_ERROR = 6;
const LZMA_RET = ["OK", "stream end", "no check", "unsupported check", "get check", "out of memory", "memory limit reached", "not an xz file", "unsupported options", "corrupt data", "truncated data or more output than the index says", "programming error"];
/** liblzma allocates the dictionary a file asks for; the TS decoder needs none, so bigger ones go there. */
const LIBLZMA_MEMLIMIT = 1n << 30n;

/** Decode with liblzma; undefined when it would need more memory than LIBLZMA_MEMLIMIT. */
function liblzmaDecode(lib: LzmaLib, input: Uint8Array, size: number): Uint8Array | undefined {
  const out = new Uint8Array(Math.max(size, 1));
  const memlimit = new BigUint64Array([LIBLZMA_MEMLIMIT]);
  const inPos = new BigUint64Array(1);
  const outPos = new BigUint64Array(1);
  // ptr() refuses empty buffers.
  const inBuf = input.length ? input : new Uint8Array(1);
  const ret = lib.lzma_stream_buffer_decode(ptr(memlimit), LZMA_CONCATENATED, null, ptr(inBuf), ptr(inPos), input.length, ptr(out), ptr(outPos), size);
  if (ret === LZMA_MEMLIMIT_ERROR) return undefined;
  if (ret !== 0) throw xzError(`liblzma: ${LZMA_RET[ret] ?? `error ${ret}`}`);
  if (Number(outPos[0]) !== size) throw xzError("liblzma produced a different size than the index says");
  return size === out.length ? out : out.subarray(0, size);
}

// ---------------------------------------------------------------------------
// Parallel decoding with Workers

/**
 * Decompress with up to `workers` Workers, blocks spread over them.
 * Single-block files, and liblzma when it is the chosen backend, take the
 * synchronous path.
 */
export async function xzDecompressParallel(input: Uint8Array, opts: { workers?: number; backend?: XzBackend } = {}): Promise<Uint8Array> {
  const backend = opts.backend ?? defaultBackend;
  const layout = xzLayout(input);
  const workers = Math.min(opts.workers ?? navigator.hardwareConcurrency ?? 2, layout.blocks.length);
  if (workers <= 1 || backend === "liblzma" || (backend === "auto" && liblzma())) return xzDecompress(input, opts);
  const pool = new XzWorkerPool(workers);
  try {
    return await pool.decompress(input, layout);
  } finally {
    pool.close();
  }
}

interface Job {
  id: number;
  input: Uint8Array;
  block: XzBlock;
  out: Uint8Array;
  resolve(): void;
  reject(e: unknown): void;
}

interface PoolWorker {
  worker: Worker;
  job?: Job;
}

/**
 * A pool of xz Workers shared by any number of files: each job is one
 * block, read from a SharedArrayBuffer copy of the input and written in
 * place into a SharedArrayBuffer output. A bootstrap hands it every
 * package's data.tar.xz at once so both cores stay busy even though most
 * .debs are a single block. Workers are ref'd only while they have a job:
 * an idle pool never keeps the process alive; close() ends them.
 */
export class XzWorkerPool {
  private readonly workers: PoolWorker[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private broken = false;

  constructor(readonly size: number = navigator.hardwareConcurrency ?? 2) {}

  /** Decompress a whole .xz file; the result is backed by a SharedArrayBuffer. */
  async decompress(input: Uint8Array, layout: XzLayout = xzLayout(input)): Promise<Uint8Array> {
    let shared = input;
    if (!(input.buffer instanceof SharedArrayBuffer)) {
      shared = new Uint8Array(new SharedArrayBuffer(input.length));
      shared.set(input);
    }
    const out = new Uint8Array(new SharedArrayBuffer(layout.uncompressedSize));
    await Promise.all(layout.blocks.map((block) => this.submit(shared, block, out)));
    return out;
  }

  private submit(input: Uint8Array, block: XzBlock, out: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(xzError("the worker pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, input, block, out, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.broken) {
      // Workers cannot run here: decode on this thread instead.
      for (let job = this.queue.shift(); job; job = this.queue.shift()) runHere(job);
      return;
    }
    while (this.queue.length) {
      let pw = this.workers.find((w) => !w.job);
      if (!pw) {
        if (this.workers.length >= this.size) return;
        pw = this.spawn();
      }
      const job = this.queue.shift()!;
      pw.job = job;
      // a busy worker keeps the process alive (someone awaits its job); an idle one does not
      (pw.worker as unknown as { ref?(): void }).ref?.();
      pw.worker.postMessage({ id: job.id, input: job.input, block: job.block, out: job.out });
    }
  }

  private spawn(): PoolWorker {
    const worker = new Worker(workerUrl());
    (worker as unknown as { unref?(): void }).unref?.();
    const pw: PoolWorker = { worker };
    worker.addEventListener("message", (ev: MessageEvent<{ id: number; error?: string }>) => {
      const job = pw.job;
      if (!job || job.id !== ev.data.id) return;
      pw.job = undefined;
      (worker as unknown as { unref?(): void }).unref?.();
      if (ev.data.error === undefined) job.resolve();
      else job.reject(xzError(ev.data.error.replace(/^decompressing xz data: /, "")));
      this.pump();
    });
    worker.addEventListener("error", () => {
      // A worker that fails to load or crashes (an executable built without
      // the worker entry point, a resource limit) is an accelerator lost,
      // not a decoding error: its job and all later ones run on this thread,
      // where real corruption is reported as usual.
      const job = pw.job;
      this.workers.splice(this.workers.indexOf(pw), 1);
      worker.terminate();
      this.broken = true;
      if (job) runHere(job);
      this.pump();
    });
    this.workers.push(pw);
    return pw;
  }

  close(): void {
    this.closed = true;
    for (const pw of this.workers) {
      pw.worker.terminate();
      pw.job?.reject(xzError("the worker pool was closed"));
    }
    for (const job of this.queue) job.reject(xzError("the worker pool was closed"));
    this.queue.length = 0;
    this.workers.length = 0;
  }
}

function runHere(job: Job): void {
  try {
    xzDecodeBlock(job.input, job.block, job.out.subarray(job.block.outOffset, job.block.outOffset + job.block.uncompressedSize));
    job.resolve();
  } catch (e) {
    job.reject(e);
  }
}

/**
 * The worker module. In a `bun build --compile` executable extra entry
 * points are stored as .js under their path relative to the entry points'
 * common directory: build.ts must list src/archive/xz-worker.ts next to
 * src/main.ts, which puts it at archive/xz-worker.js. build.ts defines
 * SPAWNCTL_COMPILED, so the bundler drops the import.meta branch, whose
 * absolute source path would otherwise be written into the binary (a release
 * must not depend on the directory it was built in).
 */
declare const SPAWNCTL_COMPILED: boolean | undefined;
function workerUrl(): string {
  if (typeof SPAWNCTL_COMPILED !== "undefined" && SPAWNCTL_COMPILED) return "/$bunfs/root/archive/xz-worker.js";
  return new URL("./xz-worker.ts", import.meta.url).href;
}
