// tar reading and writing over Uint8Arrays.
//
// Reader: ustar, GNU and PAX, as dpkg-deb, GNU tar, bsdtar and makepkg write
// them. Entries are yielded lazily by a generator and their data is a
// subarray of the input (no copy), so walking a 70 MB data.tar takes a few
// milliseconds. Every header's checksum is verified and every size is checked
// against what is left, so truncated or corrupt archives fail with the name
// of the entry rather than producing garbage.
//
// Writer: ustar headers, with a PAX extended header in front of an entry
// whenever a value does not fit (long or non-ASCII names, big sizes or ids,
// fractional mtimes, extended attributes). The output is deterministic: the
// same entries give the same bytes.
import { SpawnctlError } from "../util/errors.ts";

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarEntry {
  /** as stored, without a leading "./" (a bare "./" becomes ".") */
  path: string;
  type: TarEntryType;
  /** permission bits including setuid/setgid/sticky (07777) */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** seconds since the epoch; PAX mtimes may have a fraction */
  mtime: number;
  size: number;
  /** symlink target, or the path of the hardlink's target (as stored) */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Uint8Array>;
  /** file contents: a subarray of the archive, not a copy */
  data: Uint8Array;
}

const BLOCK = 512;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

function tarError(archive: string, message: string): SpawnctlError {
  return new SpawnctlError(`reading ${archive}: ${message}`);
}

/** A NUL-terminated header field as a string. */
function str(b: Uint8Array, off: number, len: number, archive: string, what: string): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  // Fast path: plain ASCII needs no decoder.
  let ascii = true;
  for (let i = off; i < end; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return latin1.decode(b.subarray(off, end));
  try {
    return utf8.decode(b.subarray(off, end));
  } catch {
    throw tarError(archive, `${what} is not valid UTF-8 (${JSON.stringify(latin1.decode(b.subarray(off, end)))})`);
  }
}

/**
 * A numeric header field: octal digits (leading spaces/NULs allowed, ended
 * by a space or NUL), or GNU base-256 when the top bit of the first byte is
 * set (0x80 = positive, 0xFF = negative two's complement).
 */
function num(b: Uint8Array, off: number, len: number, archive: string, what: string): number {
  const first = b[off]!;
  if (first & 0x80) {
    // Big-endian two's complement over the whole field, the marker bit
    // included for negative numbers (0xFF...) and masked off for positive ones.
    let v = first === 0xff ? first - 256 : first & 0x7f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[off + i]!;
      if (Math.abs(v) > Number.MAX_SAFE_INTEGER) throw tarError(archive, `the ${what} field is too large`);
    }
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw tarError(archive, `the ${what} field holds ${JSON.stringify(latin1.decode(b.subarray(off, end)))}, not an octal number`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  if (v > Number.MAX_SAFE_INTEGER) throw tarError(archive, `the ${what} field is too large`);
  return digits ? v : 0;
}

function isZeroBlock(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function checksumOk(b: Uint8Array, off: number, stored: number): boolean {
  // The checksum is the sum of all header bytes with the checksum field
  // itself counted as eight spaces. Some old writers summed signed chars.
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = off; i < off + BLOCK; i++) {
    if (i >= off + 148 && i < off + 156) continue;
    const c = b[i]!;
    unsigned += c;
    signed += c >= 0x80 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** PAX records: "<length> <key>=<value>\n", length counting the whole record. Values may be binary (xattrs). */
function parsePax(data: Uint8Array, archive: string, into: Map<string, Uint8Array>): void {
  let pos = 0;
  while (pos < data.length) {
    // Some writers pad the data with NULs.
    if (data[pos] === 0) break;
    let len = 0;
    let p = pos;
    while (p < data.length && data[p]! >= 0x30 && data[p]! <= 0x39) len = len * 10 + (data[p++]! - 0x30);
    if (p === pos || data[p] !== 0x20 || len <= p - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw tarError(archive, `a PAX extended header record at offset ${pos} is malformed`);
    }
    const recEnd = pos + len - 1;
    let eq = p + 1;
    while (eq < recEnd && data[eq] !== 0x3d) eq++;
    if (eq === recEnd) throw tarError(archive, `a PAX extended header record at offset ${pos} has no "="`);
    const key = latin1.decode(data.subarray(p + 1, eq));
    into.set(key, data.subarray(eq + 1, recEnd));
    pos += len;
  }
}

function paxString(v: Uint8Array, archive: string, key: string): string {
  try {
    return utf8.decode(v);
  } catch {
    throw tarError(archive, `the PAX ${key} value is not valid UTF-8`);
  }
}

function paxNumber(v: Uint8Array, archive: string, key: string, fraction = false): number {
  const s = latin1.decode(v);
  const re = fraction ? /^-?\d+(\.\d+)?$/ : /^\d+$/;
  if (!re.test(s)) throw tarError(archive, `the PAX ${key} value ${JSON.stringify(s)} is not a number`);
  const n = Number(s);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) throw tarError(archive, `the PAX ${key} value ${s} is too large`);
  return n;
}

/** libarchive URL-encodes xattr names in LIBARCHIVE.xattr.<name> keys. */
function urlDecode(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

export interface ReadTarOptions {
  /** what to call the archive in errors ("data.tar of coreutils_9.1-1_amd64.deb") */
  name?: string;
}

/**
 * The entries of a tar archive, in order. Throws a SpawnctlError naming the
 * archive and entry on bad checksums, truncation, sparse or multi-volume
 * members and unknown entry types.
 */
export function* readTar(bytes: Uint8Array, opts: ReadTarOptions = {}): Generator<TarEntry> {
  const archive = opts.name ?? "tar archive";
  const globals = new Map<string, Uint8Array>();
  let local = new Map<string, Uint8Array>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let off = 0;
  while (off + BLOCK <= bytes.length) {
    if (isZeroBlock(bytes, off)) return; // end of archive (the second zero block is optional for us)
    const h = off;
    const rawName = str(bytes, h, 100, archive, `the name at offset ${h}`);
    const stored = num(bytes, h + 148, 8, archive, `checksum of ${JSON.stringify(rawName)}`);
    if (!checksumOk(bytes, h, stored)) throw tarError(archive, `the header checksum of entry ${JSON.stringify(rawName)} at offset ${h} does not match (corrupt archive?)`);
    const typeflag = bytes[h + 156]!;
    const magic = latin1.decode(bytes.subarray(h + 257, h + 263));
    const ustar = magic === "ustar\0"; // POSIX; "ustar  \0" is GNU, which has no prefix field
    const entryLabel = () => JSON.stringify(longName ?? rawName);
    let size = num(bytes, h + 124, 12, archive, `size of ${entryLabel()}`);
    const paxSize = local.get("size") ?? globals.get("size");
    if (paxSize !== undefined && paxSize.length > 0) size = paxNumber(paxSize, archive, "size");
    if (size < 0) throw tarError(archive, `entry ${entryLabel()} has a negative size`);
    const dataStart = h + BLOCK;
    const type = String.fromCharCode(typeflag);
    // Only these carry data in the archive; for links, devices and
    // directories the size field is ignored (POSIX says it should be 0).
    const hasData = type === "0" || type === "\0" || type === "7" || type === "x" || type === "g" || type === "L" || type === "K" || type === "S" || type === "D";
    const dataLen = hasData ? size : 0;
    if (dataStart + dataLen > bytes.length) {
      throw tarError(archive, `entry ${entryLabel()} claims ${dataLen} bytes of data but only ${Math.max(0, bytes.length - dataStart)} remain (truncated archive?)`);
    }
    const data = bytes.subarray(dataStart, dataStart + dataLen);
    off = dataStart + Math.ceil(dataLen / BLOCK) * BLOCK;

    switch (type) {
      case "x":
        parsePax(data, archive, local);
        continue;
      case "g":
        parsePax(data, archive, globals);
        continue;
      case "L":
        longName = gnuLong(data, archive, "long name");
        continue;
      case "K":
        longLink = gnuLong(data, archive, "long link name");
        continue;
      case "S":
        throw tarError(archive, `entry ${entryLabel()} is a GNU sparse file, which is not supported`);
      case "M":
        throw tarError(archive, `entry ${entryLabel()} continues from another volume; multi-volume archives are not supported`);
      case "V":
        local = new Map();
        longName = longLink = undefined;
        continue; // volume label
    }
    const pax = (k: string): Uint8Array | undefined => {
      const v = local.get(k) ?? globals.get(k);
      // An empty value in an "x" header cancels the global or header value.
      return v !== undefined && v.length > 0 ? v : undefined;
    };
    if (pax("GNU.sparse.major") || pax("GNU.sparse.name") || pax("GNU.sparse.size") || pax("GNU.sparse.map")) {
      throw tarError(archive, `entry ${entryLabel()} is a sparse file (PAX GNU.sparse), which is not supported`);
    }

    let path: string;
    const paxPath = pax("path");
    if (paxPath) path = paxString(paxPath, archive, "path");
    else if (longName !== undefined) path = longName;
    else {
      path = rawName;
      if (ustar) {
        const prefix = str(bytes, h + 345, 155, archive, `the name prefix of ${JSON.stringify(rawName)}`);
        if (prefix) path = `${prefix}/${rawName}`;
      }
    }
    let linkname: string;
    const paxLink = pax("linkpath");
    if (paxLink) linkname = paxString(paxLink, archive, "linkpath");
    else if (longLink !== undefined) linkname = longLink;
    else linkname = str(bytes, h + 157, 100, archive, `the link name of ${JSON.stringify(path)}`);

    let etype: TarEntryType;
    switch (type) {
      case "0":
      case "\0":
      case "7":
        // Pre-POSIX archives mark directories by a trailing slash only.
        etype = path.endsWith("/") ? "dir" : "file";
        break;
      case "1":
        etype = "hardlink";
        break;
      case "2":
        etype = "symlink";
        break;
      case "3":
        etype = "char";
        break;
      case "4":
        etype = "block";
        break;
      case "5":
      case "D": // GNU dumpdir: a directory whose data lists its contents
        etype = "dir";
        break;
      case "6":
        etype = "fifo";
        break;
      default:
        throw tarError(archive, `entry ${JSON.stringify(path)} has the unknown type ${JSON.stringify(type)}`);
    }
    if (path.startsWith("./")) path = path.slice(2) || ".";
    if (etype === "dir" && path.length > 1 && path.endsWith("/")) path = path.replace(/\/+$/, "");
    if (path === "") throw tarError(archive, `the entry at offset ${h} has an empty name`);

    const xattrs = new Map<string, Uint8Array>();
    for (const m of [globals, local]) {
      for (const [k, v] of m) {
        if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);
        else if (k.startsWith("LIBARCHIVE.xattr.")) xattrs.set(urlDecode(k.slice(17)), new Uint8Array(Buffer.from(latin1.decode(v), "base64")));
      }
    }

    const paxUid = pax("uid");
    const paxGid = pax("gid");
    const paxMtime = pax("mtime");
    const paxUname = pax("uname");
    const paxGname = pax("gname");
    const paxMajor = pax("SCHILY.devmajor");
    const paxMinor = pax("SCHILY.devminor");
    const entry: TarEntry = {
      path,
      type: etype,
      mode: num(bytes, h + 100, 8, archive, `mode of ${JSON.stringify(path)}`) & 0o7777,
      uid: paxUid ? paxNumber(paxUid, archive, "uid") : num(bytes, h + 108, 8, archive, `uid of ${JSON.stringify(path)}`),
      gid: paxGid ? paxNumber(paxGid, archive, "gid") : num(bytes, h + 116, 8, archive, `gid of ${JSON.stringify(path)}`),
      uname: paxUname ? paxString(paxUname, archive, "uname") : str(bytes, h + 265, 32, archive, `the user name of ${JSON.stringify(path)}`),
      gname: paxGname ? paxString(paxGname, archive, "gname") : str(bytes, h + 297, 32, archive, `the group name of ${JSON.stringify(path)}`),
      mtime: paxMtime ? paxNumber(paxMtime, archive, "mtime", true) : num(bytes, h + 136, 12, archive, `mtime of ${JSON.stringify(path)}`),
      size: hasData ? size : 0,
      linkname,
      devmajor: paxMajor ? paxNumber(paxMajor, archive, "SCHILY.devmajor") : etype === "char" || etype === "block" ? num(bytes, h + 329, 8, archive, `devmajor of ${JSON.stringify(path)}`) : 0,
      devminor: paxMinor ? paxNumber(paxMinor, archive, "SCHILY.devminor") : etype === "char" || etype === "block" ? num(bytes, h + 337, 8, archive, `devminor of ${JSON.stringify(path)}`) : 0,
      xattrs,
      data: etype === "file" ? data : data.subarray(0, 0),
    };
    if ((etype === "symlink" || etype === "hardlink") && entry.linkname === "") throw tarError(archive, `${etype} ${JSON.stringify(path)} has an empty target`);
    local = new Map();
    longName = longLink = undefined;
    yield entry;
  }
  if (off < bytes.length) throw tarError(archive, `the archive ends inside a header at offset ${off} (truncated archive?)`);
  if (local.size || longName !== undefined || longLink !== undefined) throw tarError(archive, "the archive ends after an extended header without its entry (truncated archive?)");
}

function gnuLong(data: Uint8Array, archive: string, what: string): string {
  let end = data.indexOf(0);
  if (end < 0) end = data.length;
  try {
    return utf8.decode(data.subarray(0, end));
  } catch {
    throw tarError(archive, `a GNU ${what} is not valid UTF-8`);
  }
}

// ---------------------------------------------------------------------------
// Writer

export interface TarMeta {
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** seconds since the epoch, may have a fraction */
  mtime?: number;
  xattrs?: Map<string, Uint8Array>;
}

export interface TarWriteEntry extends TarMeta {
  path: string;
  type: TarEntryType;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  data?: Uint8Array;
}

const TYPEFLAG: Record<TarEntryType, number> = { file: 0x30, hardlink: 0x31, symlink: 0x32, char: 0x33, block: 0x34, dir: 0x35, fifo: 0x36 };
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/**
 * Writes ustar + PAX. Give a sink to stream chunks out (an image export
 * writes them to a file as they come); without one the chunks are collected
 * and finish() returns the whole archive.
 */
export class TarWriter {
  private readonly chunks: Uint8Array[] = [];
  private finished = false;
  /** bytes produced so far */
  length = 0;

  constructor(private readonly sink?: (chunk: Uint8Array) => void) {}

  addDir(path: string, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type: "dir" });
  }
  addFile(path: string, data: Uint8Array, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type: "file", data });
  }
  addSymlink(path: string, target: string, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type: "symlink", linkname: target });
  }
  addHardlink(path: string, target: string, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type: "hardlink", linkname: target });
  }
  addDevice(path: string, type: "char" | "block", major: number, minor: number, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type, devmajor: major, devminor: minor });
  }
  addFifo(path: string, meta: TarMeta = {}): void {
    this.add({ ...meta, path, type: "fifo" });
  }

  add(e: TarWriteEntry): void {
    if (this.finished) throw new SpawnctlError(`writing tar entry ${JSON.stringify(e.path)}: the archive is already finished`);
    if (e.path === "") throw new SpawnctlError("writing a tar entry: the path is empty");
    const data = e.type === "file" ? (e.data ?? new Uint8Array(0)) : new Uint8Array(0);
    const path = e.type === "dir" && !e.path.endsWith("/") ? `${e.path}/` : e.path;
    const linkname = e.linkname ?? "";
    if ((e.type === "symlink" || e.type === "hardlink") && linkname === "") throw new SpawnctlError(`writing tar entry ${JSON.stringify(e.path)}: a ${e.type} needs a target`);
    const mode = (e.mode ?? (e.type === "dir" ? 0o755 : 0o644)) & 0o7777;
    const uid = e.uid ?? 0;
    const gid = e.gid ?? 0;
    const uname = e.uname ?? "";
    const gname = e.gname ?? "";
    const mtime = e.mtime ?? 0;
    const major = e.devmajor ?? 0;
    const minor = e.devminor ?? 0;

    const pax: Array<[string, Uint8Array]> = [];
    const text = (k: string, v: string) => pax.push([k, encoder.encode(v)]);
    const nameBytes = encoder.encode(path);
    const split = splitUstarName(nameBytes);
    if (!split || !isAscii(nameBytes)) text("path", path);
    const linkBytes = encoder.encode(linkname);
    if (linkBytes.length > 100 || !isAscii(linkBytes)) text("linkpath", linkname);
    if (data.length > MAX_OCTAL_11) text("size", String(data.length));
    if (uid > MAX_OCTAL_7) text("uid", String(uid));
    if (gid > MAX_OCTAL_7) text("gid", String(gid));
    const unameBytes = encoder.encode(uname);
    const gnameBytes = encoder.encode(gname);
    if (unameBytes.length > 32 || !isAscii(unameBytes)) text("uname", uname);
    if (gnameBytes.length > 32 || !isAscii(gnameBytes)) text("gname", gname);
    if (!Number.isInteger(mtime) || mtime < 0 || mtime > MAX_OCTAL_11) text("mtime", formatMtime(mtime));
    if (major > MAX_OCTAL_7) text("SCHILY.devmajor", String(major));
    if (minor > MAX_OCTAL_7) text("SCHILY.devminor", String(minor));
    for (const [name, value] of e.xattrs ?? []) {
      // SCHILY.xattr keeps the raw value (GNU tar and bsdtar read it); a "="
      // in the name cannot be represented there, so those go the libarchive way.
      if (name.includes("=")) pax.push([`LIBARCHIVE.xattr.${urlEncode(name)}`, encoder.encode(Buffer.from(value).toString("base64"))]);
      else pax.push([`SCHILY.xattr.${name}`, value]);
    }

    if (pax.length) {
      const body = paxBody(pax);
      // The PAX header's own name is informational; keep it short and deterministic.
      const base = path.replace(/\/+$/, "").split("/").pop()!;
      const paxName = encoder.encode(`PaxHeaders/${base}`).subarray(0, 100);
      this.emit(header({ name: paxName, prefix: new Uint8Array(0), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: clampOctal(mtime), typeflag: 0x78, linkname: new Uint8Array(0), uname: new Uint8Array(0), gname: new Uint8Array(0), major: 0, minor: 0 }));
      this.emitData(body);
    }
    const fallback = split ?? { prefix: new Uint8Array(0), name: ascii(path, 100) };
    this.emit(
      header({
        name: split && isAscii(nameBytes) ? split.name : fallback.name,
        prefix: split && isAscii(nameBytes) ? split.prefix : new Uint8Array(0),
        mode,
        uid,
        gid,
        size: data.length,
        mtime: clampOctal(mtime),
        typeflag: TYPEFLAG[e.type],
        linkname: linkBytes.length <= 100 && isAscii(linkBytes) ? linkBytes : ascii(linkname, 100),
        uname: unameBytes.length <= 32 && isAscii(unameBytes) ? unameBytes : ascii(uname, 32),
        gname: gnameBytes.length <= 32 && isAscii(gnameBytes) ? gnameBytes : ascii(gname, 32),
        major,
        minor,
      }),
    );
    if (data.length) this.emitData(data);
  }

  /** Writes the end-of-archive marker (two zero blocks); returns the archive when there is no sink. */
  finish(): Uint8Array {
    if (!this.finished) {
      this.emit(new Uint8Array(2 * BLOCK));
      this.finished = true;
    }
    if (this.sink) return new Uint8Array(0);
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  private emit(chunk: Uint8Array): void {
    this.length += chunk.length;
    if (this.sink) this.sink(chunk);
    else this.chunks.push(chunk);
  }

  private emitData(data: Uint8Array): void {
    this.emit(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) this.emit(new Uint8Array(pad));
  }
}

function isAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80 || b[i] === 0) return false;
  return true;
}

/** A placeholder for a header field whose real value is in the PAX header. */
function ascii(s: string, max: number): Uint8Array {
  return encoder.encode(s.replace(/[^\x20-\x7e]/g, "_")).subarray(0, max);
}

function urlEncode(s: string): string {
  return Array.from(encoder.encode(s), (c) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : `%${c.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
}

function formatMtime(t: number): string {
  if (Number.isInteger(t)) return String(t);
  // Nanosecond precision at most, without exponent notation.
  return t.toFixed(9).replace(/0+$/, "").replace(/\.$/, "");
}

function clampOctal(t: number): number {
  return Math.min(Math.max(Math.floor(t), 0), MAX_OCTAL_11);
}

/** ustar splits a name into prefix (<= 155) "/" name (<= 100) at a slash. */
function splitUstarName(b: Uint8Array): { prefix: Uint8Array; name: Uint8Array } | undefined {
  if (b.length <= 100) return { prefix: new Uint8Array(0), name: b };
  if (b.length > 256) return undefined;
  for (let i = Math.max(0, b.length - 101); i < Math.min(b.length, 156); i++) {
    if (b[i] === 0x2f && i > 0 && b.length - i - 1 <= 100 && b.length - i - 1 > 0) return { prefix: b.subarray(0, i), name: b.subarray(i + 1) };
  }
  return undefined;
}

function paxBody(records: Array<[string, Uint8Array]>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of records) {
    const kb = encoder.encode(k);
    const rest = 1 + kb.length + 1 + v.length + 1; // " " key "=" value "\n"
    let len = rest + 1;
    while (String(len).length + rest !== len) len = String(len).length + rest;
    parts.push(encoder.encode(`${len} ${k}=`), v, encoder.encode("\n"));
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface HeaderFields {
  name: Uint8Array;
  prefix: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: Uint8Array;
  uname: Uint8Array;
  gname: Uint8Array;
  major: number;
  minor: number;
}

function header(f: HeaderFields): Uint8Array {
  const h = new Uint8Array(BLOCK);
  h.set(f.name.subarray(0, 100), 0);
  putNumber(h, 100, 8, f.mode);
  putNumber(h, 108, 8, f.uid);
  putNumber(h, 116, 8, f.gid);
  putNumber(h, 124, 12, f.size);
  putNumber(h, 136, 12, f.mtime);
  h[156] = f.typeflag;
  h.set(f.linkname.subarray(0, 100), 157);
  h.set(encoder.encode("ustar\x0000"), 257);
  h.set(f.uname.subarray(0, 32), 265);
  h.set(f.gname.subarray(0, 32), 297);
  putNumber(h, 329, 8, f.major);
  putNumber(h, 337, 8, f.minor);
  h.set(f.prefix.subarray(0, 155), 345);
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.set(encoder.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  return h;
}

/** Octal with a NUL terminator, or GNU base-256 when it does not fit (the PAX header has the exact value too). */
function putNumber(h: Uint8Array, off: number, len: number, v: number): void {
  const oct = v.toString(8);
  if (v >= 0 && oct.length <= len - 1) {
    h.set(encoder.encode(oct.padStart(len - 1, "0")), off);
    h[off + len - 1] = 0;
    return;
  }
  let x = BigInt(Math.max(0, Math.floor(v)));
  for (let i = len - 1; i > 0; i--) {
    h[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  h[off] = 0x80;
}
