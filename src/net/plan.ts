// A machine's network plan, and the links its container must find when its
// payload starts: what `run -n` waits for, kept apart from the rest of the
// network code (src/net/machine.ts) so a start loads only this. The main
// veth is made by the shim (veth.ts); anything else here needs the netlink
// code, which is loaded only then.
import { lazySchema, parseState } from "../util/state.ts";
import { warn } from "../util/log.ts";
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { LOCK_EX, LOCK_UN, flock } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import type { Settings } from "../settings/types.ts";
import type { PortForward } from "../settings/parse.ts";
import { interfaceNameForMachine, macForMachine } from "./names.ts";
import { createVeth } from "./veth.ts";
import type { Rtnl } from "./rtnl.ts";

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
    zone?: { name: string; bridge: string; altname?: string; subnet?: { host: string; container: string; prefix: number; network: string } };
  };
  extra: Array<{ host: string; container: string }>;
  macvlan: Array<{ parent: string; name: string; mac: string }>;
  ipvlan: Array<{ parent: string; name: string }>;
  interfaces: Array<{ host: string; container: string; index?: number }>;
  ports: PortForward[];
  dns: string[];
  masquerade: boolean;
  /** the pid of the userspace port forwarder, where nftables cannot forward */
  forwarder?: number;
}

/** Run fn holding the lock on the address allocations and zone bridges. */
export function withLock<T>(fn: () => T): T {
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

/**
 * Decide names and MACs, and record the plan (so a crash from here on is
 * undone by the next start). Cheap: the addresses come later, from
 * allocateAddresses(), once the links exist.
 */
export function planNetwork(s: Settings): NetPlan {
  const m = s.machine;
  const plan: NetPlan = { machine: m, extra: [], macvlan: [], ipvlan: [], interfaces: [], ports: s.ports, dns: [], masquerade: false };
  if (s.networkVeth) {
    const prefix = s.networkBridge ? "vb-" : "ve-";
    const n = interfaceNameForMachine(prefix, m);
    plan.veth = { host: n.name, altname: n.altname, hostMac: macForMachine(m, "host"), containerMac: macForMachine(m, "container") };
    if (s.networkBridge) plan.veth.bridge = s.networkBridge;
    else if (s.networkZone) {
      const zb = interfaceNameForMachine("vz-", s.networkZone);
      plan.veth.zone = { name: s.networkZone, bridge: zb.name, altname: zb.altname };
    }
  }
  for (const spec of s.networkVethExtra) {
    const [host, cont] = spec.split(":");
    plan.extra.push({ host: host!, container: cont ?? host! });
  }
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
  plan.masquerade = !!plan.veth && !plan.veth.bridge;
  if (plan.ports.length && !plan.masquerade) {
    throw new SpawnctlError("--port= needs an address for the container: use --network-veth or --network-zone= (not only --network-bridge=).");
  }
  writePlan(plan);
  return plan;
}

export function writePlan(plan: NetPlan): void {
  mkdirSync(NET_DIR, { recursive: true });
  const p = `${NET_DIR}/${plan.machine}.json`;
  writeFileSync(`${p}.tmp`, JSON.stringify(plan));
  renameSync(`${p}.tmp`, p);
}

const planSchema = lazySchema((z) => {
  const subnet = z.object({ host: z.string(), container: z.string(), prefix: z.number(), network: z.string() });
  return z.object({
    machine: z.string(),
    veth: z.optional(z.object({
      host: z.string(),
      altname: z.optional(z.string()),
      hostMac: z.string(),
      containerMac: z.string(),
      subnet: z.optional(subnet),
      bridge: z.optional(z.string()),
      zone: z.optional(z.object({ name: z.string(), bridge: z.string(), altname: z.optional(z.string()), subnet: z.optional(subnet) })),
    })),
    extra: z.array(z.object({ host: z.string(), container: z.string() })),
    macvlan: z.array(z.object({ parent: z.string(), name: z.string(), mac: z.string() })),
    ipvlan: z.array(z.object({ parent: z.string(), name: z.string() })),
    interfaces: z.array(z.object({ host: z.string(), container: z.string(), index: z.optional(z.number()) })),
    ports: z.array(z.object({ protocol: z.enum(["tcp", "udp"]), hostPort: z.number(), containerPort: z.number() })),
    dns: z.array(z.string()),
    masquerade: z.boolean(),
    forwarder: z.optional(z.number()),
  });
});
type ParsedPlan = ReturnType<ReturnType<typeof planSchema>["parse"]>;
const _samePlan: [(p: ParsedPlan) => NetPlan, (m: NetPlan) => ParsedPlan] = [(p) => p, (m) => m];
void _samePlan;

/** The recorded plan of `machine`'s network, or undefined; one that is no valid plan is reported and treated as none. */
export function readPlan(machine: string): NetPlan | undefined {
  const path = `${NET_DIR}/${machine}.json`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    return parseState(planSchema(), text, path);
  } catch (e) {
    warn(`Ignoring ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/** The zone's bridge, made (and brought up) by the first member; its address comes with configureHost(). */
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
  rt.setUp(z.bridge);
}

/**
 * Create the plan's links for the container whose init is `pid`: what the
 * container must find when its payload starts (the veth peer is made
 * directly inside its netns; the child brings up its loopback and its end
 * of the veth itself).
 */
export function applyLinks(plan: NetPlan, pid: number): void {
  const ns = { pid };
  const v = plan.veth;
  if (v) createVeth({ name: v.host, mac: v.hostMac, up: true, peer: { name: "host0", mac: v.containerMac, netns: ns } });
  const more = v?.altname || v?.bridge || v?.zone || plan.extra.length || plan.macvlan.length || plan.ipvlan.length || plan.interfaces.length;
  if (!more) return;
  const { Rtnl } = require("./rtnl.ts") as typeof import("./rtnl.ts");
  const rt = Rtnl.open();
  try {
    if (v?.altname) {
      try {
        rt.addAltname(v.host, v.altname);
      } catch (e) {
        // (another machine's link has it)
        rt.deleteLink(v.host, { missingOk: true });
        throw e;
      }
    }
    if (v?.bridge) {
      if (!rt.link(v.bridge)) throw new SpawnctlError(`Bridge ${v.bridge} does not exist.`);
      rt.setMaster(v.host, v.bridge);
    } else if (v?.zone) {
      withLock(() => ensureZoneBridge(rt, v.zone!));
      rt.setMaster(v.host, v.zone.bridge);
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
  } finally {
    rt.close();
  }
}

/** The host link DHCP is answered on: the machine's own veth end, or its zone's bridge. */
export function dhcpInterface(plan: NetPlan): string | undefined {
  const v = plan.veth;
  if (!v || v.bridge) return undefined;
  return v.zone ? v.zone.bridge : v.host;
}
