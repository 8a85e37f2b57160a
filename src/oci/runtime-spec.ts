// The OCI runtime specification's config.json (1.0.x, with the fields 1.1
// and 1.2 added), as a zod schema of its shape: types, ranges and unknown
// keys. What spawnctl does with each field (or refuses) is bundle.ts.
// Objects are strict, as systemd-nspawn's loader is: a misspelt key is an
// error naming it, not something silently dropped.
import { z } from "zod";
import { SpawnctlError } from "../util/errors.ts";
import { sanitizeMessage } from "../settings/parse.ts";

const U32_MAX = 4294967295;
const id = z.number().int().min(0).max(U32_MAX);
/** uint64 or int64 in the spec: JSON numbers past 2^53 lose precision, so only integrality is checked here */
const int = z.number().refine(Number.isInteger, "expected an integer");
const uint = int.refine((n) => n >= 0, "expected an integer of 0 or more");
const strings = z.array(z.string());
/** a part of the spec spawnctl does not read: its shape is not checked, bundle.ts refuses or ignores it */
const opaque = z.unknown();

const hook = z.strictObject({
  path: z.string(),
  args: strings.optional(),
  env: strings.optional(),
  timeout: z.number().int().min(1).optional(),
});

const idMapping = z.strictObject({ containerID: id, hostID: id, size: id });

const capabilities = z.strictObject({
  bounding: strings.optional(),
  effective: strings.optional(),
  inheritable: strings.optional(),
  permitted: strings.optional(),
  ambient: strings.optional(),
});

const process = z.strictObject({
  terminal: z.boolean().optional(),
  consoleSize: z.strictObject({ height: uint, width: uint }).optional(),
  cwd: z.string(),
  env: strings.optional(),
  args: strings.optional(),
  commandLine: opaque.optional(),
  rlimits: z.array(z.strictObject({ type: z.string(), soft: int, hard: int })).optional(),
  apparmorProfile: z.string().optional(),
  capabilities: capabilities.optional(),
  noNewPrivileges: z.boolean().optional(),
  oomScoreAdj: int.optional(),
  scheduler: opaque.optional(),
  selinuxLabel: z.string().optional(),
  ioPriority: opaque.optional(),
  execCPUAffinity: opaque.optional(),
  user: z.strictObject({
    uid: id,
    gid: id,
    umask: z.number().int().min(0).max(0o777).optional(),
    additionalGids: z.array(id).optional(),
    username: opaque.optional(),
  }),
});

const mount = z.strictObject({
  destination: z.string(),
  source: z.string().optional(),
  type: z.string().optional(),
  options: strings.optional(),
  uidMappings: opaque.optional(),
  gidMappings: opaque.optional(),
});

const device = z.strictObject({
  type: z.string(),
  path: z.string(),
  major: uint.optional(),
  minor: uint.optional(),
  fileMode: z.number().int().min(0).max(0o7777).optional(),
  uid: id.optional(),
  gid: id.optional(),
});

const cgroupDevice = z.strictObject({
  allow: z.boolean(),
  type: z.string().optional(),
  major: int.optional(),
  minor: int.optional(),
  access: z.string().optional(),
});

const resources = z.strictObject({
  devices: z.array(cgroupDevice).optional(),
  memory: z.strictObject({
    limit: int.optional(),
    reservation: int.optional(),
    swap: int.optional(),
    kernel: opaque.optional(),
    kernelTCP: opaque.optional(),
    swappiness: opaque.optional(),
    disableOOMKiller: opaque.optional(),
    useHierarchy: opaque.optional(),
    checkBeforeUpdate: opaque.optional(),
  }).optional(),
  cpu: z.strictObject({
    shares: uint.optional(),
    quota: int.optional(),
    burst: opaque.optional(),
    period: uint.optional(),
    realtimeRuntime: opaque.optional(),
    realtimePeriod: opaque.optional(),
    cpus: z.string().optional(),
    mems: z.string().optional(),
    idle: opaque.optional(),
  }).optional(),
  blockIO: z.strictObject({
    weight: uint.optional(),
    leafWeight: opaque.optional(),
    weightDevice: opaque.optional(),
    throttleReadBpsDevice: opaque.optional(),
    throttleWriteBpsDevice: opaque.optional(),
    throttleReadIOPSDevice: opaque.optional(),
    throttleWriteIOPSDevice: opaque.optional(),
  }).optional(),
  hugepageLimits: opaque.optional(),
  network: opaque.optional(),
  pids: z.strictObject({ limit: int }).optional(),
  rdma: opaque.optional(),
  unified: opaque.optional(),
});

const seccomp = z.strictObject({
  defaultAction: z.string(),
  defaultErrnoRet: uint.optional(),
  architectures: strings.optional(),
  flags: strings.optional(),
  listenerPath: opaque.optional(),
  listenerMetadata: opaque.optional(),
  syscalls: z.array(z.strictObject({
    names: strings,
    action: z.string(),
    errnoRet: uint.optional(),
    args: opaque.optional(),
  })).optional(),
});

const linux = z.strictObject({
  namespaces: z.array(z.strictObject({ type: z.string(), path: z.string().optional() })).optional(),
  uidMappings: z.array(idMapping).optional(),
  gidMappings: z.array(idMapping).optional(),
  timeOffsets: opaque.optional(),
  devices: z.array(device).optional(),
  cgroupsPath: z.string().optional(),
  resources: resources.optional(),
  rdma: opaque.optional(),
  unified: opaque.optional(),
  intelRdt: opaque.optional(),
  memoryPolicy: opaque.optional(),
  sysctl: z.record(z.string(), z.string()).optional(),
  seccomp: seccomp.optional(),
  rootfsPropagation: z.string().optional(),
  maskedPaths: strings.optional(),
  readonlyPaths: strings.optional(),
  mountLabel: z.string().optional(),
  personality: z.strictObject({ domain: z.string(), flags: strings.optional() }).optional(),
  netDevices: opaque.optional(),
});

export const RuntimeSpec = z.strictObject({
  ociVersion: z.string(),
  root: z.strictObject({ path: z.string(), readonly: z.boolean().optional() }).optional(),
  mounts: z.array(mount).optional(),
  process: process.optional(),
  hostname: z.string().optional(),
  domainname: z.string().optional(),
  hooks: z.strictObject({
    prestart: z.array(hook).optional(),
    createRuntime: z.array(hook).optional(),
    createContainer: z.array(hook).optional(),
    startContainer: z.array(hook).optional(),
    poststart: z.array(hook).optional(),
    poststop: z.array(hook).optional(),
  }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  linux: linux.optional(),
  solaris: opaque.optional(),
  windows: opaque.optional(),
  vm: opaque.optional(),
  zos: opaque.optional(),
});

export type RuntimeSpec = z.infer<typeof RuntimeSpec>;
export type SpecHook = z.infer<typeof hook>;

/** A field's place as the spec's documents write it: linux.namespaces[2].type */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : `${out ? "." : ""}${String(p)}`;
  return out;
}

function describeIssue(i: z.core.$ZodIssue): string {
  const at = fieldPath(i.path);
  switch (i.code) {
    case "unrecognized_keys":
      return i.keys.map((k) => `${fieldPath([...i.path, k])}: unknown field, refusing`).join("; ");
    case "invalid_type": {
      const got = /received (\w+)/.exec(i.message)?.[1];
      return `${at || "(top level)"}: ${got === "undefined" ? "missing, but required" : `expected ${i.expected}${got ? `, got ${got}` : ""}`}`;
    }
    case "too_small":
    case "too_big":
      return `${at}: out of range (${i.message})`;
    default:
      return `${at || "(top level)"}: ${i.message}`;
  }
}

/** config.json's text → its typed content, or one error naming the file and every bad field. */
export function parseRuntimeSpec(text: string, file: string): RuntimeSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SpawnctlError(`Failed to parse '${file}': ${(e as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json) || !("ociVersion" in json)) {
    throw new SpawnctlError(`JSON file '${file}' is not an OCI bundle configuration file (no ociVersion). Refusing.`);
  }
  const r = RuntimeSpec.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 8).map((i) => sanitizeMessage(`${file}: ${describeIssue(i)}`));
    if (r.error.issues.length > 8) lines.push(`(and ${r.error.issues.length - 8} more)`);
    throw new SpawnctlError(lines.join("\n"));
  }
  return r.data;
}
