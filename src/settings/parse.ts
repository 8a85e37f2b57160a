// Value parsers shared by the command line and .nspawn files. Each returns the
// parsed value or throws a ParseError whose text completes the sentence
// "Failed to parse --flag= argument VALUE: <text>" (or names the file and line).
import { openSync, closeSync, readSync, readFileSync } from "node:fs";
import { fsMessage } from "../util/errors.ts";

export class ParseError extends Error {
  /**
   * sentence: the message is a whole sentence, not just the reason.
   * fatalInFile: in a .nspawn file this is an error, not a warning and a
   * skipped line (systemd-nspawn's CPUAffinity=; spawnctl's SystemCallFilter=).
   */
  constructor(message: string, readonly sentence = false, readonly fatalInFile = false) {
    super(message);
  }
}

export const EINVAL = "Invalid argument";
export const ERANGE = "Numerical result out of range";
export const ENAMETOOLONG = "File name too long";
export const E2BIG = "Argument list too long";

function fail(msg = EINVAL): never {
  throw new ParseError(msg);
}

// --- showing values in messages -------------------------------------------
// Values come from the command line and from .nspawn files, so they may carry
// terminal escapes, newlines (a forged second log line) or 100000 characters.
// Messages show them escaped and shortened.

const SHOWN_MAX = 256;
const SHOWN_HEAD = 128;
const MESSAGE_MAX = 4096;
// C0, DEL, C1, and the Unicode format characters that reorder or hide text
// biome-ignore lint: control characters are what we look for
const UNSAFE_CHARS = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Control and bidirectional-formatting characters as \xNN / \uNNNN, as systemd's cescape() does for the former. */
export function escapeControl(s: string): string {
  return s.replace(UNSAFE_CHARS, (c) => {
    const n = c.charCodeAt(0);
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

function shorten(s: string, originalLength: number): string {
  return `${s.slice(0, SHOWN_HEAD)}...(${originalLength} characters)`;
}

/** A value as a message shows it: escaped, and shortened when long. */
export function displayValue(v: string): string {
  const s = escapeControl(v);
  return s.length > SHOWN_MAX ? shorten(s, v.length) : s;
}

/** A whole message made safe to print: escaped, long words shortened, bounded. */
export function sanitizeMessage(m: string): string {
  let s = escapeControl(m).replace(new RegExp(`\\S{${SHOWN_MAX + 1},}`, "g"), (w) => shorten(w, w.length));
  if (s.length > MESSAGE_MAX) s = `${s.slice(0, MESSAGE_MAX - 3)}...`;
  return s;
}

// --- paths ------------------------------------------------------------------

/** Linux's PATH_MAX (with the NUL) and NAME_MAX */
export const PATH_MAX = 4096;
export const NAME_MAX = 255;

/**
 * A path the kernel can take: shorter than PATH_MAX, no component longer
 * than NAME_MAX (else ENAMETOOLONG, as systemd's path_is_valid()), and no
 * control characters (refused here: they would end up in mount tables,
 * messages and the plan).
 */
export function checkPath(p: string): void {
  // biome-ignore lint: control characters are what we look for
  if (/[\x00-\x1f\x7f]/.test(p)) fail();
  if (Buffer.byteLength(p) >= PATH_MAX) fail(ENAMETOOLONG);
  for (const c of p.split("/")) if (Buffer.byteLength(c) > NAME_MAX) fail(ENAMETOOLONG);
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

/**
 * systemd's parse_uid(): decimal without sign, blanks or leading zeros, at
 * most 4294967294, and not 65535 (the 16-bit -1).
 */
export function parseUid(v: string): number {
  if (!/^(0|[1-9]\d*)$/.test(v)) return fail();
  const n = Number(v);
  if (n > 0xffffffff) return fail(ERANGE);
  if (n === 0xffffffff || n === 0xffff) return fail("No such device or address");
  return n;
}

/** Linux's LOGIN_NAME_MAX, with the NUL */
export const LOGIN_NAME_MAX = 256;

/**
 * A user for --user=/User=: a valid UID, or a name as systemd's relaxed
 * valid_user_group_name() takes it (no control characters, ':' or '/', not
 * all digits, not "." or ".."), without blanks, and no longer than a login
 * name can be.
 */
export function isValidUserName(u: string): boolean {
  if (!u) return false;
  try {
    parseUid(u);
    return true;
  } catch {
    /* a name */
  }
  // biome-ignore lint: control characters are what we look for
  if (/[\x00-\x20\x7f:/]/.test(u) || /\s/.test(u)) return false;
  if (/^-?\d+$/.test(u) || u === "." || u === "..") return false;
  return Buffer.byteLength(u) < LOGIN_NAME_MAX;
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
  if (Object.hasOwn(SIGNALS, s)) return SIGNALS[s]!;
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
  if (!Number.isSafeInteger(n) || n < min || n > max) return fail(ERANGE);
  return n;
}

/** systemd's parse_oom_score_adjust: an integer in -1000…1000 */
export function parseOomScoreAdjust(v: string): number {
  try {
    return parseInteger(v, -1000, 1000);
  } catch {
    throw new ParseError(`Failed to parse --oom-score-adjust= parameter: ${v}`, true);
  }
}

// --- numbers as systemd parses them ------------------------------------------

export const U64_MAX = (1n << 64n) - 1n;
const WHITESPACE = " \t\n\r";

function skipSpace(s: string, i: number, also = ""): number {
  while (i < s.length && (WHITESPACE + also).includes(s[i]!)) i++;
  return i;
}

/**
 * systemd's safe_atou64(): C's strtoull() with base 0 (leading blanks, an
 * optional "+", "0x" hex, "0" octal; systemd adds "0b" and "0o"), the whole
 * string consumed, a negative number or one beyond 2^64-1 out of range.
 */
export function safeAtou64(v: string): bigint {
  let s = v.slice(skipSpace(v, 0, "\v\f"));
  let base = 10;
  if (/^0[bB]/.test(s)) {
    base = 2;
    s = s.slice(2);
  } else if (/^0[oO]/.test(s)) {
    base = 8;
    s = s.slice(2);
  }
  let neg = false;
  if (base === 10 && (s[0] === "+" || s[0] === "-")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (base === 10 && /^0[xX][0-9a-fA-F]/.test(s)) {
    base = 16;
    s = s.slice(2);
  } else if (base === 10 && /^0\d/.test(s)) {
    base = 8;
  }
  const digits = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : base === 2 ? /^[01]+$/ : /^[0-9]+$/;
  if (!digits.test(s)) return fail();
  const prefix = base === 16 ? "0x" : base === 8 ? "0o" : base === 2 ? "0b" : "";
  const n = BigInt(prefix + s);
  if (n > U64_MAX) return fail(ERANGE);
  if (neg && n !== 0n) return fail(ERANGE);
  return n;
}

const IEC: Array<[string, bigint]> = [
  ["E", 1n << 60n], ["P", 1n << 50n], ["T", 1n << 40n], ["G", 1n << 30n], ["M", 1n << 20n], ["K", 1n << 10n], ["B", 1n], ["", 1n],
];

/**
 * systemd's parse_size() with base 1024: "1G", "1.5G", "1G 512M", "100";
 * beyond 2^64-1 is ERANGE, a negative number too.
 */
export function parseSize(t: string): bigint {
  let r = 0n;
  let start = 0;
  let p = 0;
  do {
    p = skipSpace(t, p);
    const m = /^([+-]?)(\d+)/.exec(t.slice(p));
    if (!m) return fail();
    if (m[1] === "-") return fail(ERANGE);
    const l = BigInt(m[2]!);
    if (l > U64_MAX) return fail(ERANGE);
    let e = p + m[0].length;
    let fracNum = 0n;
    let fracDen = 1n;
    if (t[e] === ".") {
      e++;
      const f = /^\d+/.exec(t.slice(e));
      if (f) {
        fracNum = BigInt(f[0]);
        if (fracNum > U64_MAX) return fail(ERANGE);
        fracDen = 10n ** BigInt(f[0].length);
        e += f[0].length;
      }
    }
    e = skipSpace(t, e);
    let i = start;
    for (; i < IEC.length; i++) if (t.startsWith(IEC[i]![0], e)) break;
    if (i >= IEC.length) return fail();
    const factor = IEC[i]![1];
    if (l + (fracNum > 0n ? 1n : 0n) > U64_MAX / factor) return fail(ERANGE);
    const tmp = l * factor + (fracNum * factor) / fracDen;
    if (tmp > U64_MAX - r) return fail(ERANGE);
    r += tmp;
    p = e + IEC[i]![0].length;
    start = i + 1;
  } while (p < t.length);
  return r;
}

export const USEC_INFINITY = U64_MAX;
const USEC_PER_SEC = 1_000_000n;
const TIME_UNITS: Array<[string, bigint]> = [
  ["seconds", USEC_PER_SEC], ["second", USEC_PER_SEC], ["sec", USEC_PER_SEC], ["s", USEC_PER_SEC],
  ["minutes", 60n * USEC_PER_SEC], ["minute", 60n * USEC_PER_SEC], ["min", 60n * USEC_PER_SEC],
  ["months", 2629800n * USEC_PER_SEC], ["month", 2629800n * USEC_PER_SEC], ["M", 2629800n * USEC_PER_SEC],
  ["msec", 1000n], ["ms", 1000n], ["m", 60n * USEC_PER_SEC],
  ["hours", 3600n * USEC_PER_SEC], ["hour", 3600n * USEC_PER_SEC], ["hr", 3600n * USEC_PER_SEC], ["h", 3600n * USEC_PER_SEC],
  ["days", 86400n * USEC_PER_SEC], ["day", 86400n * USEC_PER_SEC], ["d", 86400n * USEC_PER_SEC],
  ["weeks", 604800n * USEC_PER_SEC], ["week", 604800n * USEC_PER_SEC], ["w", 604800n * USEC_PER_SEC],
  ["years", 31557600n * USEC_PER_SEC], ["year", 31557600n * USEC_PER_SEC], ["y", 31557600n * USEC_PER_SEC],
  ["usec", 1n], ["us", 1n], ["\u00b5s", 1n],
];

/** systemd's parse_time(): "90", "1min 30s", "1.5h", "infinity"; microseconds, USEC_INFINITY for infinity. */
export function parseTimeSpan(t: string, defaultUnit: bigint): bigint {
  let p = skipSpace(t, 0);
  if (t.startsWith("infinity", p)) {
    if (skipSpace(t, p + 8) !== t.length) return fail();
    return USEC_INFINITY;
  }
  const digit = (i: number) => i < t.length && t[i]! >= "0" && t[i]! <= "9";
  let usec = 0n;
  let something = false;
  for (;;) {
    let multiplier = defaultUnit;
    p = skipSpace(t, p);
    if (p >= t.length) {
      if (!something) return fail();
      break;
    }
    if (t[p] === "-") return fail(ERANGE);
    // strtoll(): an optional "+", then digits; none at all converts nothing
    const m = /^\+?(\d*)/.exec(t.slice(p))!;
    const e = m[1] === "" ? p : p + m[0].length;
    const l = m[1] === "" ? 0n : BigInt(m[1]!);
    if (l > (1n << 63n) - 1n) return fail(ERANGE);
    if (t[e] === ".") {
      p = e + 1;
      while (digit(p)) p++;
    } else if (e === p) return fail();
    else p = e;
    const u = skipSpace(t, p);
    let s = u;
    for (const [suffix, mul] of TIME_UNITS) {
      if (t.startsWith(suffix, u)) {
        multiplier = mul;
        s = u + suffix.length;
        break;
      }
    }
    // "12.34.56" is no time span; "12.34 .56" and "12.34s.56" are
    if (s === p && s < t.length) return fail();
    p = s;
    if (l >= USEC_INFINITY / multiplier) return fail(ERANGE);
    const k = l * multiplier;
    if (k >= USEC_INFINITY - usec) return fail(ERANGE);
    usec += k;
    something = true;
    if (t[e] === ".") {
      let mm = multiplier / 10n;
      let b = e + 1;
      for (; digit(b); b++, mm /= 10n) {
        const kk = BigInt(t[b]!) * mm;
        if (kk >= USEC_INFINITY - usec) return fail(ERANGE);
        usec += kk;
      }
      if (b === e + 1) return fail();
    }
  }
  return usec;
}

/**
 * systemd's parse_permyriad(): "N%" (two decimals at most), "N‰" (one) or
 * "N‱"; in 1/10000. `bounded`: at most 100%. Returns undefined when the
 * value is not a percentage at all, so that callers can try other forms.
 */
export function parsePermyriad(v: string, bounded = true): number | undefined {
  let m = /^(\d+)(?:\.(\d{1,2}))?%$/.exec(v);
  let r: bigint | undefined;
  if (m) r = BigInt(m[1]!) * 100n + BigInt((m[2] ?? "").padEnd(2, "0") || "0");
  else if ((m = /^(\d+)(?:\.(\d))?\u2030$/.exec(v))) r = BigInt(m[1]!) * 10n + BigInt(m[2] ?? "0");
  else if ((m = /^(\d+)\u2031$/.exec(v))) r = BigInt(m[1]!);
  else if (/[%\u2030\u2031]$/.test(v)) return fail();
  if (r === undefined) return undefined;
  // systemd parses into an int
  if (r > 2147483647n || (bounded && r > 10000n)) return fail(ERANGE);
  return Number(r);
}

/** Environment assignment NAME=VALUE (or NAME alone: take the host's value). */
export function parseEnvAssignment(v: string): string | null {
  const eq = v.indexOf("=");
  const name = eq < 0 ? v : v.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ParseError(`Environment variable assignment '${v}' is not valid`, true);
  // the kernel's limit for one string of an execve() (MAX_ARG_STRLEN, with the NUL)
  if (Buffer.byteLength(v) >= MAX_ARG_STRLEN) return fail(E2BIG);
  if (eq >= 0) return v;
  const host = process.env[name];
  return host === undefined ? null : `${name}=${host}`;
}

/** Linux's limit for one argument or environment string of execve(), with its NUL */
export const MAX_ARG_STRLEN = 131072;

export const RLIMITS: Record<string, number> = {
  CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7, MEMLOCK: 8, AS: 9,
  LOCKS: 10, SIGPENDING: 11, MSGQUEUE: 12, NICE: 13, RTPRIO: 14, RTTIME: 15,
};
export const RLIM_INFINITY = U64_MAX;

/** How systemd's rlimit_parse() reads each resource's value */
const RLIMIT_KIND: Record<string, "size" | "u64" | "sec" | "usec" | "nice"> = {
  CPU: "sec", FSIZE: "size", DATA: "size", STACK: "size", CORE: "size", RSS: "size", NOFILE: "u64", AS: "size",
  NPROC: "u64", MEMLOCK: "size", LOCKS: "u64", SIGPENDING: "u64", MSGQUEUE: "size", NICE: "nice", RTPRIO: "u64", RTTIME: "usec",
};

function parseRlimValue(name: string, v: string): bigint {
  const kind = RLIMIT_KIND[name]!;
  if (kind === "nice") {
    // +N and -N are nice levels (19…-20); a bare number is the raw limit (0…40)
    if (v[0] === "+") {
      const n = safeAtou64(v.slice(1));
      if (n >= 20n) return fail(ERANGE);
      return 20n - n;
    }
    if (v[0] === "-") {
      const n = safeAtou64(v.slice(1));
      if (n > 20n) return fail(ERANGE);
      return 20n + n;
    }
    const n = safeAtou64(v);
    if (n > 40n) return fail(ERANGE);
    return n;
  }
  if (v === "infinity") return RLIM_INFINITY;
  let n: bigint;
  if (kind === "size") n = parseSize(v);
  else if (kind === "u64") n = safeAtou64(v);
  else {
    const t = parseTimeSpan(v, kind === "sec" ? USEC_PER_SEC : 1n);
    if (t === USEC_INFINITY) return RLIM_INFINITY;
    n = kind === "sec" ? (t + USEC_PER_SEC - 1n) / USEC_PER_SEC : t;
  }
  // only the word "infinity" means no limit
  if (n >= RLIM_INFINITY) return fail(ERANGE);
  return n;
}

let nrOpenCache: bigint | null | undefined;
/** fs.nr_open: the kernel refuses a hard RLIMIT_NOFILE above it (EPERM) */
function nrOpen(): bigint | null {
  if (nrOpenCache === undefined) {
    try {
      nrOpenCache = BigInt(readFileSync("/proc/sys/fs/nr_open", "utf8").trim());
    } catch {
      nrOpenCache = null;
    }
  }
  return nrOpenCache;
}

export interface Rlimit { resource: number; name: string; soft: bigint; hard: bigint }

/** --rlimit=NAME=SOFT[:HARD] */
export function parseRlimit(v: string): Rlimit {
  const eq = v.indexOf("=");
  if (eq < 0) throw new ParseError("--rlimit= expects an '=' assignment.", true);
  let name = v.slice(0, eq).toUpperCase();
  if (name.startsWith("RLIMIT_")) name = name.slice(7);
  else if (name.startsWith("LIMIT")) name = name.slice(5);
  if (!Object.hasOwn(RLIMITS, name)) throw new ParseError(`Unknown resource limit: ${v.slice(0, eq)}`, true);
  const resource = RLIMITS[name]!;
  // SOFT[:HARD]; "SOFT:" is SOFT, as systemd's extract_first_word() reads it
  const [s, h, extra] = v.slice(eq + 1).split(":");
  if (extra !== undefined || !s) return fail();
  const soft = parseRlimValue(name, s);
  const hard = h === undefined || h === "" ? soft : parseRlimValue(name, h);
  if (soft > hard) return fail("Soft limit is above the hard limit");
  if (name === "NOFILE") {
    const max = nrOpen();
    if (max !== null && hard > max) return fail(`Operation not permitted (the kernel's maximum, fs.nr_open, is ${max})`);
  }
  return { resource, name, soft, hard };
}

/** The largest CPU number systemd's CPUSet takes, plus one (CONFIG_NR_CPUS can be 8192) */
export const CPU_SET_MAX = 8192;

/** "0-3,5 7" → sorted CPU numbers */
export function parseCpuSet(v: string): number[] {
  const bits = new Uint8Array(CPU_SET_MAX);
  let any = false;
  for (const part of v.split(/[\s,]+/)) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return fail();
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) return fail();
    if (b >= CPU_SET_MAX) return fail(ERANGE);
    bits.fill(1, a, b + 1);
    any = true;
  }
  if (!any) return fail();
  const out: number[] = [];
  for (let i = 0; i < CPU_SET_MAX; i++) if (bits[i]) out.push(i);
  return out;
}

/** "0-3,5" as the kernel prints CPU lists (/sys/devices/system/cpu/online) → CPU numbers; undefined if unreadable. */
export function readCpuList(path: string): Set<number> | undefined {
  try {
    const text = readFileSync(path, "utf8").trim();
    return new Set(text === "" ? [] : parseCpuSet(text));
  } catch {
    return undefined;
  }
}

/** Compact "0-3,5" form of a CPU list */
export function formatCpuList(cpus: Iterable<number>): string {
  const sorted = [...cpus].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(",");
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

/** A mount source as systemd's source_path_parse(): "+/PATH" in the image, else a host path made absolute. */
function sourcePath(p: string, cwd: string): { path: string; inImage: boolean } {
  if (p.startsWith("+")) {
    const q = p.slice(1);
    if (!q.startsWith("/")) return fail();
    checkPath(q);
    return { path: normalize(q), inImage: true };
  }
  const abs = resolvePath(cwd, p);
  checkPath(abs);
  return { path: abs, inImage: false };
}

/** A mount point in the container: absolute, normalized, not "/" */
function destinationPath(p: string): string {
  if (!isAbsoluteNormalized(p) || p === "/") return fail();
  checkPath(p);
  return normalize(p);
}

export function parseBind(v: string, readOnly: boolean, cwd = process.cwd()): BindMount {
  const parts = splitColons(v);
  if (parts.length > 3 || parts.length === 0) return fail();
  const [src, dstRaw, opts] = parts as [string, string?, string?];
  if (src === "" && (dstRaw === undefined || dstRaw === "")) return fail();
  // SRC alone: the same path in the container, as written (so it must be absolute)
  const dst = dstRaw === undefined || dstRaw === "" ? (src.startsWith("+") ? src.slice(1) : src) : dstRaw;
  const source = src === "" ? { path: "", inImage: false } : sourcePath(src, cwd);
  const b: BindMount = { source: source.path, sourceInImage: source.inImage, destination: destinationPath(dst), readOnly, recursive: true, idmap: "none" };
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

/** mount(2) copies at most a page of options */
const MOUNT_OPTIONS_MAX = 4095;

export function parseTmpfs(v: string): TmpfsMount {
  const parts = splitColons(v);
  const destination = destinationPath(parts[0] ?? "");
  // PATH:OPTIONS, the options taken whole (mpol=bind:0-3 has a colon)
  const options = parts.slice(1).join(":") || "mode=0755";
  // biome-ignore lint: control characters are what we look for
  if (/[\x00-\x1f\x7f]/.test(options)) return fail();
  if (Buffer.byteLength(options) > MOUNT_OPTIONS_MAX) return fail(E2BIG);
  return { destination, options };
}

export interface OverlayMount { lower: Array<{ path: string; inImage: boolean }>; upper: { path: string; inImage: boolean } | null; destination: string; readOnly: boolean }

export function parseOverlay(v: string, readOnly: boolean, cwd = process.cwd()): OverlayMount {
  const parts = splitColons(v);
  if (parts.length < 2) return fail();
  const conv = (p: string) => (p === "" ? { path: "", inImage: false } : sourcePath(p, cwd));
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
  destination = destinationPath(destination);
  const convd = layers.map(conv);
  if (convd.slice(0, -1).some((l) => l.path === "")) return fail();
  const upperRaw = convd[convd.length - 1]!;
  if (readOnly) {
    return { lower: convd, upper: null, destination, readOnly };
  }
  return { lower: convd.slice(0, -1), upper: upperRaw, destination, readOnly };
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

/** systemd's CREDENTIAL_SIZE_MAX */
export const CREDENTIAL_SIZE_MAX = 1024 * 1024;

/** Read a credential file, refusing one larger than CREDENTIAL_SIZE_MAX (and never reading more, so /dev/zero is no problem). */
export function readCredentialFile(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(CREDENTIAL_SIZE_MAX + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > CREDENTIAL_SIZE_MAX) throw new Error(`File too large (more than ${CREDENTIAL_SIZE_MAX} bytes)`);
    }
    return new Uint8Array(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/**
 * --load-credential=ID:PATH (read now, so a missing file is an error up
 * front). A relative PATH is a credential passed to spawnctl itself, in
 * $CREDENTIALS_DIRECTORY, as systemd-nspawn reads it.
 */
export function parseLoadCredential(v: string, read: (p: string) => Uint8Array): Credential {
  const i = v.indexOf(":");
  if (i < 0) return fail();
  const id = v.slice(0, i);
  let path = v.slice(i + 1);
  if (!credentialIdValid(id)) throw new ParseError(`Credential name is not valid: ${id}`, true);
  if (!path) return fail();
  if (!path.startsWith("/")) {
    const dir = process.env.CREDENTIALS_DIRECTORY;
    if (!dir) throw new ParseError(`Credential not available (no credentials passed at all): ${id}`, true);
    path = `${dir}/${path}`;
  }
  checkPath(path);
  try {
    return { id, data: read(path) };
  } catch (e) {
    throw new ParseError(`Failed to read credential '${id}' from ${path}: ${fsMessage(e)}`, true);
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
