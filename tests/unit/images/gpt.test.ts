// The disk image reader (src/image/disk/gpt.ts, fs-probe.ts) on crafted
// byte buffers: GPT headers and entries with their CRC32s, the protective
// MBR, the backup header, superblock magic numbers, and hostile tables.
import { describe, expect, test } from "bun:test";
import { GENERIC_LINUX, GPT_FLAG, crc32, guidBytes, guidText, readLayout, LayoutError } from "../../../src/image/disk/gpt.ts";
import { probeFilesystem } from "../../../src/image/disk/fs-probe.ts";
import { loopConfig, LO_FLAGS } from "../../../src/image/disk/loop.ts";

const ROOT_X64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
const ROOT_ARM64 = "b921b045-1df0-41c3-af44-4c6f280d3fae";
const USR_X64 = "8484680c-9521-48c6-9c11-b0720656f69e";
const HOME = "933ac7e1-2eb4-4f13-b844-0e14e2aef915";
const SRV = "3b8f8425-20e0-4f3b-907f-1a25a76f98e8";
const ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const SWAP = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f";

const S = 512;

interface Part { type: string; first: number; last: number; attrs?: bigint; name?: string; fs?: "ext4" | "none" }

/** An ext4 superblock's magic at `off` (enough for the probe). */
function putExt4(img: Uint8Array, off: number): void {
  img[off + 1024 + 56] = 0x53;
  img[off + 1024 + 57] = 0xef;
}

/** A whole image (in memory) with a protective MBR, primary and backup GPT. */
function makeGpt(parts: Part[], sectors = 4096, opts: { noMbr?: boolean; sector?: number } = {}): Uint8Array {
  const S = opts.sector ?? 512;
  const img = new Uint8Array(sectors * S);
  if (!opts.noMbr) {
    img[446 + 4] = 0xee;
    img[510] = 0x55;
    img[511] = 0xaa;
  }
  const entries = new Uint8Array(128 * 128);
  parts.forEach((p, i) => {
    const e = entries.subarray(i * 128, (i + 1) * 128);
    e.set(guidBytes(p.type), 0);
    e.set(guidBytes(`0000000${i}-1111-2222-3333-444455556666`), 16);
    const dv = new DataView(e.buffer, e.byteOffset, 128);
    dv.setBigUint64(32, BigInt(p.first), true);
    dv.setBigUint64(40, BigInt(p.last), true);
    dv.setBigUint64(48, p.attrs ?? 0n, true);
    const name = Buffer.from(p.name ?? "", "utf16le");
    e.set(name.subarray(0, 72), 56);
    if ((p.fs ?? "ext4") === "ext4") putExt4(img, p.first * S);
  });
  const ecrc = crc32(entries);
  const header = (my: number, alt: number, entriesLba: number) => {
    const h = new Uint8Array(S);
    h.set(new TextEncoder().encode("EFI PART"), 0);
    const dv = new DataView(h.buffer);
    dv.setUint32(8, 0x00010000, true);
    dv.setUint32(12, 92, true);
    dv.setBigUint64(24, BigInt(my), true);
    dv.setBigUint64(32, BigInt(alt), true);
    dv.setBigUint64(40, 34n, true);
    dv.setBigUint64(48, BigInt(sectors - 34), true);
    dv.setBigUint64(72, BigInt(entriesLba), true);
    dv.setUint32(80, 128, true);
    dv.setUint32(84, 128, true);
    dv.setUint32(88, ecrc, true);
    dv.setUint32(16, crc32(h.subarray(0, 92)), true);
    return h;
  };
  img.set(header(1, sectors - 1, 2), S);
  img.set(entries, 2 * S);
  img.set(entries, (sectors - 33) * S);
  img.set(header(sectors - 1, 1, sectors - 33), (sectors - 1) * S);
  return img;
}

const reader = (img: Uint8Array) => (off: number, len: number) => img.subarray(Math.min(off, img.length), Math.min(off + len, img.length));
const layout = (img: Uint8Array, arch: "x86-64" | "arm64" = "x86-64") => readLayout(reader(img), img.length, arch);
const refusal = (img: Uint8Array, arch: "x86-64" | "arm64" = "x86-64"): string => {
  try {
    layout(img, arch);
  } catch (e) {
    expect(e).toBeInstanceOf(LayoutError);
    return (e as Error).message;
  }
  throw new Error("the layout was accepted");
};

describe("GPT", () => {
  test("crc32 and GUIDs are the standard ones", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(guidText(guidBytes(ROOT_X64))).toBe(ROOT_X64);
    // the first three fields are little-endian on disk
    expect([...guidBytes(ROOT_X64).subarray(0, 4)]).toEqual([0xe3, 0xbc, 0x68, 0x4f]);
  });

  test("root, /home and /srv partitions, in mount order, ESP and swap ignored", () => {
    const img = makeGpt([
      { type: ESP, first: 34, last: 99, fs: "none" },
      { type: HOME, first: 2048, last: 2559, name: "home" },
      { type: ROOT_X64, first: 100, last: 2047, name: "root-x86-64" },
      { type: SWAP, first: 2560, last: 2599, fs: "none" },
      { type: SRV, first: 2600, last: 3000, attrs: GPT_FLAG.readOnly },
    ]);
    const l = layout(img);
    expect(l.kind).toBe("gpt");
    expect(l.header).toBe("primary");
    expect(l.partitions.map((p) => [p.designator, p.number, p.offset, p.size, p.readOnly, p.fstype])).toEqual([
      ["root", 3, 100 * S, 1948 * S, false, "ext4"],
      ["home", 2, 2048 * S, 512 * S, false, "ext4"],
      ["srv", 5, 2600 * S, 401 * S, true, "ext4"],
    ]);
    expect(l.partitions[0]!.label).toBe("root-x86-64");
  });

  test("4096-byte sectors", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 40, last: 300 }, { type: HOME, first: 301, last: 400 }], 1024, { sector: 4096 });
    const l = layout(img);
    expect(l.sectorSize).toBe(4096);
    expect(l.partitions.map((p) => [p.designator, p.offset, p.size])).toEqual([["root", 40 * 4096, 261 * 4096], ["home", 301 * 4096, 100 * 4096]]);
  });

  test("the architecture decides which root counts", () => {
    const img = makeGpt([{ type: ROOT_ARM64, first: 100, last: 2047 }]);
    expect(layout(img, "arm64").partitions[0]!.designator).toBe("root");
    expect(refusal(img, "x86-64")).toBe("it has no root partition for x86-64 (it has one for arm64)");
  });

  test("a single generic Linux partition is the root; two are not", () => {
    expect(layout(makeGpt([{ type: GENERIC_LINUX, first: 100, last: 2047 }])).partitions[0]!.number).toBe(1);
    expect(refusal(makeGpt([{ type: GENERIC_LINUX, first: 100, last: 1000 }, { type: GENERIC_LINUX, first: 1001, last: 2000 }])))
      .toContain("no root partition for x86-64 (it has 2 generic Linux partitions");
  });

  test("wrong partition types: no root partition", () => {
    expect(refusal(makeGpt([{ type: SWAP, first: 100, last: 2047 }, { type: HOME, first: 2048, last: 2500 }]))).toBe("it has no root partition for x86-64");
    expect(refusal(makeGpt([{ type: USR_X64, first: 100, last: 2047 }]))).toContain("a /usr partition but no root partition");
  });

  test("two root partitions are refused; the no-auto flag picks one", () => {
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 100, last: 1000 }, { type: ROOT_X64, first: 1001, last: 2000 }])))
      .toBe("it has two root partitions for x86-64 (1 and 2); mark all but one with the GPT no-auto flag (bit 63) or change their type");
    const l = layout(makeGpt([{ type: ROOT_X64, first: 100, last: 1000, attrs: GPT_FLAG.noAuto }, { type: ROOT_X64, first: 1001, last: 2000 }]));
    expect(l.partitions.map((p) => p.number)).toEqual([2]);
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 100, last: 1000 }, { type: HOME, first: 1001, last: 2000 }, { type: HOME, first: 2001, last: 3000 }])))
      .toContain("two /home partitions (2 and 3)");
  });

  test("a partition without a known file system is refused, naming it", () => {
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 100, last: 2047, fs: "none" }]))).toBe(
      "partition 1 (root) holds no known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)",
    );
  });

  test("a damaged primary header falls back to the backup; both damaged is an error", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }]);
    img[S + 20] ^= 0xff; // inside the header: its CRC32 no longer matches
    const l = layout(img);
    expect(l.header).toBe("backup");
    expect(l.partitions[0]!.offset).toBe(100 * S);
    img[(4096 - 1) * S + 40] ^= 0xff;
    expect(refusal(img)).toBe("the primary GPT header is unusable: its CRC32 does not match, and so is the backup (its CRC32 does not match)");
  });

  test("damaged entries (CRC32) fall back to the backup's copy", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }]);
    img[2 * S + 5] ^= 0x01;
    expect(layout(img).header).toBe("backup");
  });

  test("a truncated image: partition beyond the end, entries cut short", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 100, last: 4000 }]);
    const cut = img.slice(0, 3000 * S);
    expect(refusal(cut)).toBe("partition 1 reaches beyond the end of the image (a truncated image?)");
    expect(refusal(img.slice(0, 3 * S))).toContain("its partition entries are cut short");
  });

  test("overlapping partitions and partitions outside the usable area are refused", () => {
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }, { type: HOME, first: 2000, last: 2500 }]))).toBe("partitions 1 and 2 overlap");
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 2, last: 2047 }]))).toBe("partition 1 lies outside the table's usable area");
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 2047, last: 100 }]))).toBe("partition 1 ends before it starts");
  });

  test("a header with absurd counts is not trusted", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }]);
    const dv = new DataView(img.buffer);
    for (const at of [S, (4096 - 1) * S]) {
      dv.setUint32(at + 80, 0x7fffffff, true);
      dv.setUint32(at + 16, 0, true);
      dv.setUint32(at + 16, crc32(img.subarray(at, at + 92)), true);
    }
    expect(refusal(img)).toContain("its entry count 2147483647 is out of range");
  });

  test("a GPT without protective MBR is refused", () => {
    expect(refusal(makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }], 4096, { noMbr: true }))).toBe("its GUID partition table has no protective MBR");
  });

  test("an MBR (DOS) table: its one bootable Linux partition is the root, as nspawn takes it", () => {
    const dos = (entries: Array<[type: number, boot: boolean, start: number, sectors: number]>) => {
      const b = new Uint8Array(1 << 20);
      const dv = new DataView(b.buffer);
      entries.forEach(([type, boot, start, sectors], i) => {
        const at = 446 + i * 16;
        b[at] = boot ? 0x80 : 0;
        b[at + 4] = type;
        dv.setUint32(at + 8, start, true);
        dv.setUint32(at + 12, sectors, true);
        putExt4(b, start * 512);
      });
      b[510] = 0x55;
      b[511] = 0xaa;
      return b;
    };
    const l = layout(dos([[0x82, false, 64, 100], [0x83, true, 200, 1000]]));
    expect([l.kind, l.partitions.map((p) => [p.number, p.offset, p.size, p.fstype])]).toEqual(["mbr", [[2, 200 * 512, 1000 * 512, "ext4"]]]);
    expect(refusal(dos([[0x83, false, 64, 100]]))).toBe("it has an MBR (DOS) partition table without a single bootable Linux (0x83) partition (it has 1 Linux partition(s), 0 marked bootable)");
    expect(refusal(dos([[0x83, true, 64, 100], [0x83, true, 200, 100]]))).toContain("2 marked bootable");
    expect(refusal(dos([[0x83, true, 1000, 5000]]))).toBe("partition 1 reaches beyond the end of the image (a truncated image?)");
  });

  test("random bytes are neither a table nor a file system", () => {
    const junk = new Uint8Array(1 << 20);
    crypto.getRandomValues(junk.subarray(0, 65536));
    expect(refusal(junk)).toBe("it has neither a GUID partition table nor a known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)");
  });
});

describe("file systems without partition table", () => {
  const bare = (fill: (b: Uint8Array) => void) => {
    const b = new Uint8Array(1 << 20);
    fill(b);
    return b;
  };
  test.each([
    ["ext4", (b: Uint8Array) => putExt4(b, 0)],
    ["xfs", (b: Uint8Array) => b.set(new TextEncoder().encode("XFSB"), 0)],
    ["squashfs", (b: Uint8Array) => { b.set(new TextEncoder().encode("hsqs"), 0); b[28] = 4; }],
    ["erofs", (b: Uint8Array) => b.set([0xe2, 0xe1, 0xf5, 0xe0], 1024)],
    ["btrfs", (b: Uint8Array) => b.set(new TextEncoder().encode("_BHRfS_M"), 0x10040)],
    ["vfat", (b: Uint8Array) => { b[0] = 0xeb; b[11] = 0; b[12] = 2; b.set(new TextEncoder().encode("FAT32"), 82); b[510] = 0x55; b[511] = 0xaa; }],
  ] as const)("%s is the root, whole", (fs, fill) => {
    const img = bare(fill);
    expect(probeFilesystem(reader(img), 0)).toBe(fs);
    const l = layout(img);
    expect(l.kind).toBe("filesystem");
    expect(l.partitions).toEqual([{ designator: "root", number: 0, offset: 0, size: img.length, readOnly: false, fstype: fs, label: "", uuid: "" }]);
  });

  test("a file system at the start and a GPT behind it: refused", () => {
    const img = makeGpt([{ type: ROOT_X64, first: 100, last: 2047 }]);
    img.set(new TextEncoder().encode("XFSB"), 0);
    expect(refusal(img)).toContain("both a xfs file system at its start and a GUID partition table");
  });
});

test("LOOP_CONFIGURE's record: fd, offset, size limit, flags, name", () => {
  const b = loopConfig(7, 1048576, 4096 * 512, LO_FLAGS.AUTOCLEAR | LO_FLAGS.READ_ONLY, "/x.raw");
  expect(b.length).toBe(304);
  const dv = new DataView(b.buffer);
  expect(dv.getUint32(0, true)).toBe(7);
  expect(dv.getBigUint64(8 + 24, true)).toBe(1048576n);
  expect(dv.getBigUint64(8 + 32, true)).toBe(2097152n);
  expect(dv.getUint32(8 + 52, true)).toBe(5);
  expect(new TextDecoder().decode(b.subarray(8 + 56, 8 + 62))).toBe("/x.raw");
});
