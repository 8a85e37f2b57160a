// Trees to tar streams and back, for export-tar, import-tar and pull-tar.
//
// Export walks the tree in name order and hands each entry to the TarWriter
// of archive/tar.ts: owners numerically, modes with setuid bits, hardlinks
// as links to the first name, symlinks, device nodes, fifos and every
// extended attribute (ACLs and file capabilities live there). File contents
// are opened with openat2(RESOLVE_IN_ROOT) and O_NOFOLLOW, so a symlink that
// appears in the tree while it is read never leads to a host file.
//
// Import reads the archive with readTar and extracts it with extractTar
// (archive/extract.ts) with refuseEscapes: names with "..", absolute
// names and symlinked parents that lead out of the tree fail the whole
// import. Device nodes are refused unless asked for (see images.ts). The
// extraction runs in batches with a turn of the event loop between them, so
// SIGINT can cancel a long import; directory metadata is applied once more
// at the end, since later batches change the mtimes of earlier directories.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { extractTar, type ExtractOptions, type ExtractStats } from "../archive/extract.ts";
import { readTar, TarWriter, type TarEntry, type TarMeta } from "../archive/tar.ts";
import { openat2, RESOLVE } from "../sys/at.ts";
import { O } from "../sys/consts.ts";
import { listXattrs } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import type { ByteSink } from "./compress.ts";
import type { Job } from "./job.ts";

export interface ExportStats {
  entries: number;
  /** bytes of tar stream produced (before compression) */
  bytes: number;
  skipped: string[];
}

function devNumbers(rdev: number): [number, number] {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return [major, minor];
}

/** Read a regular file of the tree through an fd that cannot have escaped it; undefined if it is no longer a regular file. */
function readInTree(rootFd: number, rel: string, ino: number): Uint8Array | undefined {
  // O_NONBLOCK: a fifo swapped in for the file must not hang the export
  const flags = O.RDONLY | O.NOFOLLOW | O.CLOEXEC | O.NOCTTY | constants.O_NONBLOCK;
  const fd = openat2(rootFd, rel, flags, 0, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS, `reading ${rel}`);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.ino !== ino) return undefined;
    const buf = new Uint8Array(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break; // shrank while we read
      off += n;
    }
    return off === buf.length ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Write the tree at `root` as a tar stream into `sink`. */
export async function writeTreeAsTar(root: string, sink: ByteSink, job: Job, progress?: (bytes: number) => void): Promise<ExportStats> {
  const stats: ExportStats = { entries: 0, bytes: 0, skipped: [] };
  const pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const tw = new TarWriter((c) => {
    pending.push(c);
    pendingBytes += c.length;
  });
  const flush = async () => {
    for (const c of pending) await sink.write(c);
    stats.bytes += pendingBytes;
    pending.length = 0;
    pendingBytes = 0;
    progress?.(stats.bytes);
  };
  const rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY | 0o2000000);
  const firstName = new Map<string, string>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel ? `${root}/${rel}` : root;
    const st = lstatSync(abs);
    const name = rel ? `./${rel}` : ".";
    const meta: TarMeta = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    const xattrs = listXattrs(abs);
    if (xattrs.size) meta.xattrs = xattrs;
    stats.entries++;
    if (st.isDirectory()) {
      tw.addDir(name, meta);
      for (const n of readdirSync(abs).sort()) {
        await visit(rel ? `${rel}/${n}` : n);
      }
      return;
    }
    if (st.nlink > 1 && !st.isSymbolicLink()) {
      const key = `${st.dev}:${st.ino}`;
      const first = firstName.get(key);
      if (first) {
        tw.addHardlink(name, first, meta);
        return;
      }
      firstName.set(key, name);
    }
    if (st.isFile()) {
      const data = readInTree(rootFd, rel, st.ino);
      if (!data) {
        stats.skipped.push(rel);
        firstName.delete(`${st.dev}:${st.ino}`);
        return;
      }
      tw.addFile(name, data, meta);
    } else if (st.isSymbolicLink()) {
      tw.addSymlink(name, readlinkSync(abs), meta);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const [major, minor] = devNumbers(st.rdev);
      tw.addDevice(name, st.isCharacterDevice() ? "char" : "block", major, minor, meta);
    } else if (st.isFIFO()) {
      tw.addFifo(name, meta);
    } else {
      stats.skipped.push(rel); // sockets: tar ignores them too
      stats.entries--;
      return;
    }
    if (pendingBytes >= 1 << 20) await flush();
    await job.tick();
  };
  try {
    await visit("");
    tw.finish();
    await flush();
  } finally {
    closeSync(rootFd);
  }
  for (const s of stats.skipped) warn(`${s}: a socket or a file that changed while it was read; not exported.`);
  return stats;
}

export interface ImportTarOptions {
  /** create device nodes found in the archive (otherwise they fail the import) */
  devices: boolean;
  /** the archive, for messages */
  name: string;
  progress?(bytes: number, entries: number): void;
}

const BATCH_ENTRIES = 256;
const BATCH_BYTES = 16 << 20;

function addStats(into: ExtractStats, s: ExtractStats): void {
  for (const k of Object.keys(s) as Array<keyof ExtractStats>) into[k] += s[k];
}

/** Extract the (decompressed) tar archive `bytes` into the existing directory `root`. */
export async function extractTarBytes(bytes: Uint8Array, root: string, job: Job, o: ImportTarOptions): Promise<ExtractStats> {
  const opts: ExtractOptions = { refuseEscapes: true, devices: o.devices, refuseDevices: !o.devices, name: o.name };
  const total: ExtractStats = { entries: 0, bytes: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, devices: 0, fifos: 0, skipped: 0, xattrsSkipped: 0 };
  const dirs: TarEntry[] = [];
  let batch: TarEntry[] = [];
  let batchBytes = 0;
  let done = 0;
  const run = async () => {
    if (!batch.length) return;
    try {
      addStats(total, extractTar(batch, root, opts));
    } catch (e) {
      if (e instanceof SpawnctlError && !o.devices && e.message.endsWith("device nodes are not allowed")) {
        throw new SpawnctlError(`${e.message} (--devices allows them; containers get their own /dev anyway)`, { cause: e });
      }
      throw e;
    }
    batch = [];
    batchBytes = 0;
    o.progress?.(done, total.entries);
    await job.tick();
  };
  for (const e of readTar(bytes, { name: o.name })) {
    batch.push(e);
    if (e.type === "dir") dirs.push(e);
    batchBytes += e.size;
    done += 512 + e.size;
    if (batch.length >= BATCH_ENTRIES || batchBytes >= BATCH_BYTES) await run();
  }
  await run();
  // the directories' own metadata (mtimes above all) once more, now that nothing is added to them any more
  const still = dirs.filter((d) => {
    try {
      return lstatSync(d.path === "." ? root : `${root}/${d.path}`).isDirectory();
    } catch {
      return false;
    }
  });
  extractTar(still, root, opts);
  if (total.entries === 0) throw new SpawnctlError(`importing ${o.name}: the archive holds no entries.`);
  return total;
}
