// import-oci: an image from an OCI image layout directory, an oci-archive
// (a tar of one) or a docker-archive (docker save), with no network at all.
// The archive's members are read in place (no unpacking to disk); the
// layout's index.json (or the archive's manifest.json) picks the image, an
// index by the platform, and install.ts verifies and stores it.
import { existsSync, readFileSync, statSync } from "node:fs";
import { decompress, sniffCompression } from "../archive/decompress.ts";
import { readTar } from "../archive/tar.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { stripTarSuffix } from "../image/names.ts";
import type { Job } from "../image/job.ts";
import { runInstall, parseManifest, type BlobSource, type Resolved } from "./install.ts";
import {
  choosePlatform, dockerArchiveSchema, docKind, hostPlatform, indexSchema, layoutSchema, MT, parseDoc, parsePlatform, type Descriptor, type Manifest,
} from "./schema.ts";
import { putBlob, sha256, verify, type Store } from "./store.ts";
import type { ImageRecord } from "./image-dir.ts";

export interface ImportOciOptions {
  force: boolean;
  readOnly: boolean;
  platform?: string;
}

/** Files of an image layout: a directory, or the members of an archive. */
interface Files {
  label: string;
  get(path: string): Uint8Array | undefined;
}

function dirFiles(dir: string): Files {
  return {
    label: dir,
    get(path) {
      try {
        return readFileSync(`${dir}/${path}`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new SpawnctlError(`reading ${dir}/${path}: ${fsMessage(e)}`, { cause: e });
      }
    },
  };
}

function tarFiles(file: string, bytes: Uint8Array): Files {
  const members = new Map<string, Uint8Array>();
  const links: Array<[string, string]> = [];
  for (const e of readTar(bytes, { name: file })) {
    const p = e.path.replace(/^\.\//, "");
    if (e.type === "file") members.set(p, e.data);
    else if (e.type === "hardlink") links.push([p, e.linkname.replace(/^\.\//, "")]);
  }
  for (const [p, to] of links) if (members.has(to)) members.set(p, members.get(to)!);
  return { label: file, get: (path) => members.get(path) };
}

const blobFile = (d: string) => `blobs/sha256/${d.slice("sha256:".length)}`;

/** A source of blobs from an image layout's files; each is verified as it is stored. */
function layoutSource(f: Files): BlobSource {
  return {
    label: f.label,
    async fetch(store: Store, d: Descriptor, what: string, job: Job) {
      const bytes = f.get(blobFile(d.digest));
      if (!bytes) throw new SpawnctlError(`${what}: the blob ${d.digest} is missing from ${f.label}.`);
      if (bytes.length !== d.size) throw new SpawnctlError(`${what}: the blob ${d.digest} has ${bytes.length} bytes, its descriptor says ${d.size}.`);
      putBlob(store, bytes, d.digest, what);
      await job.tick();
    },
  };
}

function platformOf(o: { platform?: string }) {
  return o.platform ? parsePlatform(o.platform) : hostPlatform();
}

/** From a descriptor (of index.json) down to one manifest, choosing by platform in indexes. */
export function resolveFrom(get: (d: Descriptor, what: string) => Uint8Array, top: Descriptor, label: string, o: { platform?: string }): Resolved {
  let d = top;
  let platform: string | undefined;
  for (let depth = 0; depth < 4; depth++) {
    const what = `the ${depth === 0 ? "" : "nested "}manifest ${d.digest.slice(0, 19)} of ${label}`;
    const bytes = get(d, what);
    verify(bytes, d.digest, what);
    if (docKind(d.mediaType, bytes, what) === "manifest") {
      return { manifest: parseManifest(bytes, label), manifestBytes: bytes, manifestDigest: d.digest, manifestMediaType: d.mediaType, platform };
    }
    const ix = parseDoc(indexSchema(), bytes, `the index ${d.digest.slice(0, 19)} of ${label}`);
    d = choosePlatform(ix, platformOf(o), `the index ${d.digest.slice(0, 19)} of ${label}`);
    if (d.platform) platform = [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join("/");
  }
  throw new SpawnctlError(`${label}: indexes nested too deep.`);
}

const REF_NAME = "org.opencontainers.image.ref.name";

function resolveLayout(f: Files, o: ImportOciOptions, tag?: string): Resolved {
  const layout = f.get("oci-layout");
  if (!layout) throw new SpawnctlError(`${f.label}: no oci-layout file: not an OCI image layout.`);
  parseDoc(layoutSchema(), layout, `${f.label}: oci-layout`);
  const index = f.get("index.json");
  if (!index) throw new SpawnctlError(`${f.label}: no index.json: not an OCI image layout.`);
  const ix = parseDoc(indexSchema(), index, `${f.label}: index.json`);
  if (ix.manifests.length === 0) throw new SpawnctlError(`${f.label}: index.json lists no image.`);
  let top: Descriptor;
  const names = ix.manifests.map((m) => m.annotations?.[REF_NAME]).filter((n): n is string => !!n);
  if (tag !== undefined) {
    const m = ix.manifests.filter((d) => d.annotations?.[REF_NAME] === tag);
    if (m.length !== 1) throw new SpawnctlError(`${f.label}: index.json has ${m.length ? "several images" : "no image"} called ${JSON.stringify(tag)}${names.length ? ` (it has: ${names.join(", ")})` : ""}.`);
    top = m[0]!;
  } else if (ix.manifests.length === 1) {
    top = ix.manifests[0]!;
  } else if (ix.manifests.some((m) => m.platform)) {
    top = choosePlatform(ix, platformOf(o), `${f.label}: index.json`);
  } else {
    throw new SpawnctlError(`${f.label}: index.json lists ${ix.manifests.length} images; name one as ${f.label}:NAME${names.length ? ` (it has: ${names.join(", ")})` : ""}.`);
  }
  return resolveFrom(
    (d, what) => {
      const b = f.get(blobFile(d.digest));
      if (!b) throw new SpawnctlError(`${what}: the blob ${d.digest} is missing from ${f.label}.`);
      return b;
    },
    top,
    f.label,
    o,
  );
}

/** docker save: manifest.json names a config file and layer files; the manifest is made here (OCI, with each file's digest). */
function resolveDockerArchive(f: Files): { resolved: Resolved; src: BlobSource; reference?: string } {
  const mj = parseDoc(dockerArchiveSchema(), f.get("manifest.json")!, `${f.label}: manifest.json`);
  if (mj.length !== 1) throw new SpawnctlError(`${f.label}: manifest.json holds ${mj.length} images; import-oci takes an archive of one (docker save IMAGE).`);
  const e = mj[0]!;
  const need = (p: string, what: string) => {
    const b = f.get(p);
    if (!b) throw new SpawnctlError(`${f.label}: manifest.json names ${what} ${p}, which the archive does not hold.`);
    return b;
  };
  const cfg = need(e.Config, "the config");
  const files = new Map<string, Uint8Array>();
  const config: Descriptor = { mediaType: MT.ociConfig, digest: sha256(cfg), size: cfg.length };
  files.set(config.digest, cfg);
  const layers: Descriptor[] = e.Layers.map((p, i) => {
    const b = need(p, `layer ${i + 1}`);
    const c = sniffCompression(b.subarray(0, 16));
    const mediaType = c === "gzip" ? MT.ociLayerGzip : c === "zstd" ? MT.ociLayerZstd : c === "none" ? MT.ociLayer : "";
    if (!mediaType) throw new SpawnctlError(`${f.label}: layer ${p} is ${c}-compressed, which OCI layers never are.`);
    const d = { mediaType, digest: sha256(b), size: b.length };
    files.set(d.digest, b);
    return d;
  });
  const manifest: Manifest = { schemaVersion: 2, mediaType: MT.ociManifest, config, layers };
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  const src: BlobSource = {
    label: f.label,
    async fetch(store, d, what, job) {
      putBlob(store, files.get(d.digest)!, d.digest, what);
      await job.tick();
    },
  };
  const tag = e.RepoTags?.[0];
  return { resolved: { manifest, manifestBytes, manifestDigest: sha256(manifestBytes), manifestMediaType: MT.ociManifest }, src, ...(tag ? { reference: tag } : {}) };
}

/** The local name for an import of `source`: its file name without archive suffixes, or the layout directory's name. */
export function importName(source: string): string {
  const base = source.replace(/\/+$/, "").split("/").pop() ?? "";
  return stripTarSuffix(base).replace(/\.(oci|docker)$/, "").replace(/[^A-Za-z0-9_.-]/g, "-");
}

export async function importOci(sourceArg: string, given: string | undefined, o: ImportOciOptions): Promise<ImageRecord> {
  let st;
  let source = sourceArg;
  let tag: string | undefined;
  // DIR:NAME or FILE:NAME, as skopeo's oci: and oci-archive: write it, picks an image by its ref.name
  const colon = sourceArg.lastIndexOf(":");
  if (!existsSync(sourceArg) && colon > 0 && existsSync(sourceArg.slice(0, colon))) {
    source = sourceArg.slice(0, colon);
    tag = sourceArg.slice(colon + 1);
  }
  try {
    st = statSync(source);
  } catch (e) {
    throw new SpawnctlError(`importing ${source}: ${fsMessage(e)}`, { cause: e });
  }
  const name = given ?? importName(source);
  const doing = `importing ${source} as image '${name}'`;
  let files: Files;
  if (st.isDirectory()) {
    files = dirFiles(source);
  } else {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(source);
    } catch (e) {
      throw new SpawnctlError(`${doing}: ${fsMessage(e)}`, { cause: e });
    }
    files = tarFiles(source, decompress(bytes, source));
  }
  const kind = files.get("oci-layout") ? "oci" : files.get("manifest.json") ? "docker" : undefined;
  if (!kind) throw new SpawnctlError(`${doing}: ${source} is neither an OCI image layout (no oci-layout) nor a docker-archive (no manifest.json).`);
  return runInstall(name, source, { force: o.force, readOnly: o.readOnly }, doing, async () => {
    if (kind === "oci") return { src: layoutSource(files), resolved: resolveLayout(files, o, tag) };
    return resolveDockerArchive(files);
  });
}
