// NAT for containers with nftables, spoken directly over nfnetlink (no `nft`
// binary). spawnctl keeps everything in a table of its own named "spawnctl":
// family inet where the kernel has inet NAT (Linux 5.2+), otherwise one ip
// and one ip6 table ("split" layout). Each rule carries a comment naming its
// machine, the same userdata `nft list ruleset` shows, so a machine's rules
// can be listed and removed after a crash without any state on disk.
//
// Chains (policy accept; spawnctl never drops host traffic except below):
//   prerouting   nat    prerouting  -100  DNAT for published ports, from outside
//   output       nat    output      -100  DNAT for published ports, from the host itself
//   postrouting  nat    postrouting  100  masquerade for container prefixes
//   guard        filter prerouting     0  drops 127.0.0.0/8 traffic that arrives on a
//                                          non-loopback link and is not a reply (IPv4 only)
//
// Port forwarding to 127.0.0.1 (systemd issue #6106). A connection from
// the host to 127.0.0.1:PORT passes the nat output hook like any other, and
// DNAT can send it to the container. Two things then stop it, both fixed per
// machine: (1) the kernel refuses to route a packet with a 127.0.0.0/8
// source out of a non-loopback link unless that link has route_localnet=1
// (Rtnl.setIPv4Conf(link, { routeLocalnet: true }) on the host-side veth, or
// on the bridge for bridged and zone machines), and (2) the container
// must not see 127.0.0.1 as the source or it would answer itself, so the
// postrouting chain masquerades 127.0.0.0/8 sources going to the container.
// route_localnet also lets a container send packets to the host's
// 127.0.0.0/8 services, which is why the guard chain drops such packets
// unless conntrack knows them as replies (Kubernetes guards the same hole,
// CVE-2020-8558). IPv6 has no route_localnet: ::1 cannot be forwarded.
import { SpawnctlError, wrap } from "../util/errors.ts";
import { AF_INET6, formatPrefix, networkOf, parseAddress, parsePrefix, prefixMask, type IpAddress, type IpPrefix } from "./ip.ts";
import { Attrs, decodeString, NETLINK_NETFILTER, NLA_F_NESTED, NLM_F, NetlinkError, NetlinkSocket, nla, type Attr, type Message, type NetnsRef, type Request } from "./netlink.ts";
import { EPROTONOSUPPORT } from "./sys.ts";

// -------------------------------------------------------------- constants

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END = 0x11;

const NFT_MSG = { NEWTABLE: 0, GETTABLE: 1, DELTABLE: 2, NEWCHAIN: 3, GETCHAIN: 4, DELCHAIN: 5, NEWRULE: 6, GETRULE: 7, DELRULE: 8 } as const;
// message names for errors, made when first needed (no work at import: this
// module is loaded, cold, on every start that sets up NAT)
let nftMsgNames: Map<number, string> | undefined;
function nftMsgName(t: number): string {
  nftMsgNames ??= new Map<number, string>([
    [NFNL_MSG_BATCH_BEGIN, "NFNL_MSG_BATCH_BEGIN"],
    [NFNL_MSG_BATCH_END, "NFNL_MSG_BATCH_END"],
    ...Object.entries(NFT_MSG).map(([k, v]) => [(NFNL_SUBSYS_NFTABLES << 8) | v, `NFT_MSG_${k}`] as [number, string]),
  ]);
  return nftMsgNames.get(t) ?? `nfnetlink message ${t}`;
}

export const NFPROTO = { inet: 1, ip: 2, ip6: 10 } as const;
export type Family = keyof typeof NFPROTO;
function familyName(n: number | undefined): Family | undefined {
  return n === NFPROTO.inet ? "inet" : n === NFPROTO.ip ? "ip" : n === NFPROTO.ip6 ? "ip6" : undefined;
}

const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_HOOK_PRIORITY = 2;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_HANDLE = 3;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_RULE_USERDATA = 7;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;

const NF_INET_PRE_ROUTING = 0;
const NF_INET_LOCAL_OUT = 3;
const NF_INET_POST_ROUTING = 4;
const NF_DROP = 0;
const NF_ACCEPT = 1;

const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NFT_REG_2 = 2;

const NFT_CMP = { eq: 0, neq: 1 } as const;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const NFT_META_IIFTYPE = 8;
const NFT_META_NFPROTO = 15;
const NFT_META_L4PROTO = 16;
const NFTA_FIB_F_DADDR = 2;
const NFT_FIB_RESULT_ADDRTYPE = 3;
const RTN_LOCAL = 2;
const NFT_CT_STATE = 0;
const NF_CT_STATE_ESTABLISHED = 1 << 1; // NF_CT_STATE_BIT(IP_CT_ESTABLISHED)
const NF_CT_STATE_RELATED = 1 << 2;
const NFT_NAT_DNAT = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED = 2;
const ARPHRD_LOOPBACK = 772;
const IPPROTO = { tcp: 6, udp: 17 } as const;

/** libnftnl's userdata TLV type for a rule comment, which `nft list` prints. */
const NFTNL_UDATA_RULE_COMMENT = 0;

export const TABLE = "spawnctl";

const ENOENT = 2;
const EEXIST = 17;
const EINVAL = 22;
const EOPNOTSUPP = 95;

// ------------------------------------------------------------- expressions

/** One nftables expression: its name and its attributes. */
export interface Expr {
  name: string;
  attrs: Attr[];
}

/** nf_tables wants its nests marked, as libmnl does. */
function nest(type: number, children: Attr[]): Attr {
  return nla.nest(type | NLA_F_NESTED, children);
}

function value(type: number, bytes: Uint8Array): Attr {
  return nest(type, [nla.bytes(NFTA_DATA_VALUE, bytes)]);
}

function u32host(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function u16host(v: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v, true);
  return b;
}

function be16(v: number): Uint8Array {
  return Uint8Array.of(v >> 8, v & 0xff);
}

/**
 * Expression constructors. nf_tables integers (registers, offsets, keys)
 * travel big-endian; register contents are compared byte for byte, so data
 * is in the byte order the kernel stores: packet bytes as they are on the
 * wire, meta/ct/fib values in host order.
 */
export const expr = {
  meta: (key: number, dreg = NFT_REG_1): Expr => ({ name: "meta", attrs: [nla.be32(2 /* KEY */, key), nla.be32(1 /* DREG */, dreg)] }),
  payload: (base: number, offset: number, len: number, dreg = NFT_REG_1): Expr => ({
    name: "payload",
    attrs: [nla.be32(1 /* DREG */, dreg), nla.be32(2 /* BASE */, base), nla.be32(3 /* OFFSET */, offset), nla.be32(4 /* LEN */, len)],
  }),
  cmp: (op: number, data: Uint8Array, sreg = NFT_REG_1): Expr => ({ name: "cmp", attrs: [nla.be32(1 /* SREG */, sreg), nla.be32(2 /* OP */, op), value(3 /* DATA */, data)] }),
  /** reg = (reg & mask) ^ xor */
  bitwise: (mask: Uint8Array, xor: Uint8Array, reg = NFT_REG_1): Expr => ({
    name: "bitwise",
    attrs: [nla.be32(1 /* SREG */, reg), nla.be32(2 /* DREG */, reg), nla.be32(3 /* LEN */, mask.length), value(4 /* MASK */, mask), value(5 /* XOR */, xor)],
  }),
  fib: (flags: number, result: number, dreg = NFT_REG_1): Expr => ({ name: "fib", attrs: [nla.be32(3 /* FLAGS */, flags), nla.be32(2 /* RESULT */, result), nla.be32(1 /* DREG */, dreg)] }),
  ct: (key: number, dreg = NFT_REG_1): Expr => ({ name: "ct", attrs: [nla.be32(2 /* KEY */, key), nla.be32(1 /* DREG */, dreg)] }),
  immediate: (dreg: number, data: Uint8Array): Expr => ({ name: "immediate", attrs: [nla.be32(1 /* DREG */, dreg), value(2 /* DATA */, data)] }),
  verdict: (code: number): Expr => ({
    name: "immediate",
    attrs: [nla.be32(1 /* DREG */, NFT_REG_VERDICT), nest(2 /* DATA */, [nest(NFTA_DATA_VERDICT, [nla.be32(NFTA_VERDICT_CODE, code)])])],
  }),
  /** dnat to the address in addrReg and the port in protoReg */
  dnat: (family: number, addrReg: number, protoReg: number): Expr => ({
    name: "nat",
    attrs: [
      nla.be32(1 /* TYPE */, NFT_NAT_DNAT),
      nla.be32(2 /* FAMILY */, family),
      nla.be32(3 /* REG_ADDR_MIN */, addrReg),
      nla.be32(5 /* REG_PROTO_MIN */, protoReg),
      nla.be32(7 /* FLAGS */, NF_NAT_RANGE_PROTO_SPECIFIED),
    ],
  }),
  masquerade: (): Expr => ({ name: "masq", attrs: [] }),
};

function encodeExprs(exprs: Expr[]): Attr {
  return nest(
    NFTA_RULE_EXPRESSIONS,
    exprs.map((e) => nest(NFTA_LIST_ELEM, [nla.str(NFTA_EXPR_NAME, e.name), nest(NFTA_EXPR_DATA, e.attrs)])),
  );
}

// ---------------------------------------------------------------- matches

function nfprotoOf(a: IpAddress): number {
  return a.family === AF_INET6 ? NFPROTO.ip6 : NFPROTO.ip;
}

/** `meta nfproto ipv4|ipv6`, the dependency `ip saddr` needs in an inet table. */
function matchNfproto(a: IpAddress): Expr[] {
  return [expr.meta(NFT_META_NFPROTO), expr.cmp(NFT_CMP.eq, Uint8Array.of(nfprotoOf(a)))];
}

/**
 * `ip saddr 10.0.0.0/28`, `ip6 daddr != ::1` and the like. As nft does, only
 * the bytes the prefix covers are loaded, and masked only when the prefix
 * ends inside a byte.
 */
function matchAddress(field: "saddr" | "daddr", p: IpPrefix, op: number): Expr[] {
  const v6 = p.family === AF_INET6;
  const offset = v6 ? (field === "saddr" ? 8 : 24) : field === "saddr" ? 12 : 16;
  const size = Math.ceil(p.prefixLen / 8);
  if (size === 0) throw new SpawnctlError(`a /0 prefix matches every address; refusing to build a rule on ${formatPrefix(p)}`);
  const net = networkOf(p).subarray(0, size);
  const load = expr.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, size);
  if (p.prefixLen % 8 === 0) return [load, expr.cmp(op, net)];
  return [load, expr.bitwise(prefixMask(size, p.prefixLen), new Uint8Array(size)), expr.cmp(op, net)];
}

/** `meta l4proto tcp tcp dport 8080` */
function matchDport(protocol: "tcp" | "udp", port: number): Expr[] {
  return [
    expr.meta(NFT_META_L4PROTO),
    expr.cmp(NFT_CMP.eq, Uint8Array.of(IPPROTO[protocol])),
    expr.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
    expr.cmp(NFT_CMP.eq, be16(port)),
  ];
}

/** `fib daddr type local`: addressed to this host (any of its addresses, 127.0.0.1 included). */
function matchLocalDestination(): Expr[] {
  return [expr.fib(NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE), expr.cmp(NFT_CMP.eq, u32host(RTN_LOCAL))];
}

function dnatTo(a: IpAddress, port: number): Expr[] {
  return [expr.immediate(NFT_REG_1, a.bytes), expr.immediate(NFT_REG_2, be16(port)), expr.dnat(nfprotoOf(a), NFT_REG_1, NFT_REG_2)];
}

// ------------------------------------------------------------------ rules

/** "inet": one inet table. "split": an ip and an ip6 table, for kernels without inet NAT. */
export type Layout = "inet" | "split";

export type ChainName = "prerouting" | "output" | "postrouting" | "guard";

interface ChainDef {
  name: ChainName;
  type: "nat" | "filter";
  hook: number;
  priority: number;
  /** only in tables that see IPv4 */
  ipv4Only?: boolean;
}

const CHAINS: ChainDef[] = [
  { name: "prerouting", type: "nat", hook: NF_INET_PRE_ROUTING, priority: -100 },
  { name: "output", type: "nat", hook: NF_INET_LOCAL_OUT, priority: -100 },
  { name: "postrouting", type: "nat", hook: NF_INET_POST_ROUTING, priority: 100 },
  { name: "guard", type: "filter", hook: NF_INET_PRE_ROUTING, priority: 0, ipv4Only: true },
];

/** A rule to add: where, what, and the comment that tags it. */
export interface RuleSpec {
  family: Family;
  chain: ChainName;
  exprs: Expr[];
  comment: string;
}

export interface MasqueradeSpec {
  machine: string;
  /** the container prefix, e.g. "10.0.0.0/28" or "fd00:1::/64" */
  source: string;
}

export interface PortForwardSpec {
  machine: string;
  protocol: "tcp" | "udp";
  hostPort: number;
  /** the container's address */
  address: string;
  port: number;
  /**
   * Also forward connections the host makes to 127.0.0.1:hostPort (IPv4
   * only). The host-side link must have route_localnet=1; see the top of
   * this file.
   */
  localhost?: boolean;
}

function tableFamily(layout: Layout, a: IpAddress): Family {
  return layout === "inet" ? "inet" : a.family === AF_INET6 ? "ip6" : "ip";
}

/** In an inet table an address match needs `meta nfproto` first; ip/ip6 tables see one family only. */
function familyMatch(layout: Layout, a: IpAddress): Expr[] {
  return layout === "inet" ? matchNfproto(a) : [];
}

/** A comment names the machine first so rules can be found per machine. */
export function ruleComment(machine: string, what: string): string {
  if (!/^\S+$/.test(machine)) throw new SpawnctlError(`"${machine}" cannot tag a firewall rule (it contains spaces)`);
  return `spawnctl machine=${machine} ${what}`;
}

/** The machine a rule comment names, if it is one of ours. */
export function machineOfComment(comment: string | undefined): string | undefined {
  return comment?.match(/^spawnctl machine=(\S+)/)?.[1];
}

function parseOrThrow<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw wrap(what, e);
  }
}

/** `ip saddr P ip daddr != P masquerade`: traffic from the containers leaving their prefix. */
export function masqueradeRules(spec: MasqueradeSpec, layout: Layout): RuleSpec[] {
  const p = parseOrThrow(`masquerading ${spec.source} for machine ${spec.machine}`, () => parsePrefix(spec.source));
  return [
    {
      family: tableFamily(layout, p),
      chain: "postrouting",
      exprs: [...familyMatch(layout, p), ...matchAddress("saddr", p, NFT_CMP.eq), ...matchAddress("daddr", p, NFT_CMP.neq), expr.masquerade()],
      comment: ruleComment(spec.machine, `masquerade ${spec.source}`),
    },
  ];
}

/**
 * DNAT for a published port: `fib daddr type local tcp dport H dnat to A:P`
 * in prerouting (from outside) and output (from the host), plus what
 * forwarding from 127.0.0.1 needs when asked for.
 */
export function portForwardRules(spec: PortForwardSpec, layout: Layout): RuleSpec[] {
  const what = `forwarding ${spec.protocol} port ${spec.hostPort} to ${spec.address}:${spec.port} for machine ${spec.machine}`;
  for (const port of [spec.hostPort, spec.port]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SpawnctlError(`${what}: ${port} is not a port number`);
  }
  const a = parseOrThrow(what, () => parseAddress(spec.address));
  const v6 = a.family === AF_INET6;
  if (spec.localhost && v6) throw new SpawnctlError(`${what}: forwarding from localhost works for IPv4 only (IPv6 has no route_localnet)`);
  const family = tableFamily(layout, a);
  const comment = ruleComment(spec.machine, `port ${spec.protocol}:${spec.hostPort}->${v6 ? `[${spec.address}]` : spec.address}:${spec.port}`);
  const head = [...familyMatch(layout, a), ...matchDport(spec.protocol, spec.hostPort), ...matchLocalDestination()];
  const loopback = parsePrefix(v6 ? "::1/128" : "127.0.0.0/8");
  const rules: RuleSpec[] = [
    { family, chain: "prerouting", exprs: [...head, ...dnatTo(a, spec.port)], comment },
    {
      family,
      chain: "output",
      exprs: [...head, ...(spec.localhost ? [] : matchAddress("daddr", loopback, NFT_CMP.neq)), ...dnatTo(a, spec.port)],
      comment,
    },
  ];
  if (spec.localhost) {
    rules.push({
      family,
      chain: "postrouting",
      exprs: [
        ...familyMatch(layout, a),
        ...matchAddress("saddr", loopback, NFT_CMP.eq),
        ...matchAddress("daddr", { ...a, prefixLen: 32 }, NFT_CMP.eq),
        ...matchDport(spec.protocol, spec.port),
        expr.masquerade(),
      ],
      comment,
    });
  }
  return rules;
}

/** The guard chain's one rule; see the top of this file. */
function guardRule(layout: Layout): RuleSpec {
  const loopback = parsePrefix("127.0.0.0/8");
  return {
    family: layout === "inet" ? "inet" : "ip",
    chain: "guard",
    exprs: [
      ...familyMatch(layout, loopback),
      ...matchAddress("daddr", loopback, NFT_CMP.eq),
      expr.meta(NFT_META_IIFTYPE),
      expr.cmp(NFT_CMP.neq, u16host(ARPHRD_LOOPBACK)),
      expr.ct(NFT_CT_STATE),
      expr.bitwise(u32host(NF_CT_STATE_ESTABLISHED | NF_CT_STATE_RELATED), u32host(0)),
      expr.cmp(NFT_CMP.eq, u32host(0)),
      expr.verdict(NF_DROP),
    ],
    comment: "spawnctl guard: 127.0.0.0/8 from outside only as replies",
  };
}

// ------------------------------------------------------------ wire format

function nfgenmsg(family: number, resId = 0): Uint8Array {
  return Uint8Array.of(family, 0 /* NFNETLINK_V0 */, resId >> 8, resId & 0xff);
}

function nftType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

function userdataComment(comment: string): Uint8Array {
  const text = Buffer.from(`${comment}\0`);
  if (text.length > 255) throw new SpawnctlError(`firewall rule comment too long: ${comment}`);
  return Uint8Array.from([NFTNL_UDATA_RULE_COMMENT, text.length, ...text]);
}

function parseUserdataComment(d: Uint8Array | undefined): string | undefined {
  let off = 0;
  while (d && off + 2 <= d.length) {
    const [type, len] = [d[off]!, d[off + 1]!];
    if (type === NFTNL_UDATA_RULE_COMMENT) return decodeString(d.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return undefined;
}

/** NFT_MSG_NEWRULE for a rule spec, appended to its chain. */
export function newRuleMessage(rule: RuleSpec): Request {
  return {
    type: nftType(NFT_MSG.NEWRULE),
    flags: NLM_F.CREATE | NLM_F.APPEND,
    header: nfgenmsg(NFPROTO[rule.family]),
    attrs: [nla.str(NFTA_RULE_TABLE, TABLE), nla.str(NFTA_RULE_CHAIN, rule.chain), encodeExprs(rule.exprs), nla.bytes(NFTA_RULE_USERDATA, userdataComment(rule.comment))],
  };
}

/** The batch that creates a layout's tables, chains and guard rule, each message with what it creates. */
export function tableBatch(layout: Layout): { msg: Request; family: Family; chainType?: string }[] {
  const families: Family[] = layout === "inet" ? ["inet"] : ["ip", "ip6"];
  const out: { msg: Request; family: Family; chainType?: string }[] = [];
  for (const family of families) {
    const header = nfgenmsg(NFPROTO[family]);
    // EXCL: when another spawnctl created the table meanwhile, this whole
    // batch fails instead of adding a second guard rule.
    out.push({ family, msg: { type: nftType(NFT_MSG.NEWTABLE), flags: NLM_F.CREATE | NLM_F.EXCL, header, attrs: [nla.str(NFTA_TABLE_NAME, TABLE)] } });
    for (const c of CHAINS) {
      if (c.ipv4Only && family === "ip6") continue;
      out.push({
        family,
        chainType: c.type,
        msg: {
          type: nftType(NFT_MSG.NEWCHAIN),
          flags: NLM_F.CREATE,
          header,
          attrs: [
            nla.str(NFTA_CHAIN_TABLE, TABLE),
            nla.str(NFTA_CHAIN_NAME, c.name),
            nla.str(NFTA_CHAIN_TYPE, c.type),
            nla.be32(NFTA_CHAIN_POLICY, NF_ACCEPT),
            nest(NFTA_CHAIN_HOOK, [nla.be32(NFTA_HOOK_HOOKNUM, c.hook), nla.be32(NFTA_HOOK_PRIORITY, c.priority)]),
          ],
        },
      });
    }
  }
  const guard = guardRule(layout);
  out.push({ family: guard.family, msg: newRuleMessage(guard) });
  return out;
}

/** Frame messages as one nfnetlink batch, which the kernel applies all or nothing. */
export function batch(msgs: Request[]): (Request & { noAck?: boolean })[] {
  const delimiter = (type: number) => ({ type, header: nfgenmsg(0, NFNL_SUBSYS_NFTABLES), noAck: true });
  return [delimiter(NFNL_MSG_BATCH_BEGIN), ...msgs, delimiter(NFNL_MSG_BATCH_END)];
}

// ------------------------------------------------------------- listing

export interface NftRule {
  family: Family;
  table: string;
  chain: string;
  handle: bigint;
  comment?: string;
  /** the machine named by the comment, for rules spawnctl added for one */
  machine?: string;
  /** expression names, for diagnostics */
  exprs: string[];
}

function decodeRule(m: Message): NftRule {
  const a = Attrs.parse(m.payload.subarray(4));
  const comment = parseUserdataComment(a.get(NFTA_RULE_USERDATA));
  const exprs = a.nested(NFTA_RULE_EXPRESSIONS)?.all(NFTA_LIST_ELEM).map((e) => Attrs.parse(e).str(NFTA_EXPR_NAME) ?? "?") ?? [];
  return {
    family: familyName(m.payload[0]) ?? "inet",
    table: a.str(NFTA_RULE_TABLE) ?? "",
    chain: a.str(NFTA_RULE_CHAIN) ?? "",
    handle: a.be64(NFTA_RULE_HANDLE) ?? 0n,
    comment,
    machine: machineOfComment(comment),
    exprs,
  };
}

// ------------------------------------------------------------ errors

/**
 * Name the kernel feature behind an nf_tables error where the errno alone
 * would mislead, else undefined.
 */
export function missingFeature(e: unknown, context: { exprs?: string[]; chainType?: string; family?: Family } = {}): string | undefined {
  if (!(e instanceof NetlinkError)) return undefined;
  const errno = e.errno;
  if (e.request === "NFNL_MSG_BATCH_BEGIN" && (errno === EOPNOTSUPP || errno === EINVAL)) return "the kernel has no nf_tables support (CONFIG_NF_TABLES)";
  if (e.request === "NFT_MSG_NEWTABLE" && errno === EOPNOTSUPP) return `the kernel has no nf_tables support for family ${context.family ?? "?"} (CONFIG_NF_TABLES_INET, CONFIG_NF_TABLES_IPV4/IPV6)`;
  if (e.request === "NFT_MSG_NEWCHAIN" && (errno === ENOENT || errno === EOPNOTSUPP) && context.chainType === "nat") {
    return `the kernel has no nftables NAT for family ${context.family ?? "?"} (CONFIG_NFT_NAT; inet NAT needs Linux 5.2)`;
  }
  if (e.request === "NFT_MSG_NEWRULE" && errno === ENOENT) {
    const config: Record<string, string> = { fib: "CONFIG_NFT_FIB_INET", nat: "CONFIG_NFT_NAT", masq: "CONFIG_NFT_MASQ", ct: "CONFIG_NFT_CT" };
    const needed = [...new Set(context.exprs ?? [])].filter((x) => config[x]).map((x) => `${x}: ${config[x]}`);
    return `the kernel lacks an nftables expression this rule uses${needed.length ? ` (${needed.join(", ")})` : ""}`;
  }
  return undefined;
}

/** nftables cannot do what spawnctl needs on this kernel (no nfnetlink, nf_tables, NAT or masquerading). */
export class NftUnavailable extends SpawnctlError {}

// ------------------------------------------------------------------- Nft

export class Nft {
  /** the layout ensureTable found or made through this socket */
  private known?: Layout;

  private constructor(private readonly sock: NetlinkSocket) {}

  /** nfnetlink in the given network namespace, or the caller's. */
  static open(netns?: NetnsRef): Nft {
    try {
      return new Nft(NetlinkSocket.open(NETLINK_NETFILTER, { netns, typeName: nftMsgName }));
    } catch (e) {
      if ((e as SpawnctlError).errno === EPROTONOSUPPORT) {
        throw new NftUnavailable("opening nfnetlink: the kernel has no nfnetlink support (CONFIG_NETFILTER_NETLINK), so spawnctl cannot set up NAT", { errno: EPROTONOSUPPORT, syscall: "socket", cause: e });
      }
      throw wrap("opening nfnetlink", e);
    }
  }

  close(): void {
    this.sock.close();
  }

  /** The families that have a "spawnctl" table. */
  tables(): Family[] {
    let msgs: Message[];
    try {
      msgs = this.sock.dump({ type: nftType(NFT_MSG.GETTABLE), header: nfgenmsg(0) });
    } catch (e) {
      // nfnetlink answers EINVAL to requests for a subsystem it does not have
      if ((e as SpawnctlError).errno === EINVAL || (e as SpawnctlError).errno === EOPNOTSUPP) {
        throw new SpawnctlError("listing nftables tables: the kernel has no nf_tables support (CONFIG_NF_TABLES)", { errno: (e as SpawnctlError).errno, cause: e });
      }
      throw wrap("listing nftables tables", e);
    }
    return msgs
      .filter((m) => Attrs.parse(m.payload.subarray(4)).str(NFTA_TABLE_NAME) === TABLE)
      .map((m) => familyName(m.payload[0]))
      .filter((f): f is Family => f !== undefined);
  }

  /** The layout of the existing table, if there is one. */
  layout(): Layout | undefined {
    const t = this.tables();
    if (t.includes("inet")) return "inet";
    return t.includes("ip") || t.includes("ip6") ? "split" : undefined;
  }

  /**
   * Create spawnctl's table with its chains unless it exists, and return its
   * layout. Prefers inet; falls back to ip + ip6 when the kernel has no inet
   * NAT. `layout` forces one for a new table (tests use it to cover both);
   * an existing table is kept as it is.
   */
  ensureTable(opts: { layout?: Layout } = {}): Layout {
    this.known = this.makeTable(opts);
    return this.known;
  }

  private makeTable(opts: { layout?: Layout }): Layout {
    const existing = this.layout();
    if (existing) return existing;
    const candidates: Layout[] = opts.layout ? [opts.layout] : ["inet", "split"];
    let lastError: unknown;
    for (const layout of candidates) {
      const parts = tableBatch(layout);
      try {
        this.sock.requestAll(batch(parts.map((p) => p.msg)));
        return layout;
      } catch (e) {
        const err = e as NetlinkError;
        // another spawnctl created it between our listing and our batch
        if (err.errno === EEXIST && err.request === "NFT_MSG_NEWTABLE") return this.layout() ?? layout;
        const failed = parts[(err.index ?? 1) - 1]; // index 0 is the batch's BEGIN
        const hint = missingFeature(e, { family: failed?.family, chainType: failed?.chainType });
        if (hint && failed?.chainType === "nat" && layout === "inet" && !opts.layout) {
          lastError = e; // no inet NAT (Linux < 5.2): one table per family
          continue;
        }
        throw hint ? new NftUnavailable(`creating nftables table ${TABLE}: ${hint}`, { errno: err.errno, cause: e }) : wrap(`creating nftables table ${TABLE}`, e);
      }
    }
    // (only a missing NAT puts an error here)
    const w = wrap(`creating nftables table ${TABLE}`, lastError);
    throw new NftUnavailable(w.message, { errno: w.errno, cause: lastError });
  }

  /** Remove spawnctl's tables with every chain and rule in them. */
  deleteTable(): void {
    this.known = undefined;
    const families = this.tables();
    if (!families.length) return;
    try {
      this.sock.requestAll(batch(families.map((f) => ({ type: nftType(NFT_MSG.DELTABLE), header: nfgenmsg(NFPROTO[f]), attrs: [nla.str(NFTA_TABLE_NAME, TABLE)] }))));
    } catch (e) {
      throw wrap(`removing nftables table ${TABLE}`, e);
    }
  }

  /** Masquerade a machine's prefix (ensureTable first). */
  addMasquerade(spec: MasqueradeSpec): void {
    this.addRules(`masquerading ${spec.source} for machine ${spec.machine}`, masqueradeRules(spec, this.requireLayout()));
  }

  /** Publish a machine's port (ensureTable first). */
  addPortForward(spec: PortForwardSpec): void {
    const what = `forwarding ${spec.protocol} port ${spec.hostPort} to ${spec.address}:${spec.port} for machine ${spec.machine}`;
    this.addRules(what, portForwardRules(spec, this.requireLayout()));
  }

  /** Add rules in one batch: all of them or none. */
  addRules(what: string, rules: RuleSpec[]): void {
    try {
      this.sock.requestAll(batch(rules.map(newRuleMessage)));
    } catch (e) {
      const rule = rules[((e as NetlinkError).index ?? 1) - 1];
      const hint = missingFeature(e, { exprs: rule?.exprs.map((x) => x.name), family: rule?.family });
      throw hint ? new NftUnavailable(`${what}: ${hint}`, { errno: (e as NetlinkError).errno, cause: e }) : wrap(what, e);
    }
  }

  /** Every rule in spawnctl's tables, with handle and comment. */
  rules(): NftRule[] {
    try {
      // the kernel filters a rule dump by NFTA_RULE_TABLE; family 0 is all families
      const msgs = this.sock.dump({ type: nftType(NFT_MSG.GETRULE), header: nfgenmsg(0), attrs: [nla.str(NFTA_RULE_TABLE, TABLE)] });
      return msgs.map(decodeRule).filter((r) => r.table === TABLE);
    } catch (e) {
      if ((e as SpawnctlError).errno === ENOENT) return []; // no table yet
      throw wrap("listing spawnctl's nftables rules", e);
    }
  }

  /** Remove rules by handle, in one batch. */
  deleteRules(rules: NftRule[]): void {
    if (!rules.length) return;
    const msgs = rules.map((r) => ({
      type: nftType(NFT_MSG.DELRULE),
      header: nfgenmsg(NFPROTO[r.family]),
      attrs: [nla.str(NFTA_RULE_TABLE, r.table), nla.str(NFTA_RULE_CHAIN, r.chain), nla.be64(NFTA_RULE_HANDLE, r.handle)],
    }));
    try {
      this.sock.requestAll(batch(msgs));
    } catch (e) {
      throw wrap(`removing ${rules.length} nftables rule${rules.length === 1 ? "" : "s"}`, e);
    }
  }

  /** Remove every rule tagged with this machine; returns how many there were. */
  deleteMachineRules(machine: string): number {
    const mine = this.rules().filter((r) => r.machine === machine);
    this.deleteRules(mine);
    return mine.length;
  }

  private requireLayout(): Layout {
    // what ensureTable just found or made on this socket
    if (this.known) return this.known;
    const l = this.layout();
    if (!l) throw new SpawnctlError(`nftables table ${TABLE} does not exist (ensureTable creates it)`);
    return l;
  }
}
