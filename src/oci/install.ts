// From a manifest to an image in the pool, wherever the blobs come from (a
// registry, an OCI layout, an oci-archive or a docker-archive): every blob is
// verified against its digest before it is stored, the config is checked,
// each layer is unpacked once into the store (its uncompressed tar checked
// against the config's diff_id), and the image directory is renamed into
// place last. A failure leaves no image; what it had added to the store and
// no image refers to is collected, except blobs a pull keeps to resume.
import { existsSync } from "node:fs";
import { info } from "../util/log.ts";
import { SpawnctlError } from "../util/errors.ts";
import type { Job } from "../image/job.ts";
import { install, withNewImage } from "../image/transfer.ts";
import { checkNewMachineName } from "../image/names.ts";
import { Progress } from "../image/progress.ts";
import { makeImageDir, OCI_SUFFIX, poolRefs, type ImageRecord } from "./image-dir.ts";
import { CONFIG_TYPES, configSchema, manifestSchema, parseDoc, type Descriptor, type Manifest } from "./schema.ts";
import { collectGarbage, dropBlob, ensureLayer, hasBlob, layerPath, lockStore, openStore, putBlob, readBlob, type Store } from "./store.ts";

/** Where the blobs of one image come from. */
export interface BlobSource {
  /** for messages: "registry.example/app:1", "img.tar" */
  label: string;
  /** the blob `d`, or it stored by the source itself (a download), verified */
  fetch(store: Store, d: Descriptor, what: string, job: Job, progress?: (bytes: number) => void): Promise<void>;
}

export interface Resolved {
  manifest: Manifest;
  manifestBytes: Uint8Array;
  manifestDigest: string;
  manifestMediaType: string;
  platform?: string;
}

export interface InstallOptions {
  force: boolean;
  readOnly: boolean;
  /** keep verified blobs after a failure (a pull resumes from them) */
  keepBlobs?: boolean;
  reference?: string;
}

/** The store and its shared lock for the duration of `fn`; on failure, what no image needs goes. */
export async function withStore<T>(keepBlobs: boolean, fn: (s: Store) => Promise<T>): Promise<T> {
  const s = openStore();
  const lock = lockStore(s, true);
  try {
    return await fn(s);
  } catch (e) {
    lock.release();
    if (!keepBlobs) {
      try {
        collectGarbage(s, poolRefs(s));
      } catch {
        /* the error that matters is the first */
      }
    }
    throw e;
  } finally {
    lock.release();
  }
}

/** Install the image `r` from `src` as `name`. The caller holds the store (withStore). */
export async function installImage(s: Store, src: BlobSource, r: Resolved, name: string, o: InstallOptions, job: Job, doing: string): Promise<ImageRecord> {
  const what = (x: string) => `${x} of ${src.label}`;
  putBlob(s, r.manifestBytes, r.manifestDigest, what("the manifest"));
  const m = r.manifest;
  if (!CONFIG_TYPES.includes(m.config.mediaType)) throw new SpawnctlError(`${what("the manifest")}: config.mediaType: unknown config media type ${JSON.stringify(m.config.mediaType)}.`);
  if (!hasBlob(s, m.config.digest)) await src.fetch(s, m.config, what("the config"), job);
  const config = parseDoc(configSchema(), readBlob(s, m.config.digest, what("the config")), what("the config"));
  if (config.rootfs.diff_ids.length !== m.layers.length) {
    throw new SpawnctlError(`${what("the config")}: rootfs.diff_ids lists ${config.rootfs.diff_ids.length} layers, the manifest ${m.layers.length}.`);
  }
  const total = m.layers.reduce((n, l) => n + l.size, 0);
  // one line: the layer at work (its number and digest) and the bytes of all of them
  const n = m.layers.length;
  let done = 0;
  for (const [i, l] of m.layers.entries()) {
    const w = what(`layer ${i + 1} (${l.digest.slice(0, 19)})`);
    // a layer unpacked already (by its diff_id: from any image, however compressed) needs no download
    if (!hasBlob(s, l.digest) && !existsSync(layerPath(s, config.rootfs.diff_ids[i]!))) {
      const line = new Progress(`Fetching layer ${i + 1}/${n} ${l.digest.slice(7, 19)} of '${name}'`);
      await src.fetch(s, l, w, job, (b) => line.update(done + b, total));
      line.clear();
    }
    done += l.size;
  }
  done = 0;
  for (const [i, l] of m.layers.entries()) {
    const line = new Progress(`Unpacking layer ${i + 1}/${n} ${l.digest.slice(7, 19)} of '${name}'`);
    line.update(done, total);
    await ensureLayer(s, l.digest, l.mediaType, config.rootfs.diff_ids[i]!, what(`layer ${i + 1} (${l.digest.slice(0, 19)})`), job);
    done += l.size;
    line.clear();
  }
  // the unpacked layers are the store's copy: their compressed blobs go (export-oci makes new ones)
  for (const l of m.layers) dropBlob(s, l.digest);
  const record: ImageRecord = {
    version: 1,
    source: src.label,
    ...(o.reference ? { reference: o.reference } : {}),
    manifestDigest: r.manifestDigest,
    manifestMediaType: r.manifestMediaType,
    configDigest: m.config.digest,
    ...(r.platform ? { platform: r.platform } : {}),
    layers: m.layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: config.rootfs.diff_ids[i]! })),
    created: new Date().toISOString(),
  };
  const tmp = makeImageDir(s, record, job, `oci-${name}`);
  install(tmp, `${s.pool}/${name}${OCI_SUFFIX}`, name, s.pool, o.force, job, doing);
  if (o.readOnly) {
    const { markReadOnly } = await import("../image/ops.ts");
    markReadOnly(name, true);
  }
  return record;
}

/** Parse a manifest blob (already verified by the caller) for `label`. */
export function parseManifest(bytes: Uint8Array, label: string): Manifest {
  return parseDoc(manifestSchema(), bytes, `the manifest of ${label}`);
}

/** The whole import/pull as a job: name lock, store, install, a line at the end. */
export async function runInstall(name: string, label: string, o: InstallOptions & { verb?: string }, doing: string, body: (s: Store, job: Job) => Promise<{ src: BlobSource; resolved: Resolved; reference?: string }>): Promise<ImageRecord> {
  checkNewMachineName(name);
  let rec: ImageRecord | undefined;
  await withNewImage(doing, name, openStore().pool, o.force, (job) =>
    withStore(!!o.keepBlobs, async (s) => {
      const { src, resolved, reference } = await body(s, job);
      rec = await installImage(s, src, resolved, name, reference ? { ...o, reference } : o, job, doing);
    }),
  );
  info(`${o.verb ?? "Imported"} image '${name}' from ${label} (${rec!.layers.length} layer${rec!.layers.length === 1 ? "" : "s"}, ${rec!.manifestDigest.slice(0, 19)}).`);
  // an image --force replaced may have left layers no image uses
  if (o.force) {
    const s = openStore();
    collectGarbage(s, poolRefs(s));
  }
  return rec!;
}

