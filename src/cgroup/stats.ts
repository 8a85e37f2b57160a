// What systemd-cgtop shows of a cgroup: tasks, CPU, memory and IO, read
// from the files of cgroup v2 (cpu.stat, memory.current, io.stat,
// pids.current) or v1 (cpuacct.usage, memory.usage_in_bytes,
// blkio.throttle.io_service_bytes[_recursive], pids.current), whichever the
// host has. Parsing is apart from reading so fixture text tests it.
import { readFileSync } from "node:fs";
import type { MachineDirs } from "./tree.ts";
import { parsePids } from "./tree.ts";

export interface CgSample {
  /** when it was taken, in ns of a monotonic clock */
  at: number;
  /** CPU time used, ns */
  cpuNs?: number;
  memory?: number;
  tasks?: number;
  ioRead?: number;
  ioWrite?: number;
}

/** cgroup2 cpu.stat: usage_usec, in ns. */
export function parseCpuStat(text: string): number | undefined {
  const m = /^usage_usec (\d+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** A file holding one number (cpuacct.usage, memory.current, pids.current, ...). */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

/** cgroup2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device, summed. */
export function parseIoStat(text: string): { read: number; write: number } {
  let read = 0, write = 0;
  for (const line of text.split("\n")) {
    for (const kv of line.trim().split(/\s+/).slice(1)) {
      const [k, v] = kv.split("=");
      if (k === "rbytes") read += Number(v) || 0;
      else if (k === "wbytes") write += Number(v) || 0;
    }
  }
  return { read, write };
}

/** cgroup v1 blkio.throttle.io_service_bytes: "MAJ:MIN Read N" ... lines per device, and a Total. */
export function parseBlkio(text: string): { read: number; write: number } {
  let read = 0, write = 0;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3 || !/^\d+:\d+$/.test(f[0]!)) continue;
    if (f[1] === "Read") read += Number(f[2]) || 0;
    else if (f[1] === "Write") write += Number(f[2]) || 0;
  }
  return { read, write };
}

export type Reader = (path: string) => string | undefined;

export const readHost: Reader = (p) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
};

/** The directory of `rel` (a sub-group path, "" for the machine's own) under a machine directory. */
const at = (dir: string | undefined, rel: string) => (dir === undefined ? undefined : rel ? `${dir}/${rel}` : dir);

/**
 * One sample of a machine's cgroup (or of its sub-group `rel`): each value
 * from cgroup2 where the unified hierarchy has the controller enabled, else
 * from the v1 hierarchy that has it. A value neither has stays undefined.
 * Without a pids.current to read, tasks are what `count` says (the
 * processes of the group and every group below it).
 */
export function readSample(dirs: MachineDirs, rel: string, now: number, read: Reader = readHost, count?: () => number | undefined): CgSample {
  const s: CgSample = { at: now };
  const u = at(dirs.unified, rel);
  const v1 = (c: string) => at(dirs.controllers.get(c), rel);
  const num = (p: string | undefined) => (p === undefined ? undefined : parseNumber(read(p) ?? ""));
  // CPU: cgroup2's cpu.stat always has usage_usec; v1's cpu.stat has no such line
  s.cpuNs = (u !== undefined ? parseCpuStat(read(`${u}/cpu.stat`) ?? "") : undefined) ?? num(v1("cpuacct") && `${v1("cpuacct")}/cpuacct.usage`);
  s.memory = num(u && `${u}/memory.current`) ?? num(v1("memory") && `${v1("memory")}/memory.usage_in_bytes`);
  s.tasks = num(u && `${u}/pids.current`) ?? num(v1("pids") && `${v1("pids")}/pids.current`);
  if (s.tasks === undefined && count) s.tasks = count();
  const io = u !== undefined ? read(`${u}/io.stat`) : undefined;
  if (io !== undefined) {
    const r = parseIoStat(io);
    s.ioRead = r.read;
    s.ioWrite = r.write;
  } else {
    const b = v1("blkio");
    // the _recursive file counts the sub-groups a guest made too
    const text = b && (read(`${b}/blkio.throttle.io_service_bytes_recursive`) ?? read(`${b}/blkio.throttle.io_service_bytes`));
    if (text !== undefined && text !== "") {
      const r = parseBlkio(text);
      s.ioRead = r.read;
      s.ioWrite = r.write;
    }
  }
  return s;
}

/** The processes of a group and every group below it (for hosts without the pids controller). */
export function countProcesses(dir: string, readDir: (d: string) => string[], read: Reader = readHost): number {
  let n = parsePids(read(`${dir}/cgroup.procs`) ?? "").length;
  for (const sub of readDir(dir)) n += countProcesses(`${dir}/${sub}`, readDir, read);
  return n;
}

export interface TopRow {
  path: string;
  tasks?: number;
  /** share of one CPU, 1 = 100% */
  cpu?: number;
  memory?: number;
  inBps?: number;
  outBps?: number;
}

/** A row from two samples of one group; the first iteration (no previous sample) has no rates. */
export function topRow(path: string, cur: CgSample, prev?: CgSample): TopRow {
  const row: TopRow = { path, tasks: cur.tasks, memory: cur.memory };
  if (prev && cur.at > prev.at) {
    const dt = cur.at - prev.at;
    if (cur.cpuNs !== undefined && prev.cpuNs !== undefined && cur.cpuNs >= prev.cpuNs) row.cpu = (cur.cpuNs - prev.cpuNs) / dt;
    const sec = dt / 1e9;
    if (cur.ioRead !== undefined && prev.ioRead !== undefined && cur.ioRead >= prev.ioRead) row.inBps = (cur.ioRead - prev.ioRead) / sec;
    if (cur.ioWrite !== undefined && prev.ioWrite !== undefined && cur.ioWrite >= prev.ioWrite) row.outBps = (cur.ioWrite - prev.ioWrite) / sec;
  }
  return row;
}

export type TopOrder = "cpu" | "memory" | "tasks" | "io" | "path";

/** Rows ordered as systemd-cgtop orders them: a parent before its children, then by the key, then by path. */
export function sortRows(rows: TopRow[], order: TopOrder): TopRow[] {
  const desc = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? b - a : a !== undefined ? -1 : b !== undefined ? 1 : 0);
  const key = (r: TopRow): number | undefined =>
    order === "cpu" ? r.cpu : order === "memory" ? r.memory : order === "tasks" ? r.tasks : order === "io" ? (r.inBps === undefined && r.outBps === undefined ? undefined : (r.inBps ?? 0) + (r.outBps ?? 0)) : undefined;
  const within = (a: string, b: string) => b === "/" || a.startsWith(`${b}/`);
  return [...rows].sort((a, b) => {
    if (within(a.path, b.path) && a.path !== b.path) return 1;
    if (within(b.path, a.path) && a.path !== b.path) return -1;
    return desc(key(a), key(b)) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  });
}

/** Bytes as systemd prints them: 1023B, 1.0K, 4.5M, 12.3G (one decimal). */
export function formatCgBytes(n: number): string {
  const units = ["B", "K", "M", "G", "T", "P", "E"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)}B` : `${v.toFixed(1)}${units[i]}`;
}

export interface RenderOptions {
  /** a terminal: a header line, the path column fitted to `columns`, at most `rows` lines */
  tty: boolean;
  columns?: number;
  rows?: number;
  raw?: boolean;
}

/** The table systemd-cgtop prints: Control Group, Tasks, %CPU, Memory, Input/s, Output/s. */
export function renderTop(rows: TopRow[], o: RenderOptions): string[] {
  const bytes = (v: number | undefined) => (v === undefined ? "-" : o.raw ? String(Math.round(v)) : formatCgBytes(v));
  const pathWidth = o.tty ? Math.max(10, (o.columns ?? 80) - 36 - 6) : Math.max(3, ...rows.map((r) => r.path.length));
  const ellipsize = (s: string) => (s.length <= pathWidth ? s : `${s.slice(0, Math.ceil((pathWidth - 1) / 3))}…${s.slice(s.length - (pathWidth - 1 - Math.ceil((pathWidth - 1) / 3)))}`);
  const out: string[] = [];
  if (o.tty) out.push(`${"Control Group".padEnd(pathWidth)} ${"Tasks".padStart(7)} ${"%CPU".padStart(6)} ${"Memory".padStart(8)} ${"Input/s".padStart(8)} ${"Output/s".padStart(8)}`);
  const limit = o.tty ? Math.max(10, o.rows ?? 24) - 6 : Infinity;
  for (const r of rows.slice(0, limit)) {
    out.push(
      `${ellipsize(r.path).padEnd(pathWidth)} ${(r.tasks === undefined ? "-" : String(r.tasks)).padStart(7)} ${(r.cpu === undefined ? "-" : (r.cpu * 100).toFixed(1)).padStart(6)} ${bytes(r.memory).padStart(8)} ${bytes(r.inBps).padStart(8)} ${bytes(r.outBps).padStart(8)}`,
    );
  }
  return out;
}
