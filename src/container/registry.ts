// The registry of running machines, instead of systemd-machined: one JSON
// state file per machine under /run/spawnctl/machines, written atomically,
// and a lock file held (flock) by the machine's supervisor for as long as it
// runs. The leader is identified by pid and start time, so a recycled pid is
// never mistaken for the machine.
import { MACHINES_DIR } from "../cgroup/gc.ts";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { LOCK_EX, LOCK_NB, LOCK_UN, flock, strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import { lazySchema, parseState } from "../util/state.ts";

export { MACHINES_DIR };

export interface MachineState {
  name: string;
  class: "container";
  /** "spawnctl" for background machines, "spawnctl-run" for foreground ones */
  service: string;
  leader: number;
  leaderStart: string;
  supervisor: number;
  supervisorStart: string;
  root: string;
  /** the image name, for restarting */
  image?: string;
  uuid: string;
  /** microseconds since the epoch */
  since: number;
  cgroups: string[];
  unifiedCgroup?: string;
  killSignal: number;
  /** what `poweroff` sends: the machine's KillSignal= when set, else SIGRTMIN+4 */
  poweroffSignal?: number;
  /** the capability bounding set, hex */
  capability: string;
  /** the user namespace's range (container uid 0 = host uid uidShift), if any */
  uidShift?: number;
  uidRange?: number;
  privateNetwork: boolean;
  netns?: boolean;
  console?: { socket: string; log: string };
  /** lock files held through inherited fds (released by the clean-up process) */
  locks?: Array<{ fd: number; path: string }>;
  netifs?: string[];
  boot: boolean;
  /** spawnctl start arguments, for a restart after reboot */
  startArgs?: string[];
  /** the container runs in a payload cgroup below the machine's, in the hierarchies its init manages */
  payload?: boolean;
}

export function statePath(name: string): string {
  return `${MACHINES_DIR}/${name}.json`;
}
export function lockPath(name: string): string {
  return `${MACHINES_DIR}/${name}.lock`;
}
/** When a --notify-ready machine said READY=1 (µs since the epoch, as text); gone with its state. */
export function readyPath(name: string): string {
  return `${MACHINES_DIR}/${name}.ready`;
}
export function consoleSocket(name: string): string {
  return `${MACHINES_DIR}/${name}.console.sock`;
}
export function consoleLog(name: string): string {
  return `/var/log/spawnctl/${name}.console`;
}

/** start time of a process (field 22 of /proc/PID/stat), or undefined if it is gone (a zombie is gone) */
export function processStart(pid: number): string | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    if (f[0] === "Z" || f[0] === "X") return undefined;
    return f[19];
  } catch {
    return undefined;
  }
}

export function ensureDir(): void {
  mkdirSync(MACHINES_DIR, { recursive: true, mode: 0o755 });
}

export function writeState(st: MachineState): void {
  ensureDir();
  const p = statePath(st.name);
  const tmp = `${p}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(st, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, p);
}

/** The schema of a state file (checked against MachineState by the compiler, below). */
const stateSchema = lazySchema((z) => {
  const lock = z.object({ fd: z.number(), path: z.string() });
  return z.object({
    name: z.string(),
    class: z.literal("container"),
    service: z.string(),
    leader: z.number(),
    leaderStart: z.string(),
    supervisor: z.number(),
    supervisorStart: z.string(),
    root: z.string(),
    image: z.optional(z.string()),
    uuid: z.string(),
    since: z.number(),
    cgroups: z.array(z.string()),
    unifiedCgroup: z.optional(z.string()),
    killSignal: z.number(),
    poweroffSignal: z.optional(z.number()),
    capability: z.string(),
    uidShift: z.optional(z.number()),
    uidRange: z.optional(z.number()),
    privateNetwork: z.boolean(),
    netns: z.optional(z.boolean()),
    console: z.optional(z.object({ socket: z.string(), log: z.string() })),
    locks: z.optional(z.array(lock)),
    netifs: z.optional(z.array(z.string())),
    boot: z.boolean(),
    startArgs: z.optional(z.array(z.string())),
    payload: z.optional(z.boolean()),
  });
});
// the schema and the interface say the same
type Parsed = ReturnType<ReturnType<typeof stateSchema>["parse"]>;
const _same: [(p: Parsed) => MachineState, (m: MachineState) => Parsed] = [(p) => p, (m) => m];
void _same;

/** A state file's text, checked (a SpawnctlError naming `what` and the field otherwise). */
export function stateFromText(text: string, what: string): MachineState {
  return parseState(stateSchema(), text, what);
}

/**
 * The state of machine `name`, or undefined if there is none. A file that is
 * no valid state (cut short by a crash, edited by hand) is reported and
 * treated as none: the machine is then stale, and collected.
 */
export function readState(name: string): MachineState | undefined {
  let text: string;
  try {
    text = readFileSync(statePath(name), "utf8");
  } catch {
    return undefined;
  }
  try {
    return stateFromText(text, statePath(name));
  } catch (e) {
    warn(`Ignoring ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

export function removeState(name: string): void {
  for (const p of [statePath(name), consoleSocket(name), readyPath(name)]) {
    try {
      unlinkSync(p);
    } catch {
      /* gone */
    }
  }
}

/** Is the machine's leader still the process we started? */
export function leaderAlive(st: MachineState): boolean {
  return processStart(st.leader) === st.leaderStart;
}

export function supervisorAlive(st: MachineState): boolean {
  return processStart(st.supervisor) === st.supervisorStart;
}

/** All state files, whether their machine still runs or not. */
/** Is a machine being cleaned up (its payload gone, its supervisor still at work)? Its tree's locks go last. */
export function machineStopping(): boolean {
  return allStates().some((st) => !leaderAlive(st) && supervisorAlive(st));
}

export function allStates(): MachineState[] {
  let names: string[] = [];
  try {
    names = readdirSync(MACHINES_DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
  } catch {
    return [];
  }
  return names.map(readState).filter((s): s is MachineState => !!s);
}

/**
 * The background machine `start NAME` would make, if it runs: the machine
 * called NAME, or one started from the image NAME (an ephemeral machine runs
 * under NAME-<random suffix>). systemd-nspawn@NAME.service is one unit per
 * image, so machinectl's start of an image whose machine runs is a no-op.
 */
export function runningFor(name: string): MachineState | undefined {
  const st = readState(name);
  if (st && leaderAlive(st)) return st;
  return allStates().find((m) => m.image === name && leaderAlive(m));
}

export interface MachineLock {
  fd: number;
  release(): void;
}

/**
 * Take the machine's name. Held for the machine's whole life (the supervisor
 * inherits the fd), so a second start of the same name fails at once.
 */
export function lockMachine(name: string): MachineLock {
  ensureDir();
  const path = lockPath(name);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const fd = openSync(path, "a", 0o600);
    const r = flock(fd, LOCK_EX | LOCK_NB);
    if (r !== 0) {
      closeSync(fd);
      if (r !== 11) throw new SpawnctlError(`locking machine ${name}: ${strerror(r)}`);
      // a machine that has stopped but is still being cleaned up (its state
      // may be gone already, the locks go last), or one still starting: wait
      if (!runningFor(name) && Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
      throw new SpawnctlError(`Machine '${name}' already exists.`);
    }
    // lost a race with an unlink by the previous holder? take it again
    if (!existsSync(path)) {
      closeSync(fd);
      continue;
    }
    return {
      fd,
      release() {
        try {
          unlinkSync(path);
        } catch {
          /* gone */
        }
        flock(fd, LOCK_UN);
        closeSync(fd);
      },
    };
  }
}

/** Is the machine's lock held by someone (its supervisor)? */
export function machineLocked(name: string): boolean {
  const path = lockPath(name);
  if (!existsSync(path)) return false;
  const fd = openSync(path, "r");
  try {
    if (flock(fd, LOCK_EX | LOCK_NB) === 0) {
      flock(fd, LOCK_UN);
      return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}
