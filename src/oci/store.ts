// The pool's content-addressed OCI store, POOL/.#oci (a name no image can
// have): blobs/sha256/HEX holds manifests and configs, and compressed layers
// until they are unpacked, every one verified against its digest before it
// is stored or used; layers/HEX holds each layer unpacked once (HEX of its
// diff_id, the digest of the uncompressed tar), which every image using it
// stacks read-only (and then its blob goes: one copy of each layer);
// partial/HEX holds a blob a pull was cut off in, to resume from. An image
// is POOL/NAME.oci (see image-dir.ts). Imports hold the store's lock shared,
// so the garbage collection (exclusive) never removes what an import is
// still putting together.
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeSync } from "node:fs";
import { decompress } from "../archive/decompress.ts";
import { flock, LOCK_EX, LOCK_SH, LOCK_UN, strerror } from "../sys/ffi.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { Lock } from "../util/lock.ts";
import { removePath, type Job } from "../image/job.ts";
import { tempOwner, tempPath } from "../image/names.ts";
import { ensurePool, poolDir } from "../image/pool.ts";
import { renameInto } from "../image/sys.ts";
import { processStart } from "../container/registry.ts";
import { DIGEST_RE, LAYER_TYPES, MT } from "./schema.ts";
import { unpackLayer } from "./layer.ts";

export const STORE_NAME = ".#oci";

export interface Store {
  pool: string;
  root: string;
  blobs: string;
  layers: string;
  /** partial downloads, kept for the next pull to resume */
  partial: string;
}

export function storeAt(pool = poolDir()): Store {
  const root = `${pool}/${STORE_NAME}`;
  return { pool, root, blobs: `${root}/blobs/sha256`, layers: `${root}/layers`, partial: `${root}/partial` };
}

/** The store of the pool, created if missing. */
export function openStore(): Store {
  const s = storeAt(ensurePool());
  for (const d of [s.root, s.blobs, s.layers, s.partial]) mkdirSync(d, { recursive: true, mode: 0o700 });
  return s;
}

/** The store's lock: shared while an import adds to it, exclusive for the garbage collection. Waits for it. */
export function lockStore(s: Store, shared: boolean): Lock {
  const path = `${s.root}/lock`;
  const fd = openSync(path, "a", 0o600);
  const r = flock(fd, shared ? LOCK_SH : LOCK_EX);
  if (r !== 0) {
    closeSync(fd);
    throw new SpawnctlError(`locking the OCI store ${path}: flock: ${strerror(r)}`, { errno: r });
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
    held: () => (held ? [{ fd, path }] : []),
  };
}

export const hexOf = (digest: string) => digest.slice("sha256:".length);

export function sha256(bytes: Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

export function checkDigest(digest: string, what: string): void {
  if (!DIGEST_RE.test(digest)) throw new SpawnctlError(`${what}: the digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>.`);
}

/** Throws unless `bytes` have the digest `digest`. */
export function verify(bytes: Uint8Array, digest: string, what: string): void {
  const got = sha256(bytes);
  if (got !== digest) throw new SpawnctlError(`${what}: digest mismatch: expected ${digest}, got ${got} (the data is corrupt or was tampered with).`);
}

export const blobPath = (s: Store, digest: string) => `${s.blobs}/${hexOf(digest)}`;
export const layerPath = (s: Store, diffId: string) => `${s.layers}/${hexOf(diffId)}`;

export function hasBlob(s: Store, digest: string): boolean {
  return existsSync(blobPath(s, digest));
}

/** Store `bytes` as the blob `digest` after checking it; nothing is stored when it does not match. */
export function putBlob(s: Store, bytes: Uint8Array, digest: string, what: string): void {
  checkDigest(digest, what);
  verify(bytes, digest, what);
  if (hasBlob(s, digest)) return;
  const tmp = tempPath(s.blobs, "blob");
  try {
    const fd = openSync(tmp, "wx", 0o600);
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, blobPath(s, digest));
  } catch (e) {
    removePath(tmp);
    throw new SpawnctlError(`${what}: storing ${blobPath(s, digest)}: ${fsMessage(e)}`, { cause: e });
  }
}

/** Remove a blob (a layer's, once it is unpacked). */
export function dropBlob(s: Store, digest: string): void {
  removePath(blobPath(s, digest));
}

/** Move an already verified file into the store as the blob `digest`. */
export function adoptBlob(s: Store, file: string, digest: string): void {
  if (hasBlob(s, digest)) return removePath(file);
  renameSync(file, blobPath(s, digest));
}

/** The blob `digest`, checked again against its digest before use. */
export function readBlob(s: Store, digest: string, what: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(blobPath(s, digest));
  } catch (e) {
    throw new SpawnctlError(`${what}: reading the blob ${digest} from ${s.blobs}: ${fsMessage(e)}`, { cause: e });
  }
  verify(bytes, digest, what);
  return bytes;
}

/** The layer's uncompressed tar from its blob, by its media type (and its magic number). */
export function layerTar(bytes: Uint8Array, mediaType: string, what: string): Uint8Array {
  if (!LAYER_TYPES.includes(mediaType)) throw new SpawnctlError(`${what}: unknown layer media type ${JSON.stringify(mediaType)}.`);
  // the media type names gzip for docker layers; some tools store them uncompressed: the bytes decide
  const out = decompress(bytes, what);
  if (mediaType === MT.ociLayerZstd && out === bytes) throw new SpawnctlError(`${what}: the media type says zstd, but the data is not zstd-compressed.`);
  return out;
}

/**
 * Unpack the layer blob `digest` into layers/HEX(diffId) unless it is there
 * already; the uncompressed tar must have the config's diff_id. Unpacked to
 * a temporary name and renamed: a layer directory is always complete.
 */
export async function ensureLayer(s: Store, digest: string, mediaType: string, diffId: string, what: string, job: Job): Promise<boolean> {
  const target = layerPath(s, diffId);
  if (existsSync(target)) return false;
  if (!hasBlob(s, digest)) throw new SpawnctlError(`${what}: the blob ${digest} is not in the store ${s.blobs}.`);
  const tar = layerTar(readBlob(s, digest, what), mediaType, what);
  verify(tar, diffId, `${what} (uncompressed, against the config's rootfs.diff_ids)`);
  await job.tick();
  const tmp = tempPath(s.layers, "layer");
  job.removeOnFailure(tmp);
  mkdirSync(tmp, { mode: 0o755 });
  unpackLayer(tar, tmp, what);
  await job.tick();
  try {
    renameInto(tmp, target, what);
  } catch (e) {
    // another import unpacked it meanwhile
    if (existsSync(target)) {
      removePath(tmp);
      return false;
    }
    throw e;
  }
  return true;
}

export interface GcResult {
  blobs: number;
  layers: number;
  bytes: number;
}

function treeSize(path: string): number {
  let n = 0;
  const walk = (p: string) => {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    n += st.blocks * 512;
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(`${p}/${e}`);
  };
  try {
    walk(path);
  } catch {
    /* best effort */
  }
  return n;
}

/**
 * Remove what no image of the pool refers to: blobs, unpacked layers, and
 * temporary files of imports that died. `refs` gives the digests (blobs and
 * diff_ids) an image directory refers to.
 */
export function collectGarbage(s: Store, refs: Set<string>): GcResult {
  const res: GcResult = { blobs: 0, layers: 0, bytes: 0 };
  if (!existsSync(s.root)) return res;
  const lock = lockStore(s, false);
  try {
    for (const [dir, isLayer] of [[s.blobs, false], [s.layers, true]] as const) {
      for (const n of readdirSync(dir)) {
        const pid = tempOwner(n);
        const stale = pid !== undefined && processStart(pid) === undefined;
        if (pid !== undefined && !stale) continue;
        if (!stale && refs.has(`sha256:${n}`)) continue;
        res.bytes += isLayer ? treeSize(`${dir}/${n}`) : statSync(`${dir}/${n}`).blocks * 512;
        removePath(`${dir}/${n}`);
        if (stale) continue;
        if (isLayer) res.layers++;
        else res.blobs++;
      }
    }
  } finally {
    lock.release();
  }
  return res;
}
