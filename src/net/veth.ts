// A veth pair: one RTM_NEWLINK, encoded by the one netlink encoder
// (netlink.ts) and sent on an rtnetlink socket. The peer is created directly
// in the container's namespace (much faster than creating it here and moving
// it, which makes the kernel wait for RCU grace periods). Kept apart from
// rtnl.ts, which a plain `run -n` does not load.
import { SpawnctlError, wrap } from "../util/errors.ts";
import { checkIfname, parseMac } from "./names.ts";
import { NETLINK_ROUTE, NLM_F, NetlinkSocket, concat, encodeAttrs, encodeMessage, nla, withNetnsFd, type Attr, type NetnsRef, type Request } from "./netlink.ts";

const RTM_NEWLINK = 16;
const IFF_UP = 1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_PID = 19;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
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

function ifinfomsg(flags = 0, change = 0): Uint8Array {
  const b = new Uint8Array(16); // AF_UNSPEC, no index
  const v = new DataView(b.buffer);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return b;
}

/** RTM_NEWLINK for the pair; `peerNs` (IFLA_NET_NS_FD or _PID) puts the peer in another namespace. */
export function vethRequest(spec: VethSpec, peerNs?: Attr): Request {
  const peer = [...(spec.peer.mac ? [nla.bytes(IFLA_ADDRESS, parseMac(spec.peer.mac))] : []), ...(peerNs ? [peerNs] : []), nla.str(IFLA_IFNAME, checkIfname(spec.peer.name))];
  return {
    type: RTM_NEWLINK,
    flags: NLM_F.CREATE | NLM_F.EXCL,
    // the kernel applies a new link's ifi_flags once it exists
    header: spec.up ? ifinfomsg(IFF_UP, IFF_UP) : ifinfomsg(),
    attrs: [
      ...(spec.mac ? [nla.bytes(IFLA_ADDRESS, parseMac(spec.mac))] : []),
      nla.str(IFLA_IFNAME, checkIfname(spec.name)),
      nla.nest(IFLA_LINKINFO, [
        // bare, without NUL, as iproute2 sends it
        nla.bytes(IFLA_INFO_KIND, new TextEncoder().encode("veth")),
        // VETH_INFO_PEER is not a plain nest: its payload starts with a struct
        // ifinfomsg for the peer, followed by the peer's own IFLA_* attributes
        nla.nest(IFLA_INFO_DATA, [nla.bytes(VETH_INFO_PEER, concat([ifinfomsg(), encodeAttrs(peer)]))]),
      ]),
    ],
  };
}

/** Run fn with the peer's namespace as an IFLA_NET_NS_* attribute (opening a path for the call). */
function withPeerNs<T>(ns: NetnsRef | undefined, fn: (a: Attr | undefined) => T): T {
  if (ns === undefined) return fn(undefined);
  if (typeof ns === "object" && "pid" in ns) return fn(nla.u32(IFLA_NET_NS_PID, ns.pid));
  return withNetnsFd(ns, (fd) => fn(nla.u32(IFLA_NET_NS_FD, fd)));
}

/**
 * Create the pair, through the rtnetlink socket `sock` (and so in its
 * namespace), or a new socket in this thread's namespace. Does not set the
 * altname (Rtnl.createVeth does).
 */
export function createVeth(spec: VethSpec, sock?: NetlinkSocket): void {
  const what = `creating veth ${spec.name}/${spec.peer.name}`;
  const s = sock ?? NetlinkSocket.open(NETLINK_ROUTE, { typeName: () => "RTM_NEWLINK" });
  try {
    withPeerNs(spec.peer.netns, (ns) => s.request(vethRequest(spec, ns)));
  } catch (e) {
    if (e instanceof SpawnctlError && e.errno === EOPNOTSUPP) throw new SpawnctlError(`${what}: the kernel has no veth support (CONFIG_VETH)`, { errno: EOPNOTSUPP, syscall: "RTM_NEWLINK" });
    throw wrap(what, e);
  } finally {
    if (!sock) s.close();
  }
}

/** The RTM_NEWLINK createVeth sends (sequence number 0x6e736801, as it goes on the wire), for tests; nsFd is the peer's IFLA_NET_NS_FD. */
export function vethRequestBytes(spec: VethSpec, nsFd = -1): Uint8Array {
  const req = vethRequest(spec, nsFd >= 0 ? nla.u32(IFLA_NET_NS_FD, nsFd) : undefined);
  return encodeMessage({ ...req, flags: (req.flags ?? 0) | NLM_F.REQUEST | NLM_F.ACK }, 0x6e736801);
}
