// The pure-TypeScript xz decoder against files made by xz-utils: every
// check type, filters, LZMA properties, multi-block and concatenated
// streams, and corrupt input, which must fail with an error, not hang or crash.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { crc64, liblzma, setXzBackend, XzWorkerPool, xzDecodeBlock, xzDecompress, xzDecompressParallel, xzLayout } from "../../../src/archive/xz.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";
import { needs } from "../../helpers.ts";
import { concat, hasTool, noise, tool } from "./fixtures.ts";

const xzTest = needs("the xz command (xz-utils)", hasTool("xz"));
const xz = (data: Uint8Array, ...args: string[]) => tool(["xz", "-c", "-T1", ...args], data);

function corpus(n: number): Uint8Array {
  // Text with repeats at many distances, some noise, and long runs: exercises
  // literals, matched literals, short reps, rep0-3 and long matches.
  const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore".split(" ");
  const parts: string[] = [];
  let x = 7;
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = `${words[x % words.length]}${x % 7 === 0 ? "\n" : " "}${x % 97 === 0 ? "=".repeat(x % 300) : ""}`;
    parts.push(w);
    len += w.length;
  }
  const t = new TextEncoder().encode(parts.join("")).subarray(0, n);
  const out = new Uint8Array(n);
  out.set(t);
  out.set(noise(4096, 3), Math.floor(n / 2));
  return out;
}

const TEXT = corpus(300_000);
const BIN = readFileSync(Bun.which("ls") ?? "/bin/ls");

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

describe("decoding what xz-utils writes", () => {
  xzTest("every check type", () => {
    for (const check of ["none", "crc32", "crc64", "sha256"]) {
      expect(same(xzDecompress(xz(TEXT, `--check=${check}`), { backend: "ts" }), TEXT)).toBe(true);
    }
  });

  xzTest("empty input, one byte, incompressible data (uncompressed LZMA2 chunks)", () => {
    for (const d of [new Uint8Array(0), new Uint8Array([42]), noise(200_000)]) {
      expect(same(xzDecompress(xz(d), { backend: "ts" }), d)).toBe(true);
    }
  });

  xzTest("presets and LZMA properties (lc, lp, pb, dictionary sizes)", () => {
    for (const opt of ["-0", "-6", "-9e", "--lzma2=lc=0,lp=0,pb=0", "--lzma2=lc=4,lp=0,pb=4", "--lzma2=lc=0,lp=4,pb=2", "--lzma2=lc=1,lp=3,pb=1,dict=4KiB", "--lzma2=mode=fast,mf=hc3,nice=8"]) {
      expect(same(xzDecompress(xz(TEXT, opt), { backend: "ts" }), TEXT)).toBe(true);
    }
  });

  xzTest("large runs and long matches span many LZMA2 chunks", () => {
    const d = new Uint8Array(3_000_000);
    for (let i = 0; i < d.length; i++) d[i] = i % 251 < 200 ? 0x61 : i & 0xff;
    expect(same(xzDecompress(xz(d), { backend: "ts" }), d)).toBe(true);
  });

  xzTest("multi-block files: layout from the index and block-by-block decoding", () => {
    const file = xz(TEXT, "--block-size=40000");
    const layout = xzLayout(file);
    expect(layout.blocks.length).toBe(Math.ceil(TEXT.length / 40000));
    expect(layout.uncompressedSize).toBe(TEXT.length);
    // Blocks decode independently and in any order.
    const out = new Uint8Array(layout.uncompressedSize);
    for (const b of [...layout.blocks].reverse()) xzDecodeBlock(file, b, out.subarray(b.outOffset, b.outOffset + b.uncompressedSize));
    expect(same(out, TEXT)).toBe(true);
  });

  xzTest("concatenated streams with stream padding between and after", () => {
    const a = xz(TEXT.subarray(0, 1000), "--check=crc32");
    const b = xz(TEXT.subarray(1000, 50000), "--check=sha256");
    const c = xz(new Uint8Array(0));
    const file = concat([a, new Uint8Array(8), b, c, new Uint8Array(4)]);
    expect(same(xzDecompress(file, { backend: "ts" }), TEXT.subarray(0, 50000))).toBe(true);
    expect(() => xzDecompress(concat([a, new Uint8Array(3), b]), { backend: "ts" })).toThrow(/padding/);
  });

  xzTest("x86 BCJ and delta filters", () => {
    expect(same(xzDecompress(xz(BIN, "--x86", "--lzma2"), { backend: "ts" }), BIN)).toBe(true);
    expect(same(xzDecompress(xz(BIN, "--x86=start=4096", "--lzma2"), { backend: "ts" }), BIN)).toBe(true);
    expect(same(xzDecompress(xz(TEXT, "--delta=dist=4", "--lzma2"), { backend: "ts" }), TEXT)).toBe(true);
    expect(same(xzDecompress(xz(TEXT, "--delta=dist=1", "--x86", "--lzma2"), { backend: "ts" }), TEXT)).toBe(true);
  });

  xzTest("other filters are refused by name", () => {
    expect(() => xzDecompress(xz(BIN, "--arm", "--lzma2"), { backend: "ts" })).toThrow(/ARM BCJ filter is not supported/);
  });
});

describe("corrupt input fails cleanly", () => {
  const good = hasTool("xz") ? xz(TEXT) : new Uint8Array(0);

  xzTest("not xz, too short, truncated", () => {
    expect(() => xzDecompress(new TextEncoder().encode("hello world, not xz at all"), { backend: "ts" })).toThrow(SpawnctlError);
    expect(() => xzDecompress(good.subarray(0, 10), { backend: "ts" })).toThrow(/too short|truncated/);
    for (const cut of [good.length - 1, good.length - 13, Math.floor(good.length / 2), 40]) {
      expect(() => xzDecompress(good.subarray(0, cut), { backend: "ts" })).toThrow(SpawnctlError);
    }
  });

  xzTest("flipped bytes anywhere are detected (headers, data, check, index, footer)", () => {
    const rnd = noise(64, 9);
    const positions = [0, 7, 13, 20, 30, 100, 1000, Math.floor(good.length / 2), good.length - 40, good.length - 20, good.length - 10, good.length - 3];
    for (let k = 0; k < 40; k++) positions.push(12 + ((rnd[k]! * 7919 + k * 104729) % (good.length - 24)));
    for (const at of positions) {
      const bad = good.slice();
      bad[at] ^= 0x55;
      let threw = false;
      try {
        const out = xzDecompress(bad, { backend: "ts" });
        // The only acceptable non-error is identical output (a flip the format cannot see does not exist with CRC64).
        threw = !same(out, TEXT);
      } catch (e) {
        expect(e).toBeInstanceOf(SpawnctlError);
        threw = true;
      }
      expect(threw).toBe(true);
    }
  });

  xzTest("a wrong check value names the check", () => {
    for (const [check, name] of [["crc32", "CRC32"], ["crc64", "CRC64"], ["sha256", "SHA-256"]] as const) {
      const f = xz(TEXT, `--check=${check}`);
      const layout = xzLayout(f);
      const b = layout.blocks[0]!;
      const checkAt = b.offset + ((b.unpaddedSize + 3) & ~3) - 1; // last byte of the check field
      const bad = f.slice();
      bad[checkAt] ^= 1;
      expect(() => xzDecompress(bad, { backend: "ts" })).toThrow(new RegExp(`${name} check does not match`));
    }
  });

  test("random garbage with a valid magic never hangs", () => {
    for (let seed = 1; seed < 30; seed++) {
      const junk = noise(2000, seed);
      junk.set([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 0);
      expect(() => xzDecompress(junk, { backend: "ts" })).toThrow(SpawnctlError);
    }
  });
});

test("CRC64 test vector", () => {
  expect(crc64(new TextEncoder().encode("123456789"))).toBe(0x995dc9bbdf1939fan);
  expect(crc64(new Uint8Array(0))).toBe(0n);
});

describe("backends", () => {
  const lib = liblzma() !== null;
  needs("liblzma.so.5 and the xz command", lib && hasTool("xz"))("liblzma and the TS decoder agree, and both refuse corruption", () => {
    const f = xz(TEXT, "--block-size=50000");
    expect(same(xzDecompress(f, { backend: "liblzma" }), TEXT)).toBe(true);
    expect(same(xzDecompress(f, { backend: "ts" }), TEXT)).toBe(true);
    const bad = f.slice();
    bad[200] ^= 0xff;
    expect(() => xzDecompress(bad, { backend: "liblzma" })).toThrow(/liblzma/);
  });

  xzTest("Workers decode blocks in parallel into shared memory", async () => {
    const f = xz(TEXT, "--block-size=30000");
    const out = await xzDecompressParallel(f, { workers: 2, backend: "ts" });
    expect(same(out, TEXT)).toBe(true);
    const bad = f.slice();
    bad[xzLayout(f).blocks[3]!.offset + 40] ^= 0x10;
    await expect(xzDecompressParallel(bad, { workers: 2, backend: "ts" })).rejects.toThrow(/block 3/);
  });

  xzTest("one pool serves several files at once, and fails only the broken one", async () => {
    const files = [xz(TEXT, "--block-size=70000"), xz(TEXT.subarray(0, 5000)), xz(new Uint8Array(0)), xz(BIN)];
    const bad = files[0]!.slice();
    bad[xzLayout(bad).blocks[1]!.offset + 30] ^= 0x40;
    const pool = new XzWorkerPool(2);
    try {
      const results = await Promise.allSettled([...files, bad].map((f) => pool.decompress(f)));
      expect(same((results[0] as PromiseFulfilledResult<Uint8Array>).value, TEXT)).toBe(true);
      expect(same((results[1] as PromiseFulfilledResult<Uint8Array>).value, TEXT.subarray(0, 5000))).toBe(true);
      expect((results[2] as PromiseFulfilledResult<Uint8Array>).value.length).toBe(0);
      expect(same((results[3] as PromiseFulfilledResult<Uint8Array>).value, BIN)).toBe(true);
      expect(results[4]!.status).toBe("rejected");
      // still usable afterwards
      expect(same(await pool.decompress(files[1]!), TEXT.subarray(0, 5000))).toBe(true);
    } finally {
      pool.close();
    }
    await expect(pool.decompress(files[1]!)).rejects.toThrow(/closed/);
  });

  xzTest("the default backend is selectable (SPAWNCTL_XZ or setXzBackend)", () => {
    const f = xz(TEXT);
    try {
      setXzBackend("ts");
      expect(same(xzDecompress(f), TEXT)).toBe(true);
      setXzBackend("liblzma");
      if (lib) expect(same(xzDecompress(f), TEXT)).toBe(true);
      else expect(() => xzDecompress(f)).toThrow(/liblzma.so.5 is not available/);
    } finally {
      setXzBackend("auto");
    }
  });
});
