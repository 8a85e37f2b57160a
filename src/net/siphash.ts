// SipHash-2-4 (Aumasson & Bernstein), the keyed hash systemd uses to derive
// interface names and MAC addresses. Naming is policy, so it is computed here
// and not in the shim. It runs on every start with a network, in a process
// that is still cold: each 64-bit lane is kept as two 32-bit halves in plain
// numbers (no BigInt arithmetic).

// the state: v0..v3 as [hi, lo] pairs in one array, v_i at 2i (hi) and 2i+1 (lo)
type State = Uint32Array;

function add(s: State, a: number, b: number): void {
  // v_a += v_b (mod 2^64)
  const lo = s[2 * a + 1]! + s[2 * b + 1]!;
  s[2 * a] = s[2 * a]! + s[2 * b]! + (lo > 0xffffffff ? 1 : 0);
  s[2 * a + 1] = lo;
}

function rotl(s: State, a: number, n: number): void {
  // v_a = rotl(v_a, n) for 0 < n < 64
  let hi = s[2 * a]!, lo = s[2 * a + 1]!;
  if (n >= 32) {
    const t = hi;
    hi = lo;
    lo = t;
    n -= 32;
  }
  if (n > 0) {
    const h = ((hi << n) | (lo >>> (32 - n))) >>> 0;
    lo = ((lo << n) | (hi >>> (32 - n))) >>> 0;
    hi = h;
  }
  s[2 * a] = hi;
  s[2 * a + 1] = lo;
}

function xor(s: State, a: number, b: number): void {
  s[2 * a] = s[2 * a]! ^ s[2 * b]!;
  s[2 * a + 1] = s[2 * a + 1]! ^ s[2 * b + 1]!;
}

function round(s: State): void {
  add(s, 0, 1); rotl(s, 1, 13); xor(s, 1, 0); rotl(s, 0, 32);
  add(s, 2, 3); rotl(s, 3, 16); xor(s, 3, 2);
  add(s, 0, 3); rotl(s, 3, 21); xor(s, 3, 0);
  add(s, 2, 1); rotl(s, 1, 17); xor(s, 1, 2); rotl(s, 2, 32);
}

function compress(s: State, hi: number, lo: number): void {
  s[6] = s[6]! ^ hi;
  s[7] = s[7]! ^ lo;
  round(s);
  round(s);
  s[0] = s[0]! ^ hi;
  s[1] = s[1]! ^ lo;
}

/** SipHash-2-4 of data under a 16-byte key: the 64-bit result as 8 little-endian bytes. */
export function siphash24(data: Uint8Array, key: Uint8Array): Uint8Array {
  if (key.length !== 16) throw new Error("siphash24 needs a 16-byte key");
  const kv = new DataView(key.buffer, key.byteOffset, 16);
  const k0hi = kv.getUint32(4, true), k0lo = kv.getUint32(0, true);
  const k1hi = kv.getUint32(12, true), k1lo = kv.getUint32(8, true);
  const s: State = new Uint32Array([
    k0hi ^ 0x736f6d65, k0lo ^ 0x70736575,
    k1hi ^ 0x646f7261, k1lo ^ 0x6e646f6d,
    k0hi ^ 0x6c796765, k0lo ^ 0x6e657261,
    k1hi ^ 0x74656462, k1lo ^ 0x79746573,
  ]);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const whole = data.length - (data.length % 8);
  for (let i = 0; i < whole; i += 8) compress(s, dv.getUint32(i + 4, true), dv.getUint32(i, true));
  // the last block: the remaining bytes, little-endian, with the length in the top byte
  let hi = (data.length & 0xff) << 24, lo = 0;
  for (let i = whole; i < data.length; i++) {
    const shift = 8 * (i - whole);
    if (shift < 32) lo |= data[i]! << shift;
    else hi |= data[i]! << (shift - 32);
  }
  compress(s, hi >>> 0, lo >>> 0);
  s[5] = s[5]! ^ 0xff;
  for (let i = 0; i < 4; i++) round(s);
  const rhi = (s[0]! ^ s[2]! ^ s[4]! ^ s[6]!) >>> 0;
  const rlo = (s[1]! ^ s[3]! ^ s[5]! ^ s[7]!) >>> 0;
  const out = new Uint8Array(8);
  const ov = new DataView(out.buffer);
  ov.setUint32(0, rlo, true);
  ov.setUint32(4, rhi, true);
  return out;
}
