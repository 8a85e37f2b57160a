// machinectl's machine verbs against spawnctl's own registry: list, status,
// show, poweroff/reboot/terminate/kill, shell, login, console attach.
import { namespaceAddresses } from "../net/addresses.ts";
import { readFileSync, readdirSync, existsSync, writeSync } from "node:fs";
import { CTL } from "../sys/abi.ts";
import { ptr } from "bun:ffi";
import { releaseFile, takeFile } from "../util/lock.ts";
import { SpawnctlError } from "../util/errors.ts";
import { formatAgo, formatBytes, formatTimestamp } from "../util/table.ts";
import { readOsRelease, type ResolvedUser } from "../util/tree.ts";
import { signalName, SIGRTMIN } from "../settings/parse.ts";
import { hostFacts } from "../container/host.ts";
import { containerDir, machineScope, openMachineCgroup } from "../cgroup/cgroup.ts";
import { isatty, closeQuietly, libc, shim, errno, strerror } from "../sys/ffi.ts";
import { startRelay, type Relay } from "../container/console.ts";
import {
  type MachineState, allStates, leaderAlive, lockPath, readState, removeState, supervisorAlive,
} from "../container/registry.ts";
import { buildEnterPlan, enterEnvironment, machineUser, namespacesToJoin, spawnEnter } from "./enter.ts";
import { teardownNetwork } from "../net/machine.ts";
import { collectStale } from "./gc.ts";

/** A machine that is running, or an error naming it. Stale entries are removed on the way. */
export function runningMachine(name: string): MachineState {
  const st = readState(name);
  if (!st) throw new SpawnctlError(`No machine '${name}' known`);
  if (!leaderAlive(st)) {
    reapStale(st);
    throw new SpawnctlError(`No machine '${name}' known`);
  }
  return st;
}

/** A machine whose supervisor and leader are both gone: clean up after it. */
export function reapStale(st: MachineState): void {
  if (supervisorAlive(st) || leaderAlive(st)) return;
  cleanUpAfter(st);
}

/** What a machine's supervisor does when the machine ends, done by someone
 * else: its cgroup, state, network, and the lock files nobody holds any more
 * (its own, the tree's, its user namespace range). */
function cleanUpAfter(st: MachineState): void {
  try {
    openMachineCgroup(hostFacts().cgroup, st.name).destroy();
  } catch {
    /* best effort */
  }
  removeState(st.name);
  teardownNetworkQuietly(st.name);
  for (const path of [lockPath(st.name), ...(st.locks ?? []).map((l) => l.path)]) {
    if (!existsSync(path)) continue;
    try {
      releaseFile(takeFile(path, false, () => new SpawnctlError(`${path} is held`)));
    } catch {
      /* still held by a live process: not ours to remove */
    }
  }
}

function teardownNetworkQuietly(name: string): void {
  try {
    teardownNetwork(name);
  } catch {
    /* best effort: the next start reconciles */
  }
}

export function runningMachines(): MachineState[] {
  collectStale();
  const out: MachineState[] = [];
  for (const st of allStates()) {
    if (leaderAlive(st)) out.push(st);
    else reapStale(st);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export interface MachineInfo {
  machine: string;
  class: string;
  service: string;
  os: string | null;
  version: string | null;
  addresses: string[];
}

export function machineOs(st: MachineState): Record<string, string> {
  return readOsRelease(`/proc/${st.leader}/root`) ?? {};
}

export function listInfo(st: MachineState): MachineInfo {
  const os = machineOs(st);
  return { machine: st.name, class: st.class, service: st.service, os: os.ID ?? null, version: os.VERSION_ID ?? null, addresses: machineAddresses(st) };
}

/** IPv4/IPv6 addresses inside the machine's network namespace (none shown for host networking). */
export function machineAddresses(st: MachineState): string[] {
  return st.privateNetwork ? namespaceAddresses(st.leader) : [];
}

function cmdline(pid: number): string {
  try {
    const c = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    // none (a kernel thread, a zombie, or a process caught between fork and
    // exec): its name in brackets, as ps and systemd-cgls show it
    return c || `[${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}]`;
  } catch {
    return "";
  }
}

/** The machine's cgroup tree with its processes, drawn as systemd-cgls does. */
export function cgroupTree(dir: string, label: string): string[] {
  const lines: string[] = [label];
  const walk = (d: string, prefix: string) => {
    let pids: number[] = [];
    try {
      pids = readFileSync(`${d}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
      /* gone */
    }
    let subs: string[] = [];
    try {
      subs = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    } catch {
      /* gone */
    }
    const items: Array<{ text: string; sub?: string }> = [
      ...pids.map((p) => ({ text: `${p} ${cmdline(p)}` })),
      ...subs.map((s) => ({ text: s, sub: `${d}/${s}` })),
    ];
    items.forEach((it, i) => {
      const last = i === items.length - 1;
      lines.push(`${prefix}${last ? "└─" : "├─"}${it.text}`);
      if (it.sub) walk(it.sub, `${prefix}${last ? "  " : "│ "}`);
    });
  };
  walk(dir, "");
  return lines;
}

function memoryOf(st: MachineState): number | undefined {
  for (const p of st.cgroups) {
    for (const f of ["memory.current", "memory.usage_in_bytes"]) {
      try {
        return Number(readFileSync(`${p}/${f}`, "utf8").trim());
      } catch {
        /* not this hierarchy */
      }
    }
  }
  return undefined;
}

function tasksOf(st: MachineState): number | undefined {
  for (const p of st.cgroups) {
    try {
      return Number(readFileSync(`${p}/pids.current`, "utf8").trim());
    } catch {
      /* not the pids hierarchy */
    }
  }
  return undefined;
}

export function statusText(st: MachineState): string {
  const os = machineOs(st);
  const pad = (k: string) => k.padStart(12);
  const out = [`${st.name}(${st.uuid})`];
  out.push(`${pad("Since")}: ${formatTimestamp(st.since)}; ${formatAgo(st.since)}`);
  out.push(`${pad("Leader")}: ${st.leader} (${cmdline(st.leader).split(" ")[0]?.split("/").pop() ?? "?"})`);
  out.push(`${pad("Service")}: ${st.service}; class ${st.class}`);
  out.push(`${pad("Root")}: ${st.root}`);
  const addrs = machineAddresses(st);
  if (addrs.length) out.push(`${pad("Address")}: ${addrs[0]}`, ...addrs.slice(1).map((a) => `${" ".repeat(14)}${a}`));
  // os-release's PRETTY_NAME, else its NAME (the specification's fallback)
  const osName = os.PRETTY_NAME ?? os.NAME;
  if (osName) out.push(`${pad("OS")}: ${osName}`);
  const tasks = tasksOf(st);
  if (tasks !== undefined) out.push(`${pad("Tasks")}: ${tasks}`);
  const mem = memoryOf(st);
  if (mem !== undefined) out.push(`${pad("Memory")}: ${formatBytes(mem)}`);
  const scope = st.unifiedCgroup ?? st.cgroups.find((c) => c.includes("/systemd/")) ?? st.cgroups[0];
  // the container's tree: its payload's, in the payload layout
  const tree = scope && containerDir(hostFacts().cgroup, scope, !!st.payload);
  if (tree) {
    const lines = cgroupTree(tree, machineScope(st.name));
    out.push(`${pad("Unit")}: ${lines[0]}`, ...lines.slice(1).map((l) => `${" ".repeat(14)}${l}`));
  }
  return out.join("\n");
}

/** A CLOCK_REALTIME time in µs as CLOCK_MONOTONIC µs (how systemd gives Timestamp and TimestampMonotonic). */
function monotonicOf(realtimeUs: number): number {
  let mono: number;
  try {
    // the time since boot (CLOCK_MONOTONIC but for a suspend, which a host running machines rarely has)
    mono = Number.parseFloat(readFileSync("/proc/uptime", "utf8")) * 1e6;
  } catch {
    return 0;
  }
  return Math.max(0, Math.round(realtimeUs - (Date.now() * 1000 - mono)));
}

/** A host interface's index, as machinectl's NetworkInterfaces= lists them (its name where it is not in our namespace). */
function ifindexOf(name: string): string {
  try {
    return readFileSync(`/sys/class/net/${name}/ifindex`, "utf8").trim();
  } catch {
    return name;
  }
}

export function machineProperties(st: MachineState): Array<[string, string]> {
  return [
    ["Name", st.name],
    ["Id", st.uuid],
    ["Timestamp", formatTimestamp(st.since)],
    ["TimestampMonotonic", String(monotonicOf(st.since))],
    ["Service", st.service],
    ["Unit", machineScope(st.name)],
    ["Leader", String(st.leader)],
    ["Supervisor", String(st.supervisor)],
    ["Class", st.class],
    ["RootDirectory", st.root],
    ["NetworkInterfaces", (st.netifs ?? []).map(ifindexOf).join(" ")],
    ["KillSignal", signalName(st.killSignal || SIGRTMIN + 3)],
    ["State", "running"],
  ];
}

export function managerProperties(): Array<[string, string]> {
  return [
    ["PoolPath", "/var/lib/machines"],
    ["PoolUsage", ""],
    ["PoolLimit", ""],
  ];
}

function signal(pid: number, sig: number, what: string): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    throw new SpawnctlError(`${what}: ${(e as Error).message}`);
  }
}

/** poweroff: the machine's own KillSignal= if one was set, else SIGRTMIN+4 (systemd's poweroff). */
export function poweroff(st: MachineState): void {
  signal(st.leader, st.poweroffSignal ?? SIGRTMIN + 4, `powering off machine ${st.name}`);
}

export function reboot(st: MachineState): void {
  signal(st.leader, 2 /* SIGINT */, `rebooting machine ${st.name}`);
}

export function killMachine(st: MachineState, whom: "leader" | "all", sig: number): void {
  if (whom === "leader") return signal(st.leader, sig, `signalling machine ${st.name}`);
  const cg = openMachineCgroup(hostFacts().cgroup, st.name);
  cg.kill(sig);
}

/** terminate: kill every process of the machine; clean up here if its supervisor is gone too. */
export async function terminate(st: MachineState): Promise<void> {
  const cg = openMachineCgroup(hostFacts().cgroup, st.name);
  cg.kill(9);
  if (supervisorAlive(st)) {
    // done when its supervisor has cleaned up and released the locks
    const end = Date.now() + 10_000;
    while (supervisorAlive(st) && Date.now() < end) await Bun.sleep(10);
    if (!supervisorAlive(st) && !existsSync(`/run/spawnctl/machines/${st.name}.json`)) return;
  }
  // no supervisor to clean up after the machine: do it here
  cleanUpAfter(st);
}

export interface ShellOptions {
  user: string;
  env: string[];
  command: string[];
}

/** shell [USER@]NAME [CMD...]: a program in the running machine, on a pty when we have a terminal. */
export async function shell(st: MachineState, o: ShellOptions): Promise<number> {
  const u = machineUser(st, o.user);
  const pty = isatty(0) && isatty(1);
  const argv = o.command.length ? o.command : [u.shell || "/bin/sh"];
  const argv0 = o.command.length ? undefined : `-${argv[0]!.split("/").pop()}`;
  return enterAndRun(st, u, { argv, argv0, env: enterEnvironment(u, o.env, pty), pty, cwd: u.home || "/" }, "shell");
}

/** login NAME: a login prompt on a new pty in the machine (agetty or login, no systemd needed). */
export async function login(st: MachineState): Promise<number> {
  const u = machineUser(st, "root");
  const root = `/proc/${st.leader}/root`;
  const agetty = ["/sbin/agetty", "/usr/sbin/agetty"].find((p) => existsSync(`${root}${p}`));
  const argv = agetty ? [agetty, "-o", "-p -- \\u", "--noclear", "-", process.env.TERM || "vt220"] : ["/bin/login"];
  return enterAndRun(st, u, { argv, env: enterEnvironment(u, [], true), pty: true, cwd: "/" }, "login");
}

async function enterAndRun(st: MachineState, u: ResolvedUser, o: { argv: string[]; argv0?: string; env: string[]; pty: boolean; cwd: string }, what: "shell" | "login"): Promise<number> {
  const facts = hostFacts();
  const plan = buildEnterPlan(st, facts.cgroup, namespacesToJoin(st.leader), { user: u, ...o });
  const { child, exited } = spawnEnter(plan);
  let detached = false;
  let relay: Relay | undefined;
  if (child.consoleFd !== undefined) {
    const master = child.consoleFd;
    if (what === "login" || isatty(0)) process.stderr.write(`Connected to machine ${st.name}. Press ^] three times within 1s to exit session.\n`);
    relay = startRelay(master, {
      mode: "interactive",
      onEscape: () => {
        detached = true;
        relay?.stop();
        closeQuietly(master);
        // the session gets SIGHUP from the hung-up terminal; make sure it goes
        try {
          process.kill(child.pid, 1);
        } catch {
          /* gone */
        }
      },
    });
  }
  const status = await exited;
  if (relay && !detached) await relay.drain(200);
  relay?.stop();
  if (child.consoleFd !== undefined) closeQuietly(child.consoleFd);
  if (child.consoleFd !== undefined && (what === "login" || isatty(0))) process.stderr.write(`\nConnection to machine ${st.name} terminated.\n`);
  if (detached) return 0;
  return status & 0x7f ? 128 + (status & 0x7f) : (status >> 8) & 0xff;
}

/** console NAME: attach to a background machine's console (its supervisor's socket). */
export async function attachConsole(st: MachineState): Promise<number> {
  if (!st.console) throw new SpawnctlError(`Machine ${st.name} has no console to attach to (it runs in the foreground).`);
  const fd = connectSeqpacket(st.console.socket);
  process.stderr.write(`Connected to the console of machine ${st.name}. Press ^] three times within 1s to detach.\n`);
  let saved: Uint8Array | undefined;
  const ws = new Uint16Array([24, 80]);
  if (isatty(0)) {
    saved = new Uint8Array(256);
    if (shim().nsh_tty_raw(0, ptr(saved)) !== 0) saved = undefined;
    if (shim().nsh_get_winsize(1, ptr(ws)) === 0) writeSync(fd, Buffer.from([CTL.CONSOLE_WINSIZE, ws[0]! & 0xff, ws[0]! >> 8, ws[1]! & 0xff, ws[1]! >> 8]));
  }
  // the console's recent output comes first: shown as the screen it made
  // (on a terminal: redrawn; else its text), never replayed as raw bytes
  const { Screen } = await import("../util/vt.ts");
  const screen = new Screen(ws[0] || 24, ws[1] || 80);
  let history = true;
  const showScreen = () => {
    history = false;
    const lines = screen.lines();
    if (lines.every((l) => l === "")) return;
    writeSync(1, isatty(1) ? screen.renderInline() : `${lines.join("\n")}\n`);
  };
  const { EscapeDetector } = await import("../container/console.ts");
  const esc = new EscapeDetector();
  let detached = false;
  const stop = { stopped: false };
  let onDetach = () => {};
  const detachedP = new Promise<void>((r) => {
    onDetach = r;
  });
  const input = (async () => {
    const reader = Bun.stdin.stream().getReader();
    while (!stop.stopped) {
      const { done, value } = await reader.read();
      if (done) break;
      if (esc.feed(value)) {
        detached = true;
        stop.stopped = true;
        onDetach();
        return;
      }
      const msg = Buffer.alloc(value.length + 1);
      msg[0] = CTL.CONSOLE_DATA;
      msg.set(value, 1);
      try {
        writeSync(fd, msg);
      } catch {
        break;
      }
    }
  })();
  void input;
  const output = (async () => {
    try {
      const reader = Bun.file(fd).stream().getReader();
      // messages are type, u16 length, payload; a read may hold several,
      // and the last one in part
      let buf = new Uint8Array(0);
      while (!stop.stopped) {
        const { done, value } = await reader.read();
        if (done || stop.stopped) break;
        buf = buf.length ? Buffer.concat([buf, value]) : value;
        let at = 0;
        while (buf.length - at >= 3) {
          const type = buf[at]!, len = buf[at + 1]! | (buf[at + 2]! << 8);
          if (buf.length - at - 3 < len) break;
          const data = buf.subarray(at + 3, at + 3 + len);
          at += 3 + len;
          if (type === CTL.CONSOLE_HISTORY && history) {
            if (len > 0) screen.feed(data);
            else showScreen();
          } else if (type === CTL.CONSOLE_DATA) {
            if (history) showScreen();
            writeSync(1, data);
          }
        }
        buf = buf.subarray(at);
      }
    } catch {
      /* closed */
    }
  })();
  await Promise.race([output, detachedP]);
  stop.stopped = true;
  if (saved) shim().nsh_tty_restore(0, ptr(saved));
  closeQuietly(fd);
  process.stderr.write(detached ? `\nDetached from machine ${st.name}.\n` : `\nThe console of machine ${st.name} is closed.\n`);
  return 0;
}

function connectSeqpacket(path: string): number {
  const fd = libc().socket(1 /* AF_UNIX */, 5 /* SOCK_SEQPACKET */ | 0x80000, 0) as number;
  if (fd < 0) throw new SpawnctlError(`socket: ${strerror(errno())}`);
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(1, 0);
  addr.write(path, 2);
  if ((libc().connect(fd, ptr(addr), 2 + Buffer.byteLength(path) + 1) as number) < 0) {
    const e = errno();
    closeQuietly(fd);
    throw new SpawnctlError(`connecting to ${path}: ${strerror(e)}`);
  }
  return fd;
}
