// spawnctl analyze NAME [time|blame|critical-chain] (systemd-analyze -M NAME
// ...): for a guest whose PID 1 is systemd, the guest's own systemd-analyze,
// run inside the machine (through spawnEnter, as `shell` does), its output
// and exit status passed through. For any other guest, `time` is measured
// here: from the machine's start until its console showed a login prompt,
// or else until its init started.
import { readFileSync, statSync, openSync, readSync, closeSync } from "node:fs";
import { hostFacts } from "../container/host.ts";
import { readyPath, type MachineState } from "../container/registry.ts";
import { SpawnctlError } from "../util/errors.ts";
import { formatTimestamp } from "../util/table.ts";
import { buildEnterPlan, enterEnvironment, machineUser, namespacesToJoin, spawnEnter } from "./enter.ts";
import { runningMachine } from "./verbs.ts";

export const ANALYZE_HELP = `spawnctl analyze [OPTIONS...] NAME [time|blame|critical-chain [UNIT...]]
systemd-analyze -M NAME [OPTIONS...] [time|blame|critical-chain [UNIT...]]

How long a running machine took to boot. A guest that runs systemd answers
with its own systemd-analyze (run inside the machine); for any other guest
'time' is measured from the machine's start until its console showed a
login prompt (or, without one, until its init started).

Commands:
  time                Time the boot took (default)
  blame               Units by the time they took to start (systemd guests)
  critical-chain      The chain of units the boot waited for (systemd guests)

Options:
  -h --help           Show this help
     --no-pager       Accepted (no pager is used)
     --fuzz=SECONDS   critical-chain: also show units that finished this much earlier
`;

const VERBS = ["time", "blame", "critical-chain"] as const;
type AnalyzeVerb = (typeof VERBS)[number];

export interface AnalyzeOptions {
  help: boolean;
  machine?: string;
  verb: AnalyzeVerb;
  /** the verb's arguments (critical-chain's units) */
  units: string[];
  /** options handed to the guest's systemd-analyze */
  passOptions: string[];
}

export function parseAnalyzeArgs(args: string[]): AnalyzeOptions {
  const o: AnalyzeOptions = { help: false, verb: "time", units: [], passOptions: [] };
  const positional: string[] = [];
  let options = true;
  for (const a of args) {
    if (options && a === "--") options = false;
    else if (options && (a === "-h" || a === "--help")) o.help = true;
    else if (options && a === "--no-pager") continue;
    else if (options && a.startsWith("--fuzz=")) o.passOptions.push(a);
    else if (options && a.startsWith("-") && a !== "-") throw new SpawnctlError(`analyze: unknown option '${a}' (see spawnctl analyze --help).`, { exitCode: 1 });
    else positional.push(a);
  }
  if (o.help) return o;
  o.machine = positional[0];
  if (o.machine === undefined) throw new SpawnctlError("analyze: a machine name is needed (spawnctl analyze NAME [time|blame|critical-chain]).", { exitCode: 1 });
  const verb = positional[1] ?? "time";
  if (!(VERBS as readonly string[]).includes(verb)) throw new SpawnctlError(`analyze: unknown command '${verb}' (time, blame or critical-chain).`, { exitCode: 1 });
  o.verb = verb as AnalyzeVerb;
  o.units = positional.slice(2);
  if (o.units.length && o.verb !== "critical-chain") throw new SpawnctlError(`analyze: '${o.verb}' takes no arguments (got ${o.units.join(" ")}).`, { exitCode: 1 });
  if (o.passOptions.length && o.verb !== "critical-chain") throw new SpawnctlError(`analyze: --fuzz= applies to critical-chain only.`, { exitCode: 1 });
  return o;
}

/** A time span as systemd prints it: "843ms", "1.234s", "1min 2.345s", "1h 2min 3.456s". */
export function formatTimespan(us: number): string {
  let ms = Math.max(0, Math.round(us / 1000));
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  const h = Math.floor(ms / 3_600_000);
  ms -= h * 3_600_000;
  const min = Math.floor(ms / 60_000);
  ms -= min * 60_000;
  if (h) parts.push(`${h}h`);
  if (min) parts.push(`${min}min`);
  const s = Math.floor(ms / 1000);
  const frac = ms % 1000;
  if (s || frac) parts.push(frac ? `${s}.${String(frac).padStart(3, "0").replace(/0+$/, "")}s` : `${s}s`);
  return parts.join(" ");
}

/** Is the tail of a console log a login prompt ("NAME login: ")? */
export function endsWithLoginPrompt(tail: string): boolean {
  // strip terminal control sequences and carriage returns first
  const text = tail.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
  return /(^|\n)[^\n]*\blogin: *$/.test(text);
}

/** The process's start, µs since the epoch (from /proc/PID/stat and the clock since boot). */
export function processStartUs(pid: number, stat = readFileSync(`/proc/${pid}/stat`, "utf8"), uptime = readFileSync("/proc/uptime", "utf8"), nowUs = Date.now() * 1000): number {
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const up = Number(uptime.split(" ")[0]);
  // USER_HZ is 100 on every Linux architecture spawnctl runs on
  return Math.round(nowUs - (up - ticks / 100) * 1e6);
}

function tailOf(path: string, n = 512): string {
  const fd = openSync(path, "r");
  try {
    const size = statSync(path).size;
    const buf = Buffer.alloc(Math.min(n, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.toString("latin1");
  } finally {
    closeSync(fd);
  }
}

export interface BootTime {
  us: number;
  what: string;
}

/** How long a guest without systemd took to come up, and what was measured. */
export function measureBoot(st: MachineState): BootTime {
  // --notify-ready: when it said READY=1 (what start waited for)
  try {
    const ready = Number(readFileSync(readyPath(st.name), "utf8"));
    if (ready >= st.since) return { us: ready - st.since, what: "from the machine's start until it reported READY=1 on its notify socket (--notify-ready)" };
  } catch {
    /* not a --notify-ready machine */
  }
  const log = st.console?.log;
  if (log) {
    try {
      const mtimeUs = statSync(log).mtimeMs * 1000;
      if (mtimeUs >= st.since && endsWithLoginPrompt(tailOf(log))) {
        return { us: mtimeUs - st.since, what: `from the machine's start until its console (${log}) showed a login prompt` };
      }
    } catch {
      /* no log */
    }
  }
  const started = processStartUs(st.leader);
  return { us: Math.max(0, started - st.since), what: `from the machine's start until its init (pid ${st.leader}) started; its console showed no login prompt to time` };
}

function pid1Comm(st: MachineState): string {
  try {
    return readFileSync(`/proc/${st.leader}/comm`, "utf8").trim();
  } catch {
    throw new SpawnctlError(`Machine ${st.name} is not running (its leader is gone).`);
  }
}

/** The guest's own systemd-analyze, run in the machine; its status is ours, its errors on our stderr (not its journal). */
async function guestAnalyze(st: MachineState, argv: string[]): Promise<number> {
  const u = machineUser(st, "root");
  const plan = buildEnterPlan(st, hostFacts().cgroup, namespacesToJoin(st.leader), {
    user: u, env: enterEnvironment(u, ["SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_TARGET=console"], false), argv, pty: false, cwd: "/",
  });
  const { exited } = spawnEnter(plan);
  const status = await exited;
  return status & 0x7f ? 128 + (status & 0x7f) : (status >> 8) & 0xff;
}

export async function analyzeMain(args: string[]): Promise<number> {
  const o = parseAnalyzeArgs(args);
  if (o.help) {
    process.stdout.write(ANALYZE_HELP);
    return 0;
  }
  const st = runningMachine(o.machine!);
  const comm = pid1Comm(st);
  if (comm === "systemd") return guestAnalyze(st, ["systemd-analyze", "--no-pager", ...o.passOptions, o.verb, ...o.units]);
  if (o.verb !== "time") {
    throw new SpawnctlError(`Machine ${st.name} does not run systemd (its PID 1 is '${comm}'): '${o.verb}' needs the guest's systemd. 'spawnctl analyze ${st.name} time' measures its boot from outside.`, { exitCode: 1 });
  }
  const t = measureBoot(st);
  process.stdout.write(`Startup finished in ${formatTimespan(t.us)} (container)\n`);
  process.stdout.write(`Measured by spawnctl ${t.what}; started ${formatTimestamp(st.since)}. The guest's init is '${comm}', not systemd.\n`);
  return 0;
}
