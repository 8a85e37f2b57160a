// Raw disk images: copies that keep them sparse (holes stay holes, zero
// blocks become holes), reflinked where the file system can, with progress
// and cancellation; qcow2 is recognised and refused.
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { Job } from "./job.ts";
import { changeInodeFlags, FS_NOCOW_FL, ftruncate, reflink, seekData, seekHole } from "./sys.ts";

const CHUNK = 1 << 20;
const BLOCK = 64 * 1024;

export function isQcow2(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x51 && head[1] === 0x46 && head[2] === 0x49 && head[3] === 0xfb; // "QFI\xfb"
}

function allZero(b: Uint8Array): boolean {
  // 8 bytes at a time where aligned
  const n8 = b.length >>> 3;
  if ((b.byteOffset & 7) === 0) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, n8);
    for (let i = 0; i < n8; i++) if (w[i] !== 0n) return false;
    for (let i = n8 << 3; i < b.length; i++) if (b[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Writes a stream of bytes at increasing offsets into a file, leaving zero blocks as holes. */
export class SparseWriter {
  private pos = 0;
  constructor(
    readonly fd: number,
    readonly path: string,
  ) {}

  get size(): number {
    return this.pos;
  }

  /** Continue at `pos` (what lies between stays a hole). */
  seek(pos: number): void {
    this.pos = pos;
  }

  write(data: Uint8Array): void {
    for (let off = 0; off < data.length; off += BLOCK) {
      const block = data.subarray(off, Math.min(off + BLOCK, data.length));
      if (!allZero(block)) {
        let done = 0;
        while (done < block.length) done += writeSync(this.fd, block, done, block.length - done, this.pos + done);
      }
      this.pos += block.length;
    }
  }

  /** Set the final size (trailing holes) and flush to disk. */
  finish(): void {
    const e = ftruncate(this.fd, this.pos);
    if (e) throw new SpawnctlError(`writing ${this.path}: ftruncate: errno ${e}`);
    fsyncSync(this.fd);
  }
}

/** Open a new file for a raw image; no copy-on-write on btrfs (as machined does for raw images), where it can be set. */
export function createRawFile(path: string, mode = 0o644): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | 0o2000000, mode);
  } catch (e) {
    throw new SpawnctlError(`creating ${path}: ${fsMessage(e)}`, { cause: e });
  }
  changeInodeFlags(fd, FS_NOCOW_FL, FS_NOCOW_FL); // only while empty; ignored where unsupported
  return fd;
}

/**
 * Copy a raw image file to `dst` (created, must not exist): a reflink where
 * possible, else the data extents only, with zero blocks left as holes.
 */
export async function copyRawFile(src: string, dst: string, job: Job, progress?: (done: number, total: number) => void, mode = 0o644): Promise<void> {
  let sfd: number;
  try {
    sfd = openSync(src, constants.O_RDONLY | 0o2000000);
  } catch (e) {
    throw new SpawnctlError(`reading ${src}: ${fsMessage(e)}`, { cause: e });
  }
  const dfd = createRawFile(dst, mode);
  try {
    const size = fstatSync(sfd).size;
    if (reflink(sfd, dfd) === 0) {
      progress?.(size, size);
      return;
    }
    const w = new SparseWriter(dfd, dst);
    const buf = new Uint8Array(CHUNK);
    let off = 0;
    while (off < size) {
      const data = seekData(sfd, off);
      if (data < 0 || data >= size) break;
      const hole = Math.min(seekHole(sfd, data), size);
      w.seek(data);
      for (let p = data; p < hole; ) {
        const n = readSync(sfd, buf, 0, Math.min(CHUNK, hole - p), p);
        if (n === 0) break;
        w.write(buf.subarray(0, n));
        p += n;
        progress?.(p, size);
        await job.tick();
      }
      off = hole;
    }
    w.seek(size);
    w.finish();
  } finally {
    closeSync(sfd);
    closeSync(dfd);
  }
}
