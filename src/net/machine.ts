// A container's network, without iproute2, nft, udev or networkd:
//   planNetwork()  decides names and MACs and records them      (plan.ts)
//   applyLinks()   creates the links once the container's netns exists (the
//                  veth peer directly inside it): what the payload must find
//                                                                (plan.ts)
//   allocateAddresses() reserves addresses from a private pool, avoiding
//                  what the host already routes and other machines hold
//   configureHost() gives the host's end its address, and sets up masquerade
//                  and port forwards in spawnctl's own nftables table
//   teardownNetwork() undoes it all; it also runs for a machine whose
//                  supervisor died, from the recorded plan
// DHCP answers come from the machine's supervisor (see shim/nsh.c), told what
// to hand out by dhcpSpec().
import { config, parsePool } from "../settings/config.ts";
import { lazySchema, parseState } from "../util/state.ts";
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import { Rtnl } from "./rtnl.ts";
import { Nft, NftUnavailable, machineOfComment } from "./nft.ts";
import type { PortForward } from "../settings/parse.ts";
import { siphash24 } from "./siphash.ts";
import { ifIndex } from "./sys.ts";
import { NET_DIR, type NetPlan, readPlan, withLock, writePlan } from "./plan.ts";

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

const allocationSchema = lazySchema((z) => z.object({ machine: z.string(), network: z.string(), prefix: z.number(), zone: z.optional(z.string()) }));

/** The recorded address allocations; a file that is none is reported and skipped (its range is then free again). */
function allocations(): Allocation[] {
  let files: string[];
  try {
    files = readdirSync(NET_DIR).filter((f) => f.endsWith(".json") && f.startsWith("alloc-"));
  } catch {
    return [];
  }
  const out: Allocation[] = [];
  for (const f of files) {
    try {
      out.push(parseState(allocationSchema(), readFileSync(`${NET_DIR}/${f}`, "utf8"), `${NET_DIR}/${f}`));
    } catch (e) {
      warn(`Ignoring ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
}

function hash(s: string): number {
  const h = siphash24(Buffer.from(s), new Uint8Array(16).fill(0x5c));
  return (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
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


/**
 * Reserve the machine's addresses: a /28 of 10.0.0.0/8 for a plain veth, an
 * address in its zone's /24 (of 172.16.0.0/12) in a zone, both away from
 * what the host routes and what other machines hold; and the DNS servers to
 * hand out. Recorded in the plan.
 */
export function allocateAddresses(plan: NetPlan): void {
  const v = plan.veth;
  if (!v || v.bridge) return;
  const m = plan.machine;
  plan.dns = upstreamDns();
  withLock(() => {
    const zone = v.zone?.name;
    // what the host routes, and every other machine's subnet and zone
    const taken: Array<[number, number]> = [
      ...hostPrefixes(),
      ...allocations().filter((a) => a.machine !== m && a.prefix < 32 && a.zone !== zone).map((a): [number, number] => [ipToInt(a.network), a.prefix]),
    ];
    if (v.zone) {
      // the zone's /24 is shared by its members
      const existing = allocations().find((a) => a.zone === zone && a.prefix === 24 && a.machine === "");
      const net = existing ? ipToInt(existing.network) : pickSubnet("172.16.0.0", 12, 24, `zone:${zone}`, taken);
      if (!existing) writeAlloc({ machine: "", network: intToIp(net), prefix: 24, zone }, `zone-${zone}`);
      const used = new Set(allocations().filter((a) => a.zone === zone && a.machine && a.machine !== m).map((a) => ipToInt(a.network)));
      let host = (net + 2 + (hash(m) % 250)) >>> 0;
      for (let i = 0; used.has(host) && i < 253; i++) host = (net + 2 + ((host - net - 2 + 1) % 252)) >>> 0;
      if (used.has(host)) throw new SpawnctlError(`Zone ${zone} has no free address left.`);
      writeAlloc({ machine: m, network: intToIp(host), prefix: 32, zone }, `${m}`);
      v.zone.subnet = { host: intToIp(net + 1), container: intToIp(host), prefix: 24, network: intToIp(net) };
    } else {
      // [network] veth-pool of spawnctl.toml, else 10.0.0.0/8 (checked when the file was read)
      const pool = parsePool(config().network["veth-pool"] ?? "10.0.0.0/8")!;
      const net = pickSubnet(pool.base, pool.prefix, 28, m, taken);
      writeAlloc({ machine: m, network: intToIp(net), prefix: 28 }, m);
      v.subnet = { host: intToIp(net + 1), container: intToIp(net + 2), prefix: 28, network: intToIp(net) };
    }
    writePlan(plan);
  });
}

function writeAlloc(a: Allocation, key: string): void {
  const p = `${NET_DIR}/alloc-${key}.json`;
  writeFileSync(`${p}.tmp`, JSON.stringify(a));
  renameSync(`${p}.tmp`, p);
}



/** The supervisor's --dhcp argument: IFACE,MAC,ADDR/PREFIX,ROUTER[,DNS...] */
/** What the DHCP responder hands out, in seconds: the lease, and when to renew and rebind it (RFC 2131's 1/2 and 7/8). */
export const DHCP_LEASE = { lease: 3600, renew: 1800, rebind: 3150 } as const;

/** The responder's configuration (the supervisor's --dhcp): IFACE,MAC,ADDR/PREFIX,ROUTER,LEASE,RENEW,REBIND[,DNS...] */
export function dhcpSpec(plan: NetPlan): string | undefined {
  const v = plan.veth;
  if (!v) return undefined;
  const sub = v.zone?.subnet ?? v.subnet;
  if (!sub) return undefined;
  const iface = v.zone ? v.zone.bridge : v.host;
  return [iface, v.containerMac, `${sub.container}/${sub.prefix}`, sub.host, DHCP_LEASE.lease, DHCP_LEASE.renew, DHCP_LEASE.rebind, ...plan.dns].join(",");
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (e) {
    warn(`setting ${path}: ${(e as Error).message}`);
  }
}


/** End a userspace forwarder (net/forward.ts) that startForwarder started, if that pid still is one. */
function stopForwarder(pid: number): void {
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("__forward")) return;
    process.kill(pid, "SIGTERM");
  } catch {
    /* gone */
  }
}

/** SPAWNCTL_NFTABLES=off: no nftables (masquerading off, port forwards in userspace), as on a kernel without nf_tables. */
function nftablesOff(): boolean {
  return process.env.SPAWNCTL_NFTABLES === "off";
}

/**
 * The host's side, once applyLinks() and allocateAddresses() are done: the
 * address of the machine's veth end (or of its zone's bridge), masquerade
 * and port forwards in spawnctl's nftables table, and forwarding. Nothing
 * here is needed before the payload runs (networkd does the same for
 * nspawn while the container boots), so `run` does it after the go-ahead.
 *
 * Where the kernel has no nf_tables (or SPAWNCTL_NFTABLES=off) it warns and
 * returns the ports the caller must forward in userspace (startForwarder),
 * and the container is not masqueraded.
 */
export function configureHost(plan: NetPlan): { userspacePorts: PortForward[]; address?: string } {
  const none = { userspacePorts: [] };
  const v = plan.veth;
  const sub = v?.zone?.subnet ?? v?.subnet;
  if (!v || !sub) return none;
  const rt = Rtnl.open();
  try {
    // the host end's ifindex, looked up once for the address and the forwarding setting
    let hostLink: number | string;
    if (v.zone) {
      hostLink = v.zone.bridge;
      try {
        rt.addAddress(hostLink, `${sub.host}/${sub.prefix}`);
      } catch (e) {
        // the zone's first member gave it already
        if ((e as SpawnctlError).errno !== 17 /* EEXIST */) throw e;
      }
    } else {
      // we are in the host's namespace, where the link was just made
      hostLink = ifIndex(v.host) || rt.index(v.host);
      rt.addAddress(hostLink, `${sub.host}/${sub.prefix}`);
    }
    if (!plan.masquerade) return none;
    let unavailable = nftablesOff() ? "SPAWNCTL_NFTABLES=off" : undefined;
    if (!unavailable) {
      try {
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
      } catch (e) {
        if (!(e instanceof NftUnavailable)) throw e;
        unavailable = e.message;
        // whatever of it was made
        try {
          const nft = Nft.open();
          try {
            nft.deleteMachineRules(plan.machine);
          } finally {
            nft.close();
          }
        } catch {
          /* nothing was made */
        }
      }
    }
    if (unavailable) {
      warn(`machine ${plan.machine}: no nftables (${unavailable}): the container is not masqueraded${plan.ports.length ? ", its ports are forwarded in userspace" : ""}.`);
      return { userspacePorts: plan.ports, address: sub.container };
    }
    // as networkd's IPForward= for IPMasquerade=: forwarding on the machine's
    // link and (for the replies) globally; route_localnet for localhost forwards
    rt.setIPv4Conf(hostLink, { forwarding: true, ...(plan.ports.length ? { routeLocalnet: true } : {}) });
    writeSysctl("/proc/sys/net/ipv4/ip_forward", "1");
    return none;
  } finally {
    rt.close();
  }
}

/**
 * Undo applyLinks and configureHost (whatever of them happened) and release the addresses.
 * With `netnsFd` (the container's netns, kept open by its supervisor) the
 * moved interfaces are handed back before the namespace goes: when a netns
 * dies the kernel sends physical devices to the initial namespace, not to
 * the one they came from, and deletes virtual ones.
 */
export function teardownNetwork(machine: string, netnsFd?: number): void {
  const plan = readPlan(machine);
  if (!plan) return;
  if (plan.forwarder) stopForwarder(plan.forwarder);
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
