// The pure parts of the image verbs: which names are images, what a
// download or archive is called locally, which compression a file name
// asks for, sizes as machinectl spells them, and SHA256SUMS lines. Nothing
// here touches the machine, so all of it is unit-tested.
import { usage } from "../util/errors.ts";
import { isValidMachineName } from "../settings/parse.ts";

/**
 * An image name as systemd's image_name_is_valid(): a valid file name (no
 * "/", not "." or "..", at most 255 bytes), no control characters, and not
 * starting with ".#", which marks temporary files and lock files. Hidden
 * images (".foo") are valid names.
 */
export function isValidImageName(s: string): boolean {
  if (s === "" || s === "." || s === ".." || s.includes("/") || s.includes("\0")) return false;
  if (Buffer.byteLength(s) > 255) return false;
  // biome-ignore lint: control characters are what we look for
  if (/[\x00-\x1f\x7f]/.test(s)) return false;
  return !s.startsWith(".#");
}

/** Hidden images start with a dot; `clean` removes them, `list-images` shows them only with --all. */
export function isHiddenImage(name: string): boolean {
  return name.startsWith(".");
}

/** A name for a new image made by an import or a pull: it will be a machine name, so it must be a valid hostname. */
export function checkNewMachineName(name: string): void {
  if (!isValidMachineName(name)) throw usage(`Local name ${JSON.stringify(name)} is not a suitable machine name.`);
}

const TAR_SUFFIXES = [".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tgz", ".txz", ".tbz2", ".tzst", ".tar"];
const RAW_SUFFIXES = [".xz", ".gz", ".bz2", ".zst", ".raw", ".qcow2", ".img", ".bin"];

/** "debian-12.tar.xz" -> "debian-12" (one tar suffix, as importd's tar_strip_suffixes). */
export function stripTarSuffix(fn: string): string {
  for (const s of TAR_SUFFIXES) if (fn.endsWith(s) && fn.length > s.length) return fn.slice(0, -s.length);
  return fn;
}

/** "disk.raw.xz" -> "disk" (compression and image suffixes, repeatedly, as importd's raw_strip_suffixes). */
export function stripRawSuffix(fn: string): string {
  let out = fn;
  for (let again = true; again; ) {
    again = false;
    for (const s of RAW_SUFFIXES) {
      if (out.endsWith(s) && out.length > s.length) {
        out = out.slice(0, -s.length);
        again = true;
      }
    }
  }
  return out;
}

/** The last path component of a URL, without query and fragment ("" when the path ends in "/"). */
export function urlLastComponent(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usage(`Invalid URL: ${url}`);
  }
  const path = u.pathname;
  return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
}

/** The URL of a file next to `url` ("SHA256SUMS" beside "https://x/y/image.tar.xz"). */
export function urlSibling(url: string, name: string): string {
  const u = new URL(url);
  u.search = "";
  u.hash = "";
  u.pathname = u.pathname.slice(0, u.pathname.lastIndexOf("/") + 1) + encodeURIComponent(name);
  return u.toString();
}

export type UrlScheme = "http" | "https" | "file";

/** Checks a URL for pull-tar/pull-raw and returns its scheme. */
export function checkPullUrl(url: string): UrlScheme {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usage(`URL ${JSON.stringify(url)} is not valid.`);
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme !== "http" && scheme !== "https" && scheme !== "file") throw usage(`URL ${url} has the scheme ${JSON.stringify(scheme)}; use http, https or file.`);
  if (urlLastComponent(url) === "") throw usage(`URL ${url} names no file.`);
  return scheme;
}

/** The local name a pull or import gets when none is given. */
export function localNameFor(kind: "tar" | "raw" | "fs", source: string, isUrl: boolean): string {
  const fn = isUrl ? urlLastComponent(source) : source.replace(/\/+$/, "").slice(source.replace(/\/+$/, "").lastIndexOf("/") + 1);
  const name = kind === "tar" ? stripTarSuffix(fn) : kind === "raw" ? stripRawSuffix(fn) : fn;
  checkNewMachineName(name);
  return name;
}

// ---------------------------------------------------------------------------
// Compression formats

export type Format = "uncompressed" | "gzip" | "zstd" | "xz" | "bzip2";

const FORMAT_NAMES: Record<string, Format> = { uncompressed: "uncompressed", gzip: "gzip", gz: "gzip", zstd: "zstd", zst: "zstd", xz: "xz", bzip2: "bzip2" };

/** --format= for export-tar and export-raw. */
export function parseFormat(s: string): Format {
  const f = FORMAT_NAMES[s];
  if (!f) throw usage(`Unknown format '${s}' (uncompressed, gzip, zstd, xz).`);
  return f;
}

/** The compression a file name asks for (its suffix), as machinectl's determine_compression_from_filename. */
export function formatFromFileName(fn: string | undefined): Format {
  if (!fn) return "uncompressed";
  if (/\.(xz|txz)$/.test(fn)) return "xz";
  if (/\.(gz|tgz)$/.test(fn)) return "gzip";
  if (/\.(zst|tzst)$/.test(fn)) return "zstd";
  if (/\.(bz2|tbz2)$/.test(fn)) return "bzip2";
  return "uncompressed";
}

/** --format= wins; otherwise the suffix of FILE; writing to stdout without either is uncompressed. */
export function chooseFormat(flag: string | undefined, file: string | undefined): Format {
  return flag !== undefined ? parseFormat(flag) : formatFromFileName(file);
}

export type VerifyMode = "no" | "checksum" | "signature";

/** --verify=no|checksum|signature (booleans too: yes means signature, as importd's import_verify_from_string) */
export function parseVerify(s: string): VerifyMode {
  if (s === "no" || s === "checksum" || s === "signature") return s;
  if (/^(0|no|n|false|f|off)$/i.test(s)) return "no";
  if (/^(1|yes|y|true|t|on)$/i.test(s)) return "signature";
  throw usage(`Unknown verification mode '${s}' (no, checksum, signature).`);
}

// ---------------------------------------------------------------------------
// Sizes

const SIZE_UNITS: Record<string, number> = { "": 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5, E: 1024 ** 6 };

/**
 * set-limit's BYTES: "-", "none" and "infinity" mean no limit (undefined);
 * otherwise a number with an optional 1024-based suffix ("10G", "1.5T",
 * "512M", "4096"), as systemd's parse_size(s, 1024).
 */
export function parseLimit(s: string): bigint | undefined {
  if (s === "-" || s === "none" || s === "infinity") return undefined;
  const m = /^\s*(\d+)(?:\.(\d+))?\s*([KMGTPE]?)(?:i?B)?\s*$/.exec(s);
  if (!m) throw usage(`Failed to parse size: ${s}`);
  const unit = BigInt(SIZE_UNITS[m[3]!]!);
  const whole = BigInt(m[1]!) * unit;
  const frac = m[2] ? (BigInt(m[2]) * unit) / 10n ** BigInt(m[2].length) : 0n;
  const v = whole + frac;
  if (v >= 1n << 64n) throw usage(`Failed to parse size: ${s} (too large)`);
  return v;
}

// ---------------------------------------------------------------------------
// SHA256SUMS

export interface SumsEntry {
  sha256: string;
  file: string;
}

/**
 * The lines of a SHA256SUMS (or NAME.sha256) file, as sha256sum writes them:
 * "HEX *FILE" (binary mode), "HEX  FILE" (text mode), or "HEX FILE" (the
 * non-standard form linuxcontainers.org uses). Other lines are ignored.
 */
export function parseSha256Sums(text: string): SumsEntry[] {
  const out: SumsEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const m = /^([0-9a-fA-F]{64})(?: \*|  | )(.+)$/.exec(line);
    if (m) out.push({ sha256: m[1]!.toLowerCase(), file: m[2]! });
  }
  return out;
}

/** Does the sums file list `file` with this hash? (importd's rule: the exact line must be there; another entry for the same file does not help.) */
export function sumsListed(text: string, file: string, sha256: string): boolean {
  const want = sha256.toLowerCase();
  return parseSha256Sums(text).some((e) => e.file === file && e.sha256 === want);
}

// ---------------------------------------------------------------------------
// Temporary names

/**
 * A temporary, hidden name in `dir` for work in progress. Image discovery
 * skips ".#" names, and `clean` removes those whose process is gone (a
 * SIGKILLed import cannot clean up after itself).
 */
export function tempPath(dir: string, purpose: string): string {
  const rand = Math.floor(Math.random() * 0x100000000).toString(36);
  return `${dir.replace(/\/+$/, "")}/.#spawnctl.${process.pid}.${rand}.${purpose.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The pid that owns a temporary name made by tempPath(), or undefined for any other name. */
export function tempOwner(name: string): number | undefined {
  const m = /^\.#spawnctl\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}
