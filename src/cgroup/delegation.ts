// Which of a machine's cgroup files the container's root gets (its
// delegation, as systemd hands a unit's cgroup to a container's init).
import type { CgroupFacts } from "./facts.ts";
import { containerDir, machineCgroupPaths } from "./cgroup.ts";

// what a delegated cgroup's owner must be able to write (systemd's list), by
// the kind of hierarchy: cgroup2, and the v1 hierarchies the container's init
// manages (name=systemd); in the other v1 ones the child only joins (tasks)
const DELEGATED_FILES = {
  v2: ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"],
  managed: ["cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release"],
  joined: [],
};

/**
 * What handing the machine's cgroups to the container's root changes: in
 * the hierarchies its init manages (cgroup2, and name=systemd on v1/hybrid
 * hosts) the directory and its delegation files. The others it only joins,
 * which the child does before it leaves the host's root (so nothing of them
 * is handed over).
 */
export function delegationPaths(paths: string[], kind: (path: string) => keyof typeof DELEGATED_FILES): string[] {
  const all: string[] = [];
  for (const dir of paths) {
    const k = kind(dir);
    if (k !== "joined") all.push(dir);
    for (const f of DELEGATED_FILES[k]) all.push(`${dir}/${f}`);
  }
  return all;
}

/** delegationPaths of machine `machine`'s cgroups on this host's layout (its payload's, in the payload layout). */
export function machineDelegation(facts: CgroupFacts, machine: string, payload = false): string[] {
  return delegationPaths(machineCgroupPaths(facts, machine).map((p) => containerDir(facts, p, payload)), (p) => {
    if (facts.unified && p.startsWith(`${facts.unified}/`)) return "v2";
    return facts.v1.some((h) => !!h.name && p.startsWith(`${h.mountpoint}/`)) ? "managed" : "joined";
  });
}
