// spawnctl top [NAME] (systemd-cgtop, systemd-cgtop -M NAME): every running
// machine's tasks, CPU, memory and IO from its cgroup, refreshed like
// systemd-cgtop. Batch mode (or output that is no terminal) prints the
// iterations one after another with an empty line between them; on a
// terminal the screen is redrawn each delay until q or ^C.
import { readdirSync } from "node:fs";
import { ptr } from "bun:ffi";
import { hostFacts } from "../container/host.ts";
import type { MachineState } from "../container/registry.ts";
import { machineCgroupRel } from "../cgroup/cgroup.ts";
import { countProcesses, readSample, renderTop, sortRows, topRow, type CgSample, type TopOrder, type TopRow } from "../cgroup/stats.ts";
import { machineDirs, type CgNode } from "../cgroup/tree.ts";
import { isatty, shim } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { containerDirs, machineTree } from "./cgls.ts";
import { runningMachine, runningMachines } from "./verbs.ts";

export const TOP_HELP = `spawnctl top [OPTIONS...] [NAME]
systemd-cgtop [-M NAME] [OPTIONS...]

Show the running machines' control groups by their resource usage: tasks,
CPU, memory, and IO per second (with NAME: that machine's own groups).

  -h --help           Show this help
  -p --order=path     Order by path
  -t --order=tasks    Order by number of tasks
  -c --order=cpu      Order by CPU load (default)
  -m --order=memory   Order by memory use
  -i --order=io       Order by IO load
  -r --raw            Provide raw (not human-readable) numbers
  -d --delay=DELAY    Delay between updates (seconds; "500ms", "2s" too; default 1s)
  -n --iterations=N   Run for N iterations before exiting
  -1                  Shortcut for --iterations=1
  -b --batch          Run in batch mode, accepting no input
     --depth=DEPTH    Levels of sub-groups to show below each machine
                      (default: 0 for all machines, 3 for one)

Keys on a terminal: p t c m i order, SPACE refresh, q or ^C quit.
`;

export interface TopOptions {
  help: boolean;
  batch: boolean;
  raw: boolean;
  /** 0: until quit */
  iterations?: number;
  delayMs: number;
  order: TopOrder;
  depth?: number;
  machine?: string;
}

function parseDelay(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|msec|s|sec|m|min)?$/.exec(v.trim());
  if (!m) throw new SpawnctlError(`top: failed to parse delay parameter '${v}'.`, { exitCode: 1 });
  const n = Number(m[1]);
  const ms = m[2] === "ms" || m[2] === "msec" ? n : m[2] === "m" || m[2] === "min" ? n * 60_000 : n * 1000;
  if (!(ms > 0)) throw new SpawnctlError(`top: invalid delay parameter '${v}'.`, { exitCode: 1 });
  return ms;
}

function parseCount(what: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new SpawnctlError(`top: failed to parse ${what} parameter '${v}'.`, { exitCode: 1 });
  return Number(v);
}

const ORDERS: Record<string, TopOrder> = { p: "path", t: "tasks", c: "cpu", m: "memory", i: "io" };

export function parseTopArgs(args: string[]): TopOptions {
  const o: TopOptions = { help: false, batch: false, raw: false, delayMs: 1000, order: "cpu" };
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (name: string): string => {
      const v = args[++i];
      if (v === undefined) throw new SpawnctlError(`top: option '${name}' requires an argument.`, { exitCode: 1 });
      return v;
    };
    if (a === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a : a.slice(0, eq);
      const arg = () => (eq < 0 ? value(name) : a.slice(eq + 1));
      switch (name) {
        case "--help": o.help = true; break;
        case "--batch": o.batch = true; break;
        case "--raw": o.raw = true; break;
        case "--iterations": o.iterations = parseCount("iterations", arg()); break;
        case "--delay": o.delayMs = parseDelay(arg()); break;
        case "--depth": o.depth = parseCount("depth", arg()); break;
        case "--order": {
          const v = arg();
          if (!["cpu", "memory", "tasks", "io", "path"].includes(v)) throw new SpawnctlError(`top: invalid argument to --order=: ${v}`, { exitCode: 1 });
          o.order = v as TopOrder;
          break;
        }
        default: throw new SpawnctlError(`top: unknown option '${name}' (see spawnctl top --help).`, { exitCode: 1 });
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      // clustered short options, the last one may take the rest or the next word as its value
      for (let k = 1; k < a.length; k++) {
        const c = a[k]!;
        if (c === "h") o.help = true;
        else if (c === "b") o.batch = true;
        else if (c === "r") o.raw = true;
        else if (c === "1") o.iterations = 1;
        else if (ORDERS[c]) o.order = ORDERS[c]!;
        else if (c === "n" || c === "d") {
          const v = k + 1 < a.length ? a.slice(k + 1) : value(`-${c}`);
          if (c === "n") o.iterations = parseCount("iterations", v);
          else o.delayMs = parseDelay(v);
          break;
        } else throw new SpawnctlError(`top: unknown option '-${c}' (see spawnctl top --help).`, { exitCode: 1 });
      }
      continue;
    }
    positional.push(a);
  }
  if (positional.length > 1) throw new SpawnctlError(`top: too many arguments: ${positional.join(" ")} (one machine at most).`, { exitCode: 1 });
  o.machine = positional[0];
  return o;
}

interface Group {
  /** what the row says */
  path: string;
  st: MachineState;
  /** the sub-group below the machine's own, "" for the machine's */
  rel: string;
  /** its directory in the hierarchy whose tree is shown (for counting processes) */
  dir: string;
}

function subGroups(tree: CgNode, depth: number, rel = ""): Array<{ rel: string; dir: string }> {
  if (depth <= 0) return [];
  return tree.children.flatMap((c) => {
    const r = rel ? `${rel}/${c.name}` : c.name;
    return [{ rel: r, dir: c.dir }, ...subGroups(c, depth - 1, r)];
  });
}

function listDir(d: string): string[] {
  try {
    return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** The groups to show now (machines come and go between iterations). */
function groups(o: TopOptions): Group[] {
  const machines = o.machine ? [runningMachine(o.machine)] : runningMachines();
  const depth = o.depth ?? (o.machine ? 3 : 0);
  const out: Group[] = [];
  for (const st of machines) {
    const base = o.machine ? "" : `/${machineCgroupRel(st.name)}`;
    const tree = machineTree(st);
    out.push({ path: base || "/", st, rel: "", dir: tree.dir });
    for (const g of subGroups(tree, depth)) out.push({ path: `${base}/${g.rel}`, st, rel: g.rel, dir: g.dir });
  }
  return out;
}

function sample(g: Group): CgSample {
  // the machine's own row: all of it; its groups: below its container's directories
  const dirs = g.rel === "" ? machineDirs(hostFacts().cgroup, g.st.cgroups, g.st.unifiedCgroup) : containerDirs(g.st);
  return readSample(dirs, g.rel, Number(process.hrtime.bigint()), undefined, () => countProcesses(g.dir, listDir));
}

/** One refresh: the rows, with rates against the previous samples (kept by group path). */
function refresh(o: TopOptions, prev: Map<string, CgSample>): { rows: TopRow[]; samples: Map<string, CgSample> } {
  const samples = new Map<string, CgSample>();
  const rows: TopRow[] = [];
  for (const g of groups(o)) {
    const s = sample(g);
    // a machine restarted under the same name starts its counters again
    const key = `${g.path}\0${g.st.leader}`;
    samples.set(key, s);
    const row = topRow(g.path, s, prev.get(key));
    // sub-groups of which nothing is known are left out, as cgtop does
    if (g.rel && row.tasks === undefined && s.cpuNs === undefined && row.memory === undefined && s.ioRead === undefined) continue;
    rows.push(row);
  }
  return { rows: sortRows(rows, o.order), samples };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function topMain(args: string[]): Promise<number> {
  const o = parseTopArgs(args);
  if (o.help) {
    process.stdout.write(TOP_HELP);
    return 0;
  }
  // an unknown machine fails before anything is drawn
  if (o.machine) runningMachine(o.machine);
  const ttyOut = isatty(1);
  const interactive = ttyOut && !o.batch;
  const iterations = o.iterations ?? (ttyOut ? 0 : 1);
  if (interactive) return interactiveTop(o, iterations);
  let prev = new Map<string, CgSample>();
  for (let i = 0; ; ) {
    const started = Date.now();
    const r = refresh(o, prev);
    prev = r.samples;
    const lines = renderTop(r.rows, { tty: ttyOut, columns: process.stdout.columns, rows: Infinity, raw: o.raw });
    process.stdout.write(lines.length ? `${lines.join("\n")}\n` : "");
    if (iterations && ++i >= iterations) break;
    process.stdout.write("\n");
    await sleep(Math.max(0, o.delayMs - (Date.now() - started)));
  }
  return 0;
}

/** The terminal view: the screen redrawn each delay; keys change the order, q or ^C quits. */
async function interactiveTop(o: TopOptions, iterations: number): Promise<number> {
  let saved: Uint8Array | undefined;
  const keys: string[] = [];
  let wake: (() => void) | undefined;
  let quit = false;
  const onKey = (data: Buffer) => {
    for (const ch of data.toString("latin1")) keys.push(ch);
    wake?.();
  };
  const onSignal = () => {
    quit = true;
    wake?.();
  };
  const ttyIn = isatty(0);
  if (ttyIn) {
    saved = new Uint8Array(256);
    if (shim().nsh_tty_raw(0, ptr(saved)) !== 0) saved = undefined;
    process.stdin.on("data", onKey);
    process.stdin.resume();
  }
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  const restore = () => {
    if (saved) {
      shim().nsh_tty_restore(0, ptr(saved));
      saved = undefined;
    }
  };
  process.on("exit", restore);
  let prev = new Map<string, CgSample>();
  let message = "";
  try {
    for (let i = 0; !quit; ) {
      const started = Date.now();
      const r = refresh(o, prev);
      prev = r.samples;
      const lines = renderTop(r.rows, { tty: true, columns: process.stdout.columns, rows: process.stdout.rows, raw: o.raw });
      // home, clear; raw mode: lines end in CR LF
      process.stdout.write(`\x1b[H\x1b[2J${lines.join("\r\n")}\r\n${message}`);
      message = "";
      if (iterations && ++i >= iterations) break;
      // wait for the delay or a key
      let refreshNow = false;
      while (!quit && !refreshNow && Date.now() - started < o.delayMs) {
        if (!keys.length) {
          await new Promise<void>((res) => {
            wake = res;
            setTimeout(res, Math.max(0, o.delayMs - (Date.now() - started)));
          });
          wake = undefined;
        }
        while (keys.length) {
          const k = keys.shift()!;
          if (k === "q" || k === "\x03" || k === "\x04") quit = true;
          else if (k === " ") refreshNow = true;
          else if (ORDERS[k]) {
            o.order = ORDERS[k]!;
            refreshNow = true;
          } else message = `Unknown key '${k < " " ? `\\x${k.charCodeAt(0).toString(16)}` : k}'. Keys: p t c m i order, SPACE refresh, q quit.`;
        }
      }
    }
  } finally {
    if (ttyIn) {
      process.stdin.off("data", onKey);
      process.stdin.pause();
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    restore();
    process.off("exit", restore);
    process.stdout.write("\n");
  }
  return 0;
}
