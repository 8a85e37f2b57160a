// --x11 (spawnctl's own option): an X client in the container talks to the
// host's X server, as the seed's "Avoiding xhost" recipe does by hand:
// /tmp/.X11-unix is bound read-only (connecting to a socket needs no
// writable mount), the host's Xauthority entries for the display are copied
// with their family set to FamilyWild (0xffff: they match whatever host name
// the container has) into /run/host/xauthority, owned by the container's
// user, and DISPLAY and XAUTHORITY are set. No xauth binary is needed: the
// Xauthority format is read and written here.
//
// Xauthority: a sequence of entries, each
//   u16 family (big-endian), then four counted strings (u16 length, bytes):
//   address, display number (decimal text), auth name, auth data.
import { SpawnctlError } from "../util/errors.ts";
import { concat } from "../util/bytes.ts";
import { readFileSync, statSync } from "node:fs";

export const FAMILY_WILD = 0xffff;
export const FAMILY_LOCAL = 256;
export const X11_SOCKET_DIR = "/tmp/.X11-unix";
export const CONTAINER_XAUTHORITY = "/run/host/xauthority";

export interface XauthEntry {
  family: number;
  address: Uint8Array;
  number: string;
  name: string;
  data: Uint8Array;
}

/** Parse an Xauthority file; a truncated entry is an error naming the offset. */
export function parseXauthority(buf: Uint8Array, file = "Xauthority"): XauthEntry[] {
  const out: XauthEntry[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const counted = (): Uint8Array => {
    if (o + 2 > buf.length) throw new SpawnctlError(`${file}: truncated entry at byte ${o}.`);
    const n = dv.getUint16(o);
    o += 2;
    if (o + n > buf.length) throw new SpawnctlError(`${file}: truncated entry at byte ${o - 2} (a field of ${n} bytes).`);
    const v = buf.subarray(o, o + n);
    o += n;
    return v;
  };
  const text = new TextDecoder("latin1");
  while (o < buf.length) {
    if (o + 2 > buf.length) throw new SpawnctlError(`${file}: truncated entry at byte ${o}.`);
    const family = dv.getUint16(o);
    o += 2;
    const address = counted();
    const number = text.decode(counted());
    const name = text.decode(counted());
    const data = counted();
    out.push({ family, address: address.slice(), number, name, data: data.slice() });
  }
  return out;
}

export function serializeXauthority(entries: XauthEntry[]): Uint8Array {
  const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
  const parts: Uint8Array[] = [];
  const u16 = (n: number) => Uint8Array.of((n >> 8) & 0xff, n & 0xff);
  for (const e of entries) {
    parts.push(u16(e.family));
    for (const f of [e.address, enc(e.number), enc(e.name), e.data]) {
      if (f.length > 0xffff) throw new SpawnctlError("Xauthority: an entry's field is longer than 65535 bytes.");
      parts.push(u16(f.length), f);
    }
  }
  return concat(parts);
}

export interface Display {
  /** as given: ":0", ":0.1", "unix:0" */
  name: string;
  /** the display number, as text ("0") */
  number: string;
}

/** A local display (":N[.S]" or "unix:N[.S]"); a TCP display cannot be bound into a container. */
export function parseDisplay(d: string, flag = "--x11"): Display {
  const m = /^(?:unix)?:(\d{1,5})(?:\.\d{1,5})?$/.exec(d);
  if (!m) {
    if (/^[^:/]*:\d+(\.\d+)?$/.test(d)) {
      throw new SpawnctlError(`${flag}: DISPLAY=${d} is a TCP display; only a local display (:N), whose socket is in ${X11_SOCKET_DIR}, can be given to a container.`);
    }
    throw new SpawnctlError(`${flag}: '${d}' is not an X display (expected :N, :N.S or unix:N).`);
  }
  return { name: d, number: m[1]! };
}

/** The host's entries for the display, made to match any host name (FamilyWild), as `xauth nextract - $DISPLAY | sed 's/^..../ffff/'`. */
export function entriesForDisplay(entries: XauthEntry[], display: Display, hostname: string): XauthEntry[] {
  const host = new TextEncoder().encode(hostname);
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  const mine = entries.filter((e) => e.number === display.number && (e.family === FAMILY_WILD || (e.family === FAMILY_LOCAL && same(e.address, host))));
  // a cookie written under another host name (a renamed host, a container's
  // own server) still belongs to this display when nothing else does
  const chosen = mine.length > 0 ? mine : entries.filter((e) => e.number === display.number && e.family === FAMILY_LOCAL);
  return chosen.map((e) => ({ ...e, family: FAMILY_WILD }));
}

export interface X11Plan {
  display: Display;
  /** the Xauthority to write in the container; undefined when the host has none for this display */
  xauthority?: Uint8Array;
  /** where the host's entries came from (for messages) */
  source?: string;
}

/**
 * What --x11 gives the container: the display (the option's value, else
 * $DISPLAY) and the Xauthority entries from $XAUTHORITY, else ~/.Xauthority.
 */
export function planX11(value: string, env: Record<string, string | undefined>, hostname: string, read = (p: string) => readFile(p)): X11Plan {
  const d = value || env.DISPLAY || "";
  if (!d) throw new SpawnctlError("--x11: DISPLAY is not set; name the display as --x11=:N.");
  const display = parseDisplay(d);
  const file = env.XAUTHORITY || (env.HOME ? `${env.HOME}/.Xauthority` : "");
  if (!file) return { display };
  const buf = read(file);
  if (!buf) return { display };
  const entries = entriesForDisplay(parseXauthority(buf, file), display, hostname);
  if (entries.length === 0) return { display, source: file };
  return { display, xauthority: serializeXauthority(entries), source: file };
}

/** the host's own file (the invoking user's): a regular file of at most 1 MiB, else none */
function readFile(p: string): Uint8Array | undefined {
  try {
    const st = statSync(p);
    if (!st.isFile() || st.size > 1 << 20) return undefined;
    return new Uint8Array(readFileSync(p));
  } catch {
    return undefined;
  }
}
