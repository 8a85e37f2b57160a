// spawnctl's own configuration: /etc/spawnctl/spawnctl.toml ($SPAWNCTL_CONFIG
// names another file), read with smol-toml and checked with a zod schema.
// Everything in it is optional; a setting of the environment
// (SPAWNCTL_IMAGE_PATH, SPAWNCTL_MIRROR, ...) or of the command line wins.
//
//   [images]
//   path = ["/srv/machines", "/var/lib/machines"]   # search path; new images go to the first
//
//   [bootstrap]
//   mirror = "http://mirror.example/debian"          # Debian (else the host's apt sources)
//   ubuntu-mirror = "http://mirror.example/ubuntu"
//   arch-mirror = "http://mirror.example/archlinux/$repo/os/$arch"
//   cache-dir = "/var/cache/spawnctl/packages"
//
//   [network]
//   veth-pool = "10.0.0.0/8"   # where each plain veth's /28 comes from
//   hosts = true               # running machines' names in the host's /etc/hosts (as nss-mymachines)
//
//   [start]
//   options = ["--quiet", "--keep-unit", "--boot", "--network-veth", "-U", "--settings=override"]
//                              # what `spawnctl start` runs a machine with (systemd-nspawn@.service's)
//
//   [oci]
//   registry = "registry.example:5000"   # what pull-oci's references without a registry mean
//   insecure-registries = ["build.lan:5000"]   # may be plain HTTP (loopback ones always may)
//
// Loaded on first use only (nothing on `run`'s path reads it unless an image
// is looked up by name).
import { readFileSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { lazySchema, parseState, z } from "../util/state.ts";

export const CONFIG_PATH = "/etc/spawnctl/spawnctl.toml";

export interface Config {
  images: { path?: string[] };
  bootstrap: { mirror?: string; "ubuntu-mirror"?: string; "arch-mirror"?: string; "cache-dir"?: string };
  network: { "veth-pool"?: string; hosts?: boolean };
  start: { options?: string[] };
  oci: { registry?: string; "insecure-registries"?: string[] };
}

const absolute = (zz: ReturnType<typeof z>) => zz.string().check(zz.refine((p) => p.startsWith("/") && !p.includes("\0"), "an absolute path"));
const url = (zz: ReturnType<typeof z>) => zz.string().check(zz.refine((u) => /^(https?|file):\/\//.test(u), "an http://, https:// or file:// URL"));

const schema = lazySchema((zz) =>
  zz.strictObject({
    images: zz._default(zz.strictObject({ path: zz.optional(zz.array(absolute(zz)).check(zz.minLength(1))) }), {}),
    bootstrap: zz._default(zz.strictObject({
      mirror: zz.optional(url(zz)),
      "ubuntu-mirror": zz.optional(url(zz)),
      "arch-mirror": zz.optional(url(zz)),
      "cache-dir": zz.optional(absolute(zz)),
    }), {}),
    network: zz._default(zz.strictObject({
      "veth-pool": zz.optional(zz.string().check(zz.refine((v) => parsePool(v) !== undefined, "an IPv4 prefix of /8 to /24, such as 10.0.0.0/8"))),
      hosts: zz.optional(zz.boolean()),
    }), {}),
    start: zz._default(zz.strictObject({
      options: zz.optional(zz.array(zz.string().check(zz.refine((o) => o.startsWith("-"), "an option (starting with -); the machine and its directory are added by start")))),
    }), {}),
    oci: zz._default(zz.strictObject({
      registry: zz.optional(zz.string().check(zz.regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "HOST[:PORT]"))),
      "insecure-registries": zz.optional(zz.array(zz.string().check(zz.regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "HOST[:PORT]")))),
    }), {}),
  }),
);
type Parsed = ReturnType<ReturnType<typeof schema>["parse"]>;
const _same: [(p: Parsed) => Config, (c: Config) => Parsed] = [(p) => p, (c) => c];
void _same;

/** "10.0.0.0/8" → its base address and prefix length (a /8 to a /24, the /28s come from it). */
export function parsePool(v: string): { base: string; prefix: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(v);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix < 8 || prefix > 24) return undefined;
  const n = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  if ((n & (2 ** (32 - prefix) - 1)) !== 0) return undefined; // host bits set
  return { base: octets.join("."), prefix };
}

/** The configuration file's text parsed and checked; errors name the file, and the line where TOML says it. */
export function parseConfig(text: string, path: string): Config {
  const { parse, TomlError } = require("smol-toml") as typeof import("smol-toml");
  let data: unknown;
  try {
    data = parse(text);
  } catch (e) {
    if (e instanceof TomlError) throw new SpawnctlError(`${path}:${e.line}:${e.column}: ${e.message.split("\n")[0]}`);
    throw e;
  }
  // through JSON: smol-toml's dates and the like are no setting of ours
  return parseState(schema(), JSON.stringify(data), path);
}

let cached: Config | undefined;

/** The configuration (empty sections when there is no file). Read once per process. */
export function config(): Config {
  if (cached) return cached;
  const path = process.env.SPAWNCTL_CONFIG || CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" || process.env.SPAWNCTL_CONFIG) throw new SpawnctlError(`Failed to read ${path}: ${fsMessage(e)}.`);
    return (cached = { images: {}, bootstrap: {}, network: {}, start: {}, oci: {} });
  }
  return (cached = parseConfig(text, path));
}
