// Getting into a running machine (shell, login) without systemd or D-Bus in
// the guest: a child joins the leader's cgroup and namespaces, forks once more
// to be inside its pid namespace, takes a pty from the container's own devpts,
// drops to the container's capability set, seccomp filter and the user, and
// execs. It makes itself non-dumpable before joining, so nothing in the
// container can reach spawnctl's own executable through /proc (runc
// CVE-2019-5736).
import { readlinkSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { closeQuietly, sealedMemfd, seqpacketPair } from "../sys/ffi.ts";
import { encodePlan } from "../sys/plan.ts";
import { driveChild, type Spawned } from "../container/spawn.ts";
import { supervisorFd } from "../container/supervisor-bin.ts";
import { CLONE, PR } from "../sys/consts.ts";
import type { Op, Plan } from "../sys/plan.ts";
import { SpawnctlError } from "../util/errors.ts";
import { resolveUser, statInRoot, type ResolvedUser } from "../util/tree.ts";
import type { CgroupFacts } from "../container/host.ts";
import { containerDir, machineCgroupRel } from "../cgroup/cgroup.ts";
import { loadFilter } from "../container/seccomp/load.ts";
import type { MachineState } from "../container/registry.ts";

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
  /** a cgroup below the machine's to run in ("run-u1a2b.service": run-in's), made by the caller */
  cgroupSub?: string;
  /** outlive the caller: no parent-death signal (run-in without --wait) */
  detached?: boolean;
}

/** The plan that joins a machine and runs a program in it. */
export function buildEnterPlan(st: MachineState, facts: CgroupFacts, joins: Array<[string, number]>, o: EnterOptions): Plan {
  const caps = BigInt(`0x${st.capability}`);
  const deathSig: Op[] = o.detached ? [] : [{ kind: "prctl", option: PR.SET_PDEATHSIG, arg2: 9, what: "setting the parent-death signal" }];
  const sub = o.cgroupSub ? `/${o.cgroupSub}` : "";
  const ops: Op[] = [
    { kind: "prctl", option: PR.SET_DUMPABLE, arg2: 0, what: "making the process non-dumpable" },
    ...deathSig,
    // nothing of spawnctl's open files goes along into the machine: only
    // stdio and the error channel (close-on-exec) stay
    { kind: "closeFrom", fd: 3 },
  ];
  // the machine's cgroups are joined by writing "0"
  // (the container's directories: its payload's in the hierarchies its init manages, in the payload layout)
  const p = !!st.payload;
  for (const h of facts.v1) ops.push({ kind: "write", path: `${containerDir(facts, `${h.mountpoint}/${machineCgroupRel(st.name)}`, p)}${sub}/tasks`, data: "0", mode: 0, inRoot: false, optional: !sub });
  if (st.unifiedCgroup) ops.push({ kind: "write", path: `${containerDir(facts, st.unifiedCgroup, p)}${sub}/cgroup.procs`, data: "0", mode: 0, inRoot: false, optional: !sub });
  // the mount namespace last: the other /proc/PID/ns paths are host paths
  for (const [name, flag] of joins) ops.push({ kind: "setns", path: `/proc/${st.leader}/ns/${name}`, nstype: flag });
  ops.push(
    { kind: "forkWait" },
    ...deathSig,
    { kind: "setRoot", path: "/" },
  );
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
  // the pty comes from the machine's own devpts once we are the user we run
  // as: its slave is then that user's (the guest's root, not the host's root
  // that shows as nobody under -U), as login, su and mesg expect
  if (o.pty) ops.push({ kind: "console", ptmx: "/dev/pts/ptmx", stdio: true });
  ops.push({ kind: "setsid", ctty: o.pty, cttyStdin: !o.pty });
  ops.push({ kind: "chdir", path: o.cwd, optional: true }, { kind: "sigreset" });
  const file = o.argv[0]!;
  ops.push({ kind: "exec", file, argv: [o.argv0 ?? file, ...o.argv.slice(1)], env: o.env, searchPath: !file.startsWith("/") });
  return { cloneFlags: 0, ops, root: `/proc/${st.leader}/root` };
}

/**
 * Run an enter plan in a process that is not a copy of spawnctl: the embedded
 * supervisor executable, from a sealed memfd, in its --run-plan mode. What
 * appears in the machine's PID namespace is that sealed memfd (its
 * /proc/PID/exe cannot be written, not even once every spawnctl process has
 * gone: runc's CVE-2019-5736), non-dumpable, with nothing open but stdio and
 * the channel back to us. `exited` resolves with its wait status.
 */
export function spawnEnter(plan: Plan, detached = false): { child: Spawned; exited: Promise<number> } {
  // with a pty of the machine's own (a console op), the caller's terminal is
  // never handed in: a process in the machine could reach it through
  // /proc/PID/fd before the pty replaces it, and push input into the host's
  // shell with TIOCSTI. Without one, stdio is the payload's data.
  const pty = plan.ops.some((op) => op.kind === "console");
  const stdio = pty || detached ? "ignore" : "inherit";
  const [ours, theirs] = seqpacketPair();
  let proc: ReturnType<typeof Bun.spawn>;
  const fds: number[] = [theirs];
  try {
    fds.push(supervisorFd(), sealedMemfd("spawnctl-plan", encodePlan(plan)));
    proc = Bun.spawn(["/proc/self/fd/3", "--run-plan", "4", "5"], {
      stdio: [stdio, stdio, stdio, fds[1]!, fds[2]!, theirs] as never,
      env: {},
    });
  } catch (e) {
    closeQuietly(ours);
    throw e;
  } finally {
    for (const fd of fds) closeQuietly(fd);
  }
  const p = proc;
  const exited = p.exited.then(() => {
    const sig = p.signalCode ? (osConstants.signals as Record<string, number>)[p.signalCode] ?? 9 : 0;
    return sig ? sig : ((p.exitCode ?? 1) & 0xff) << 8;
  });
  // Bun reaps its own child: the driver must not
  const child = driveChild(plan, p.pid, ours, {}, false);
  // a detached run goes on without us
  if (detached) p.unref();
  return { child, exited };
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

/**
 * Run a program in a running machine as `user`, with the caller's stdio and
 * no pty (its output is the caller's data: journalctl, systemd-analyze,
 * systemd-run of the guest's own); resolves with the exit status as a shell
 * gives it (128+N for a signal).
 */
export async function runInMachine(st: MachineState, facts: CgroupFacts, user: string, argv: string[], extraEnv: string[] = []): Promise<number> {
  const u = machineUser(st, user);
  const plan = buildEnterPlan(st, facts, namespacesToJoin(st.leader), { user: u, env: enterEnvironment(u, extraEnv, false), argv, pty: false, cwd: u.home || "/" });
  const { exited } = spawnEnter(plan);
  const status = await exited;
  return status & 0x7f ? 128 + (status & 0x7f) : (status >> 8) & 0xff;
}

/** Which of these programs the machine's tree (a running machine's root, or an image directory) has, looked up inside it. */
export function treeHas(root: string, paths: string[]): string | undefined {
  return paths.find((p) => statInRoot(root, p)?.isFile());
}
