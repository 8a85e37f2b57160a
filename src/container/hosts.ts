// Machine names that resolve on the host, as nss-mymachines makes them
// resolve on systemd hosts (`hosts: files mymachines ...`), for glibc and musl
// alike with nothing installed: a block of /etc/hosts that spawnctl keeps,
// one line per running machine with an address of its own. Opt-in, as
// mymachines is: `hosts = true` in the [network] table of spawnctl.toml.
//
// The block is made anew from what runs (the registry's machines and their
// network plans) after every start and stop and by the stale collector, so a
// killed spawnctl leaves nothing the next command does not repair. The
// admin's own lines are never touched; the file is replaced atomically,
// keeping its mode and owner.
import { chownSync, closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync, constants } from "node:fs";
import { config } from "../settings/config.ts";
import { readPlan, type NetPlan } from "../net/plan.ts";
import { namespaceAddresses } from "../net/addresses.ts";
import { MACHINES_DIR, leaderAlive, machineLocked, readState, type MachineState } from "./registry.ts";
import { flock, LOCK_EX, LOCK_UN } from "../sys/ffi.ts";
import { warn } from "../util/log.ts";

export const HOSTS_BEGIN = "# BEGIN spawnctl machines: kept by spawnctl (hosts = true in /etc/spawnctl/spawnctl.toml); edits here are replaced";
export const HOSTS_END = "# END spawnctl machines";

/** The file: /etc/hosts, or SPAWNCTL_HOSTS_FILE (for the tests). */
export function hostsFile(): string {
  return process.env.SPAWNCTL_HOSTS_FILE || "/etc/hosts";
}

/** `text` with spawnctl's block replaced by one for `entries` (none: no block), every other line kept as it is. */
export function withMachineBlock(text: string, entries: Array<[name: string, address: string]>): string {
  const lines = text.split("\n");
  const trailing = lines.length > 0 && lines[lines.length - 1] === "";
  if (trailing) lines.pop();
  const out: string[] = [];
  let inBlock = false;
  for (const l of lines) {
    if (l === HOSTS_BEGIN) inBlock = true;
    else if (inBlock && l === HOSTS_END) inBlock = false;
    else if (!inBlock) out.push(l);
  }
  if (entries.length) out.push(HOSTS_BEGIN, ...entries.map(([n, a]) => `${a}\t${n}`), HOSTS_END);
  return out.length ? `${out.join("\n")}\n` : "";
}

/** The running machines with an address of their own (a plain veth's or a zone's), by name. */
export function machineAddressEntries(): Array<[string, string]> {
  let files: string[];
  try {
    files = readdirSync(MACHINES_DIR).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  const out: Array<[string, string]> = [];
  for (const f of files.sort()) {
    const name = f.slice(0, -5);
    const st = readState(name);
    if (!st || !leaderAlive(st)) continue;
    const plan = readPlan(name);
    const v = plan?.veth;
    const addr = v?.subnet?.container ?? v?.zone?.subnet?.container;
    if (addr) out.push([name, addr]);
  }
  return out;
}

/** Make the block say what runs now (nothing without hosts = true, but a block left from before goes); the machines' own files too. */
export function syncHosts(): void {
  syncPeers();
  syncHostFile();
}

function syncHostFile(): void {
  const path = hostsFile();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return;
  }
  const enabled = config().network.hosts === true;
  if (!enabled && !text.includes(HOSTS_BEGIN)) return;
  const next = withMachineBlock(text, enabled ? machineAddressEntries() : []);
  if (next === text) return;
  try {
    const st = statSync(path);
    const tmp = `${path}.spawnctl-${process.pid}.tmp`;
    writeFileSync(tmp, next, { mode: st.mode & 0o7777 });
    chownSync(tmp, st.uid, st.gid);
    renameSync(tmp, path);
  } catch (e) {
    warn(`Updating ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

// Between machines: with hosts = true, a machine on a zone or a bridge sees
// the others on the same one by name. Its /etc/hosts is bound from
// PEERS_DIR/NAME, a copy of the tree's own made at its start, whose block
// lists its peers; the copy is rewritten in place (the bind holds the
// inode) after every start and stop. The tree's file is never changed; the
// machine sees the copy read-only.

export const PEERS_DIR = "/run/spawnctl/hosts";

export function peersFile(machine: string): string {
  return `${PEERS_DIR}/${machine}`;
}

/** Whether a machine with these settings gets its peers' names (hosts = true, on a zone or a bridge). */
export function wantsPeers(s: { networkZone: string; networkBridge: string; privateNetwork: boolean }): boolean {
  return s.privateNetwork && !!(s.networkZone || s.networkBridge) && config().network.hosts === true;
}

/** The machine's copy of its tree's /etc/hosts (bound read-only: the guest cannot grow a file on the host's /run). */
export function makePeersFile(machine: string, treeHosts: string): string {
  mkdirSync(PEERS_DIR, { recursive: true, mode: 0o755 });
  const path = peersFile(machine);
  writeFileSync(path, withMachineBlock(treeHosts, []), { mode: 0o644 });
  return path;
}

/** The layer-2 segment a machine's veth is on: its zone's bridge or the bridge it was given, in its host side's network namespace. */
function segment(plan: NetPlan | undefined, st: MachineState): string | undefined {
  const bridge = plan?.veth?.zone?.bridge ?? plan?.veth?.bridge;
  if (!bridge) return undefined;
  let ns = "";
  try {
    ns = String(statSync(`/proc/${st.supervisor ?? st.leader}/ns/net`).ino);
  } catch {
    return undefined;
  }
  return `${ns}:${bridge}`;
}

function peerAddress(plan: NetPlan, st: MachineState, addresses: (st: MachineState) => string[]): string | undefined {
  return plan.veth?.zone?.subnet?.container ?? addresses(st).find((a) => !a.includes(":")) ?? addresses(st)[0];
}

/**
 * Rewrite every running machine's peers file for what runs now, and remove
 * the files of machines that are gone. `addresses` reads a machine's
 * addresses from its namespace (for a bridge, where the guest configures its
 * own).
 */
export function syncPeers(addresses: (st: MachineState) => string[] = defaultAddresses): void {
  let files: string[];
  try {
    files = readdirSync(PEERS_DIR).filter((f) => !f.startsWith("."));
  } catch {
    return;
  }
  let lockFd = -1;
  try {
    lockFd = openSync(`${PEERS_DIR}/.lock`, constants.O_RDWR | constants.O_CREAT, 0o600);
    flock(lockFd, LOCK_EX);
  } catch {
    // without the lock two writers may race; the last one wins, as it should
  }
  try {
    const running = new Map<string, { st: MachineState; plan: NetPlan }>();
    try {
      for (const f of readdirSync(MACHINES_DIR)) {
        if (!f.endsWith(".json")) continue;
        const name = f.slice(0, -5);
        const st = readState(name);
        const plan = readPlan(name);
        if (st && plan && leaderAlive(st)) running.set(name, { st, plan });
      }
    } catch {
      // no machines
    }
    for (const name of files) {
      const path = peersFile(name);
      const me = running.get(name);
      if (!me) {
        // a machine still starting holds its name's lock; a stopping one
        // removes its own file; a killed one's lock is gone
        if (!machineLocked(name)) rmSync(path, { force: true });
        continue;
      }
      const seg = segment(me.plan, me.st);
      const entries: Array<[string, string]> = [];
      for (const [other, o] of [...running].sort(([a], [b]) => a.localeCompare(b))) {
        if (other === name || !seg || segment(o.plan, o.st) !== seg) continue;
        const a = peerAddress(o.plan, o.st, addresses);
        if (a) entries.push([other, a]);
      }
      rewriteInPlace(path, entries);
    }
  } finally {
    if (lockFd >= 0) {
      try {
        flock(lockFd, LOCK_UN);
      } catch {
        // closing unlocks
      }
      closeSync(lockFd);
    }
  }
}

/** The block replaced in the same inode (a bind mount holds it), lines of the machine's own kept. */
function rewriteInPlace(path: string, entries: Array<[string, string]>): void {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
    // (our own copy of a tree's file, bound read-only; still, a size to trust)
    if (fstatSync(fd).size > 4 << 20) throw new Error("larger than 4 MiB");
    const text = readFileSync(fd, "utf8");
    const next = withMachineBlock(text, entries);
    if (next === text) return;
    const buf = Buffer.from(next);
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
  } catch (e) {
    warn(`Updating ${path}: ${e instanceof Error ? e.message : e}`);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function defaultAddresses(st: MachineState): string[] {
  return st.privateNetwork ? namespaceAddresses(st.leader) : [];
}
