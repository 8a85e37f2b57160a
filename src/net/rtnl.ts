// rtnetlink: links, addresses and routes, in this or another network
// namespace. An `Rtnl` is one socket opened in one namespace; everything it
// does happens there, except where an operation names a target namespace
// (a veth peer, a macvlan created for a container, a link moved away).
//
// Every method either does all it was asked or throws a SpawnctlError that
// says what was being done: "creating veth ve-web/host0: RTM_NEWLINK: File
// exists (kernel: ...)". Nothing here reads /sys or waits for udev.
import { SpawnctlError, wrap } from "../util/errors.ts";
import { AF_INET, AF_INET6, broadcastOf, formatAddress, parseAddress, parsePrefix, type IpPrefix } from "./ip.ts";
import { Attrs, concat, decodeString, encodeAttrs, NETLINK_ROUTE, NLA_F_NESTED, NLM_F, NetlinkSocket, nla, withNetnsFd, type Attr, type Message, type NetnsRef, type Request } from "./netlink.ts";
import { ALTIFNAMSIZ, IFNAMSIZ, checkIfname, formatMac, parseMac } from "./names.ts";
import { createVeth, type VethSpec } from "./veth.ts";

// ---------------------------------------------------------------- constants

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWLINKPROP: 108,
  DELLINKPROP: 109,
} as const;

// names for messages and scopes, made when first needed: building maps at
// import costs every start that brings a network up (this module is cold then)
let rtmNames: Map<number, string> | undefined;
function rtmName(t: number): string {
  rtmNames ??= new Map(Object.entries(RTM).map(([k, v]) => [v as number, `RTM_${k}`]));
  return rtmNames.get(t) ?? `rtnetlink message ${t}`;
}

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  AF_SPEC: 26,
  NET_NS_FD: 28,
  EXT_MASK: 29,
  LINK_NETNSID: 37,
  PROP_LIST: 52,
  ALT_IFNAME: 53,
} as const;

const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_MACVLAN_MODE = 1;
const IFLA_IPVLAN_MODE = 1;
const IFLA_INET_CONF = 1;
const IPV4_DEVCONF_FORWARDING = 1;
const IPV4_DEVCONF_ROUTE_LOCALNET = 26;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

export const IFF_UP = 0x1;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const RTN_UNICAST = 1;
const RTNH_F_ONLINK = 4;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;

export const SCOPE = { global: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export type Scope = keyof typeof SCOPE;
let scopeNames: Map<number, Scope> | undefined;
function scopeName(n: number): Scope | number {
  scopeNames ??= new Map(Object.entries(SCOPE).map(([k, v]) => [v as number, k as Scope]));
  return scopeNames.get(n) ?? n;
}

const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 } as const;
const IPVLAN_MODE = { l2: 0, l3: 1, l3s: 2 } as const;

const OPERSTATE = ["unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"] as const;

/** Kernel options behind each link kind, for "the kernel has no X support" errors. */
const KIND_CONFIG: Record<string, string> = {
  veth: "CONFIG_VETH",
  bridge: "CONFIG_BRIDGE",
  macvlan: "CONFIG_MACVLAN",
  ipvlan: "CONFIG_IPVLAN",
  dummy: "CONFIG_DUMMY",
  ifb: "CONFIG_IFB",
};

const ENODEV = 19;
const EOPNOTSUPP = 95;

// -------------------------------------------------------------------- types

export interface Link {
  index: number;
  name: string;
  altnames: string[];
  /** IFF_* bits */
  flags: number;
  up: boolean;
  mtu: number;
  mac?: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "macvlan"...; undefined for physical devices and lo */
  kind?: string;
  /** ifindex of the bridge (or bond) this link is enslaved to */
  master?: number;
  /** IFLA_LINK: the parent of a macvlan/ipvlan, the peer of a veth (possibly in another namespace) */
  parent?: number;
  operstate: (typeof OPERSTATE)[number];
}

export interface Address {
  family: 4 | 6;
  index: number;
  address: string;
  prefixLen: number;
  scope: Scope | number;
  broadcast?: string;
  label?: string;
}

export interface Route {
  family: 4 | 6;
  /** "default" or a prefix */
  dst: string;
  gateway?: string;
  /** output ifindex */
  dev?: number;
  table: number;
  protocol: number;
  scope: Scope | number;
  type: number;
  metric?: number;
  prefsrc?: string;
}

export interface RouteSpec {
  /** "default" or a prefix such as "10.0.0.0/28" or "fd00::/64" */
  dst: string;
  gateway?: string;
  dev?: LinkRef;
  /** default: the main table */
  table?: number;
  metric?: number;
  /** preferred source address */
  src?: string;
  /** default: "link" for a route without a gateway, "global" otherwise */
  scope?: Scope;
  /** default: RTPROT_BOOT, as `ip route add` */
  protocol?: number;
  /** use the gateway even though no address on dev covers it */
  onlink?: boolean;
}

/** A link by ifindex, or by name or altname (looked up first). */
export type LinkRef = number | string;


export interface MacvlanSpec {
  parent: LinkRef;
  name: string;
  mac?: string;
  /** where the new link is created; the parent is looked up in this socket's namespace */
  netns?: NetnsRef;
  altname?: string;
  mode?: keyof typeof MACVLAN_MODE;
}

export interface IpvlanSpec {
  parent: LinkRef;
  name: string;
  netns?: NetnsRef;
  altname?: string;
  mode?: keyof typeof IPVLAN_MODE;
}

// ------------------------------------------------------------- wire helpers

function ifinfomsg(index = 0, flags = 0, change = 0): Uint8Array {
  const b = new Uint8Array(16); // family AF_UNSPEC
  const v = new DataView(b.buffer);
  v.setInt32(4, index, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return b;
}

function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint8(0, family);
  v.setUint8(1, prefixLen);
  v.setUint8(2, flags & 0xff);
  v.setUint8(3, scope);
  v.setUint32(4, index, true);
  return b;
}

function rtmsg(r: { family: number; dstLen: number; table: number; protocol: number; scope: number; type: number; flags: number }): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint8(0, r.family);
  v.setUint8(1, r.dstLen);
  v.setUint8(4, r.table < 256 ? r.table : 0); // larger table ids only fit RTA_TABLE
  v.setUint8(5, r.protocol);
  v.setUint8(6, r.scope);
  v.setUint8(7, r.type);
  v.setUint32(8, r.flags, true);
  return b;
}

/** IFLA_IFNAME for names that fit IFNAMSIZ, IFLA_ALT_IFNAME for longer ones (altnames). */
function nameAttr(name: string): Attr {
  return Buffer.byteLength(name) < IFNAMSIZ ? nla.str(IFLA.IFNAME, name) : nla.str(IFLA.ALT_IFNAME, name);
}

/** The attribute that puts a new or moved link into another namespace. */
function withNetnsAttr<T>(ns: NetnsRef, fn: (a: Attr) => T): T {
  if (typeof ns === "object" && "pid" in ns) return fn(nla.u32(IFLA.NET_NS_PID, ns.pid));
  return withNetnsFd(ns, (fd) => fn(nla.u32(IFLA.NET_NS_FD, fd)));
}

function familyNumber(f: number): 4 | 6 {
  return f === AF_INET6 ? 6 : 4;
}

function decodeLink(m: Message): Link {
  const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  const flags = v.getUint32(8, true);
  const a = Attrs.parse(m.payload.subarray(16));
  const info = a.nested(IFLA.LINKINFO);
  const mac = a.get(IFLA.ADDRESS);
  return {
    index: v.getInt32(4, true),
    name: a.str(IFLA.IFNAME) ?? "",
    altnames: a.nested(IFLA.PROP_LIST)?.all(IFLA.ALT_IFNAME).map(decodeString) ?? [],
    flags,
    up: (flags & IFF_UP) !== 0,
    mtu: a.u32(IFLA.MTU) ?? 0,
    mac: mac && mac.length === 6 ? formatMac(mac) : undefined,
    kind: info?.str(IFLA_INFO_KIND),
    master: a.u32(IFLA.MASTER),
    parent: a.u32(IFLA.LINK),
    operstate: OPERSTATE[a.u8(IFLA.OPERSTATE) ?? 0] ?? "unknown",
  };
}

function decodeAddress(m: Message): Address {
  const p = m.payload;
  const a = Attrs.parse(p.subarray(8));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
  // point-to-point links and the only one present for most IPv6 addresses.
  const local = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS)!;
  const brd = a.get(IFA_BROADCAST);
  return {
    family: familyNumber(p[0]!),
    prefixLen: p[1]!,
    scope: scopeName(p[3]!),
    index: new DataView(p.buffer, p.byteOffset + 4, 4).getUint32(0, true),
    address: formatAddress(local),
    broadcast: brd ? formatAddress(brd) : undefined,
    label: a.str(IFA_LABEL),
  };
}

function decodeRoute(m: Message): Route {
  const p = m.payload;
  const a = Attrs.parse(p.subarray(12));
  const dst = a.get(RTA_DST);
  const gw = a.get(RTA_GATEWAY);
  const src = a.get(RTA_PREFSRC);
  return {
    family: familyNumber(p[0]!),
    dst: dst ? `${formatAddress(dst)}/${p[1]}` : "default",
    gateway: gw ? formatAddress(gw) : undefined,
    dev: a.u32(RTA_OIF),
    table: a.u32(RTA_TABLE) ?? p[4]!,
    protocol: p[5]!,
    scope: scopeName(p[6]!),
    type: p[7]!,
    metric: a.u32(RTA_PRIORITY),
    prefsrc: src ? formatAddress(src) : undefined,
  };
}

// ------------------------------------------------------------ requests
// Pure builders of the requests the Rtnl methods send, with names already
// resolved to ifindexes. Attribute order follows iproute2's, so a request
// can be compared byte for byte with what `ip` sends.

function kindAttr(kind: string): Attr {
  // bare, without NUL, as iproute2 sends it (IFLA_INFO_KIND is NLA_STRING)
  return nla.bytes(IFLA_INFO_KIND, new TextEncoder().encode(kind));
}

/** RTM_NEWLINK for a link of a kind without parameters (bridge, dummy, ifb...). */
export function newLinkRequest(name: string, kind: string, mac?: string): Request {
  return {
    type: RTM.NEWLINK,
    flags: NLM_F.CREATE | NLM_F.EXCL,
    header: ifinfomsg(),
    attrs: [...(mac ? [nla.bytes(IFLA.ADDRESS, parseMac(mac))] : []), nla.str(IFLA.IFNAME, checkIfname(name)), nla.nest(IFLA.LINKINFO, [kindAttr(kind)])],
  };
}

/** RTM_NEWLINK for a macvlan or ipvlan on parent (an ifindex in the sending socket's namespace). */
export function linkOnParentRequest(kind: string, parent: number, name: string, data: Attr[], opts: { mac?: string; ns?: Attr } = {}): Request {
  return {
    type: RTM.NEWLINK,
    flags: NLM_F.CREATE | NLM_F.EXCL,
    header: ifinfomsg(),
    attrs: [
      ...(opts.mac ? [nla.bytes(IFLA.ADDRESS, parseMac(opts.mac))] : []),
      ...(opts.ns ? [opts.ns] : []),
      nla.u32(IFLA.LINK, parent),
      nla.str(IFLA.IFNAME, checkIfname(name)),
      nla.nest(IFLA.LINKINFO, [kindAttr(kind), nla.nest(IFLA_INFO_DATA, data)]),
    ],
  };
}

/** RTM_NEWLINKPROP / RTM_DELLINKPROP for one altname. */
export function altnameRequest(type: typeof RTM.NEWLINKPROP | typeof RTM.DELLINKPROP, index: number, altname: string): Request {
  return {
    type,
    // create/exclusive/append as iproute2 sends them; the kernel does not look at them
    flags: type === RTM.NEWLINKPROP ? NLM_F.CREATE | NLM_F.EXCL | NLM_F.APPEND : 0,
    header: ifinfomsg(index),
    // the kernel parses IFLA_PROP_LIST strictly: it must be marked nested
    attrs: [nla.nest(IFLA.PROP_LIST | NLA_F_NESTED, [nla.str(IFLA.ALT_IFNAME, altname)])],
  };
}

export interface AddressOptions {
  /** IPv4: the broadcast address, or true (default) for the prefix's, false for none */
  broadcast?: boolean | string;
  scope?: Scope;
  /** IPv6: usable at once, without duplicate address detection */
  noDad?: boolean;
}

/** RTM_NEWADDR (or RTM_DELADDR) for an address on a link. */
export function addressRequest(type: typeof RTM.NEWADDR | typeof RTM.DELADDR, index: number, p: IpPrefix, opts: AddressOptions = {}): Request {
  if (type === RTM.DELADDR) return { type, header: ifaddrmsg(p.family, p.prefixLen, 0, 0, index), attrs: [nla.bytes(IFA_LOCAL, p.bytes)] };
  const flags = opts.noDad && p.family === AF_INET6 ? IFA_F_NODAD : 0;
  // IFA_LOCAL is our address, IFA_ADDRESS the other end on point-to-point
  // links; without a peer both are the same, as iproute2 sends them.
  const attrs = [nla.bytes(IFA_LOCAL, p.bytes), nla.bytes(IFA_ADDRESS, p.bytes)];
  if (p.family === AF_INET && opts.broadcast !== false) {
    if (typeof opts.broadcast === "string") attrs.push(nla.bytes(IFA_BROADCAST, parseAddress(opts.broadcast).bytes));
    else if (p.prefixLen < 31) attrs.push(nla.bytes(IFA_BROADCAST, broadcastOf(p)));
  }
  // flags above the 8 bits of ifa_flags only fit the IFA_FLAGS attribute
  if (flags > 0xff) attrs.push(nla.u32(IFA_FLAGS, flags));
  return { type, flags: NLM_F.CREATE | NLM_F.EXCL, header: ifaddrmsg(p.family, p.prefixLen, flags, SCOPE[opts.scope ?? "global"], index), attrs };
}

/** RTM_NEWROUTE (or RTM_DELROUTE) for a route spec whose dev is resolved to oif. */
export function routeRequest(type: typeof RTM.NEWROUTE | typeof RTM.DELROUTE, spec: RouteSpec, oif?: number): Request {
  const gateway = spec.gateway === undefined ? undefined : parseAddress(spec.gateway);
  const dst = spec.dst === "default" ? undefined : parsePrefix(spec.dst);
  const src = spec.src === undefined ? undefined : parseAddress(spec.src);
  const family = dst?.family ?? gateway?.family ?? AF_INET;
  if ((gateway && gateway.family !== family) || (src && src.family !== family)) throw new SpawnctlError("IPv4 and IPv6 addresses mixed in one route");
  const table = spec.table ?? RT_TABLE_MAIN;
  const attrs: Attr[] = [];
  if (dst) attrs.push(nla.bytes(RTA_DST, dst.bytes));
  if (gateway) attrs.push(nla.bytes(RTA_GATEWAY, gateway.bytes));
  if (src) attrs.push(nla.bytes(RTA_PREFSRC, src.bytes));
  if (spec.metric !== undefined) attrs.push(nla.u32(RTA_PRIORITY, spec.metric));
  if (table > 255) attrs.push(nla.u32(RTA_TABLE, table)); // rtm_table is 8 bits
  if (oif !== undefined) attrs.push(nla.u32(RTA_OIF, oif));
  const scope = SCOPE[spec.scope ?? (gateway ? "global" : "link")];
  const header = rtmsg({
    family,
    dstLen: dst?.prefixLen ?? 0,
    table,
    protocol: spec.protocol ?? RTPROT_BOOT,
    // RTM_DELROUTE with scope nowhere matches a route of any scope
    scope: type === RTM.DELROUTE && spec.scope === undefined ? SCOPE.nowhere : scope,
    type: RTN_UNICAST,
    flags: spec.onlink ? RTNH_F_ONLINK : 0,
  });
  return { type, flags: type === RTM.NEWROUTE ? NLM_F.CREATE | NLM_F.EXCL : 0, header, attrs };
}

/** Add "the kernel has no X support" to the error of creating a link of an unknown kind. */
function kindError(what: string, kind: string, e: unknown): SpawnctlError {
  const err = e as SpawnctlError & { kernelMessage?: string };
  // rtnl_newlink answers EOPNOTSUPP with "Unknown device type" when no
  // driver registered the kind (after trying to load module rtnl-link-KIND).
  if (err?.errno === EOPNOTSUPP && (!err.kernelMessage || /unknown device type/i.test(err.kernelMessage))) {
    const config = KIND_CONFIG[kind];
    return new SpawnctlError(`${what}: the kernel has no ${kind} support${config ? ` (${config})` : ""}`, { errno: EOPNOTSUPP, syscall: "RTM_NEWLINK", cause: e });
  }
  return wrap(what, e);
}

// --------------------------------------------------------------------- Rtnl

export class Rtnl {
  private constructor(private readonly sock: NetlinkSocket) {}

  /** rtnetlink in the given namespace, or the caller's. */
  static open(netns?: NetnsRef): Rtnl {
    try {
      return new Rtnl(NetlinkSocket.open(NETLINK_ROUTE, { netns, typeName: rtmName }));
    } catch (e) {
      throw wrap(netns === undefined ? "opening rtnetlink" : `opening rtnetlink in network namespace ${describeNetns(netns)}`, e);
    }
  }

  close(): void {
    this.sock.close();
  }

  // ---------------------------------------------------------------- links

  links(): Link[] {
    const msgs = this.sock.dump({ type: RTM.GETLINK, header: ifinfomsg(), attrs: [nla.u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS)] });
    return msgs.filter((m) => m.type === RTM.NEWLINK).map(decodeLink);
  }

  /** A link by ifindex, name or altname; undefined if there is none. */
  link(ref: LinkRef): Link | undefined {
    try {
      return this.getLink(ref);
    } catch (e) {
      if ((e as SpawnctlError).errno === ENODEV) return undefined;
      throw wrap(`looking up link ${ref}`, e);
    }
  }

  private getLink(ref: LinkRef): Link {
    const byName = typeof ref === "string";
    const attrs = [nla.u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS), ...(byName ? [nameAttr(ref)] : [])];
    return decodeLink(this.sock.get({ type: RTM.GETLINK, header: ifinfomsg(byName ? 0 : ref), attrs }));
  }

  /** The ifindex of a link reference; throws naming the link when it does not exist. */
  index(ref: LinkRef): number {
    if (typeof ref === "number") return ref;
    try {
      return this.getLink(ref).index;
    } catch (e) {
      throw wrap(`looking up link ${ref}`, e);
    }
  }

  private setLink(what: string, ref: LinkRef, attrs: Attr[], flags = 0, change = 0): void {
    const index = this.indexFor(what, ref);
    try {
      this.sock.request({ type: RTM.SETLINK, header: ifinfomsg(index, flags, change), attrs });
    } catch (e) {
      throw wrap(what, e);
    }
  }

  setUp(ref: LinkRef, up = true): void {
    this.setLink(`bringing link ${ref} ${up ? "up" : "down"}`, ref, [], up ? IFF_UP : 0, IFF_UP);
  }

  setMtu(ref: LinkRef, mtu: number): void {
    this.setLink(`setting the MTU of ${ref} to ${mtu}`, ref, [nla.u32(IFLA.MTU, mtu)]);
  }

  setMac(ref: LinkRef, mac: string): void {
    this.setLink(`setting the MAC address of ${ref} to ${mac}`, ref, [nla.bytes(IFLA.ADDRESS, parseMac(mac))]);
  }

  /** Rename a link; before Linux 6.2 only while it is down (EBUSY otherwise). */
  rename(ref: LinkRef, name: string): void {
    this.setLink(`renaming link ${ref} to ${name}`, ref, [nla.str(IFLA.IFNAME, checkIfname(name))]);
  }

  /** Put a link into a bridge, or take it out with master null. */
  setMaster(ref: LinkRef, master: LinkRef | null): void {
    const what = master === null ? `releasing link ${ref} from its bridge` : `adding link ${ref} to bridge ${master}`;
    const m = master === null ? 0 : this.indexFor(what, master);
    this.setLink(what, ref, [nla.u32(IFLA.MASTER, m)]);
  }

  /** Remove a link; a veth takes its peer with it. With missingOk a link that is already gone is not an error. */
  deleteLink(ref: LinkRef, opts: { missingOk?: boolean } = {}): void {
    const byName = typeof ref === "string";
    try {
      this.sock.request({ type: RTM.DELLINK, header: ifinfomsg(byName ? 0 : ref), attrs: byName ? [nameAttr(ref)] : [] });
    } catch (e) {
      if (opts.missingOk && (e as SpawnctlError).errno === ENODEV) return;
      throw wrap(`removing link ${ref}`, e);
    }
  }

  /**
   * Move a link to another network namespace, optionally renaming it on the
   * way (the kernel renames atomically with the move). The ifindex may change.
   */
  moveLink(ref: LinkRef, netns: NetnsRef, newName?: string): void {
    const what = `moving link ${ref} to network namespace ${describeNetns(netns)}${newName ? ` as ${newName}` : ""}`;
    const index = this.indexFor(what, ref);
    try {
      withNetnsAttr(netns, (nsAttr) =>
        this.sock.request({ type: RTM.SETLINK, header: ifinfomsg(index), attrs: [nsAttr, ...(newName ? [nla.str(IFLA.IFNAME, checkIfname(newName))] : [])] }),
      );
    } catch (e) {
      throw wrap(what, e);
    }
  }

  /** Alternative names (Linux 5.5+) may be up to 127 bytes long and are found by every lookup by name. */
  addAltname(ref: LinkRef, altname: string): void {
    this.linkProp(RTM.NEWLINKPROP, `adding altname ${altname} to link ${ref}`, ref, altname);
  }

  deleteAltname(ref: LinkRef, altname: string): void {
    this.linkProp(RTM.DELLINKPROP, `removing altname ${altname} from link ${ref}`, ref, altname);
  }

  private linkProp(type: typeof RTM.NEWLINKPROP | typeof RTM.DELLINKPROP, what: string, ref: LinkRef, altname: string): void {
    if (Buffer.byteLength(altname) >= ALTIFNAMSIZ) throw new SpawnctlError(`${what}: longer than ${ALTIFNAMSIZ - 1} bytes`);
    const index = this.indexFor(what, ref);
    try {
      this.sock.request(altnameRequest(type, index, altname));
    } catch (e) {
      throw wrap(what, e);
    }
  }

  /**
   * A veth pair. With peer.netns the peer is created directly inside that
   * namespace: one RTM_NEWLINK, much faster than creating it here and moving
   * it, which makes the kernel wait for RCU grace periods.
   */
  createVeth(spec: VethSpec): void {
    createVeth(spec, this.sock);
    if (spec.altname) this.addAltnameOrUndo(this, spec.name, spec.altname);
  }

  /** A bridge, created down. */
  createBridge(name: string, opts: { mac?: string } = {}): void {
    this.createLink(name, "bridge", opts);
  }

  /** A link of a kind that needs no parameters (bridge, dummy, ifb...). */
  createLink(name: string, kind: string, opts: { mac?: string } = {}): void {
    try {
      this.sock.request(newLinkRequest(name, kind, opts.mac));
    } catch (e) {
      throw kindError(`creating ${kind} ${name}`, kind, e);
    }
  }

  /** A macvlan on a parent link here, created directly in spec.netns if given. */
  createMacvlan(spec: MacvlanSpec): void {
    this.createOnParent("macvlan", spec, [nla.u32(IFLA_MACVLAN_MODE, MACVLAN_MODE[spec.mode ?? "bridge"])], spec.mac);
  }

  /** An ipvlan (L2 mode unless told otherwise) on a parent link here, created directly in spec.netns if given. */
  createIpvlan(spec: IpvlanSpec): void {
    this.createOnParent("ipvlan", spec, [nla.u16(IFLA_IPVLAN_MODE, IPVLAN_MODE[spec.mode ?? "l2"])]);
  }

  private createOnParent(kind: "macvlan" | "ipvlan", spec: MacvlanSpec | IpvlanSpec, data: Attr[], mac?: string): void {
    const what = `creating ${kind} ${spec.name} on ${spec.parent}`;
    const parent = this.indexFor(what, spec.parent);
    // IFLA_LINK is resolved in this socket's namespace even when the new
    // link is created in another one.
    try {
      if (spec.netns === undefined) this.sock.request(linkOnParentRequest(kind, parent, spec.name, data, { mac }));
      else withNetnsAttr(spec.netns, (ns) => this.sock.request(linkOnParentRequest(kind, parent, spec.name, data, { mac, ns })));
    } catch (e) {
      throw kindError(what, kind, e);
    }
    if (!spec.altname) return;
    if (spec.netns === undefined) return this.addAltnameOrUndo(this, spec.name, spec.altname);
    const there = Rtnl.open(spec.netns);
    try {
      this.addAltnameOrUndo(there, spec.name, spec.altname);
    } finally {
      there.close();
    }
  }

  /** Keep creation all-or-nothing: a link whose altname could not be set is removed again. */
  private addAltnameOrUndo(where: Rtnl, name: string, altname: string): void {
    try {
      where.addAltname(name, altname);
    } catch (e) {
      where.deleteLink(name, { missingOk: true });
      throw e;
    }
  }

  private indexFor(what: string, ref: LinkRef): number {
    try {
      return this.index(ref);
    } catch (e) {
      throw wrap(what, e);
    }
  }

  /**
   * Per-link IPv4 settings over rtnetlink (IFLA_AF_SPEC), the same values as
   * /proc/sys/net/ipv4/conf/LINK/*: no procfs needed, and it works in any
   * namespace this socket is in. Unlike a sysctl write it does not flush the
   * route cache, so set these before traffic flows.
   *   forwarding:    route packets that arrive on this link (ip_forward, per link)
   *   routeLocalnet: let 127.0.0.0/8 addresses be routed to and from this link
   */
  setIPv4Conf(ref: LinkRef, conf: { forwarding?: boolean; routeLocalnet?: boolean }): void {
    const values: Attr[] = [];
    if (conf.forwarding !== undefined) values.push(nla.u32(IPV4_DEVCONF_FORWARDING, conf.forwarding ? 1 : 0));
    if (conf.routeLocalnet !== undefined) values.push(nla.u32(IPV4_DEVCONF_ROUTE_LOCALNET, conf.routeLocalnet ? 1 : 0));
    const names = Object.entries(conf).map(([k, v]) => `${k}=${v ? 1 : 0}`).join(" ");
    this.setLink(`setting IPv4 ${names} on ${ref}`, ref, [nla.nest(IFLA.AF_SPEC, [nla.nest(AF_INET, [nla.nest(IFLA_INET_CONF, values)])])]);
  }

  /** The per-link IPv4 settings setIPv4Conf changes. */
  ipv4Conf(ref: LinkRef): { forwarding: boolean; routeLocalnet: boolean } {
    let m: Message;
    try {
      m = this.sock.get({ type: RTM.GETLINK, header: ifinfomsg(typeof ref === "number" ? ref : 0), attrs: typeof ref === "string" ? [nameAttr(ref)] : [] });
    } catch (e) {
      throw wrap(`reading the IPv4 settings of ${ref}`, e);
    }
    // IFLA_INET_CONF in a reply is an array of u32, entry i holding devconf i+1
    const conf = Attrs.parse(m.payload.subarray(16)).nested(IFLA.AF_SPEC)?.nested(AF_INET)?.get(IFLA_INET_CONF);
    if (!conf || conf.length < IPV4_DEVCONF_ROUTE_LOCALNET * 4) throw new SpawnctlError(`reading the IPv4 settings of ${ref}: the kernel sent none`);
    const v = new DataView(conf.buffer, conf.byteOffset, conf.byteLength);
    const at = (id: number) => v.getUint32((id - 1) * 4, true) !== 0;
    return { forwarding: at(IPV4_DEVCONF_FORWARDING), routeLocalnet: at(IPV4_DEVCONF_ROUTE_LOCALNET) };
  }

  // ------------------------------------------------------------ addresses

  addresses(filter: { link?: LinkRef; family?: 4 | 6 } = {}): Address[] {
    const family = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : 0;
    const index = filter.link === undefined ? undefined : this.index(filter.link);
    const msgs = this.sock.dump({ type: RTM.GETADDR, header: ifaddrmsg(family, 0, 0, 0, 0) });
    return msgs.filter((m) => m.type === RTM.NEWADDR).map(decodeAddress).filter((a) => index === undefined || a.index === index);
  }

  /**
   * Add "10.0.0.1/28" or "fd00::1/64" to a link. IPv4 addresses get the
   * prefix's broadcast address unless told otherwise.
   */
  addAddress(ref: LinkRef, address: string, opts: AddressOptions = {}): void {
    const what = `adding address ${address} to ${ref}`;
    const index = this.indexFor(what, ref);
    try {
      this.sock.request(addressRequest(RTM.NEWADDR, index, parsePrefix(address), opts));
    } catch (e) {
      throw wrap(what, e);
    }
  }

  deleteAddress(ref: LinkRef, address: string): void {
    const what = `removing address ${address} from ${ref}`;
    const index = this.indexFor(what, ref);
    try {
      this.sock.request(addressRequest(RTM.DELADDR, index, parsePrefix(address)));
    } catch (e) {
      throw wrap(what, e);
    }
  }

  // --------------------------------------------------------------- routes

  /** Routes of one table (main by default), both families unless one is asked for. */
  routes(filter: { family?: 4 | 6; table?: number } = {}): Route[] {
    const family = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : 0;
    const table = filter.table ?? RT_TABLE_MAIN;
    const msgs = this.sock.dump({ type: RTM.GETROUTE, header: rtmsg({ family, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }) });
    return msgs.filter((m) => m.type === RTM.NEWROUTE).map(decodeRoute).filter((r) => r.table === table);
  }

  addRoute(spec: RouteSpec): void {
    this.routeChange(RTM.NEWROUTE, `adding route ${describeRoute(spec)}`, spec);
  }

  deleteRoute(spec: RouteSpec): void {
    this.routeChange(RTM.DELROUTE, `removing route ${describeRoute(spec)}`, spec);
  }

  private routeChange(type: typeof RTM.NEWROUTE | typeof RTM.DELROUTE, what: string, spec: RouteSpec): void {
    const oif = spec.dev === undefined ? undefined : this.indexFor(what, spec.dev);
    try {
      this.sock.request(routeRequest(type, spec, oif));
    } catch (e) {
      throw wrap(what, e);
    }
  }
}

function describeRoute(r: RouteSpec): string {
  return [r.dst, r.gateway && `via ${r.gateway}`, r.dev !== undefined && `dev ${r.dev}`].filter(Boolean).join(" ");
}

function describeNetns(ns: NetnsRef): string {
  if (typeof ns === "string") return ns;
  return "pid" in ns ? `of pid ${ns.pid}` : `fd ${ns.fd}`;
}


