// From a parsed command line to final Settings: find the image and the
// machine name, load the .nspawn file with systemd's lookup and trust rules,
// merge (the command line wins unless --settings=override), apply defaults
// once, and check the combinations nspawn refuses.
import { config } from "./config.ts";
import { usage } from "../util/errors.ts";
import { DEFAULT_CAP_MASK, capBit, capNames } from "./caps.ts";
import type { CommandLine } from "./cli.ts";
import { applyNspawnFile, type LoadedFile } from "./nspawn-file.ts";
import { SIGRTMIN, isValidHostname } from "./parse.ts";
import type { PartialSettings, Settings } from "./types.ts";

/** What merging needs from the machine; injected so tests run without it. */
export interface MergeEnv {
  cwd: string;
  isRoot: boolean;
  isTty: boolean;
  hostname(): string;
  isDir(p: string): boolean;
  /** a regular file or block device (a NAME.raw image); optional for tests that need none */
  isFile?(p: string): boolean;
  readFile(p: string): string | undefined;
  random64(): string;
  warn(m: string): void;
  /** the capability bounding set spawnctl itself has */
  boundingSet: bigint;
}

/** Where images are looked for: $SPAWNCTL_IMAGE_PATH (DIR:DIR...), else [images] path of spawnctl.toml, else machinectl's directories. */
export function imageSearchPath(): string[] {
  const env = process.env.SPAWNCTL_IMAGE_PATH;
  if (env) return env.split(":").filter(Boolean).map((d) => d.replace(/\/+$/, "") || "/");
  return config().images.path ?? IMAGE_SEARCH_PATH;
}

export const IMAGE_SEARCH_PATH = [
  "/etc/machines", "/run/machines", "/var/lib/machines", "/var/lib/container", "/usr/local/lib/machines", "/usr/lib/machines",
];

function basename(p: string): string {
  const parts = p.split("/").filter(Boolean);
  return parts[parts.length - 1] ?? "";
}
function dirname(p: string): string {
  const parts = p.split("/").filter(Boolean);
  parts.pop();
  return `/${parts.join("/")}`;
}

/** machine name from a directory name, as hostname_cleanup does */
export function cleanupName(s: string): string {
  let out = s.replace(/[^A-Za-z0-9_.-]/g, "").replace(/^[.-]+/, "").replace(/\.{2,}/g, ".");
  if (out.length > 64) out = out.slice(0, 64);
  out = out.replace(/[.-]+$/, "");
  return out;
}

export function findImage(name: string, env: MergeEnv): string | undefined {
  for (const d of imageSearchPath()) {
    if (env.isDir(`${d}/${name}`)) return `${d}/${name}`;
    // an OCI image (a stack of layers, container/stack.ts)
    if (env.isDir(`${d}/${name}.oci/lower`)) return `${d}/${name}.oci`;
  }
  return undefined;
}

/** The image NAME of the search path: a directory NAME, an OCI image NAME.oci, or else a disk image NAME.raw (as machinectl looks, directory by directory). */
export function findImagePath(name: string, env: MergeEnv): { path: string; raw: boolean } | undefined {
  for (const d of imageSearchPath()) {
    if (env.isDir(`${d}/${name}`)) return { path: `${d}/${name}`, raw: false };
    // an OCI image (a stack of layers, container/stack.ts)
    if (env.isDir(`${d}/${name}.oci/lower`)) return { path: `${d}/${name}.oci`, raw: false };
    if (env.isFile?.(`${d}/${name}.raw`)) return { path: `${d}/${name}.raw`, raw: true };
  }
  return undefined;
}

export interface Resolved {
  settings: Settings;
  file?: LoadedFile;
  /** the name the .nspawn file was looked up by (without the -x suffix) */
  baseName: string;
}

/** Which mask groups cover which Settings fields (a group that is set wins as a whole). */
const GROUP_FIELDS: Record<string, (keyof Settings)[]> = {
  customMounts: ["binds", "tmpfs", "overlays", "inaccessible"],
  network: ["privateNetwork", "networkVeth", "networkVethExtra", "networkBridge", "networkZone", "networkMacvlan", "networkIpvlan", "networkInterface", "networkNamespacePath"],
  syscallFilter: ["syscallAllow", "syscallDeny"],
  privateUsers: ["privateUsers"],
};

function fieldsOf(group: string): (keyof Settings)[] {
  return GROUP_FIELDS[group] ?? [group as keyof Settings];
}

export function mergeSettings(cli: CommandLine, file: LoadedFile | undefined, mode: Settings["settings"]): PartialSettings {
  const out: PartialSettings = { ...cli.settings };
  if (!file) return out;
  for (const g of file.groups) {
    const fields = file.groupFields?.[g] ?? fieldsOf(g);
    const cliHas = cli.groups.has(g) || (!!file.groupFields?.[g] && fields.some((f) => cli.groups.has(f)));
    if (cliHas && mode !== "override") continue;
    for (const f of fields) {
      const v = file.settings[f];
      if (v === undefined && !cliHas) continue;
      (out as Record<string, unknown>)[f] = v;
    }
  }
  return out;
}

function loadSettingsFile(name: string, directory: string | undefined, mode: Settings["settings"], env: MergeEnv): LoadedFile | undefined {
  if (mode === "no") return undefined;
  const candidates: Array<[string, boolean]> = [];
  if (env.isRoot) candidates.push([`/etc/systemd/nspawn/${name}.nspawn`, true], [`/run/systemd/nspawn/${name}.nspawn`, true]);
  if (directory && directory !== "/") candidates.push([`${dirname(directory)}/${name}.nspawn`, mode === "trusted"]);
  for (const [p, trusted] of candidates) {
    const text = env.readFile(p);
    if (text === undefined) continue;
    return applyNspawnFile(p, text, trusted, env.cwd, env.warn);
  }
  return undefined;
}

/** `bundle`: an OCI bundle's settings (--oci-bundle=), which take the place of the .nspawn file */
export function resolveSettings(cli: CommandLine, env: MergeEnv, bundle?: LoadedFile): Resolved {
  const c = cli.settings;
  if (c.directory && c.image) throw usage("--directory= and --image= may not be combined.");
  // a bundle's root.path, unless -D (or -i) names the root
  let directory = c.directory ?? (c.image ? undefined : bundle?.settings.directory);
  if (c.ociBundle && !directory && !c.image) throw usage(`${bundle?.path ?? "--oci-bundle="}: root.path: missing, and no --directory= given.`);
  let image = c.image;
  let name = c.machine;
  if (!directory && !image) {
    if (name) {
      const found = findImagePath(name, env);
      if (!found) throw usage(`No image for machine '${name}'.`);
      if (found.raw) image = found.path;
      else directory = found.path;
    } else {
      directory = env.cwd;
    }
  }
  if (!name) {
    // an image's name without its .raw, as nspawn names it; a bundle's machine
    // is named after the bundle (its root is mostly "rootfs")
    name = image ? cleanupName(basename(image).replace(/\.raw$/, "")) : directory === "/" ? env.hostname() : cleanupName(basename(c.ociBundle || directory!));
    if (!name || !isValidHostname(name)) throw usage(`Failed to determine machine name automatically, please use -M.`);
  }
  const mode = c.settings ?? "yes";
  // (NAME.nspawn is looked for beside the image file too)
  const file = bundle ?? loadSettingsFile(name, directory ?? image, mode, env);
  const m = mergeSettings(cli, file, mode);
  m.directory = directory ?? "";
  m.image = image ?? "";
  if (cli.args.length === 0 && file?.settings.parameters) m.parameters = file.settings.parameters;
  else m.parameters = cli.args;
  const s = applyDefaults(m, name, env, !c.machine);
  validate(s, env);
  return { settings: s, file, baseName: name };
}

function applyDefaults(m: PartialSettings, name: string, env: MergeEnv, nameFromDirectory = true): Settings {
  const ephemeral = m.ephemeral ?? false;
  // an ephemeral machine named after its directory gets a random suffix, so
  // that several run at once; a name given with -M is used as it is (nspawn's rule)
  const machine = ephemeral && nameFromDirectory ? `${name}-${env.random64()}` : name;
  const privateNetwork = m.privateNetwork ?? false;
  const boot = m.boot ?? false;
  let caps = (DEFAULT_CAP_MASK | (m.capability ?? 0n)) & ~(m.dropCapability ?? 0n);
  if (privateNetwork && !((m.dropCapability ?? 0n) & capBit("NET_ADMIN"))) caps |= capBit("NET_ADMIN");
  // in a user namespace sharing the host's network, binding low ports is not the container's business
  const userns = (m.privateUsers?.mode ?? "no") !== "no";
  if (userns && !privateNetwork && !((m.capability ?? 0n) & capBit("NET_BIND_SERVICE"))) caps &= ~capBit("NET_BIND_SERVICE");
  // the default set quietly shrinks to what the host allows; explicitly
  // requested capabilities that the host lacks are worth a warning
  const missing = caps & ~env.boundingSet & (m.capability ?? 0n);
  caps &= env.boundingSet;
  if (missing) {
    env.warn(`Some capabilities will not be set because they are not in the current bounding set: ${capNames(missing).join(" ")}`);
    caps &= env.boundingSet;
  }
  let console = m.console ?? (env.isTty ? "interactive" : "read-only");
  if (console === "autopipe") console = env.isTty ? "interactive" : "pipe";
  return {
    directory: m.directory!,
    template: m.template ?? "",
    ephemeral,
    image: m.image ?? "",
    readOnly: (m.readOnly ?? false) || (m.volatile !== undefined && m.volatile !== "no"),
    volatile: m.volatile ?? "no",
    boot,
    asPid2: m.asPid2 ?? false,
    parameters: m.parameters ?? [],
    workingDirectory: m.workingDirectory ?? "",
    ...(m.pivotRoot ? { pivotRoot: m.pivotRoot } : {}),
    environment: m.environment ?? [],
    user: m.user ?? "",
    killSignal: m.killSignal ?? (boot ? SIGRTMIN + 3 : 0),
    notifyReady: m.notifyReady ?? false,
    suppressSync: m.suppressSync ?? false,
    machine,
    hostname: m.hostname ?? machine,
    uuid: m.uuid ?? "",
    slice: m.slice ?? "",
    properties: m.properties ?? [],
    register: m.register ?? true,
    keepUnit: m.keepUnit ?? false,
    privateUsers: m.privateUsers ?? { mode: "no" },
    privateUsersOwnership: m.privateUsersOwnership ?? (m.privateUsers?.mode === "pick" ? "auto" : "off"),
    privateNetwork,
    networkVeth: m.networkVeth ?? false,
    networkVethExtra: m.networkVethExtra ?? [],
    networkBridge: m.networkBridge ?? "",
    networkZone: m.networkZone ?? "",
    networkMacvlan: m.networkMacvlan ?? [],
    networkIpvlan: m.networkIpvlan ?? [],
    networkInterface: m.networkInterface ?? [],
    networkNamespacePath: m.networkNamespacePath ?? "",
    ports: m.ports ?? [],
    capability: caps,
    dropCapability: m.dropCapability ?? 0n,
    ambientCapability: m.ambientCapability ?? 0n,
    noNewPrivileges: m.noNewPrivileges ?? false,
    syscallAllow: m.syscallAllow ?? [],
    syscallDeny: m.syscallDeny ?? [],
    rlimits: m.rlimits ?? [],
    oomScoreAdjust: m.oomScoreAdjust ?? NaN,
    cpuAffinity: m.cpuAffinity ?? [],
    personality: m.personality ?? "x86-64",
    resolvConf: m.resolvConf ?? "auto",
    timezone: m.timezone ?? "auto",
    linkJournal: m.linkJournal ?? "auto",
    binds: m.binds ?? [],
    tmpfs: m.tmpfs ?? [],
    overlays: m.overlays ?? [],
    inaccessible: m.inaccessible ?? [],
    bindUsers: m.bindUsers ?? [],
    selinuxContext: m.selinuxContext ?? "",
    selinuxApifsContext: m.selinuxApifsContext ?? "",
    ...(m.x11 ? { x11: m.x11 } : {}),
    console,
    quiet: (m.quiet ?? false) || console === "pipe",
    credentials: m.credentials ?? [],
    settings: m.settings ?? "yes",
    printPlan: m.printPlan ?? false,
    ociBundle: m.ociBundle ?? "",
    ...(m.bundle ? { bundle: m.bundle } : {}),
    ...(m.userIds ? { userIds: m.userIds } : {}),
  };
}

function validate(s: Settings, env: MergeEnv): void {
  if (s.boot && s.asPid2) throw usage("--boot and --as-pid2 may not be combined.");
  if (s.ephemeral && s.template) throw usage("--ephemeral and --template= may not be combined.");
  if (s.pivotRoot && s.volatile === "yes") throw usage("--pivot-root= and --volatile=yes may not be combined.");
  if (s.networkBridge && s.networkZone) throw usage("--network-bridge= and --network-zone= may not be combined.");
  if (s.ports.length > 0 && !s.privateNetwork) throw usage("Cannot use --port= without private networking.");
  if (s.networkNamespacePath && (s.networkVeth || s.networkVethExtra.length || s.networkBridge || s.networkZone ||
      s.networkMacvlan.length || s.networkIpvlan.length || s.networkInterface.length)) {
    throw usage("--network-namespace-path= cannot be combined with other network options.");
  }
  if (s.readOnly && s.privateUsersOwnership === "chown") throw usage("--read-only and --private-users-ownership=chown may not be combined.");
  if (s.directory === "/" && !s.ephemeral && s.volatile !== "yes" && s.volatile !== "state") {
    throw usage("Refusing to run the host's root directory as a container without --ephemeral or --volatile=yes|state.");
  }
  if (s.ephemeral && (s.linkJournal === "host" || s.linkJournal === "guest")) {
    throw usage("--ephemeral and --link-journal=host|guest may not be combined.");
  }
  if (s.ambientCapability) {
    if (s.boot) throw usage("--ambient-capability= may not be combined with --boot.");
    const extra = s.ambientCapability & ~s.capability;
    if (extra) throw usage(`--ambient-capability= lists capabilities the container does not retain: ${capNames(extra).join(" ")}.`);
  }
  if ((s.selinuxContext || s.selinuxApifsContext) && env.readFile("/sys/fs/selinux/enforce") === undefined) {
    throw usage(`${s.selinuxContext ? "--selinux-context=" : "--selinux-apifs-context="}: SELinux is not enabled on this host (no /sys/fs/selinux/enforce).`);
  }
  if (s.bindUsers.length > 0 && s.privateUsers.mode === "no") throw usage("--bind-user= is only supported with --private-users=/-U.");
  if (s.template && s.template === s.directory) throw usage("--template= and --directory= may not be the same directory.");
  if (s.image && s.template) throw usage("--template= and --image= may not be combined.");
  void env;
}
