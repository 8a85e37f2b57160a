// A container's cgroup on the host: one directory per mounted hierarchy
// (cgroup v2, or every v1 hierarchy plus the unified one on hybrid hosts),
// named <hierarchy>/spawnctl/<machine>. The container's init is moved in
// before it unshares its cgroup namespace, so inside it sees its own
// cgroup as the root. On exit every process is killed and the directories
// are removed, sub-cgroups the container made included.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import type { CgroupFacts } from "./facts.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";

export const CGROUP_PARENT = "spawnctl";

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
  return hierarchyRoots(facts).map((r) => `${r}/${CGROUP_PARENT}/${machine}`);
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
  const paths = roots.map((r) => `${r}/${CGROUP_PARENT}/${machine}`);
  const unified = facts.unified ? `${facts.unified}/${CGROUP_PARENT}/${machine}` : undefined;
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
export function createMachineCgroup(facts: CgroupFacts, machine: string): MachineCgroup {
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
