// A container's network, without iproute2, nft, udev or networkd:
//   planNetwork()  decides names, MACs and addresses (from a private pool,
//                  avoiding what the host already routes) and records them
//   applyNetwork() creates the links once the container's netns exists
//                  (the veth peer directly inside it), addresses, masquerade
//                  and port forwards in spawnctl's own nftables table
//   teardownNetwork() undoes it all; it also runs for a machine whose
//                  supervisor died, from the recorded plan
// DHCP answers come from the machine's supervisor (see shim/nsh.c), told what
// to hand out by dhcpSpec().
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { LOCK_EX, LOCK_UN, flock } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import type { Settings } from "../settings/types.ts";
import type { PortForward } from "../settings/parse.ts";
import { Rtnl, interfaceNameForMachine, macForMachine } from "./rtnl.ts";
import { Nft, machineOfComment } from "./nft.ts";
import { siphash24 } from "./siphash.ts";
import { ifIndex } from "./sys.ts";

export const NET_DIR = "/run/spawnctl/net";

export interface NetPlan {
  machine: string;
  /** a veth pair ve-NAME/host0 (or vb-NAME enslaved to a bridge, or in a zone) */
  veth?: {
    host: string;
    altname?: string;
    hostMac: string;
    containerMac: string;
    /** plain veth: host side address and prefix; the container gets the next address */
    subnet?: { host: string; container: string; prefix: number; network: string };
    bridge?: string;
    zone?: { name: string; bridge: string; altname?: string; subnet: { host: string; container: string; prefix: number; network: string } };
  };
  extra: Array<{ host: string; container: string }>;
  macvlan: Array<{ parent: string; name: string; mac: string }>;
  ipvlan: Array<{ parent: string; name: string }>;
  interfaces: Array<{ host: string; container: string; index?: number }>;
  ports: PortForward[];
  dns: string[];
  masquerade: boolean;
}

function withLock<T>(fn: () => T): T {
  mkdirSync(NET_DIR, { recursive: true, mode: 0o755 });
  const fd = openSync(`${NET_DIR}/.lock`, "a", 0o600);
  flock(fd, LOCK_EX);
  try {
    return fn();
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

function ipToInt(s: string): number {
  return s.split(".").reduce((n, p) => n * 256 + Number(p), 0) >>> 0;
}
function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

// hostPrefixes' last answer: `start` of many machines asks once per machine,
// and the dump grows with every machine's link; what spawnctl itself adds is
// in the allocations anyway
let prefixCache: { at: number; prefixes: Array<[number, number]> } | undefined;
const PREFIX_CACHE_MS = 1000;

/** IPv4 prefixes the host already has (addresses and routes), which a container subnet must not overlap. */
function hostPrefixes(): Array<[number, number]> {
  if (prefixCache && performance.now() - prefixCache.at < PREFIX_CACHE_MS) return prefixCache.prefixes;
  const out: Array<[number, number]> = [];
  const rt = Rtnl.open();
  try {
    for (const a of rt.addresses({ family: 4 })) out.push([ipToInt(a.address), a.prefixLen]);
    for (const r of rt.routes({ family: 4 })) {
      if (r.dst === "default") continue;
      const [ip, len] = r.dst.split("/");
      out.push([ipToInt(ip!), Number(len ?? 32)]);
    }
  } finally {
    rt.close();
  }
  prefixCache = { at: performance.now(), prefixes: out };
  return out;
}

function overlaps(a: number, alen: number, b: number, blen: number): boolean {
  const len = Math.min(alen, blen);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

interface Allocation { machine: string; network: string; prefix: number; zone?: string }

function allocations(): Allocation[] {
  try {
    return readdirSync(NET_DIR).filter((f) => f.endsWith(".json") && f.startsWith("alloc-")).map((f) => JSON.parse(readFileSync(`${NET_DIR}/${f}`, "utf8")) as Allocation);
  } catch {
    return [];
  }
}

function hash(s: string): number {
  const h = siphash24(Buffer.from(s), new Uint8Array(16).fill(0x5c));
  return Number(h & 0xffffffffn);
}

/**
 * A free subnet of `prefix` bits inside `pool`, chosen by hashing `key` so a
 * machine tends to get the same one, moving on past anything the host routes
 * or another machine holds.
 */
function pickSubnet(pool: string, poolPrefix: number, prefix: number, key: string, taken: Array<[number, number]>): number {
  const base = ipToInt(pool);
  const count = 2 ** (prefix - poolPrefix);
  const start = hash(key) % count;
  for (let i = 0; i < count; i++) {
    const net = (base + ((start + i) % count) * 2 ** (32 - prefix)) >>> 0;
    if (!taken.some(([a, l]) => overlaps(net, prefix, a, l))) return net;
  }
  throw new SpawnctlError(`No free /${prefix} left in ${pool}/${poolPrefix} for ${key}.`);
}

function upstreamDns(): string[] {
  try {
    return [...readFileSync("/etc/resolv.conf", "utf8").matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)/gm)].map((m) => m[1]!).filter((a) => !a.startsWith("127.")).slice(0, 3);
  } catch {
    return [];
  }
}

/** Decide names, MACs and addresses, and reserve the addresses. */
export function planNetwork(s: Settings): NetPlan {
  const m = s.machine;
  const plan: NetPlan = { machine: m, extra: [], macvlan: [], ipvlan: [], interfaces: [], ports: s.ports, dns: upstreamDns(), masquerade: false };
  if (s.networkVeth) {
    const prefix = s.networkBridge ? "vb-" : "ve-";
    const n = interfaceNameForMachine(prefix, m);
    plan.veth = { host: n.name, altname: n.altname, hostMac: macForMachine(m, "host"), containerMac: macForMachine(m, "container") };
    if (s.networkBridge) plan.veth.bridge = s.networkBridge;
  }
  s.networkVethExtra.forEach((spec, i) => {
    const [host, cont] = spec.split(":");
    plan.extra.push({ host: host!, container: cont ?? host! });
    void i;
  });
  s.networkMacvlan.forEach((spec, i) => {
    const [parent, name] = spec.split(":");
    plan.macvlan.push({ parent: parent!, name: name ?? interfaceNameForMachine("mv-", parent!).name, mac: macForMachine(m, "macvlan", { index: i }) });
  });
  for (const spec of s.networkIpvlan) {
    const [parent, name] = spec.split(":");
    plan.ipvlan.push({ parent: parent!, name: name ?? interfaceNameForMachine("iv-", parent!).name });
  }
  for (const spec of s.networkInterface) {
    const [host, cont] = spec.split(":");
    plan.interfaces.push({ host: host!, container: cont ?? host! });
  }
  if (plan.veth && !plan.veth.bridge) {
    withLock(() => {
      // what the host routes, and every other machine's subnet and zone
      const taken: Array<[number, number]> = [
        ...hostPrefixes(),
        ...allocations().filter((a) => a.machine !== m && a.prefix < 32 && a.zone !== s.networkZone).map((a): [number, number] => [ipToInt(a.network), a.prefix]),
      ];
      if (s.networkZone) {
        const zb = interfaceNameForMachine("vz-", s.networkZone);
        // the zone's /24 comes from 172.16.0.0/12 and is shared by its members
        const existing = allocations().find((a) => a.zone === s.networkZone && a.prefix === 24 && a.machine === "");
        const net = existing ? ipToInt(existing.network) : pickSubnet("172.16.0.0", 12, 24, `zone:${s.networkZone}`, taken);
        if (!existing) writeAlloc({ machine: "", network: intToIp(net), prefix: 24, zone: s.networkZone }, `zone-${s.networkZone}`);
        const used = new Set(allocations().filter((a) => a.zone === s.networkZone && a.machine && a.machine !== m).map((a) => ipToInt(a.network)));
        let host = (net + 2 + (hash(m) % 250)) >>> 0;
        for (let i = 0; used.has(host) && i < 253; i++) host = (net + 2 + ((host - net - 2 + 1) % 252)) >>> 0;
        if (used.has(host)) throw new SpawnctlError(`Zone ${s.networkZone} has no free address left.`);
        writeAlloc({ machine: m, network: intToIp(host), prefix: 32, zone: s.networkZone }, `${m}`);
        plan.veth!.zone = { name: s.networkZone, bridge: zb.name, altname: zb.altname, subnet: { host: intToIp(net + 1), container: intToIp(host), prefix: 24, network: intToIp(net) } };
      } else {
        const net = pickSubnet("10.0.0.0", 8, 28, m, taken);
        writeAlloc({ machine: m, network: intToIp(net), prefix: 28 }, m);
        plan.veth!.subnet = { host: intToIp(net + 1), container: intToIp(net + 2), prefix: 28, network: intToIp(net) };
      }
    });
    plan.masquerade = true;
  }
  if (plan.ports.length && !(plan.veth?.subnet || plan.veth?.zone)) {
    throw new SpawnctlError("--port= needs an address for the container: use --network-veth or --network-zone= (not only --network-bridge=).");
  }
  writePlan(plan);
  return plan;
}

function writeAlloc(a: Allocation, key: string): void {
  const p = `${NET_DIR}/alloc-${key}.json`;
  writeFileSync(`${p}.tmp`, JSON.stringify(a));
  renameSync(`${p}.tmp`, p);
}

function writePlan(plan: NetPlan): void {
  mkdirSync(NET_DIR, { recursive: true });
  const p = `${NET_DIR}/${plan.machine}.json`;
  writeFileSync(`${p}.tmp`, JSON.stringify(plan));
  renameSync(`${p}.tmp`, p);
}

export function readPlan(machine: string): NetPlan | undefined {
  try {
    return JSON.parse(readFileSync(`${NET_DIR}/${machine}.json`, "utf8")) as NetPlan;
  } catch {
    return undefined;
  }
}

/** The supervisor's --dhcp argument: IFACE,MAC,ADDR/PREFIX,ROUTER[,DNS...] */
export function dhcpSpec(plan: NetPlan): string | undefined {
  const v = plan.veth;
  if (!v) return undefined;
  const sub = v.zone?.subnet ?? v.subnet;
  if (!sub) return undefined;
  const iface = v.zone ? v.zone.bridge : v.host;
  return [iface, v.containerMac, `${sub.container}/${sub.prefix}`, sub.host, ...plan.dns].join(",");
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (e) {
    warn(`setting ${path}: ${(e as Error).message}`);
  }
}

function ensureZoneBridge(rt: Rtnl, z: NonNullable<NonNullable<NetPlan["veth"]>["zone"]>): void {
  if (rt.link(z.bridge)) return;
  try {
    rt.createBridge(z.bridge);
  } catch (e) {
    // another container of the zone made it at the same moment
    if (!rt.link(z.bridge)) throw e;
    return;
  }
  if (z.altname) {
    try {
      rt.addAltname(z.bridge, z.altname);
    } catch {
      /* cosmetic */
    }
  }
  rt.addAddress(z.bridge, `${z.subnet.host}/${z.subnet.prefix}`);
  rt.setUp(z.bridge);
}

/** Create everything in the plan for the container whose init is `pid`. */
export function applyNetwork(plan: NetPlan, pid: number): void {
  const ns = { pid };
  // the child brings its loopback and its end of the veth up itself
  const rt = Rtnl.open();
  try {
    const v = plan.veth;
    // the host end's ifindex, looked up once for the address and the forwarding setting
    let hostIndex: number | undefined;
    if (v) {
      rt.createVeth({ name: v.host, mac: v.hostMac, altname: v.altname, up: true, peer: { name: "host0", mac: v.containerMac, netns: ns } });
      if (v.bridge) {
        if (!rt.link(v.bridge)) throw new SpawnctlError(`Bridge ${v.bridge} does not exist.`);
        rt.setMaster(v.host, v.bridge);
      } else if (v.zone) {
        withLock(() => ensureZoneBridge(rt, v.zone!));
        rt.setMaster(v.host, v.zone.bridge);
      } else if (v.subnet) {
        // we are in the host's namespace, where the link was just made
        hostIndex = ifIndex(v.host) || rt.index(v.host);
        rt.addAddress(hostIndex, `${v.subnet.host}/${v.subnet.prefix}`);
      }
    }
    for (const e of plan.extra) {
      rt.createVeth({ name: e.host, peer: { name: e.container, netns: ns } });
      rt.setUp(e.host);
    }
    for (const mv of plan.macvlan) rt.createMacvlan({ parent: mv.parent, name: mv.name, mac: mv.mac, netns: ns });
    for (const iv of plan.ipvlan) rt.createIpvlan({ parent: iv.parent, name: iv.name, netns: ns });
    for (const i of plan.interfaces) {
      const link = rt.link(i.host);
      if (!link) throw new SpawnctlError(`Network interface ${i.host} does not exist.`);
      i.index = link.index;
      // recorded before the move: a crash from here on still gets it back
      writePlan(plan);
      rt.moveLink(i.host, ns, i.container !== i.host ? i.container : undefined);
    }
    const sub = v?.zone?.subnet ?? v?.subnet;
    const hostLink = v?.zone ? v.zone.bridge : hostIndex ?? v?.host;
    if (plan.masquerade && sub && hostLink) {
      const nft = Nft.open();
      try {
        nft.ensureTable();
        nft.addMasquerade({ machine: plan.machine, source: `${sub.network}/${sub.prefix}` });
        for (const p of plan.ports) {
          nft.addPortForward({ machine: plan.machine, protocol: p.protocol, hostPort: p.hostPort, address: sub.container, port: p.containerPort, localhost: true });
        }
      } finally {
        nft.close();
      }
      // as networkd's IPForward= for IPMasquerade=: forwarding on the machine's
      // link and (for the replies) globally; route_localnet for localhost forwards
      rt.setIPv4Conf(hostLink, { forwarding: true, ...(plan.ports.length ? { routeLocalnet: true } : {}) });
      writeSysctl("/proc/sys/net/ipv4/ip_forward", "1");
    }
  } finally {
    rt.close();
  }
}

/**
 * Undo applyNetwork (whatever of it happened) and release the addresses.
 * With `netnsFd` (the container's netns, kept open by its supervisor) the
 * moved interfaces are handed back before the namespace goes: when a netns
 * dies the kernel sends physical devices to the initial namespace, not to
 * the one they came from, and deletes virtual ones.
 */
export function teardownNetwork(machine: string, netnsFd?: number): void {
  const plan = readPlan(machine);
  if (!plan) return;
  if (netnsFd !== undefined && netnsFd >= 0 && plan.interfaces.length) {
    try {
      const inside = Rtnl.open({ fd: netnsFd });
      try {
        for (const i of plan.interfaces) {
          if (!inside.link(i.container)) continue;
          try {
            inside.moveLink(i.container, { pid: process.pid }, i.container !== i.host ? i.host : undefined);
          } catch (e) {
            warn(`giving ${i.host} back to the host: ${(e as Error).message}`);
          }
        }
      } finally {
        inside.close();
      }
    } catch (e) {
      warn(`machine ${machine}: ${(e as Error).message}`);
    }
  }
  const rt = Rtnl.open();
  try {
    try {
      const nft = Nft.open();
      try {
        nft.deleteMachineRules(machine);
      } finally {
        nft.close();
      }
    } catch {
      /* no nftables, or no table: nothing of ours there */
    }
    const v = plan.veth;
    if (v) rt.deleteLink(v.host, { missingOk: true });
    for (const e of plan.extra) rt.deleteLink(e.host, { missingOk: true });
    // a moved interface comes back to the host when the container's netns
    // goes, under the name it had inside: give it its own name back
    for (const i of plan.interfaces) {
      if (i.index === undefined) continue;
      const l = rt.link(i.index);
      if (l && l.name !== i.host) {
        try {
          rt.rename(i.index, i.host);
        } catch (e) {
          warn(`giving ${l.name} its name ${i.host} back: ${(e as Error).message}`);
        }
      }
    }
    if (v?.zone) {
      withLock(() => {
        rmSync(`${NET_DIR}/alloc-${machine}.json`, { force: true });
        const members = allocations().filter((a) => a.zone === v.zone!.name && a.machine);
        if (members.length === 0) {
          const br = rt.link(v.zone!.bridge);
          const slaves = br ? rt.links().filter((l) => l.master === br.index) : [];
          if (br && slaves.length === 0) rt.deleteLink(v.zone!.bridge, { missingOk: true });
          rmSync(`${NET_DIR}/alloc-zone-${v.zone!.name}.json`, { force: true });
        }
      });
    }
  } finally {
    rt.close();
  }
  withLock(() => {
    rmSync(`${NET_DIR}/alloc-${machine}.json`, { force: true });
    rmSync(`${NET_DIR}/${machine}.json`, { force: true });
  });
}

/** Rules and plans of machines that are not running any more (a crash): remove them. */
export function reconcileNetwork(running: Set<string>): void {
  let plans: string[] = [];
  try {
    plans = readdirSync(NET_DIR).filter((f) => f.endsWith(".json") && !f.startsWith("alloc-")).map((f) => f.slice(0, -5));
  } catch {
    /* none */
  }
  for (const m of plans) if (!running.has(m)) teardownNetwork(m);
  try {
    const nft = Nft.open();
    try {
      const stale = nft.rules().filter((r) => {
        const m = machineOfComment(r.comment);
        return m !== undefined && !running.has(m);
      });
      if (stale.length) nft.deleteRules(stale);
    } finally {
      nft.close();
    }
  } catch {
    /* no nftables */
  }
}
