// Image references as Docker writes them: [REGISTRY[:PORT]/]REPOSITORY[:TAG|@sha256:DIGEST].
// The first path element is a registry when it has a "." or a ":" or is
// "localhost"; otherwise the reference names the default registry, which is
// configured (SPAWNCTL_OCI_REGISTRY, or [oci] registry in spawnctl.toml), not built in, and a one-element
// repository there gets Docker's "library/" prefix.
import { usage } from "../util/errors.ts";
import { DIGEST_RE } from "./schema.ts";
import { config } from "../settings/config.ts";

export interface ImageRef {
  /** host[:port] */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The default registry for references without one: $SPAWNCTL_OCI_REGISTRY, else [oci] registry of spawnctl.toml. */
export function defaultRegistry(): string | undefined {
  return process.env.SPAWNCTL_OCI_REGISTRY || config().oci.registry || undefined;
}

/** Registries that may be plain HTTP besides loopback ones: $SPAWNCTL_OCI_INSECURE (HOST[,HOST...]) and [oci] insecure-registries. */
export function insecureRegistries(): string[] {
  return [...(process.env.SPAWNCTL_OCI_INSECURE ?? "").split(",").filter(Boolean), ...(config().oci["insecure-registries"] ?? [])];
}

export function parseReference(ref: string, defaults: { registry?: string } = { registry: defaultRegistry() }): ImageRef {
  const bad = (why: string) => usage(`Invalid image reference ${JSON.stringify(ref)}: ${why}.`);
  if (ref === "" || /\s/.test(ref)) throw bad("it is empty or has spaces");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw bad(`the digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`the tag ${JSON.stringify(tag)} is not valid`);
  }
  const parts = rest.split("/");
  let registry: string;
  if (parts.length > 1 && (parts[0]!.includes(".") || parts[0]!.includes(":") || parts[0] === "localhost")) {
    registry = parts.shift()!;
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(registry) && !/^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(registry)) throw bad(`the registry ${JSON.stringify(registry)} is not HOST[:PORT]`);
  } else {
    if (!defaults.registry) throw usage(`The image reference ${JSON.stringify(ref)} names no registry; write REGISTRY[:PORT]/${rest}, or set the registry that names without one mean ([oci] registry in spawnctl.toml, or SPAWNCTL_OCI_REGISTRY).`);
    registry = defaults.registry;
    if (parts.length === 1) parts.unshift("library");
  }
  for (const p of parts) if (!COMPONENT.test(p)) throw bad(`the repository component ${JSON.stringify(p)} is not lower-case letters, digits and separators`);
  if (!tag && !digest) tag = "latest";
  return { registry, repository: parts.join("/"), ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatReference(r: ImageRef): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** Loopback registries may speak plain HTTP, as Docker allows; others need HTTPS unless listed. */
export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function registryBase(registry: string, insecure: string[]): string {
  const plain = isLoopback(registry) || insecure.includes(registry) || insecure.includes(registry.replace(/:\d+$/, ""));
  return `${plain ? "http" : "https"}://${registry}`;
}
