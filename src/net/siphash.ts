// SipHash-2-4 (Aumasson & Bernstein), the keyed hash systemd uses to derive
// interface names and MAC addresses. It runs on every start with a network,
// in a process that is still cold, so it is the shim's (shim/net.c): one call
// into C instead of a few hundred cold JavaScript operations.
import { ptr } from "bun:ffi";
import { shim } from "../sys/ffi.ts";

/** SipHash-2-4 of data under a 16-byte key: the 64-bit result as 8 little-endian bytes. */
export function siphash24(data: Uint8Array, key: Uint8Array): Uint8Array {
  if (key.length !== 16) throw new Error("siphash24 needs a 16-byte key");
  const out = new Uint8Array(8);
  // ptr() refuses an empty array
  shim().nsh_siphash24(data.length ? ptr(data) : null, data.length, ptr(key), ptr(out));
  return out;
}
