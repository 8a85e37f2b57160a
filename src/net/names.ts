// Interface names and MAC addresses derived from machine names, the way
// systemd-nspawn derives them (src/nspawn/nspawn-network.c), so that a
// machine gets the same names and MACs under spawnctl as under nspawn. This
// runs on every start with a network, in a cold process: it is kept small
// and imports nothing heavy (the hash is the shim's).
import { readFileSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { siphash24 } from "./siphash.ts";

export const IFNAMSIZ = 16;
export const ALTIFNAMSIZ = 128;

// nspawn's fixed hash keys (written as bytes: no parsing at import)
const SHORTEN_IFNAME_KEY = new Uint8Array([0xe1, 0x90, 0xa4, 0x04, 0xa8, 0xef, 0x4b, 0x51, 0x8c, 0xcc, 0xc3, 0x3a, 0x9f, 0x11, 0xfc, 0xa2]);
const MAC_KEYS = {
  host: new Uint8Array([0x1a, 0x37, 0x6f, 0xc7, 0x46, 0xec, 0x45, 0x0b, 0xad, 0xa3, 0xd5, 0x31, 0x06, 0x60, 0x5d, 0xb1]),
  container: new Uint8Array([0xc3, 0xc4, 0xf9, 0x19, 0xb5, 0x57, 0xb2, 0x1c, 0xe6, 0xcf, 0x14, 0x27, 0x03, 0x9c, 0xee, 0xa2]),
  "veth-extra-host": new Uint8Array([0x48, 0xc7, 0xf6, 0xb7, 0xea, 0x9d, 0x4c, 0x9e, 0xb7, 0x28, 0xd4, 0xde, 0x91, 0xd5, 0xbf, 0x66]),
  "veth-extra-container": new Uint8Array([0xaf, 0x50, 0x17, 0x61, 0xce, 0xf9, 0x4d, 0x35, 0x84, 0x0d, 0x2b, 0x20, 0x54, 0xbe, 0xce, 0x59]),
  macvlan: new Uint8Array([0x00, 0x13, 0x6d, 0xbc, 0x66, 0x83, 0x44, 0x81, 0xbb, 0x0c, 0xf9, 0x51, 0x1f, 0x24, 0xa6, 0x6f]),
} as const;
export type MacPurpose = keyof typeof MAC_KEYS;

const URLSAFE_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX = "0123456789abcdef";

/**
 * The host-side interface name for a machine, as systemd-nspawn picks it:
 * prefix + machine name when that fits in 15 bytes; otherwise the first 11
 * bytes followed by 4 characters of url-safe base64 taken from the low 24
 * bits of siphash24(full name), with the full name kept as an altname (when
 * it fits the 127-byte altname limit). "ve-" veth, "vb-" bridged veth,
 * "vz-" zone bridge, "mv-" macvlan, "iv-" ipvlan.
 */
export function interfaceNameForMachine(prefix: "ve-" | "vb-" | "vz-" | "mv-" | "iv-", name: string): { name: string; altname?: string } {
  const full = Buffer.from(prefix + name);
  if (full.length < IFNAMSIZ) return { name: prefix + name };
  const h = siphash24(full, SHORTEN_IFNAME_KEY);
  const low = h[0]! | (h[1]! << 8) | (h[2]! << 16);
  const sixBits = (shift: number) => URLSAFE_BASE64[(low >> shift) & 63];
  const short = full.subarray(0, IFNAMSIZ - 5).toString() + sixBits(18) + sixBits(12) + sixBits(6) + sixBits(0);
  return full.length < ALTIFNAMSIZ ? { name: short, altname: prefix + name } : { name: short };
}

let machineIdCache: { id: Uint8Array | undefined } | undefined;

/** The value of a hex digit's character code, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20;
  return c >= 97 && c <= 102 ? c - 87 : -1;
}

/** /etc/machine-id (or D-Bus's copy) as 16 bytes; undefined on a host without one. Read once per process. */
export function hostMachineId(): Uint8Array | undefined {
  if (machineIdCache) return machineIdCache.id;
  machineIdCache = { id: undefined };
  for (const path of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    let text: Uint8Array;
    try {
      text = readFileSync(path);
    } catch {
      continue; // try the next
    }
    // 32 hex digits, then only white space
    let end = text.length;
    while (end > 0 && (text[end - 1] === 10 || text[end - 1] === 32 || text[end - 1] === 9 || text[end - 1] === 13)) end--;
    if (end !== 32) continue;
    const id = new Uint8Array(16);
    let ok = true;
    for (let i = 0; i < 16 && ok; i++) {
      const hi = hexValue(text[2 * i]!), lo = hexValue(text[2 * i + 1]!);
      ok = hi >= 0 && lo >= 0;
      id[i] = (hi << 4) | lo;
    }
    if (ok) {
      machineIdCache.id = id;
      break;
    }
  }
  return machineIdCache.id;
}

/**
 * A stable MAC address for one of a machine's interfaces, the way
 * systemd-nspawn derives it: siphash24(host machine-id ‖ machine name
 * [‖ index as little-endian u64 when index > 0]) under a fixed key per
 * purpose; the hash's first six little-endian bytes, marked locally
 * administered and unicast. With the same /etc/machine-id this gives the
 * very MACs nspawn gives. A host without a machine-id hashes 16 zero bytes
 * instead: MACs still differ per machine name, but not per host.
 */
export function macForMachine(name: string, purpose: MacPurpose, opts: { machineId?: Uint8Array; index?: number } = {}): string {
  const id = opts.machineId ?? hostMachineId() ?? new Uint8Array(16);
  const index = opts.index ?? 0;
  const nameBytes = Buffer.from(name);
  const input = new Uint8Array(16 + nameBytes.length + (index > 0 ? 8 : 0));
  input.set(id, 0);
  input.set(nameBytes, 16);
  // the index as a little-endian u64 (an index is far below 2^32)
  if (index > 0) new DataView(input.buffer).setUint32(16 + nameBytes.length, index, true);
  const mac = siphash24(input, MAC_KEYS[purpose]);
  mac[0] = (mac[0]! & 0xfe) | 0x02; // unicast, locally administered
  return formatMac(mac.subarray(0, 6));
}

export function parseMac(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) throw new SpawnctlError(`"${mac}" is not a MAC address`);
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

export function formatMac(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (i ? ":" : "") + HEX[b[i]! >> 4] + HEX[b[i]! & 15];
  return s;
}

/** Linux interface names: 1-15 bytes, no "/", ":" or whitespace, not "." or "..". */
export function checkIfname(name: string): string {
  const len = Buffer.byteLength(name);
  if (len === 0 || len >= IFNAMSIZ || /[/:\s]/.test(name) || name === "." || name === "..") {
    throw new SpawnctlError(`"${name}" is not a valid interface name (1-${IFNAMSIZ - 1} bytes, no "/", ":" or spaces)`);
  }
  return name;
}
