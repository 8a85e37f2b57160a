// Value parsers shared by the command line and .nspawn files. Each returns the
// parsed value or throws a ParseError whose text completes the sentence
// "Failed to parse --flag= argument VALUE: <text>" (or names the file and line).

export class ParseError extends Error {
  /** true when the message is a whole sentence, not just the reason */
  constructor(message: string, readonly sentence = false) {
    super(message);
  }
}

function fail(msg = "Invalid argument"): never {
  throw new ParseError(msg);
}

/** systemd's parse_boolean */
export function parseBoolean(v: string): boolean {
  switch (v.toLowerCase()) {
    case "1": case "yes": case "y": case "true": case "t": case "on":
      return true;
    case "0": case "no": case "n": case "false": case "f": case "off":
      return false;
  }
  return fail();
}

export function isAbsoluteNormalized(p: string): boolean {
  if (!p.startsWith("/")) return false;
  return !p.split("/").some((c, i, all) => c === "." || c === ".." || (c === "" && i > 0 && i < all.length - 1));
}

/** A hostname (and machine name) as systemd's hostname_is_valid: labels of
 * [a-zA-Z0-9-_], dots between them, at most 64 characters. */
export function isValidHostname(s: string): boolean {
  if (!s || s.length > 64 || s.startsWith(".") || s.endsWith(".") || s.includes("..")) return false;
  return /^[A-Za-z0-9_.-]+$/.test(s) && !s.split(".").some((l) => l.startsWith("-"));
}

export function isValidMachineName(s: string): boolean {
  return isValidHostname(s);
}

export function parseMachineName(v: string): string {
  if (!isValidMachineName(v)) throw new ParseError(`Invalid machine name: ${v}`, true);
  return v;
}

/** A 128-bit id, with or without dashes; returned as 32 lower-case hex digits. */
export function parseId128(v: string): string {
  const hex = v.replace(/-/g, "").toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex) || /^0+$/.test(hex)) throw new ParseError(`Invalid UUID: ${v}`, true);
  if (v.includes("-") && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(v)) throw new ParseError(`Invalid UUID: ${v}`, true);
  return hex;
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11,
  USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21,
  TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};
/** glibc's SIGRTMIN: the kernel's 32 and 33 are reserved by the C library */
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

export function parseSignal(v: string): number {
  let s = v.trim().toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= SIGRTMAX) return n;
    return fail();
  }
  if (s.startsWith("SIG")) s = s.slice(3);
  if (s in SIGNALS) return SIGNALS[s]!;
  let m = /^RTMIN(?:\+(\d+))?$/.exec(s);
  if (m) {
    const n = SIGRTMIN + Number(m[1] ?? 0);
    if (n <= SIGRTMAX) return n;
  }
  m = /^RTMAX(?:-(\d+))?$/.exec(s);
  if (m) {
    const n = SIGRTMAX - Number(m[1] ?? 0);
    if (n >= SIGRTMIN) return n;
  }
  return fail();
}

export function signalName(n: number): string {
  for (const [k, v] of Object.entries(SIGNALS)) if (v === n && k !== "IOT" && k !== "POLL") return `SIG${k}`;
  if (n >= SIGRTMIN && n <= SIGRTMAX) return n === SIGRTMIN ? "SIGRTMIN" : `SIGRTMIN+${n - SIGRTMIN}`;
  return String(n);
}

export function parseInteger(v: string, min: number, max: number): number {
  if (!/^[-+]?\d+$/.test(v.trim())) return fail();
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) return fail("Numerical result out of range");
  return n;
}

/** Environment assignment NAME=VALUE (or NAME alone: take the host's value). */
export function parseEnvAssignment(v: string): string | null {
  const eq = v.indexOf("=");
  const name = eq < 0 ? v : v.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ParseError(`Environment variable assignment '${v}' is not valid`, true);
  if (eq >= 0) return v;
  const host = process.env[name];
  return host === undefined ? null : `${name}=${host}`;
}

export const RLIMITS: Record<string, number> = {
  CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7, MEMLOCK: 8, AS: 9,
  LOCKS: 10, SIGPENDING: 11, MSGQUEUE: 12, NICE: 13, RTPRIO: 14, RTTIME: 15,
};
export const RLIM_INFINITY = 0xffffffffffffffffn;

function parseRlimValue(v: string): bigint {
  if (v === "infinity") return RLIM_INFINITY;
  // sizes may carry K/M/G/T suffixes (1024-based), as systemd allows
  const m = /^(\d+)([KMGTPE]?)$/.exec(v);
  if (!m) return fail();
  const mult: Record<string, bigint> = { "": 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n, P: 1n << 50n, E: 1n << 60n };
  return BigInt(m[1]!) * mult[m[2]!]!;
}

export interface Rlimit { resource: number; name: string; soft: bigint; hard: bigint }

/** --rlimit=NAME=SOFT[:HARD] */
export function parseRlimit(v: string): Rlimit {
  const eq = v.indexOf("=");
  if (eq < 0) return fail();
  let name = v.slice(0, eq).toUpperCase();
  if (name.startsWith("RLIMIT_")) name = name.slice(7);
  const resource = RLIMITS[name];
  if (resource === undefined) throw new ParseError(`Unknown resource limit: ${v.slice(0, eq)}`, true);
  const [s, h, extra] = v.slice(eq + 1).split(":");
  if (extra !== undefined || !s) return fail();
  const soft = parseRlimValue(s);
  const hard = h === undefined ? soft : parseRlimValue(h);
  if (soft > hard) return fail("Soft limit is above the hard limit");
  return { resource, name, soft, hard };
}

/** "0-3,5 7" → sorted CPU numbers */
export function parseCpuSet(v: string): number[] {
  const out = new Set<number>();
  for (const part of v.split(/[\s,]+/)) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return fail();
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 8191) return fail();
    for (let i = a; i <= b; i++) out.add(i);
  }
  if (out.size === 0) return fail();
  return [...out].sort((x, y) => x - y);
}

/** Split on unescaped ':' and undo "\:" escapes (nspawn's bind syntax). */
export function splitColons(v: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < v.length; i++) {
    const ch = v[i]!;
    if (ch === "\\" && i + 1 < v.length) {
      cur += v[++i];
    } else if (ch === ":") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export interface BindMount {
  /** host path; "" = a temporary directory made for this run */
  source: string;
  /** source is relative to the container's root ("+SRC") */
  sourceInImage: boolean;
  destination: string;
  readOnly: boolean;
  recursive: boolean;
  idmap: "none" | "idmap" | "rootidmap" | "owneridmap";
}

export function parseBind(v: string, readOnly: boolean, cwd = process.cwd()): BindMount {
  const parts = splitColons(v);
  if (parts.length > 3 || parts.length === 0) return fail();
  let [src, dst, opts] = parts as [string, string?, string?];
  let sourceInImage = false;
  if (src.startsWith("+")) {
    sourceInImage = true;
    src = src.slice(1);
    if (!src.startsWith("/")) src = `/${src}`;
  }
  if (src === "" && (dst === undefined || dst === "")) return fail();
  if (src !== "" && !sourceInImage && !src.startsWith("/")) src = resolvePath(cwd, src);
  if (dst === undefined || dst === "") dst = sourceInImage ? src : src;
  if (!isAbsoluteNormalized(dst) || dst === "/") return fail();
  if (src !== "" && !isAbsoluteNormalized(normalize(src))) return fail();
  const b: BindMount = { source: src === "" ? "" : normalize(src), sourceInImage, destination: normalize(dst), readOnly, recursive: true, idmap: "none" };
  if (opts !== undefined) {
    for (const o of opts.split(",")) {
      switch (o) {
        case "rbind": b.recursive = true; break;
        case "norbind": b.recursive = false; break;
        case "noidmap": b.idmap = "none"; break;
        case "idmap": case "rootidmap": case "owneridmap": b.idmap = o; break;
        case "": break;
        default: throw new ParseError(`Invalid bind mount option: ${o}`);
      }
    }
  }
  return b;
}

export interface TmpfsMount { destination: string; options: string }

export function parseTmpfs(v: string): TmpfsMount {
  const parts = splitColons(v);
  const dst = parts[0] ?? "";
  if (!isAbsoluteNormalized(dst) || dst === "/" || parts.length > 2) return fail();
  return { destination: normalize(dst), options: parts[1] ?? "mode=0755" };
}

export interface OverlayMount { lower: Array<{ path: string; inImage: boolean }>; upper: { path: string; inImage: boolean } | null; destination: string; readOnly: boolean }

export function parseOverlay(v: string, readOnly: boolean, cwd = process.cwd()): OverlayMount {
  const parts = splitColons(v);
  if (parts.length < 2) return fail();
  const conv = (p: string) => {
    if (p.startsWith("+")) return { path: normalize(p.slice(1).startsWith("/") ? p.slice(1) : `/${p.slice(1)}`), inImage: true };
    if (p === "") return { path: "", inImage: false };
    return { path: normalize(p.startsWith("/") ? p : resolvePath(cwd, p)), inImage: false };
  };
  let destination: string;
  let layers: string[];
  if (parts.length === 2) {
    // LOWER:UPPER — the upper directory is also the mount point
    destination = parts[1]!;
    layers = parts;
  } else {
    destination = parts[parts.length - 1]!;
    layers = parts.slice(0, -1);
  }
  if (!isAbsoluteNormalized(destination) || destination === "/") return fail();
  const convd = layers.map(conv);
  if (convd.slice(0, -1).some((l) => l.path === "")) return fail();
  const upperRaw = convd[convd.length - 1]!;
  if (readOnly) {
    return { lower: convd, upper: null, destination: normalize(destination), readOnly };
  }
  return { lower: convd.slice(0, -1), upper: upperRaw, destination: normalize(destination), readOnly };
}

export function normalize(p: string): string {
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return `/${out.join("/")}`;
}

export function resolvePath(cwd: string, p: string): string {
  return normalize(p.startsWith("/") ? p : `${cwd}/${p}`);
}

export interface Credential { id: string; data: Uint8Array }

function credentialIdValid(id: string): boolean {
  return id.length > 0 && id.length <= 255 && id !== "." && id !== ".." && !id.includes("/") && /^[\x21-\x7e]+$/.test(id);
}

/** --set-credential=ID:VALUE (C escapes in VALUE are expanded) */
export function parseSetCredential(v: string): Credential {
  const i = v.indexOf(":");
  if (i < 0) return fail();
  const id = v.slice(0, i);
  if (!credentialIdValid(id)) throw new ParseError(`Credential name is not valid: ${id}`, true);
  return { id, data: new TextEncoder().encode(unescapeC(v.slice(i + 1))) };
}

/** --load-credential=ID:PATH (read now, so a missing file is an error up front) */
export function parseLoadCredential(v: string, read: (p: string) => Uint8Array): Credential {
  const i = v.indexOf(":");
  if (i < 0) return fail();
  const id = v.slice(0, i);
  const path = v.slice(i + 1);
  if (!credentialIdValid(id)) throw new ParseError(`Credential name is not valid: ${id}`, true);
  if (!path) return fail();
  try {
    return { id, data: read(path) };
  } catch (e) {
    throw new ParseError(`Failed to read credential '${id}' from ${path}: ${(e as Error).message}`, true);
  }
}

function unescapeC(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", f: "\f", v: "\v", "\\": "\\", '"': '"', "'": "'", s: " " };
    return map[e] ?? e;
  });
}

/** systemd's extract_first_word with quotes, for Parameters= and list values */
export function splitQuoted(v: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  let quote: string | null = null;
  for (let i = 0; i < v.length; i++) {
    const ch = v[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && i + 1 < v.length) cur += v[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= "";
    } else if (/\s/.test(ch)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else if (ch === "\\" && i + 1 < v.length) {
      cur = (cur ?? "") + v[++i];
    } else cur = (cur ?? "") + ch;
  }
  if (quote) return fail("Unbalanced quotes");
  if (cur !== null) out.push(cur);
  return out;
}

/** -p/--port=[tcp|udp:]HOSTPORT[:CONTAINERPORT] */
export interface PortForward { protocol: "tcp" | "udp"; hostPort: number; containerPort: number }
export function parsePort(v: string): PortForward {
  let rest = v;
  let protocol: "tcp" | "udp" = "tcp";
  const m = /^(tcp|udp):(.*)$/.exec(v);
  if (m) {
    protocol = m[1] as "tcp" | "udp";
    rest = m[2]!;
  }
  const parts = rest.split(":");
  const num = (s: string | undefined) => {
    if (s === undefined || !/^\d+$/.test(s)) throw new ParseError(`Failed to parse host port ${v}: Invalid argument`, true);
    const n = Number(s);
    if (n < 1 || n > 65535) throw new ParseError(`Failed to parse host port ${v}: Invalid argument`, true);
    return n;
  };
  if (parts.length > 2) throw new ParseError(`Failed to parse host port ${v}: Invalid argument`, true);
  const hostPort = num(parts[0]);
  const containerPort = parts.length === 2 ? num(parts[1]) : hostPort;
  return { protocol, hostPort, containerPort };
}
