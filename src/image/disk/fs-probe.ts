// Which file system a partition (or a whole image) holds, from its
// superblock's magic number: the types spawnctl mounts from disk images.
// Read through a callback (see gpt.ts ReadAt), without blkid.

export type FsType = "ext4" | "btrfs" | "xfs" | "vfat" | "squashfs" | "erofs";

type ReadAt = (offset: number, length: number) => Uint8Array;

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));
const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const u32 = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** The file system at byte `offset`, or undefined when none of ours is there. */
export function probeFilesystem(read: ReadAt, offset: number): FsType | undefined {
  const head = read(offset, 4096);
  if (head.length < 512) return undefined;
  if (ascii(head, 0, 4) === "XFSB") return "xfs";
  // squashfs 4: "hsqs", version 4.0 at 28
  if (ascii(head, 0, 4) === "hsqs" && u16(head, 28) === 4) return "squashfs";
  if (head.length >= 1024 + 60) {
    // ext2/3/4: magic 0xEF53 at 56 of the superblock at 1024 (the ext4 driver mounts all three)
    if (u16(head, 1024 + 56) === 0xef53) return "ext4";
    if (u32(head, 1024) === 0xe0f5e1e2) return "erofs";
  }
  // FAT: a jump instruction, a sane sector size and "FAT" in the FAT12/16 or FAT32 type field
  if ((head[0] === 0xeb || head[0] === 0xe9) && head[510] === 0x55 && head[511] === 0xaa) {
    const bps = u16(head, 11);
    if ([512, 1024, 2048, 4096].includes(bps) && (ascii(head, 54, 3) === "FAT" || ascii(head, 82, 3) === "FAT")) return "vfat";
  }
  const btrfs = read(offset + 0x10000 + 0x40, 8);
  if (btrfs.length === 8 && ascii(btrfs, 0, 8) === "_BHRfS_M") return "btrfs";
  return undefined;
}
