// pull-oci: an image from a registry. The reference is resolved to one
// manifest (an index or manifest list by the platform), then install.ts
// fetches the blobs it lacks through the registry client, verifying each.
// Verified blobs stay in the store when a pull fails, and a blob cut short
// stays in partial/: the next pull downloads only what is missing.
import { SpawnctlError } from "../util/errors.ts";
import type { Job } from "../image/job.ts";
import { runInstall, parseManifest, type BlobSource, type Resolved } from "./install.ts";
import { formatReference, insecureRegistries, parseReference, type ImageRef } from "./reference.ts";
import { findCreds, Registry } from "./registry.ts";
import { choosePlatform, docKind, hostPlatform, indexSchema, parseDoc, parsePlatform, type Descriptor } from "./schema.ts";
import type { ImageRecord } from "./image-dir.ts";

export interface PullOptions {
  force: boolean;
  readOnly: boolean;
  platform?: string;
  creds?: string;
  insecure: string[];
}

/** The local name for a pull: the repository's last component. */
export function pullName(ref: ImageRef): string {
  return ref.repository.split("/").pop()!;
}

async function resolve(reg: Registry, ref: ImageRef, label: string, o: PullOptions): Promise<Resolved> {
  let m = await reg.manifest(ref.digest ?? ref.tag!);
  let platform: string | undefined;
  for (let depth = 0; depth < 4; depth++) {
    const what = `the manifest ${m.digest.slice(0, 19)} of ${label}`;
    if (docKind(m.mediaType || undefined, m.bytes, what) === "manifest") {
      return { manifest: parseManifest(m.bytes, label), manifestBytes: m.bytes, manifestDigest: m.digest, manifestMediaType: m.mediaType || "application/vnd.oci.image.manifest.v1+json", platform };
    }
    const ix = parseDoc(indexSchema(), m.bytes, `the index ${m.digest.slice(0, 19)} of ${label}`);
    const d: Descriptor = choosePlatform(ix, o.platform ? parsePlatform(o.platform) : hostPlatform(), `the index of ${label}`);
    if (d.platform) platform = [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join("/");
    m = await reg.manifest(d.digest);
  }
  throw new SpawnctlError(`${label}: indexes nested too deep.`);
}

export async function pullOci(refText: string, given: string | undefined, o: PullOptions): Promise<ImageRecord> {
  const ref = parseReference(refText);
  const label = formatReference(ref);
  const name = given ?? pullName(ref);
  const doing = `pulling ${label} as image '${name}'`;
  return runInstall(name, label, { force: o.force, readOnly: o.readOnly, keepBlobs: true, reference: label, verb: "Pulled" }, doing, async (_s, job: Job) => {
    // registries that may be plain HTTP: --insecure-registry=, SPAWNCTL_OCI_INSECURE and the configuration's
    const insecure = [...o.insecure, ...insecureRegistries()];
    const reg = new Registry(ref, findCreds(ref.registry, o.creds), insecure, job.signal);
    const resolved = await resolve(reg, ref, label, o);
    const src: BlobSource = {
      label,
      fetch: (store, d, what, _job, progress) => reg.blob(store, d, what, progress),
    };
    return { src, resolved };
  });
}
