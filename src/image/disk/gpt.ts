// Reading a raw disk image's layout as the Discoverable Partitions
// Specification describes it: a GUID partition table (primary header, or the
// backup at the disk's end when the primary is damaged; both with their
// CRC32s checked) behind a protective MBR, whose partition type UUIDs say
// which partition is the root of this architecture, /usr, /home, /srv, /var
// and /tmp; or a single file system with no partition table, which is the
// root. An MBR (DOS) table with one bootable Linux partition is used as
// nspawn uses it. Pure: the image is read through a callback, so tests feed crafted
// buffers.
import { probeFilesystem, type FsType } from "./fs-probe.ts";

export type Designator = "root" | "usr" | "home" | "srv" | "var" | "tmp";

/** Where each designator is mounted in the container (root first, the rest below it). */
export const MOUNT_POINTS: Record<Designator, string> = { root: "/", usr: "/usr", home: "/home", srv: "/srv", var: "/var", tmp: "/tmp" };

export type Arch = "x86-64" | "arm64";

/** Type UUIDs (lower case, dashed) that depend on the architecture. */
const ARCH_TYPES: Record<Arch, { root: string; usr: string }> = {
  "x86-64": { root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", usr: "8484680c-9521-48c6-9c11-b0720656f69e" },
  arm64: { root: "b921b045-1df0-41c3-af44-4c6f280d3fae", usr: "b0e01050-ee5f-4390-949a-9101b17104e9" },
};

const SHARED_TYPES: Record<string, Designator> = {
  "933ac7e1-2eb4-4f13-b844-0e14e2aef915": "home",
  "3b8f8425-20e0-4f3b-907f-1a25a76f98e8": "srv",
  "4d21b016-b534-45c2-a9fb-5c16e091fd2d": "var",
  "7ec6f557-3bc5-4aca-b293-16ef5df639d1": "tmp",
};

/** Types a container has no use for: skipped without a word. */
const IGNORED_TYPES: Record<string, string> = {
  "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "ESP",
  "bc13c2ff-59e6-4262-a352-b275fd6f7172": "XBOOTLDR",
  "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "swap",
};

/** "Linux filesystem data": the root when it is the only Linux partition and there is no root of this architecture. */
export const GENERIC_LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/** GPT partition attribute bits the specification gives a meaning. */
export const GPT_FLAG = { readOnly: 1n << 60n, noAuto: 1n << 63n } as const;

export function hostArch(): Arch | undefined {
  return process.arch === "x64" ? "x86-64" : process.arch === "arm64" ? "arm64" : undefined;
}

export interface Partition {
  designator: Designator;
  /** 1-based GPT entry number (0 for a whole-disk file system) */
  number: number;
  /** byte offset and size in the image */
  offset: number;
  size: number;
  readOnly: boolean;
  fstype: FsType;
  label: string;
  /** the partition's own UUID (empty for a whole-disk file system) */
  uuid: string;
}

export interface DiskLayout {
  kind: "gpt" | "mbr" | "filesystem";
  /** which GPT header was used */
  header?: "primary" | "backup";
  sectorSize?: number;
  partitions: Partition[];
}

/** Reads `length` bytes at `offset` (fewer at the end of the image). */
export type ReadAt = (offset: number, length: number) => Uint8Array;

/** A disk layout that cannot be used, as a sentence about the image. */
export class LayoutError extends Error {}

// ---------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as UEFI uses it). */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GUID as stored on disk (first three fields little-endian) → its text form. */
export function guidText(b: Uint8Array): string {
  const h = (i: number) => b[i]!.toString(16).padStart(2, "0");
  const le = (idx: number[]) => idx.map(h).join("");
  return `${le([3, 2, 1, 0])}-${le([5, 4])}-${le([7, 6])}-${le([8, 9])}-${le([10, 11, 12, 13, 14, 15])}`;
}

/** The text form → the bytes stored on disk (for tests and writers). */
export function guidBytes(text: string): Uint8Array {
  const hex = text.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${text}`);
  const raw = Uint8Array.from(hex.match(/../g)!.map((x) => parseInt(x, 16)));
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Uint8Array.from(order.map((i) => raw[i]!));
}

function designatorOf(type: string, arch: Arch): Designator | undefined {
  const a = ARCH_TYPES[arch];
  if (type === a.root) return "root";
  if (type === a.usr) return "usr";
  return SHARED_TYPES[type];
}

/** Root or /usr of another architecture: named in the error when no partition of ours is found. */
function foreignArch(type: string, arch: Arch): string | undefined {
  for (const [other, t] of Object.entries(ARCH_TYPES)) {
    if (other !== arch && (type === t.root || type === t.usr)) return other;
  }
  return undefined;
}

interface Header {
  myLba: bigint;
  altLba: bigint;
  firstUsable: bigint;
  lastUsable: bigint;
  entriesLba: bigint;
  count: number;
  entrySize: number;
  entriesCrc: number;
}

/** The GPT header at `lba`, checked, or the reason it cannot be used. */
function readHeader(read: ReadAt, lba: bigint, sector: number): Header | string {
  const b = read(Number(lba) * sector, sector);
  if (b.length < 92) return "it is cut short";
  if (new TextDecoder().decode(b.subarray(0, 8)) !== "EFI PART") return "no GPT signature";
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = dv.getUint32(12, true);
  if (size < 92 || size > sector) return `its size ${size} is out of range`;
  const stored = dv.getUint32(16, true);
  const copy = b.slice(0, size);
  copy.fill(0, 16, 20);
  if (crc32(copy) !== stored) return "its CRC32 does not match";
  const h: Header = {
    myLba: dv.getBigUint64(24, true),
    altLba: dv.getBigUint64(32, true),
    firstUsable: dv.getBigUint64(40, true),
    lastUsable: dv.getBigUint64(48, true),
    entriesLba: dv.getBigUint64(72, true),
    count: dv.getUint32(80, true),
    entrySize: dv.getUint32(84, true),
    entriesCrc: dv.getUint32(88, true),
  };
  if (h.myLba !== lba) return `it says it is at sector ${h.myLba}, not ${lba}`;
  if (h.entrySize < 128 || h.entrySize % 8 !== 0 || h.entrySize > 4096) return `its entry size ${h.entrySize} is invalid`;
  if (h.count === 0 || h.count > 1024) return `its entry count ${h.count} is out of range`;
  if (h.firstUsable > h.lastUsable) return "its usable area is empty";
  return h;
}

interface RawEntry {
  number: number;
  type: string;
  uuid: string;
  first: bigint;
  last: bigint;
  attrs: bigint;
  label: string;
}

function readEntries(read: ReadAt, h: Header, sector: number): RawEntry[] | string {
  const bytes = h.count * h.entrySize;
  const b = read(Number(h.entriesLba) * sector, bytes);
  if (b.length < bytes) return "its partition entries are cut short (a truncated image?)";
  if (crc32(b) !== h.entriesCrc) return "the CRC32 of its partition entries does not match";
  const out: RawEntry[] = [];
  for (let i = 0; i < h.count; i++) {
    const e = b.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const type = guidText(e.subarray(0, 16));
    if (type === "00000000-0000-0000-0000-000000000000") continue;
    const dv = new DataView(e.buffer, e.byteOffset, e.byteLength);
    const name = new TextDecoder("utf-16le").decode(e.subarray(56, 128));
    out.push({
      number: i + 1, type, uuid: guidText(e.subarray(16, 32)),
      first: dv.getBigUint64(32, true), last: dv.getBigUint64(40, true), attrs: dv.getBigUint64(48, true),
      label: name.replace(/\0.*$/s, ""),
    });
  }
  return out;
}

/** The protective MBR's 0xEE entry (or a hybrid MBR that has one). */
function hasProtectiveMbr(mbr: Uint8Array): boolean {
  if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return false;
  for (let i = 0; i < 4; i++) if (mbr[446 + i * 16 + 4] === 0xee) return true;
  return false;
}

function hasMbrPartitions(mbr: Uint8Array): boolean {
  if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return false;
  for (let i = 0; i < 4; i++) if (mbr[446 + i * 16 + 4] !== 0) return true;
  return false;
}

/**
 * The image's layout. `size` is the image's size in bytes. Throws a
 * LayoutError saying what is wrong: a damaged table, a partition beyond the
 * end, no root partition, two partitions for the same place.
 */
export function readLayout(read: ReadAt, size: number, arch: Arch): DiskLayout {
  // a file system without a partition table: the whole image is the root
  // (looked for first: a FAT boot sector ends in 55 AA like an MBR)
  const whole = probeFilesystem(read, 0);
  for (const sector of [512, 4096]) {
    const sig = read(sector, 8);
    if (new TextDecoder().decode(sig) === "EFI PART") {
      if (whole) throw new LayoutError(`it holds both a ${whole} file system at its start and a GUID partition table; refusing to guess`);
      return readGpt(read, size, arch, sector);
    }
  }
  if (whole) {
    return { kind: "filesystem", partitions: [{ designator: "root", number: 0, offset: 0, size, readOnly: false, fstype: whole, label: "", uuid: "" }] };
  }
  // the primary header may be the damaged part: a backup at the end still counts
  for (const sector of [512, 4096]) {
    if (size >= sector * 3 && size % sector === 0 && typeof readHeader(read, BigInt(size / sector - 1), sector) !== "string") {
      return readGpt(read, size, arch, sector);
    }
  }
  const mbr = read(0, 512);
  if (hasMbrPartitions(mbr)) return readMbr(read, mbr, size);
  throw new LayoutError("it has neither a GUID partition table nor a known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)");
}

/** An MBR (DOS) table is used as nspawn uses it: its one bootable Linux (0x83) partition is the root. */
function readMbr(read: ReadAt, mbr: Uint8Array, size: number): DiskLayout {
  const dv = new DataView(mbr.buffer, mbr.byteOffset, 512);
  const linux: Array<{ number: number; boot: boolean; start: number; sectors: number }> = [];
  for (let i = 0; i < 4; i++) {
    const at = 446 + i * 16;
    if (mbr[at + 4] === 0x83) linux.push({ number: i + 1, boot: mbr[at] === 0x80, start: dv.getUint32(at + 8, true), sectors: dv.getUint32(at + 12, true) });
  }
  const boot = linux.filter((p) => p.boot);
  if (boot.length !== 1) {
    throw new LayoutError(`it has an MBR (DOS) partition table without a single bootable Linux (0x83) partition (it has ${linux.length} Linux partition(s), ${boot.length} marked bootable)`);
  }
  const p = boot[0]!;
  const offset = p.start * 512;
  const length = p.sectors * 512;
  if (p.start === 0 || p.sectors === 0) throw new LayoutError(`MBR partition ${p.number} is empty`);
  if (offset + length > size) throw new LayoutError(`partition ${p.number} reaches beyond the end of the image (a truncated image?)`);
  const fstype = probeFilesystem(read, offset);
  if (!fstype) throw new LayoutError(`partition ${p.number} (root) holds no known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)`);
  return { kind: "mbr", sectorSize: 512, partitions: [{ designator: "root", number: p.number, offset, size: length, readOnly: false, fstype, label: "", uuid: "" }] };
}

function readGpt(read: ReadAt, size: number, arch: Arch, sector: number): DiskLayout {
  const mbr = read(0, 512);
  if (!hasProtectiveMbr(mbr)) throw new LayoutError("its GUID partition table has no protective MBR");
  const lastLba = BigInt(Math.floor(size / sector) - 1);
  let which: "primary" | "backup" = "primary";
  let h = readHeader(read, 1n, sector);
  let entries = typeof h === "string" ? h : readEntries(read, h, sector);
  if (typeof entries === "string") {
    const why = `the primary GPT header is unusable: ${entries}`;
    // the backup: where the primary says, else at the last sector
    const altAt = typeof h !== "string" && h.altLba > 1n && h.altLba <= lastLba ? h.altLba : lastLba;
    const b = readHeader(read, altAt, sector);
    const be = typeof b === "string" ? b : readEntries(read, b, sector);
    if (typeof be === "string") throw new LayoutError(`${why}, and so is the backup (${be})`);
    h = b as Header;
    entries = be;
    which = "backup";
  }
  const hdr = h as Header;
  const found = new Map<Designator, RawEntry>();
  const foreign = new Set<string>();
  const generic: RawEntry[] = [];
  const end = BigInt(size);
  const all = entries as RawEntry[];
  for (const e of all) {
    if (e.first > e.last) throw new LayoutError(`partition ${e.number} ends before it starts`);
    if (e.first < hdr.firstUsable || e.last > hdr.lastUsable) throw new LayoutError(`partition ${e.number} lies outside the table's usable area`);
    if ((e.last + 1n) * BigInt(sector) > end) throw new LayoutError(`partition ${e.number} reaches beyond the end of the image (a truncated image?)`);
    const o = all.find((x) => x !== e && x.number < e.number && x.first <= e.last && e.first <= x.last);
    if (o) throw new LayoutError(`partitions ${o.number} and ${e.number} overlap`);
  }
  for (const e of all) {
    if (IGNORED_TYPES[e.type]) continue;
    if (e.attrs & GPT_FLAG.noAuto) continue;
    const d = designatorOf(e.type, arch);
    if (!d) {
      const f = foreignArch(e.type, arch);
      if (f) foreign.add(f);
      if (e.type === GENERIC_LINUX) generic.push(e);
      continue;
    }
    const prev = found.get(d);
    if (prev) {
      // systemd-dissect would pick by version in the label; a container
      // started from the wrong one is worse than a refusal
      throw new LayoutError(
        `it has two ${d === "root" ? `root partitions for ${arch}` : `${MOUNT_POINTS[d]} partitions`} (${prev.number} and ${e.number}); ` +
          `mark all but one with the GPT no-auto flag (bit 63) or change their type`,
      );
    }
    found.set(d, e);
  }
  if (!found.has("root")) {
    // as the specification allows: a single generic Linux partition is the root
    if (generic.length === 1 && !found.has("usr")) found.set("root", generic[0]!);
    else if (!found.has("usr")) {
      const extra = foreign.size ? ` (it has one for ${[...foreign].join(", ")})` : generic.length > 1 ? ` (it has ${generic.length} generic Linux partitions; which is the root is not said)` : "";
      throw new LayoutError(`it has no root partition for ${arch}${extra}`);
    } else throw new LayoutError(`it has a /usr partition but no root partition for ${arch}; a /usr-only image is not supported`);
  }
  const order: Designator[] = ["root", "usr", "var", "home", "srv", "tmp"];
  return {
    kind: "gpt", header: which, sectorSize: sector,
    partitions: order.filter((d) => found.has(d)).map((d) => partitionOf(found.get(d)!, d, sector, read)),
  };
}

function partitionOf(e: RawEntry, d: Designator, sector: number, read: ReadAt): Partition {
  const offset = Number(e.first) * sector;
  const fstype = probeFilesystem(read, offset);
  if (!fstype) throw new LayoutError(`partition ${e.number} (${d === "root" ? "root" : MOUNT_POINTS[d]}) holds no known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)`);
  return {
    designator: d, number: e.number, offset, size: Number(e.last - e.first + 1n) * sector,
    readOnly: (e.attrs & GPT_FLAG.readOnly) !== 0n, fstype, label: e.label, uuid: e.uuid,
  };
}
