// Getting into a running machine (shell, login) without systemd or D-Bus in
// the guest: a child joins the leader's cgroup and namespaces, forks once more
// to be inside its pid namespace, takes a pty from the container's own devpts,
// drops to the container's capability set, seccomp filter and the user, and
// execs. It makes itself non-dumpable before joining, so nothing in the
// container can reach spawnctl's own executable through /proc (runc
// CVE-2019-5736).
import { constants, openSync, readlinkSync } from "node:fs";
import { CLONE, PR } from "../sys/consts.ts";
import type { Op, Plan } from "../sys/plan.ts";
import { SpawnctlError } from "../util/errors.ts";
import { resolveUser, type ResolvedUser } from "../util/tree.ts";
import type { CgroupFacts } from "../container/host.ts";
import { CGROUP_PARENT } from "../cgroup/cgroup.ts";
import { loadFilter } from "../container/seccomp/load.ts";
import type { MachineState } from "./registry.ts";

// the user namespace first: it owns the others, and joining it gives the
// capabilities in it that joining them needs
const NAMESPACES: Array<[name: string, flag: number]> = [
  ["user", CLONE.NEWUSER], ["cgroup", CLONE.NEWCGROUP], ["ipc", CLONE.NEWIPC], ["uts", CLONE.NEWUTS], ["net", CLONE.NEWNET], ["pid", CLONE.NEWPID], ["mnt", CLONE.NEWNS],
];

/** The namespaces of `pid` that differ from ours. */
export function namespacesToJoin(pid: number): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [name, flag] of NAMESPACES) {
    let theirs: string;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/${name}`);
    } catch {
      throw new SpawnctlError(`The machine's leader (pid ${pid}) is gone.`);
    }
    if (theirs !== readlinkSync(`/proc/self/ns/${name}`)) out.push([name, flag]);
  }
  return out;
}

export interface EnterOptions {
  user: ResolvedUser;
  env: string[];
  /** program and arguments; the first is looked up in PATH */
  argv: string[];
  /** argv[0] to show (a login shell's "-sh") */
  argv0?: string;
  pty: boolean;
  cwd: string;
}

/** The plan that joins a machine and runs a program in it. */
export function buildEnterPlan(st: MachineState, facts: CgroupFacts, joins: Array<[string, number]>, o: EnterOptions): Plan {
  const caps = BigInt(`0x${st.capability}`);
  const ops: Op[] = [
    { kind: "prctl", option: PR.SET_DUMPABLE, arg2: 0, what: "making the process non-dumpable" },
    { kind: "prctl", option: PR.SET_PDEATHSIG, arg2: 9, what: "setting the parent-death signal" },
    // nothing of spawnctl's open files goes along into the machine: only
    // stdio and the error channel (close-on-exec) stay
    { kind: "closeFrom", fd: 3 },
  ];
  // cgroup v1 hierarchies are joined by writing "0" (the v2 one at clone time)
  for (const h of facts.v1) ops.push({ kind: "write", path: `${h.mountpoint}/${CGROUP_PARENT}/${st.name}/tasks`, data: "0", mode: 0, inRoot: false, optional: true });
  // the mount namespace last: the other /proc/PID/ns paths are host paths
  for (const [name, flag] of joins) ops.push({ kind: "setns", path: `/proc/${st.leader}/ns/${name}`, nstype: flag });
  ops.push(
    { kind: "forkWait" },
    { kind: "prctl", option: PR.SET_PDEATHSIG, arg2: 9, what: "setting the parent-death signal" },
    { kind: "setRoot", path: "/" },
  );
  if (o.pty) ops.push({ kind: "console", ptmx: "/dev/pts/ptmx", stdio: true });
  ops.push({ kind: "setsid", ctty: o.pty, cttyStdin: !o.pty });
  ops.push({ kind: "capbset", keep: caps });
  ops.push({ kind: "seccomp", program: loadFilter(caps, [], []) });
  if (o.user.uid !== 0 || o.user.gid !== 0) {
    ops.push({ kind: "setgroups", gids: o.user.groups }, { kind: "setgid", gid: o.user.gid }, { kind: "setuid", uid: o.user.uid }, { kind: "caps", set: 0n, ambient: 0n });
  } else {
    ops.push({ kind: "setgroups", gids: [] });
    // the host's root is nobody in a user namespace: become its root
    if (joins.some(([n]) => n === "user")) ops.push({ kind: "setgid", gid: 0 }, { kind: "setuid", uid: 0 });
    ops.push({ kind: "caps", set: caps, ambient: 0n });
  }
  ops.push({ kind: "chdir", path: o.cwd, optional: true }, { kind: "sigreset" });
  const file = o.argv[0]!;
  ops.push({ kind: "exec", file, argv: [o.argv0 ?? file, ...o.argv.slice(1)], env: o.env, searchPath: !file.startsWith("/") });
  return { cloneFlags: 0, ops, root: `/proc/${st.leader}/root` };
}

/** The v2 cgroup of the machine, opened for CLONE_INTO_CGROUP (or undefined). */
export function machineCgroupFd(st: MachineState): number | undefined {
  if (!st.unifiedCgroup) return undefined;
  try {
    return openSync(st.unifiedCgroup, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return undefined;
  }
}

/** Look a user up in the running machine's own /etc/passwd. */
export function machineUser(st: MachineState, user: string): ResolvedUser {
  const root = `/proc/${st.leader}/root`;
  if (user === "root" || user === "0") return resolveUser(root, "root") ?? { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", groups: [] };
  const u = resolveUser(root, user);
  if (!u) throw new SpawnctlError(`Failed to resolve user ${user} in machine ${st.name}.`);
  return u;
}

export function enterEnvironment(u: ResolvedUser, extra: string[], pty: boolean): string[] {
  const env = new Map<string, string>([
    ["PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    ["HOME", u.home],
    ["USER", u.name],
    ["LOGNAME", u.name],
    ["SHELL", u.shell],
    ["TERM", pty ? process.env.TERM || "vt220" : "dumb"],
    ["container", "systemd-nspawn"],
  ]);
  for (const a of extra) {
    const eq = a.indexOf("=");
    if (eq > 0) env.set(a.slice(0, eq), a.slice(eq + 1));
    else if (process.env[a] !== undefined) env.set(a, process.env[a]!);
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}
