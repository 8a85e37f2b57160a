// An OCI image in the pool: POOL/NAME.oci with
//   image.json   what it is (reference, manifest and config digests, layers)
//   lower/NNNN   relative links to its layers in the store, bottom-most first
//   upper/ work/ its own writable layer (overlayfs upper and work directories)
// It is made under a temporary name and renamed into place, so an image
// either is complete or is not there. A clone is a new directory with the
// same links and an empty upper layer: the layers are never copied.
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import type * as Z from "zod/mini";
import { lazySchema } from "../util/state.ts";
import { SpawnctlError } from "../util/errors.ts";
import type { Job } from "../image/job.ts";
import { tempPath } from "../image/names.ts";
import { hexOf, STORE_NAME, type Store } from "./store.ts";
import { DIGEST_RE, parseDoc } from "./schema.ts";

export const OCI_SUFFIX = ".oci";

export const recordSchema = lazySchema((zz) => {
  const digest = zz.string().check(zz.regex(DIGEST_RE));
  return zz.object({
    version: zz.literal(1),
    /** where it came from: a registry reference, or the imported file */
    source: zz.string(),
    reference: zz.optional(zz.string()),
    manifestDigest: digest,
    manifestMediaType: zz.string(),
    configDigest: digest,
    platform: zz.optional(zz.string()),
    layers: zz.array(zz.object({ digest, mediaType: zz.string(), size: zz.number(), diffId: digest })),
    created: zz.string(),
  });
});
export type ImageRecord = Z.infer<ReturnType<typeof recordSchema>>;

export function readRecord(dir: string): ImageRecord {
  let text: string;
  try {
    text = readFileSync(`${dir}/image.json`, "utf8");
  } catch (e) {
    throw new SpawnctlError(`${dir}/image.json: ${(e as Error).message}`);
  }
  return parseDoc(recordSchema(), text, `${dir}/image.json`);
}

/** The digests (blobs and diff_ids) an image directory needs from the store. */
export function recordRefs(r: ImageRecord): string[] {
  return [r.manifestDigest, r.configDigest, ...r.layers.flatMap((l) => [l.digest, l.diffId])];
}

/** Every digest the OCI images of the pool need (an unreadable image.json is an error: nothing is collected then). */
export function poolRefs(s: Store): Set<string> {
  const refs = new Set<string>();
  for (const n of readdirSync(s.pool)) {
    // images, and imports and clones under way (hidden temporary names)
    if (!n.endsWith(OCI_SUFFIX) && !n.startsWith(".#spawnctl.")) continue;
    let files: string[];
    try {
      files = readdirSync(`${s.pool}/${n}`);
    } catch {
      continue;
    }
    if (!files.includes("image.json")) continue;
    for (const d of recordRefs(readRecord(`${s.pool}/${n}`))) refs.add(d);
  }
  return refs;
}

/** Make the image directory for `record` (its layers unpacked already) at a temporary name; returns it. */
export function makeImageDir(s: Store, record: ImageRecord, job: Job, purpose: string): string {
  const tmp = tempPath(s.pool, purpose);
  job.removeOnFailure(tmp);
  mkdirSync(tmp, { mode: 0o700 });
  mkdirSync(`${tmp}/lower`, { mode: 0o755 });
  mkdirSync(`${tmp}/upper`, { mode: 0o755 });
  mkdirSync(`${tmp}/work`, { mode: 0o700 });
  record.layers.forEach((l, i) => {
    symlinkSync(`../../${STORE_NAME}/layers/${hexOf(l.diffId)}`, `${tmp}/lower/${String(i).padStart(4, "0")}`);
  });
  writeFileSync(`${tmp}/image.json`, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
  return tmp;
}
