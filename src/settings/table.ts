// Every container setting, declared once. A row feeds the command-line parser
// (nspawn's option names), the .nspawn reader (its [Section] Key=), the merge
// (its mask group: a group set on the command line is not taken from a file)
// and the trust rules (privileged rows are ignored in untrusted files).
import { parseCapList } from "./caps.ts";
import { usage } from "../util/errors.ts";
import { parseProperty } from "./properties.ts";
import {
  E2BIG, ERANGE, MAX_ARG_STRLEN, ParseError, checkPath, formatCpuList, isAbsoluteNormalized, isValidHostname, isValidUserName,
  normalize, parseBind, parseBoolean, parseCpuSet, parseEnvAssignment, parseId128, parseInteger, parseLoadCredential,
  parseMachineName, parseOomScoreAdjust, parseOverlay, parsePort, parseRlimit, parseSetCredential, parseSignal, parseTmpfs,
  parseUid, readCpuList, readCredentialFile, resolvePath, safeAtou64, splitQuoted, type Credential,
} from "./parse.ts";
import type { PartialSettings, PrivateUsersMode, Settings } from "./types.ts";

export type Source = "cli" | "file";

export interface Row {
  /** mask group: a group the command line set is not taken from a file */
  group: string;
  long?: string[];
  short?: string;
  arg: "none" | "required" | "optional";
  /** "Section.Key" names in .nspawn files */
  file?: string[];
  /** honoured from an untrusted .nspawn file? */
  trusted?: boolean;
  /** `v` is undefined for an option given without an argument */
  set(s: PartialSettings, v: string | undefined, src: Source, cwd: string, key?: string): void;
  help?: string;
}

function invalid(): never {
  throw new ParseError("Invalid argument");
}

function oneOf<T extends string>(values: readonly T[]): (v: string) => T {
  return (v) => {
    if ((values as readonly string[]).includes(v)) return v as T;
    return invalid();
  };
}

function push<K extends keyof Settings>(s: PartialSettings, k: K, ...items: unknown[]): void {
  const cur = (s[k] as unknown[] | undefined) ?? [];
  (s as Record<string, unknown>)[k] = [...cur, ...items];
}

/** an SELinux label (user:role:type:level...): no quotes, commas or control characters, which a mount option could not carry */
function selinuxLabel(v: string): string {
  if (!/^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.:,-]+)?$/.test(v) || v.length > 4096) return invalid();
  return v;
}

function absPath(v: string, cwd: string): string {
  if (!v) return invalid();
  const p = resolvePath(cwd, v);
  checkPath(v);
  checkPath(p);
  return p;
}

/** A boolean that is a bare flag on the command line and Key=BOOL in a file. */
function flagRow(field: keyof Settings, long: string, short?: string, file?: string, extra: Partial<Row> = {}): Row {
  return {
    group: field,
    long: [long],
    short,
    arg: "none",
    file: file ? [file] : undefined,
    set: (s, v) => {
      (s as Record<string, unknown>)[field] = v === undefined ? true : parseBoolean(v);
    },
    ...extra,
  };
}

function boolRow(field: keyof Settings, long: string, file?: string, extra: Partial<Row> = {}): Row {
  return {
    group: field,
    long: [long],
    arg: "required",
    file: file ? [file] : undefined,
    set: (s, v) => {
      (s as Record<string, unknown>)[field] = parseBoolean(v ?? "");
    },
    ...extra,
  };
}

function parsePrivateUsers(v: string): { users: PrivateUsersMode; ownership?: "auto" } {
  switch (v) {
    case "pick":
      return { users: { mode: "pick" }, ownership: "auto" };
    case "identity":
      return { users: { mode: "identity" } };
  }
  // as systemd-nspawn: a number is never a boolean, and what is neither is a UID[:RANGE]
  if (!/^\d*$/.test(v)) {
    try {
      return { users: parseBoolean(v) ? { mode: "yes" } : { mode: "no" } };
    } catch {
      /* UID[:RANGE] */
    }
  }
  const colon = v.indexOf(":");
  let range = 65536;
  if (colon >= 0) {
    const r = v.slice(colon + 1);
    try {
      const n = safeAtou64(r);
      if (n > 0xffffffffn) throw new ParseError(ERANGE);
      range = Number(n);
    } catch (e) {
      throw new ParseError(`Failed to parse UID range "${r}": ${(e as Error).message}`, true);
    }
  }
  let base: number;
  try {
    base = parseUid(colon >= 0 ? v.slice(0, colon) : v);
  } catch (e) {
    throw new ParseError(`Failed to parse UID "${v}": ${(e as Error).message}`, true);
  }
  // the last UID, base + range - 1, must be a valid one (at most 4294967294)
  if (range < 1 || base > 0xffffffff - range) throw new ParseError("UID range cannot be empty or go beyond 4294967295.", true);
  return { users: { mode: "fixed", base, range } };
}

export const VOLATILE = ["no", "yes", "state", "overlay"] as const;
export const RESOLV = [
  "off", "copy-host", "copy-static", "copy-uplink", "copy-stub", "replace-host", "replace-static", "replace-uplink",
  "replace-stub", "bind-host", "bind-static", "bind-uplink", "bind-stub", "delete", "auto",
] as const;
export const TIMEZONE = ["off", "copy", "bind", "symlink", "delete", "auto"] as const;
export const JOURNAL = ["no", "host", "try-host", "guest", "try-guest", "auto"] as const;
export const CONSOLE = ["interactive", "read-only", "passive", "pipe", "autopipe"] as const;
export const SETTINGS = ["yes", "no", "override", "trusted"] as const;
export const OWNERSHIP = ["off", "chown", "map", "auto"] as const;

/** systemd's ifname_valid(): 1…15 printable ASCII characters but ':', '/' and '%', not all digits, not ".", "..", "all" or "default" */
function ifaceName(v: string): string {
  if (!v || v.length > 15 || !/^[\x21-\x7e]+$/.test(v) || /[:/%]/.test(v)) return invalid();
  if (/^\d+$/.test(v) || v === "." || v === ".." || v === "all" || v === "default") return invalid();
  return v;
}

/** The kernel's one-string limit for an execve() argument */
function checkArgs(args: string[]): string[] {
  for (const a of args) if (Buffer.byteLength(a) >= MAX_ARG_STRLEN) throw new ParseError(E2BIG);
  return args;
}

/** A system call filter entry: a name the tables know (loaded only when a filter is given) */
function checkSyscallName(n: string): void {
  // names, not whatever a plain object answers to ("constructor", "__proto__", ...)
  let known = /^@?[a-z0-9_-]{1,64}$/.test(n) && !(n in Object.prototype);
  if (known) {
    // biome-ignore lint: lazy import keeps the tables off the common start path
    const { isKnownName } = require("./syscall-groups.ts") as typeof import("./syscall-groups.ts");
    known = isKnownName(n);
  }
  if (!known) throw new ParseError(`unknown system call or group ${n}`, false, true);
}

/** systemd's looks_like_ansi_color_code(): SGR parameters such as 40 or 48;5;17 */
function checkAnsiColor(v: string): void {
  if (v && !/^\d+(;\d+)*$/.test(v)) throw new ParseError(`Invalid --background= argument: ${v}`, true);
}

function addCredential(s: PartialSettings, c: Credential): void {
  if ((s.credentials ?? []).some((x) => x.id === c.id)) throw new ParseError(`Duplicate credential '${c.id}', refusing.`, true);
  s.credentials = [...(s.credentials ?? []), c];
}

/** HOST[:CONTAINER] interface pairs */
function ifacePair(v: string): string {
  const parts = v.split(":");
  if (parts.length > 2) return invalid();
  parts.forEach(ifaceName);
  return v;
}

export const ROWS: Row[] = [
  // --- image
  {
    group: "directory", long: ["directory"], short: "D", arg: "required",
    set: (s, v, _src, cwd) => { s.directory = absPath(v ?? "", cwd); },
  },
  {
    group: "template", long: ["template"], arg: "required",
    set: (s, v, _src, cwd) => { s.template = absPath(v ?? "", cwd); },
  },
  flagRow("ephemeral", "ephemeral", "x", "Exec.Ephemeral", { trusted: true }),
  {
    group: "image", long: ["image"], short: "i", arg: "required",
    set: (s, v, _src, cwd) => { s.image = absPath(v ?? "", cwd); },
  },
  {
    // the bundle itself is read by the caller (src/oci/bundle.ts), in place of a .nspawn file
    group: "ociBundle", long: ["oci-bundle"], arg: "required",
    set: (s, v, _src, cwd) => { s.ociBundle = absPath(v ?? "", cwd).replace(/(.)\/+$/, "$1"); },
  },
  {
    // dm-verity would need the device mapper's ioctl protocol (a table, a
    // signature check in the kernel keyring): not implemented, and said so
    group: "rootHash", long: ["root-hash", "root-hash-sig", "verity-data"], arg: "required",
    set: () => {
      throw usage("--root-hash= is not supported (nor --root-hash-sig=, --verity-data=): spawnctl does not set up dm-verity; run the image without it.");
    },
  },
  flagRow("readOnly", "read-only", undefined, "Files.ReadOnly"),
  {
    group: "volatile", long: ["volatile"], arg: "optional", file: ["Files.Volatile"],
    set: (s, v) => {
      if (v === undefined) { s.volatile = "yes"; return; }
      try {
        s.volatile = parseBoolean(v) ? "yes" : "no";
      } catch {
        s.volatile = oneOf(VOLATILE)(v);
      }
    },
  },
  // --- execution
  flagRow("boot", "boot", "b", "Exec.Boot"),
  flagRow("asPid2", "as-pid2", "a", "Exec.ProcessTwo"),
  {
    group: "parameters", arg: "required", file: ["Exec.Parameters"],
    set: (s, v) => { s.parameters = checkArgs(splitQuoted(v ?? "")); },
  },
  {
    group: "workingDirectory", long: ["chdir"], arg: "required", file: ["Exec.WorkingDirectory"],
    set: (s, v) => {
      const p = v ?? "";
      if (!p.startsWith("/")) throw new ParseError(`Working directory ${p} is not an absolute path.`, true);
      if (!isAbsoluteNormalized(p)) throw new ParseError(`Working directory ${p} is not normalized.`, true);
      checkPath(p);
      s.workingDirectory = p;
    },
  },
  {
    group: "pivotRoot", long: ["pivot-root"], arg: "required", file: ["Exec.PivotRoot"],
    set: (s, v) => {
      const parts = (v ?? "").split(":");
      if (parts.length > 2 || !parts[0]) throw new ParseError(`Failed to parse --pivot-root= argument: ${v}`, true);
      for (const p of parts) {
        if (!p.startsWith("/") || !isAbsoluteNormalized(p)) throw new ParseError(`--pivot-root=: ${p} is not an absolute, normalized path.`, true);
        checkPath(p);
      }
      s.pivotRoot = parts[1] ? { newRoot: parts[0], oldRoot: parts[1] } : { newRoot: parts[0] };
    },
  },
  {
    group: "environment", long: ["setenv"], short: "E", arg: "required", file: ["Exec.Environment"],
    set: (s, v) => {
      const a = parseEnvAssignment(v ?? "");
      if (a !== null) push(s, "environment", a);
      else s.environment ??= [];
    },
  },
  {
    group: "user", long: ["user", "uid"], short: "u", arg: "required", file: ["Exec.User"],
    set: (s, v) => {
      if (!v || !isValidUserName(v)) return invalid();
      s.user = v;
    },
  },
  {
    group: "killSignal", long: ["kill-signal"], arg: "required", file: ["Exec.KillSignal"],
    set: (s, v) => { s.killSignal = parseSignal(v ?? ""); },
  },
  boolRow("notifyReady", "notify-ready", "Exec.NotifyReady"),
  boolRow("suppressSync", "suppress-sync", "Exec.SuppressSync"),
  // --- identity
  {
    group: "machine", long: ["machine"], short: "M", arg: "required",
    set: (s, v) => { s.machine = parseMachineName(v ?? ""); },
  },
  {
    group: "hostname", long: ["hostname"], arg: "required", file: ["Exec.Hostname"],
    set: (s, v) => {
      if (!isValidHostname(v ?? "")) throw new ParseError(`Invalid hostname: ${v}`, true);
      s.hostname = v;
    },
  },
  {
    group: "uuid", long: ["uuid"], arg: "required", file: ["Exec.MachineID"], trusted: true,
    set: (s, v) => { s.uuid = parseId128(v ?? ""); },
  },
  // --- properties
  {
    group: "slice", long: ["slice"], short: "S", arg: "required",
    set: (s, v) => {
      // a unit name: at most 255 characters (UNIT_NAME_MAX with the NUL)
      if (!v || v.length > 255 || !/^[A-Za-z0-9_.\\:-]+\.slice$/.test(v)) return invalid();
      s.slice = v;
    },
  },
  {
    group: "properties", long: ["property"], arg: "required",
    set: (s, v) => {
      if (!v || !/^[A-Za-z][A-Za-z0-9]*=/.test(v)) return invalid();
      try {
        parseProperty(v);
      } catch (e) {
        throw new ParseError((e as Error).message, true);
      }
      push(s, "properties", v);
    },
  },
  {
    group: "register", long: ["register"], arg: "required",
    // spawnctl's own registry: always there, so auto is yes
    set: (s, v) => { s.register = v === "auto" ? true : parseBoolean(v ?? ""); },
  },
  flagRow("keepUnit", "keep-unit"),
  // --- user namespaces
  {
    group: "privateUsers", long: ["private-users"], arg: "optional", file: ["Exec.PrivateUsers"], trusted: true,
    set: (s, v) => {
      const r = v === undefined ? { users: { mode: "yes" } as PrivateUsersMode } : parsePrivateUsers(v);
      s.privateUsers = r.users;
      if (r.ownership && s.privateUsersOwnership === undefined) s.privateUsersOwnership = r.ownership;
    },
  },
  {
    group: "privateUsersOwnership", long: ["private-users-ownership"], arg: "required",
    file: ["Files.PrivateUsersOwnership"], trusted: true,
    set: (s, v) => { s.privateUsersOwnership = oneOf(OWNERSHIP)(v ?? ""); },
  },
  {
    group: "privateUsersOwnership", long: ["private-users-chown"], arg: "none", file: ["Files.PrivateUsersChown"], trusted: true,
    set: (s, v) => { s.privateUsersOwnership = v === undefined || parseBoolean(v) ? "chown" : "off"; },
  },
  {
    group: "privateUsers", short: "U", arg: "none",
    set: (s) => { s.privateUsers = { mode: "pick" }; s.privateUsersOwnership = "auto"; },
  },
  // --- network
  {
    group: "network", long: ["private-network"], arg: "none", file: ["Network.Private"], trusted: true,
    set: (s, v) => { s.privateNetwork = v === undefined ? true : parseBoolean(v); },
  },
  {
    group: "network", long: ["network-veth"], short: "n", arg: "none", file: ["Network.VirtualEthernet"], trusted: true,
    set: (s, v) => {
      s.networkVeth = v === undefined ? true : parseBoolean(v);
      if (s.networkVeth) s.privateNetwork = true;
    },
  },
  {
    group: "network", long: ["network-veth-extra"], arg: "required", file: ["Network.VirtualEthernetExtra"], trusted: true,
    set: (s, v) => { push(s, "networkVethExtra", ifacePair(v ?? "")); s.privateNetwork = true; },
  },
  {
    group: "network", long: ["network-bridge"], arg: "required", file: ["Network.Bridge"], trusted: true,
    set: (s, v) => { s.networkBridge = ifaceName(v ?? ""); s.networkVeth = true; s.privateNetwork = true; },
  },
  {
    group: "network", long: ["network-zone"], arg: "required", file: ["Network.Zone"], trusted: true,
    set: (s, v) => {
      const z = v ?? "";
      if (!z || z.length > 12 || !/^[A-Za-z0-9_-]+$/.test(z)) return invalid();
      s.networkZone = z; s.networkVeth = true; s.privateNetwork = true;
    },
  },
  {
    group: "network", long: ["network-macvlan"], arg: "required", file: ["Network.MACVLAN"], trusted: true,
    set: (s, v, src) => {
      for (const i of src === "file" ? (v ?? "").split(/\s+/).filter(Boolean) : [v ?? ""]) push(s, "networkMacvlan", ifacePair(i));
      s.privateNetwork = true;
    },
  },
  {
    group: "network", long: ["network-ipvlan"], arg: "required", file: ["Network.IPVLAN"], trusted: true,
    set: (s, v, src) => {
      for (const i of src === "file" ? (v ?? "").split(/\s+/).filter(Boolean) : [v ?? ""]) push(s, "networkIpvlan", ifacePair(i));
      s.privateNetwork = true;
    },
  },
  {
    group: "network", long: ["network-interface"], arg: "required", file: ["Network.Interface"], trusted: true,
    set: (s, v, src) => {
      for (const i of src === "file" ? (v ?? "").split(/\s+/).filter(Boolean) : [v ?? ""]) push(s, "networkInterface", ifacePair(i));
      s.privateNetwork = true;
    },
  },
  {
    group: "network", long: ["network-namespace-path"], arg: "required",
    set: (s, v, _src, cwd) => { s.networkNamespacePath = absPath(v ?? "", cwd); },
  },
  {
    group: "ports", long: ["port"], short: "p", arg: "required", file: ["Network.Port"], trusted: true,
    set: (s, v) => { push(s, "ports", parsePort(v ?? "")); },
  },
  // --- security
  {
    group: "capability", long: ["capability"], arg: "required", file: ["Exec.Capability"], trusted: true,
    set: (s, v) => {
      const m = parseCapList(v ?? "");
      if (m === undefined || !v) throw new ParseError(`Failed to parse capability ${v}`, true);
      s.capability = (s.capability ?? 0n) | m;
    },
  },
  {
    group: "dropCapability", long: ["drop-capability"], arg: "required", file: ["Exec.DropCapability"],
    set: (s, v) => {
      const m = parseCapList(v ?? "");
      if (m === undefined || !v) throw new ParseError(`Failed to parse capability ${v}`, true);
      s.dropCapability = (s.dropCapability ?? 0n) | m;
    },
  },
  {
    group: "ambientCapability", long: ["ambient-capability"], arg: "required", file: ["Exec.AmbientCapability"], trusted: true,
    set: (s, v) => {
      const m = parseCapList(v ?? "");
      if (m === undefined || !v) throw new ParseError(`Failed to parse capability ${v}`, true);
      s.ambientCapability = (s.ambientCapability ?? 0n) | m;
    },
  },
  boolRow("noNewPrivileges", "no-new-privileges", "Exec.NoNewPrivileges"),
  {
    group: "syscallFilter", long: ["system-call-filter"], arg: "required", file: ["Exec.SystemCallFilter"],
    set: (s, v) => {
      let text = (v ?? "").trim();
      if (!text) return invalid();
      const negate = text.startsWith("~");
      if (negate) text = text.slice(1);
      const names = text.split(/\s+/).filter(Boolean);
      if (names.length === 0) return invalid();
      // an unknown name is an error, in a .nspawn file too: a deny list with
      // a typo must not be dropped with a warning (the tables load only here,
      // when a filter is given)
      names.forEach(checkSyscallName);
      if (negate) push(s, "syscallDeny", ...names);
      else push(s, "syscallAllow", ...names);
    },
  },
  // --- resources
  {
    group: "rlimits", long: ["rlimit"], arg: "required",
    file: ["CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NOFILE", "AS", "NPROC", "MEMLOCK", "LOCKS", "SIGPENDING",
      "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"].map((n) => `Exec.Limit${n}`),
    trusted: true,
    set: (s, v, src, _cwd, key) => {
      const r = parseRlimit(src === "file" && key ? `${key.replace("Exec.Limit", "")}=${v ?? ""}` : v ?? "");
      s.rlimits = [...(s.rlimits ?? []).filter((x) => x.resource !== r.resource), r];
    },
  },
  {
    group: "oomScoreAdjust", long: ["oom-score-adjust"], arg: "required", file: ["Exec.OOMScoreAdjust"], trusted: true,
    set: (s, v, src) => { s.oomScoreAdjust = src === "file" ? parseInteger(v ?? "", -1000, 1000) : parseOomScoreAdjust(v ?? ""); },
  },
  {
    group: "cpuAffinity", long: ["cpu-affinity"], arg: "required", file: ["Exec.CPUAffinity"], trusted: true,
    set: (s, v, src) => {
      // in a file, an empty value resets; a bad one fails the whole file, as in systemd-nspawn
      if (src === "file" && v === "") return;
      try {
        const cpus = parseCpuSet(v ?? "");
        // sched_setaffinity() refuses a set with no CPU it can use
        const online = readCpuList("/sys/devices/system/cpu/online");
        if (online && online.size > 0 && !cpus.some((c) => online.has(c))) {
          throw new ParseError(`Invalid argument (no CPU of the set is online; online: ${formatCpuList(online)})`);
        }
        s.cpuAffinity = cpus;
      } catch (e) {
        if (e instanceof ParseError) throw new ParseError(e.message, e.sentence, true);
        throw e;
      }
    },
  },
  {
    group: "personality", long: ["personality"], arg: "required", file: ["Exec.Personality"],
    set: (s, v) => {
      const p = v === "x86_64" ? "x86-64" : v === "i386" || v === "i686" ? "x86" : v;
      s.personality = oneOf(["x86", "x86-64"] as const)(p ?? "");
    },
  },
  // --- integration
  {
    group: "resolvConf", long: ["resolv-conf"], arg: "required", file: ["Exec.ResolvConf"],
    set: (s, v) => { s.resolvConf = oneOf(RESOLV)(v ?? ""); },
  },
  {
    group: "timezone", long: ["timezone"], arg: "required", file: ["Exec.Timezone"],
    set: (s, v) => { s.timezone = oneOf(TIMEZONE)(v ?? ""); },
  },
  {
    group: "linkJournal", long: ["link-journal"], arg: "required", file: ["Exec.LinkJournal"], trusted: true,
    set: (s, v) => { s.linkJournal = oneOf(JOURNAL)(v ?? ""); },
  },
  {
    group: "linkJournal", short: "j", arg: "none",
    set: (s) => { s.linkJournal = "try-guest"; },
  },
  // --- mounts
  {
    group: "customMounts", long: ["bind"], arg: "required", file: ["Files.Bind"], trusted: true,
    set: (s, v, _src, cwd) => { push(s, "binds", parseBind(v ?? "", false, cwd)); },
  },
  {
    group: "customMounts", long: ["bind-ro"], arg: "required", file: ["Files.BindReadOnly"], trusted: true,
    set: (s, v, _src, cwd) => { push(s, "binds", parseBind(v ?? "", true, cwd)); },
  },
  {
    group: "customMounts", long: ["tmpfs"], arg: "required", file: ["Files.TemporaryFileSystem"], trusted: true,
    set: (s, v) => { push(s, "tmpfs", parseTmpfs(v ?? "")); },
  },
  {
    group: "customMounts", long: ["overlay"], arg: "required", file: ["Files.Overlay"], trusted: true,
    set: (s, v, _src, cwd) => { push(s, "overlays", parseOverlay(v ?? "", false, cwd)); },
  },
  {
    group: "customMounts", long: ["overlay-ro"], arg: "required", file: ["Files.OverlayReadOnly"], trusted: true,
    set: (s, v, _src, cwd) => { push(s, "overlays", parseOverlay(v ?? "", true, cwd)); },
  },
  {
    group: "customMounts", long: ["inaccessible"], arg: "required", file: ["Files.Inaccessible"], trusted: true,
    set: (s, v) => {
      const p = v ?? "";
      if (!isAbsoluteNormalized(p) || p === "/") return invalid();
      checkPath(p);
      push(s, "inaccessible", normalize(p));
    },
  },
  {
    group: "selinuxContext", long: ["selinux-context"], short: "Z", arg: "required",
    set: (s, v) => { s.selinuxContext = selinuxLabel(v ?? ""); },
  },
  {
    group: "selinuxApifsContext", long: ["selinux-apifs-context"], short: "L", arg: "required",
    set: (s, v) => { s.selinuxApifsContext = selinuxLabel(v ?? ""); },
  },
  {
    // nspawn: an empty value empties the list
    group: "bindUsers", long: ["bind-user"], arg: "required", file: ["Files.BindUser"], trusted: true,
    set: (s, v) => {
      const u = v ?? "";
      if (u === "") { s.bindUsers = []; return; }
      if (!isValidUserName(u)) throw new ParseError(`Invalid user name to bind: ${u}`, true);
      push(s, "bindUsers", u);
    },
  },
  {
    // spawnctl's own: the seed's "Avoiding xhost" recipe as one option
    group: "x11", long: ["x11"], arg: "optional", file: ["Files.X11"], trusted: true,
    set: (s, v, src) => {
      if (src === "file") {
        const b = parseBoolean(v ?? "");
        if (b) s.x11 = { display: "" };
        else delete s.x11;
        return;
      }
      const d = v ?? "";
      if (d !== "" && !/^(?:unix)?:\d{1,5}(?:\.\d{1,5})?$/.test(d)) throw new ParseError(`not an X display: ${d} (expected :N, :N.S or unix:N)`, true);
      s.x11 = { display: d };
    },
  },
  // --- input/output
  {
    group: "console", long: ["console"], arg: "required",
    set: (s, v) => { s.console = oneOf(CONSOLE)(v ?? ""); },
  },
  {
    group: "console", long: ["pipe"], short: "P", arg: "none",
    set: (s) => { s.console = "pipe"; },
  },
  {
    group: "background", long: ["background"], arg: "required",
    set: (_s, v) => { checkAnsiColor(v ?? ""); /* the pty's background tint: accepted, not drawn */ },
  },
  // --- credentials
  {
    group: "credentials", long: ["set-credential"], arg: "required",
    set: (s, v) => { addCredential(s, parseSetCredential(v ?? "")); },
  },
  {
    group: "credentials", long: ["load-credential"], arg: "required",
    set: (s, v) => { addCredential(s, parseLoadCredential(v ?? "", readCredentialFile)); },
  },
  // --- misc
  {
    group: "settings", long: ["settings"], arg: "required",
    set: (s, v) => {
      try {
        s.settings = parseBoolean(v ?? "") ? "yes" : "no";
      } catch {
        s.settings = oneOf(SETTINGS)(v ?? "");
      }
    },
  },
  flagRow("quiet", "quiet", "q"),
  flagRow("printPlan", "print-plan"),
];

/** Options that take no part in the settings (handled by the caller). */
export const META_OPTIONS = new Set(["help", "version", "no-pager", "no-ask-password"]);

const byLong = new Map<string, Row>();
const byShort = new Map<string, Row>();
const byFile = new Map<string, Row>();
for (const r of ROWS) {
  for (const l of r.long ?? []) byLong.set(l, r);
  if (r.short) byShort.set(r.short, r);
  for (const f of r.file ?? []) byFile.set(f, r);
}

export function rowByLong(name: string): Row | undefined {
  return byLong.get(name);
}
export function rowByShort(ch: string): Row | undefined {
  return byShort.get(ch);
}
export function rowByFileKey(key: string): Row | undefined {
  return byFile.get(key);
}
/** the canonical spelling of a row, for messages */
export function rowFlag(r: Row): string {
  return r.long ? `--${r.long[0]}` : `-${r.short}`;
}
