// A container's settings. Every source (command line, .nspawn file, machine
// defaults) produces a Partial<Settings> where `undefined` means "not set";
// defaults are applied once, after merging (see merge.ts).
import type { BindMount, Credential, OverlayMount, PortForward, Rlimit, TmpfsMount } from "./parse.ts";

export type VolatileMode = "no" | "yes" | "state" | "overlay";
export type ConsoleMode = "interactive" | "read-only" | "passive" | "pipe" | "autopipe";
export type ResolvConfMode =
  | "off" | "copy-host" | "copy-static" | "copy-uplink" | "copy-stub" | "replace-host" | "replace-static"
  | "replace-uplink" | "replace-stub" | "bind-host" | "bind-static" | "bind-uplink" | "bind-stub" | "delete" | "auto";
export type TimezoneMode = "off" | "copy" | "bind" | "symlink" | "delete" | "auto";
export type LinkJournalMode = "no" | "host" | "try-host" | "guest" | "try-guest" | "auto";
export type SettingsMode = "yes" | "no" | "override" | "trusted";
export type PrivateUsersMode =
  | { mode: "no" }
  | { mode: "yes" }
  | { mode: "pick" }
  | { mode: "identity" }
  | { mode: "fixed"; base: number; range: number };
export type OwnershipMode = "off" | "chown" | "map" | "auto";
export type PersonalityName = "x86" | "x86-64";

export interface Settings {
  // image
  directory: string;
  template: string;
  ephemeral: boolean;
  image: string;
  readOnly: boolean;
  volatile: VolatileMode;
  // execution
  boot: boolean;
  asPid2: boolean;
  parameters: string[];
  workingDirectory: string;
  /** --pivot-root=NEW[:OLD]: the directory of the tree that becomes /, and where the tree's own root goes (none: hidden) */
  pivotRoot?: { newRoot: string; oldRoot?: string };
  environment: string[];
  user: string;
  killSignal: number;
  notifyReady: boolean;
  suppressSync: boolean;
  // identity
  machine: string;
  hostname: string;
  uuid: string;
  // properties (accepted for compatibility; resource limits via --property=)
  slice: string;
  properties: string[];
  register: boolean;
  keepUnit: boolean;
  // user namespaces
  privateUsers: PrivateUsersMode;
  privateUsersOwnership: OwnershipMode;
  // network
  privateNetwork: boolean;
  networkVeth: boolean;
  networkVethExtra: string[];
  networkBridge: string;
  networkZone: string;
  networkMacvlan: string[];
  networkIpvlan: string[];
  networkInterface: string[];
  networkNamespacePath: string;
  ports: PortForward[];
  // security
  capability: bigint;
  dropCapability: bigint;
  ambientCapability: bigint;
  noNewPrivileges: boolean;
  /** -Z/--selinux-context=: the payload's SELinux label ("" = the host's default) */
  selinuxContext: string;
  /** -L/--selinux-apifs-context=: the label of the container's API file systems */
  selinuxApifsContext: string;
  syscallAllow: string[];
  syscallDeny: string[];
  // resources
  rlimits: Rlimit[];
  oomScoreAdjust: number;
  cpuAffinity: number[];
  personality: PersonalityName;
  // integration
  resolvConf: ResolvConfMode;
  timezone: TimezoneMode;
  linkJournal: LinkJournalMode;
  // mounts
  binds: BindMount[];
  tmpfs: TmpfsMount[];
  overlays: OverlayMount[];
  inaccessible: string[];
  /** --bind-user=: host users whose homes and accounts appear in the container (needs -U) */
  bindUsers: string[];
  /** --x11[=DISPLAY] (spawnctl's own): the host's X display in the container; "" = $DISPLAY */
  x11?: { display: string };
  // io
  console: ConsoleMode;
  quiet: boolean;
  // credentials
  credentials: Credential[];
  // settings file handling
  settings: SettingsMode;
  // spawnctl's own
  printPlan: boolean;
  // --oci-bundle=: the bundle's directory, and what its config.json asks that no option says
  ociBundle: string;
  bundle?: BundleExtras;
  /** the payload's ids as numbers, not looked up (an OCI bundle's process.user) */
  userIds?: { uid: number; gid: number; groups: number[] };
}

export interface BundleDevice { path: string; type: "c" | "b" | "p"; major: number; minor: number; mode: number; uid: number; gid: number }
export interface BundleHook { path: string; args: string[]; env: string[]; timeout?: number }

/** The parts of an OCI bundle's config.json that the plan carries out itself (see src/oci/bundle.ts). */
export interface BundleExtras {
  /** paths made inaccessible, and bound read-only on themselves; missing ones are skipped */
  maskedPaths: string[];
  readonlyPaths: string[];
  devices: BundleDevice[];
  /** namespaced sysctls: [key with dots, value] */
  sysctl: Array<[string, string]>;
  domainname?: string;
  umask?: number;
  consoleSize?: { width: number; height: number };
  hooks: { prestart: BundleHook[]; poststart: BundleHook[]; poststop: BundleHook[] };
}

export type PartialSettings = Partial<Settings>;

/** Whether the host has links, addresses or rules to make for the container
 * (its own network namespace with more than a loopback, which the child
 * brings up itself). */
export function needsNetworkSetup(s: Settings): boolean {
  return s.privateNetwork && !s.networkNamespacePath &&
    (s.networkVeth || s.networkVethExtra.length > 0 || s.networkMacvlan.length > 0 || s.networkIpvlan.length > 0 || s.networkInterface.length > 0 || s.ports.length > 0);
}
