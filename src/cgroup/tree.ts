// A machine's cgroup subtree as data, and drawn the way systemd-cgls draws
// one: the processes of a group first (pids right-aligned, lowest first),
// then its sub-groups, with ├─ └─ │ branches. Reading and drawing are apart
// so the drawing is tested with fixture trees.
import { readdirSync, readFileSync } from "node:fs";
import type { CgroupFacts } from "./facts.ts";

export interface CgNode {
  /** the directory's name ("init.scope"); the root's is "/" */
  name: string;
  /** the directory on the host */
  dir: string;
  pids: number[];
  children: CgNode[];
}

/** The processes listed in a cgroup directory (cgroup.procs; v1 may repeat one). */
export function parsePids(text: string): number[] {
  const set = new Set<number>();
  for (const l of text.split("\n")) {
    const n = Number(l.trim());
    if (l.trim() && Number.isInteger(n) && n > 0) set.add(n);
  }
  return [...set].sort((a, b) => a - b);
}

/** A cgroup directory and everything under it, sub-groups sorted by name. */
export function readCgroupTree(dir: string, name = "/"): CgNode {
  let pids: number[] = [];
  try {
    pids = parsePids(readFileSync(`${dir}/cgroup.procs`, "utf8"));
  } catch {
    /* gone, or not a cgroup */
  }
  let subs: string[] = [];
  try {
    subs = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch {
    /* gone */
  }
  return { name, dir, pids, children: subs.map((s) => readCgroupTree(`${dir}/${s}`, s)) };
}

export function treePids(n: CgNode): number[] {
  return [...n.pids, ...n.children.flatMap(treePids)];
}

/** How many groups of the tree hold processes, and how many of them are below its root. */
export function treeWeight(n: CgNode): { populated: number; nested: number } {
  let populated = n.pids.length ? 1 : 0;
  let nested = 0;
  for (const c of n.children) {
    const w = treeWeight(c);
    populated += w.populated;
    nested += w.populated;
  }
  return { populated, nested };
}

/**
 * The machine's directories in each hierarchy the host has, by what the
 * hierarchy is: "systemd" (the named v1 one), "unified" (cgroup2), or a v1
 * controller ("memory", "cpuacct", ...; a co-mounted "cpu,cpuacct" answers
 * to both).
 */
export interface MachineDirs {
  systemd?: string;
  unified?: string;
  /** v1 controller → the machine's directory in that controller's hierarchy */
  controllers: Map<string, string>;
  /** every directory, in the order the host's hierarchies are listed */
  all: string[];
}

export function machineDirs(facts: CgroupFacts, cgroups: string[], unifiedCgroup?: string): MachineDirs {
  const out: MachineDirs = { controllers: new Map(), all: [] };
  const under = (dir: string, mount: string) => dir === mount || dir.startsWith(`${mount}/`);
  for (const dir of cgroups) {
    if (out.all.includes(dir)) continue;
    out.all.push(dir);
    if (facts.unified && under(dir, facts.unified) && !facts.v1.some((h) => h.mountpoint.startsWith(`${facts.unified}/`) && under(dir, h.mountpoint))) {
      out.unified = dir;
      continue;
    }
    const h = facts.v1.filter((v) => under(dir, v.mountpoint)).sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
    if (!h) continue;
    if (h.name === "systemd") out.systemd = dir;
    for (const c of h.controllers) if (!out.controllers.has(c)) out.controllers.set(c, dir);
  }
  if (unifiedCgroup) {
    out.unified = unifiedCgroup;
    if (!out.all.includes(unifiedCgroup)) out.all.push(unifiedCgroup);
  }
  return out;
}

/**
 * The tree to show: the one whose processes sit deepest in sub-groups (a
 * systemd guest makes init.scope, system.slice/... in the hierarchy it
 * manages: name=systemd on a v1 or hybrid host, cgroup2 otherwise). On a
 * tie the named systemd hierarchy wins, then cgroup2, then any other.
 */
export function pickTree(candidates: Array<{ kind: "systemd" | "unified" | "other"; tree: CgNode }>): CgNode | undefined {
  const rank = { systemd: 0, unified: 1, other: 2 };
  const scored = candidates.map((c) => ({ ...c, w: treeWeight(c.tree) }));
  scored.sort((a, b) => b.w.nested - a.w.nested || b.w.populated - a.w.populated || rank[a.kind] - rank[b.kind]);
  return scored[0]?.tree;
}

export interface ProcInfo {
  /** the command line, or [comm] for a process without one */
  cmdline: string;
  kernel: boolean;
}

export interface DrawOptions {
  /** show empty groups too (-a) */
  all?: boolean;
  /** show kernel threads (-k) */
  kernelThreads?: boolean;
  /** cut lines to this many columns (a terminal without -l) */
  width?: number;
}

/** The lines below a tree's root: its processes, then its non-empty sub-groups. */
export function drawCgroupTree(root: CgNode, info: (pid: number) => ProcInfo | undefined, o: DrawOptions = {}, prefix = ""): string[] {
  const lines: string[] = [];
  const cut = (s: string) => (o.width && s.length > o.width ? `${s.slice(0, Math.max(0, o.width - 1))}…` : s);
  const empty = (n: CgNode): boolean => n.pids.length === 0 && n.children.every(empty);
  const procs = root.pids.map((p) => ({ pid: p, i: info(p) })).filter((p) => p.i && (o.kernelThreads || !p.i.kernel));
  const subs = root.children.filter((c) => o.all || !empty(c));
  const width = String(Math.max(0, ...procs.map((p) => p.pid))).length;
  procs.forEach((p, k) => {
    const last = k === procs.length - 1 && subs.length === 0;
    lines.push(cut(`${prefix}${last ? "└─" : "├─"}${String(p.pid).padStart(width)} ${p.i!.cmdline}`));
  });
  subs.forEach((c, k) => {
    const last = k === subs.length - 1;
    lines.push(cut(`${prefix}${last ? "└─" : "├─"}${c.name}`));
    lines.push(...drawCgroupTree(c, info, o, `${prefix}${last ? "  " : "│ "}`));
  });
  return lines;
}

/** What systemd-cgls shows for a process, read from /proc. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const args = raw.split("\0");
    while (args.length && args[args.length - 1] === "") args.pop();
    if (args.length) return { cmdline: args.join(" "), kernel: false };
    // no command line: a kernel thread, a zombie, or a process between fork
    // and exec; shown by name in brackets
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const flags = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[6]);
    return { cmdline: `[${comm}]`, kernel: (flags & 0x00200000) !== 0 };
  } catch {
    return undefined;
  }
}
