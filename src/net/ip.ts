// IPv4/IPv6 addresses and prefixes as bytes, the form netlink carries them in.
import { SpawnctlError } from "../util/errors.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;

export interface IpAddress {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: Uint8Array;
}

export interface IpPrefix extends IpAddress {
  prefixLen: number;
}

function bad(s: string, what = "an IP address"): SpawnctlError {
  return new SpawnctlError(`"${s}" is not ${what}`);
}

function parseV4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i]!)) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): Uint8Array | undefined {
  // an embedded IPv4 tail ("::ffff:10.0.0.1") counts as two groups
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i]!)) return undefined;
    const n = Number.parseInt(all[i]!, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

export function parseAddress(s: string): IpAddress {
  const v4 = parseV4(s);
  if (v4) return { family: AF_INET, bytes: v4 };
  const v6 = s.includes(":") ? parseV6(s) : undefined;
  if (v6) return { family: AF_INET6, bytes: v6 };
  throw bad(s);
}

/** "10.0.0.1/28" or "fd00::1/64"; a bare address is a host prefix. */
export function parsePrefix(s: string): IpPrefix {
  const slash = s.indexOf("/");
  const addr = parseAddress(slash < 0 ? s : s.slice(0, slash));
  const max = addr.bytes.length * 8;
  if (slash < 0) return { ...addr, prefixLen: max };
  const len = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) throw bad(s, "an IP prefix");
  return { ...addr, prefixLen: Number(len) };
}

export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) throw new SpawnctlError(`a ${bytes.length}-byte value is not an IP address`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run of two or more zero groups, the first if tied
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatAddress(p.bytes)}/${p.prefixLen}`;
}

/** The first `size` bytes of a prefix length's netmask. */
export function prefixMask(size: number, prefixLen: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - 8 * i));
    out[i] = (0xff00 >> bits) & 0xff;
  }
  return out;
}

/** The prefix's network address (host bits cleared). */
export function networkOf(p: IpPrefix): Uint8Array {
  const mask = prefixMask(p.bytes.length, p.prefixLen);
  return p.bytes.map((b, i) => b & mask[i]!);
}

/** The IPv4 broadcast address of a prefix (host bits set). */
export function broadcastOf(p: IpPrefix): Uint8Array {
  const mask = prefixMask(4, p.prefixLen);
  return p.bytes.map((b, i) => (b | ~mask[i]!) & 0xff);
}
