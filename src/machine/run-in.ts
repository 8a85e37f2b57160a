// spawnctl run-in NAME [OPTIONS...] COMMAND [ARGS...] (and `systemd-run -M
// NAME ...`): a command in a running machine, in a cgroup of its own with the
// given resource properties, as systemd-run -M does.
//  - A guest with systemd as its init: the guest's own systemd-run, inside
//    the machine, makes it a transient unit of the guest's manager (which
//    owns the machine's cgroup tree), with every option of systemd-run.
//  - Any other guest: spawnctl makes the unit's cgroup below the machine's
//    (run-uXXXX.service, or --unit=), writes the properties there, and runs
//    the command in the machine's namespaces, as the --uid user, in a session
//    of its own. Detached by default (it prints the unit and returns); with
//    --wait, --pipe or --pty it waits, says how it ended and how long it ran,
//    and passes its exit status on.
import { existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { info, print } from "../util/log.ts";
import { hostFacts } from "../container/host.ts";
import { applyProperties, parseProperty, type Property } from "../cgroup/properties.ts";
import { containerDir, inheritCpuset, machineCgroupRel } from "../cgroup/cgroup.ts";
import type { CgroupFacts } from "../cgroup/facts.ts";
import type { MachineState } from "../container/registry.ts";
import { buildEnterPlan, enterEnvironment, machineUser, namespacesToJoin, runInMachine, spawnEnter, treeHas } from "./enter.ts";
import { runningMachine } from "./verbs.ts";
import { formatTimespan } from "./analyze.ts";

export const RUN_IN_HELP = `spawnctl run-in [USER@]NAME [OPTIONS...] COMMAND [ARGS...]

Run a command in a running machine in a unit (cgroup) of its own, as
systemd-run -M NAME does. In a guest with systemd, its own systemd-run does it
and takes all of systemd-run's options; in others:
  -p, --property=NAME=VALUE  MemoryMax=, MemoryHigh=, CPUQuota=, CPUWeight=,
                             TasksMax=, IOWeight=, AllowedCPUs=
  -E, --setenv=NAME[=VALUE]  Set an environment variable
      --uid=USER             Run as this user of the guest
      --unit=NAME            The unit's name (default run-uXXXX.service)
      --wait                 Wait for it to end, then say how it ended
  -P, --pipe                 Its stdin, stdout and stderr are ours (implies --wait)
  -q, --quiet                Say nothing but errors`;

export interface RunInOptions {
  properties: Property[];
  env: string[];
  user?: string;
  unit?: string;
  wait: boolean;
  pipe: boolean;
  quiet: boolean;
  command: string[];
}

/** systemd-run's options up to the command (the first argument that is none); an unknown one is an error. */
export function parseRunIn(args: string[]): RunInOptions {
  const o: RunInOptions = { properties: [], env: [], wait: false, pipe: false, quiet: false, command: [] };
  let i = 0;
  const value = (a: string, long: string) => {
    if (a.startsWith(`${long}=`)) return a.slice(long.length + 1);
    if (!a.startsWith("--") && a.length > 2) return a.slice(2);
    const v = args[++i];
    if (v === undefined) throw new SpawnctlError(`run-in: option '${a}' requires an argument`);
    return v;
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    if (a === "-p" || a.startsWith("-p") && !a.startsWith("--") || a === "--property" || a.startsWith("--property=")) {
      const raw = value(a, "--property");
      try {
        o.properties.push(parseProperty(raw));
      } catch (e) {
        throw new SpawnctlError(`run-in: --property=${raw}: ${(e as Error).message}`);
      }
    } else if (a === "-E" || a.startsWith("-E") || a === "--setenv" || a.startsWith("--setenv=")) o.env.push(value(a, "--setenv"));
    else if (a === "--uid" || a.startsWith("--uid=")) o.user = value(a, "--uid");
    else if (a === "--unit" || a.startsWith("--unit=") || a === "-u") o.unit = value(a, "--unit");
    else if (a === "--wait") o.wait = true;
    else if (a === "-P" || a === "--pipe") o.pipe = o.wait = true;
    else if (a === "-q" || a === "--quiet") o.quiet = true;
    else if (a === "--collect" || a === "-G" || a === "--no-block" || a === "--no-ask-password") continue;
    else throw new SpawnctlError(`run-in: unknown option ${a} (a guest without systemd takes -p, -E, --uid, --unit, --wait, --pipe, --quiet)`);
  }
  o.command = args.slice(i);
  if (o.command.length === 0) throw new SpawnctlError("run-in: which command? (spawnctl run-in NAME [OPTIONS...] COMMAND [ARGS...])");
  if (o.unit !== undefined && !/^[A-Za-z0-9:_.@-]+$/.test(o.unit)) throw new SpawnctlError(`run-in: --unit=${o.unit}: not a valid unit name`);
  return o;
}

/** A unit name with its type (a bare name is a service, as with systemd-run). */
export function unitName(unit: string | undefined, random = () => Math.floor(Math.random() * 0x10000).toString(16)): string {
  const n = unit ?? `run-u${random()}`;
  return /\.(service|scope)$/.test(n) ? n : `${n}.service`;
}

/** The unit's cgroup in each hierarchy the machine has one in. */
function unitCgroups(st: MachineState, facts: CgroupFacts, unit: string): string[] {
  const p = !!st.payload;
  const dirs = facts.v1.map((h) => `${containerDir(facts, `${h.mountpoint}/${machineCgroupRel(st.name)}`, p)}/${unit}`);
  if (st.unifiedCgroup) dirs.push(`${containerDir(facts, st.unifiedCgroup, p)}/${unit}`);
  return dirs;
}

/** How much CPU the unit's processes used, in µs (cgroup v2 cpu.stat, or v1 cpuacct.usage). */
function cpuUsec(dirs: string[]): number | undefined {
  for (const d of dirs) {
    try {
      if (existsSync(`${d}/cpu.stat`)) {
        const m = /usage_usec (\d+)/.exec(readFileSync(`${d}/cpu.stat`, "utf8"));
        if (m) return Number(m[1]);
      }
      if (existsSync(`${d}/cpuacct.usage`)) return Math.round(Number(readFileSync(`${d}/cpuacct.usage`, "utf8")) / 1000);
    } catch {
      /* the next */
    }
  }
  return undefined;
}

/** systemd's way of writing a time span (analyze's), below a millisecond in µs as systemd-run does: 40us. */
export function timespan(usec: number): string {
  return usec < 1000 ? `${Math.round(usec)}us` : formatTimespan(usec);
}

function removeUnit(dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      /* processes left (a daemon it started): the machine's clean-up takes it */
    }
  }
}

export async function runInMain(args: string[]): Promise<number> {
  if (args[0] === "-h" || args[0] === "--help") {
    print(RUN_IN_HELP);
    return 0;
  }
  const target = args[0];
  if (!target || target.startsWith("-")) throw new SpawnctlError("run-in: which machine? (spawnctl run-in NAME [OPTIONS...] COMMAND [ARGS...])");
  const at = target.indexOf("@");
  const name = at >= 0 ? target.slice(at + 1) : target;
  const st = runningMachine(name);
  const facts = hostFacts().cgroup;
  // a guest with systemd: its own systemd-run, with all of its options
  let comm = "";
  try {
    comm = readFileSync(`/proc/${st.leader}/comm`, "utf8").trim();
  } catch {
    /* gone: runningMachine said it was there a moment ago */
  }
  const systemdRun = comm === "systemd" ? treeHas(`/proc/${st.leader}/root`, ["/usr/bin/systemd-run", "/bin/systemd-run"]) : undefined;
  if (systemdRun) {
    const extra = at >= 0 ? [`--uid=${target.slice(0, at)}`] : [];
    return runInMachine(st, facts, "root", [systemdRun, ...extra, ...args.slice(1)]);
  }
  const o = parseRunIn(args.slice(1));
  if (at >= 0) o.user ??= target.slice(0, at);
  const unit = unitName(o.unit);
  const dirs = unitCgroups(st, facts, unit);
  if (dirs.some((d) => existsSync(d))) throw new SpawnctlError(`Unit ${unit} exists already in machine ${name}.`);
  const u = machineUser(st, o.user ?? "root");
  const made: string[] = [];
  const detached = !o.wait && !o.pipe;
  try {
    for (const d of dirs) {
      mkdirSync(d);
      made.push(d);
      inheritCpuset(d);
    }
    if (o.properties.length) applyProperties(o.properties, facts, name, st.payload ? `payload/${unit}` : unit, !!st.payload);
    const plan = buildEnterPlan(st, facts, namespacesToJoin(st.leader), {
      user: u, env: enterEnvironment(u, o.env, false), argv: o.command, pty: false, cwd: u.home || "/", cgroupSub: unit, detached,
    });
    const started = performance.now();
    const { exited } = spawnEnter(plan, detached);
    if (!o.quiet) info(`Running as unit: ${unit}`);
    if (detached) return 0;
    const status = await exited;
    const runtime = Math.round((performance.now() - started) * 1000);
    const cpu = cpuUsec(dirs);
    removeUnit(dirs);
    const sig = status & 0x7f;
    const code = (status >> 8) & 0xff;
    if (!o.quiet) {
      info(`Finished with result: ${sig ? "signal" : code ? "exit-code" : "success"}`);
      info(`Main processes terminated with: ${sig ? `code=killed/status=${sig}` : `code=exited/status=${code}`}`);
      info(`Service runtime: ${timespan(runtime)}`);
      if (cpu !== undefined) info(`CPU time consumed: ${timespan(cpu)}`);
    }
    return sig ? 128 + sig : code;
  } catch (e) {
    removeUnit(made);
    throw e;
  }
}
