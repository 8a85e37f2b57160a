// A veth pair: one RTM_NEWLINK, encoded and sent by the shim (shim/net.c).
// It is on the start path of every `run -n`, so it costs one call into C
// instead of a cold netlink encoder (the shim also checks the names and
// MACs; only when it refuses one does this find out which, for the error); the peer is created directly in the
// container's namespace (much faster than creating it here and moving it,
// which makes the kernel wait for RCU grace periods).
import { closeSync, openSync } from "node:fs";
import { cstr, shim, strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { checkIfname, parseMac } from "./names.ts";
import type { NetnsRef } from "./netlink.ts";

const EINVAL = 22;
const EOPNOTSUPP = 95;

export interface VethSpec {
  name: string;
  mac?: string;
  /** set on this side after creation (for shortened names) */
  altname?: string;
  /** created up (no separate RTM_SETLINK); the peer cannot be: the kernel
   * configures it before the pair is joined (ENOTCONN) */
  up?: boolean;
  peer: { name: string; mac?: string; netns?: NetnsRef };
}

/** The arguments of nsh_veth/nsh_veth_request after the socket, with the peer's namespace as an fd or a pid. */
function vethArgs(spec: VethSpec, nsFd: number, nsPid: number): unknown[] {
  const mac = spec.mac ? cstr(spec.mac) : null;
  const peerMac = spec.peer.mac ? cstr(spec.peer.mac) : null;
  return [cstr(spec.name), mac, cstr(spec.peer.name), peerMac, nsFd, nsPid, spec.up ? 1 : 0];
}

/** The shim said EINVAL: say which name or MAC it did not take. */
function invalid(spec: VethSpec): void {
  checkIfname(spec.name);
  checkIfname(spec.peer.name);
  if (spec.mac) parseMac(spec.mac);
  if (spec.peer.mac) parseMac(spec.peer.mac);
}

/** Run fn with the peer's namespace as (fd, pid), opening a path for the call. */
function withPeerNs<T>(ns: NetnsRef | undefined, fn: (fd: number, pid: number) => T): T {
  if (ns === undefined) return fn(-1, 0);
  if (typeof ns === "object") return "pid" in ns ? fn(-1, ns.pid) : fn(ns.fd, 0);
  const fd = openSync(ns, "r");
  try {
    return fn(fd, 0);
  } finally {
    closeSync(fd);
  }
}

/**
 * Create the pair, through the rtnetlink socket `sock` (and so in its
 * namespace), or a new socket in this thread's namespace when sock is -1.
 * Does not set the altname (Rtnl.createVeth does).
 */
export function createVeth(spec: VethSpec, sock = -1): void {
  const what = `creating veth ${spec.name}/${spec.peer.name}`;
  const r = withPeerNs(spec.peer.netns, (fd, pid) => (shim().nsh_veth as (...a: unknown[]) => number)(sock, ...vethArgs(spec, fd, pid)));
  if (r >= 0) return;
  if (-r === EINVAL) invalid(spec);
  if (-r === EOPNOTSUPP) throw new SpawnctlError(`${what}: the kernel has no veth support (CONFIG_VETH)`, { errno: EOPNOTSUPP, syscall: "RTM_NEWLINK" });
  throw new SpawnctlError(`${what}: RTM_NEWLINK: ${strerror(-r)}`, { errno: -r, syscall: "RTM_NEWLINK" });
}

/** The RTM_NEWLINK createVeth sends (sequence number 0x6e736801), for tests; nsFd is the peer's IFLA_NET_NS_FD. */
export function vethRequestBytes(spec: VethSpec, nsFd = -1): Uint8Array {
  const out = new Uint8Array(1024);
  const n = (shim().nsh_veth_request as (...a: unknown[]) => number)(out, out.length, ...vethArgs(spec, nsFd, 0));
  if (n === -EINVAL) invalid(spec);
  if (n < 0) throw new SpawnctlError(`encoding the veth request: ${strerror(-n)}`, { errno: -n });
  return out.subarray(0, n);
}
