// A container's cgroup on the host: one directory per mounted hierarchy
// (cgroup v2, or every v1 hierarchy plus the unified one on hybrid hosts),
// named <hierarchy>/machine.slice/machine-<escaped name>.scope, where
// systemd puts a registered machine and where tools that report on machines
// look (spawnctl before named it <hierarchy>/spawnctl/<machine>; the stale
// collector still clears that layout). The container's init is moved in
// before it unshares its cgroup namespace, so inside it sees its own
// cgroup as the root. On exit every process is killed and the directories
// are removed, sub-cgroups the container made included.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import type { CgroupFacts } from "./facts.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";

/** systemd's slice for machines: the parent of every machine's cgroup. */
export const CGROUP_PARENT = "machine.slice";
/** the parent spawnctl used before, still collected when stale */
export const LEGACY_PARENT = "spawnctl";

/** A string as a unit name part, as systemd-escape makes it ("-" is "\x2d", "/" is "-"). */
export function escapeUnit(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "/") out += "-";
    else if (/[A-Za-z0-9:_]/.test(c) || (c === "." && i > 0)) out += c;
    else for (const b of Buffer.from(c)) out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** escapeUnit's inverse. */
export function unescapeUnit(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "x" && /^[0-9a-f]{2}$/i.test(s.slice(i + 2, i + 4))) {
      bytes.push(Number.parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (s[i] === "-") bytes.push(0x2f);
    else bytes.push(...Buffer.from(s[i]!));
  }
  return Buffer.from(bytes).toString();
}

/** The scope unit a machine's cgroup is named after: machine-<escaped name>.scope. */
export function machineScope(machine: string): string {
  return `machine-${escapeUnit(machine)}.scope`;
}

/** The machine a scope's name (machine-<escaped>.scope) stands for, if it is one. */
export function scopeMachine(dir: string): string | undefined {
  return dir.startsWith("machine-") && dir.endsWith(".scope") ? unescapeUnit(dir.slice(8, -6)) : undefined;
}

/**
 * Where the container itself runs below its machine's cgroup, in the
 * hierarchies its init manages (cgroup2, and name=systemd on v1/hybrid
 * hosts), when it runs as a service's payload (--keep-unit, what `start`
 * passes, as systemd-nspawn@.service does): nspawn's layout, so that the
 * guest's manager owns a cgroup of its own whose attributes the host's side
 * does not also write.
 */
export const PAYLOAD = "payload";

/** Is this hierarchy one the container's init manages (its cgroups are delegated there)? */
export function managedHierarchy(facts: CgroupFacts, dir: string): boolean {
  if (facts.unified && (dir === facts.unified || dir.startsWith(`${facts.unified}/`))) return true;
  return facts.v1.some((h) => !!h.name && (dir === h.mountpoint || dir.startsWith(`${h.mountpoint}/`)));
}

/** A machine's directory where its container runs: the payload below it in a managed hierarchy, if it has one. */
export function containerDir(facts: CgroupFacts, dir: string, payload: boolean): string {
  return payload && managedHierarchy(facts, dir) ? `${dir}/${PAYLOAD}` : dir;
}

/** A machine's cgroup relative to a hierarchy's root: machine.slice/machine-<escaped>.scope. */
export function machineCgroupRel(machine: string): string {
  return `${CGROUP_PARENT}/${machineScope(machine)}`;
}

export interface MachineCgroup {
  /** the directories, one per hierarchy */
  paths: string[];
  /** the cgroup2 directory, if any (for cgroup.kill and cgroup.events) */
  unified?: string;
  attach(pid: number): void;
  /** every pid in the cgroup (deduplicated over hierarchies) */
  pids(): number[];
  kill(signal: number): void;
  destroy(): void;
}

export function hierarchyRoots(facts: CgroupFacts): string[] {
  const roots = facts.v1.map((h) => h.mountpoint);
  if (facts.unified) roots.push(facts.unified);
  return roots;
}

export function machineCgroupPaths(facts: CgroupFacts, machine: string): string[] {
  return hierarchyRoots(facts).map((r) => `${r}/${machineCgroupRel(machine)}`);
}

function readPids(dir: string): number[] {
  try {
    return readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** depth-first list of a cgroup and its descendants, children first */
export function subtree(dir: string): string[] {
  const out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return out;
  }
  for (const e of entries) out.push(...subtree(`${dir}/${e}`));
  out.push(dir);
  return out;
}

function rmTree(dir: string): void {
  for (const d of subtree(dir)) {
    try {
      rmdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") throw e;
    }
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function openMachineCgroup(facts: CgroupFacts, machine: string): MachineCgroup {
  const roots = hierarchyRoots(facts);
  const paths = roots.map((r) => `${r}/${machineCgroupRel(machine)}`);
  const unified = facts.unified ? `${facts.unified}/${machineCgroupRel(machine)}` : undefined;
  const cg: MachineCgroup = {
    paths,
    unified,
    attach(pid) {
      for (const p of paths) {
        try {
          writeFileSync(`${p}/cgroup.procs`, `${pid}\n`);
        } catch (e) {
          throw new SpawnctlError(`moving the container into cgroup ${p}: ${fsMessage(e)}`, { cause: e });
        }
      }
    },
    pids() {
      const all = new Set<number>();
      for (const p of paths) for (const d of subtree(p)) for (const pid of readPids(d)) all.add(pid);
      return [...all];
    },
    kill(signal) {
      if (signal === 9 && unified && existsSync(`${unified}/cgroup.kill`)) {
        try {
          writeFileSync(`${unified}/cgroup.kill`, "1");
          return;
        } catch {
          /* fall back to signalling each process */
        }
      }
      for (const pid of cg.pids()) {
        try {
          process.kill(pid, signal);
        } catch {
          /* gone already */
        }
      }
    },
    destroy() {
      const errors: string[] = [];
      for (let attempt = 0; attempt < 200; attempt++) {
        errors.length = 0;
        for (const p of paths) {
          try {
            rmTree(p);
          } catch (e) {
            errors.push(`${p}: ${fsMessage(e)}`);
          }
        }
        if (errors.length === 0) break;
        // processes still leaving (or the kernel still tearing them down)
        cg.kill(9);
        sleepMs(attempt < 20 ? 1 : 10);
      }
      // the parent directory goes once the last machine leaves; another
      // container may be starting at the same moment, so failure is fine
      for (const r of roots) {
        try {
          rmdirSync(`${r}/${CGROUP_PARENT}`);
        } catch {
          /* still in use */
        }
      }
      if (errors.length > 0) throw new SpawnctlError(`removing the container's cgroup: ${errors.join("; ")}`);
    },
  };
  return cg;
}

/** Create the machine's cgroup in every hierarchy; a stale one from a crashed run is removed first. */
export function createMachineCgroup(facts: CgroupFacts, machine: string, payload = false): MachineCgroup {
  const cg = openMachineCgroup(facts, machine);
  const created: string[] = [];
  try {
    for (const p of cg.paths) {
      if (existsSync(p)) {
        if (subtree(p).some((d) => readPids(d).length > 0)) {
          throw new SpawnctlError(`cgroup ${p} already has processes: is machine ${machine} running already?`);
        }
        rmTree(p);
      }
      for (let i = 0; ; i++) {
        try {
          mkdirSync(p, { recursive: true });
          break;
        } catch (e) {
          // the parent may have been removed by a machine that just stopped
          if ((e as NodeJS.ErrnoException).code === "ENOENT" && i < 5) continue;
          throw e;
        }
      }
      created.push(p);
      inheritCpuset(p);
      if (payload && managedHierarchy(facts, p)) mkdirSync(`${p}/${PAYLOAD}`);
    }
    if (facts.layout === "unified" && facts.unified) enableControllers(facts.unified);
  } catch (e) {
    for (const p of created.reverse()) {
      try {
        rmdirSync(p);
      } catch {
        /* best effort */
      }
    }
    if (e instanceof SpawnctlError) throw e;
    throw new SpawnctlError(`creating cgroup for machine ${machine}: ${fsMessage(e)}`, { cause: e });
  }
  return cg;
}

/** A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and
 * refuses tasks (ENOSPC) until they are set: copy them from the parent. */
export function inheritCpuset(dir: string): void {
  const chain: string[] = [];
  for (let d = dir; existsSync(`${d}/cpuset.cpus`) && d.includes(`/${CGROUP_PARENT}`); d = d.slice(0, d.lastIndexOf("/"))) chain.unshift(d);
  for (const d of chain) {
    const parent = d.slice(0, d.lastIndexOf("/"));
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      try {
        if (readFileSync(`${d}/${f}`, "utf8").trim() === "") writeFileSync(`${d}/${f}`, readFileSync(`${parent}/${f}`, "utf8").trim());
      } catch {
        /* not a cpuset hierarchy */
      }
    }
  }
}

/** On a pure cgroup v2 host, hand the usual controllers down to the machine's cgroup. */
function enableControllers(root: string): void {
  for (const dir of [root, `${root}/${CGROUP_PARENT}`]) {
    try {
      const avail = readFileSync(`${dir}/cgroup.controllers`, "utf8").trim().split(/\s+/).filter(Boolean);
      const want = avail.filter((c) => ["cpu", "io", "memory", "pids"].includes(c));
      if (want.length) writeFileSync(`${dir}/cgroup.subtree_control`, want.map((c) => `+${c}`).join(" "));
    } catch {
      /* the host's manager owns the root; limits then stay unavailable */
    }
  }
}
