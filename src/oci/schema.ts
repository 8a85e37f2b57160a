// The JSON documents of OCI images, checked with zod before use: image
// manifests and indexes (OCI and Docker v2 media types), image configs, the
// image layout's oci-layout and index.json, docker-archive's manifest.json,
// the distribution API's token and error answers. A document that does not
// fit is an error naming the image, the document and the field.
import type * as Z from "zod/mini";
import { lazySchema } from "../util/state.ts";
import { SpawnctlError } from "../util/errors.ts";

export const MT = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNdGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociLayerNd: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export const MANIFEST_TYPES: readonly string[] = [MT.ociManifest, MT.dockerManifest];
export const INDEX_TYPES: readonly string[] = [MT.ociIndex, MT.dockerList];
export const CONFIG_TYPES: readonly string[] = [MT.ociConfig, MT.dockerConfig];
export const LAYER_TYPES: readonly string[] = [MT.ociLayer, MT.ociLayerGzip, MT.ociLayerZstd, MT.ociLayerNd, MT.ociLayerNdGzip, MT.dockerLayer, MT.dockerForeignLayer];

/** The Accept list for manifests: every manifest and index type we read. */
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(", ");

export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

const digest = (zz: typeof Z) => zz.string().check(zz.regex(DIGEST_RE, "expected sha256:<64 hex digits> (only sha256 digests are supported)"));

const descriptor = (zz: typeof Z) =>
  zz.object({
    mediaType: zz.string(),
    digest: digest(zz),
    size: zz.number().check(zz.int(), zz.nonnegative()),
    urls: zz.optional(zz.array(zz.string())),
    annotations: zz.optional(zz.record(zz.string(), zz.string())),
    platform: zz.optional(
      zz.object({
        os: zz.string(),
        architecture: zz.string(),
        variant: zz.optional(zz.string()),
      }),
    ),
  });

export type Descriptor = Z.infer<ReturnType<typeof descriptor>>;

export const manifestSchema = lazySchema((zz) =>
  zz.object({
    schemaVersion: zz.literal(2),
    mediaType: zz.optional(zz.string()),
    config: descriptor(zz),
    layers: zz.array(descriptor(zz)),
    annotations: zz.optional(zz.record(zz.string(), zz.string())),
  }),
);
export type Manifest = Z.infer<ReturnType<typeof manifestSchema>>;

export const indexSchema = lazySchema((zz) =>
  zz.object({
    schemaVersion: zz.literal(2),
    mediaType: zz.optional(zz.string()),
    manifests: zz.array(descriptor(zz)),
    annotations: zz.optional(zz.record(zz.string(), zz.string())),
  }),
);
export type Index = Z.infer<ReturnType<typeof indexSchema>>;

export const configSchema = lazySchema((zz) =>
  zz.object({
    architecture: zz.optional(zz.string()),
    os: zz.optional(zz.string()),
    variant: zz.optional(zz.string()),
    created: zz.optional(zz.string()),
    config: zz.optional(
      zz.nullable(
        zz.object({
          User: zz.optional(zz.string()),
          Env: zz.optional(zz.nullable(zz.array(zz.string()))),
          Entrypoint: zz.optional(zz.nullable(zz.array(zz.string()))),
          Cmd: zz.optional(zz.nullable(zz.array(zz.string()))),
          WorkingDir: zz.optional(zz.string()),
          StopSignal: zz.optional(zz.string()),
          Labels: zz.optional(zz.nullable(zz.record(zz.string(), zz.string()))),
        }),
      ),
    ),
    rootfs: zz.object({
      type: zz.literal("layers"),
      diff_ids: zz.array(digest(zz)),
    }),
  }),
);
export type ImageConfig = Z.infer<ReturnType<typeof configSchema>>;

export const layoutSchema = lazySchema((zz) => zz.object({ imageLayoutVersion: zz.string() }));

/** docker save's manifest.json: one entry per image. */
export const dockerArchiveSchema = lazySchema((zz) =>
  zz.array(
    zz.object({
      Config: zz.string(),
      RepoTags: zz.optional(zz.nullable(zz.array(zz.string()))),
      Layers: zz.array(zz.string()),
    }),
  ),
);

/** A Bearer token server's answer. */
export const tokenSchema = lazySchema((zz) =>
  zz.object({
    token: zz.optional(zz.string()),
    access_token: zz.optional(zz.string()),
    expires_in: zz.optional(zz.number()),
  }),
);

/** The distribution API's error body. */
export const apiErrorSchema = lazySchema((zz) =>
  zz.object({
    errors: zz.array(zz.object({ code: zz.optional(zz.string()), message: zz.optional(zz.string()) })),
  }),
);

function issues(e: Z.core.$ZodError): string {
  return e.issues.slice(0, 4).map((i) => `${i.path.length ? i.path.join(".") : "(the document)"}: ${i.message}`).join("; ");
}

/** `bytes` (JSON) checked against `schema`; an error naming `what` ("the manifest of IMAGE") and the field. */
export function parseDoc<T>(schema: Z.ZodMiniType<T>, bytes: Uint8Array | string, what: string): T {
  let data: unknown;
  try {
    data = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (e) {
    throw new SpawnctlError(`${what}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const r = schema.safeParse(data);
  if (!r.success) throw new SpawnctlError(`${what}: ${issues(r.error)}`);
  return r.data;
}

/** Which kind of document a manifest-ish blob is, from its media type (the descriptor's, else its own field). */
export function docKind(mediaType: string | undefined, bytes: Uint8Array, what: string): "manifest" | "index" {
  let mt = mediaType;
  if (!mt) {
    try {
      const j = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown; manifests?: unknown };
      mt = typeof j.mediaType === "string" ? j.mediaType : Array.isArray(j.manifests) ? MT.ociIndex : MT.ociManifest;
    } catch (e) {
      throw new SpawnctlError(`${what}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (MANIFEST_TYPES.includes(mt)) return "manifest";
  if (INDEX_TYPES.includes(mt)) return "index";
  throw new SpawnctlError(`${what}: unknown media type ${JSON.stringify(mt)} (expected one of ${[...MANIFEST_TYPES, ...INDEX_TYPES].join(", ")}).`);
}

/** The host's platform in OCI terms. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { os: "linux", architecture: arch[process.arch] ?? process.arch };
}

/** "os/arch[/variant]" -> platform; an error naming --platform= otherwise. */
export function parsePlatform(s: string): { os: string; architecture: string; variant?: string } {
  const p = s.split("/");
  if (p.length < 2 || p.length > 3 || p.some((x) => !/^[a-z0-9_.-]+$/.test(x))) throw new SpawnctlError(`--platform=${s}: expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v7.`);
  return { os: p[0]!, architecture: p[1]!, ...(p[2] ? { variant: p[2] } : {}) };
}

/** The manifest of an index for `platform`, or an error listing what it has. */
export function choosePlatform(ix: Index, platform: { os: string; architecture: string; variant?: string }, what: string): Descriptor {
  const fits = ix.manifests.filter(
    (m) => MANIFEST_TYPES.includes(m.mediaType) && m.platform && m.platform.os === platform.os && m.platform.architecture === platform.architecture && (!platform.variant || m.platform.variant === platform.variant),
  );
  if (fits.length) return fits[0]!;
  // an index without platforms (an OCI layout with one image): its only manifest
  const bare = ix.manifests.filter((m) => MANIFEST_TYPES.includes(m.mediaType) && !m.platform);
  if (bare.length === 1 && ix.manifests.length === 1) return bare[0]!;
  const has = ix.manifests.map((m) => (m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join("/") : "(no platform)")).join(", ");
  const want = [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
  throw new SpawnctlError(`${what}: no image for the platform ${want} (it has: ${has || "nothing"}); choose one with --platform=.`);
}
