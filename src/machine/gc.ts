// The collector of stale machines: what a SIGKILLed `spawnctl run`, a
// SIGKILLed machine supervisor (or its clean-up) or a crashed start left,
// removed by the next command that touches machines (run, start, list), for
// every machine whose processes are gone, not only one of the same name.
//
// A name is looked at when it has anything in the registry's directory
// (NAME.json, .lock, .run, .console.sock, a half-written state) or a cgroup
// directory under a hierarchy's spawnctl parent (a network plan is never
// left without either: every clean-up removes it before the cgroup
// directories or before the state). It is stale when
//   - its state, if any, names neither a live leader nor a live supervisor
//     (pid and start time),
//   - nobody holds its lock (NAME.lock: a machine's start and supervisor)
//     nor its run mark (NAME.run: a foreground run, see src/cgroup/gc.ts),
//     both taken here for as long as the name is looked at, so that neither
//     can begin meanwhile,
//   - and no process is in its cgroup, in any hierarchy.
// Then go, in this order: its network (the plan's links, rules, addresses
// and userspace port forwarder; that code is loaded only then), its cgroup
// directories (no process is ever killed here), its state, console socket
// and half-written states, the lock files it held (its tree's, its UID
// range's: named by its state or run mark), then its lock and mark. Lock
// files nobody holds in /run/systemd/nspawn/locks and /run/spawnctl/uid-range
// (a SIGKILLed import's name lock, a run's picked UID range) go as well once
// they are a second old: a younger one may be one its owner has made but not
// yet locked.
//
// Cheap, for it is on `run`'s start path: a readdir of the registry, of the
// first and the last hierarchy's spawnctl parent and of the two lock
// directories, and a few opens for each name found; nothing heavy is loaded
// unless a stale machine had a network. It never fails the command: an error
// is a warning.
import { existsSync, lstatSync, readdirSync, unlinkSync } from "node:fs";
import { hierarchyRoots } from "../cgroup/cgroup.ts";
import {
  LOCK_DIRS, cgroupBusy, cgroupNames, dropFile, grabFile, isLockFile, readMark, removeCgroup, removeEmptyParents, removeUnheld, runMarkPath, sweepTemp, type HeldFile,
} from "../cgroup/gc.ts";
import { hostFacts } from "../container/host.ts";
import { trace, warn } from "../util/log.ts";
import { MACHINES_DIR, type MachineState, ensureDir, leaderAlive, lockPath, processStart, readState, removeState, supervisorAlive } from "../container/registry.ts";

/** src/image/disk/mount.ts DISK_DIR (not imported: see collect) */
const DISK_DIR = "/run/spawnctl/disk";
/** src/net/plan.ts NET_DIR (not imported: that module is not needed unless a stale machine had a network) */
const NET_DIR = "/run/spawnctl/net";
/** how old an unheld lock file must be before a sweep removes it */
const SWEEP_AGE_MS = 1000;

const SUFFIXES = [".json", ".lock", ".run", ".console.sock", ".ready"];

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** What was collected (for tests and tracing). */
export interface Collected {
  machines: string[];
  lockFiles: number;
}

/** Collect every stale machine; never throws. */
export function collectStale(): Collected {
  const done: Collected = { machines: [], lockFiles: 0 };
  // only root can have made any of it, or remove it
  if (process.getuid?.() !== 0) return done;
  trace("gc");
  try {
    collect(done);
  } catch (e) {
    warn(`Collecting stale machines: ${message(e)}`);
  }
  // a collected machine's name leaves the host's /etc/hosts (hosts = true)
  if (done.machines.length) require("../container/hosts.ts").syncHosts();
  trace(`gc done${done.machines.length ? `: ${done.machines.join(" ")}` : ""}`);
  return done;
}

function collect(done: Collected): void {
  // a SIGKILLed run's temporary directories (empty --bind sources, --overlay
  // upper layers; work directories beside a given upper layer go when the
  // next run uses that layer)
  sweepTemp("/var/tmp", ["spawnctl-bind-", "spawnctl-overlay-", ".#spawnctl-ephemeral-"]);
  // a disk image mounted by a run killed before its container started
  // (that code is loaded only when some image was ever mounted)
  if (existsSync(DISK_DIR)) (require("../image/disk/mount.ts") as typeof import("../image/disk/mount.ts")).sweepDiskMounts();
  const names = new Set<string>();
  const tmpStates: Array<{ file: string; pid: number }> = [];
  // (string tests, not regular expressions: compiling one costs a cold process more)
  for (const f of list(MACHINES_DIR)) {
    const t = f.endsWith(".tmp") ? f.slice(0, -4).split(".json.") : undefined;
    if (t && t.length === 2 && /^\d+$/.test(t[1]!)) {
      tmpStates.push({ file: f, pid: Number(t[1]) });
      names.add(t[0]!);
      continue;
    }
    for (const suffix of SUFFIXES) {
      if (f.endsWith(suffix)) {
        names.add(f.slice(0, -suffix.length));
        break;
      }
    }
  }
  const roots = hierarchyRoots(hostFacts().cgroup);
  // a machine's directories are made and removed hierarchy by hierarchy in
  // this order (by its start, its clean-up and here), so whatever a SIGKILL
  // in the middle left includes the first hierarchy or the last one
  const cgroups = cgroupNames(roots.length > 2 ? [roots[0]!, roots[roots.length - 1]!] : roots);
  for (const ns of cgroups.values()) for (const n of ns) names.add(n);

  // a name is held by its lock and mark files while it is looked at
  if (names.size > 0) ensureDir();
  for (const name of names) {
    if (name === "" || name.startsWith(".")) continue;
    try {
      if (collectOne(name, roots)) done.machines.push(name);
    } catch (e) {
      warn(`Collecting stale machine ${name}: ${message(e)}`);
    }
  }
  // states half-written by a process that died
  for (const t of tmpStates) {
    if (processStart(t.pid) !== undefined) continue;
    try {
      unlinkSync(`${MACHINES_DIR}/${t.file}`);
    } catch {
      /* gone */
    }
  }
  if (cgroups.size > 0 && (done.machines.length > 0 || [...cgroups.values()].some((ns) => ns.length === 0))) removeEmptyParents(roots);
  const now = Date.now();
  for (const dir of LOCK_DIRS) {
    for (const f of list(dir)) {
      const p = `${dir}/${f}`;
      try {
        const st = lstatSync(p);
        if (!st.isFile() || now - st.ctimeMs < SWEEP_AGE_MS) continue;
        const h = grabFile(p, false);
        if (h && h !== "busy") {
          dropFile(h, true);
          done.lockFiles++;
        }
      } catch {
        /* gone, or not ours to judge */
      }
    }
  }
}

function live(st: MachineState | undefined): boolean {
  return !!st && (leaderAlive(st) || supervisorAlive(st));
}

/** Collect machine `name` if it is stale; true when it was. */
function collectOne(name: string, roots: string[]): boolean {
  // a running machine: decided without touching a lock
  if (live(readState(name))) return false;
  const mark = grabFile(runMarkPath(name), true);
  if (mark === "busy" || !mark) return false;
  let lock: HeldFile | "busy" | undefined;
  let collected = false;
  try {
    lock = grabFile(lockPath(name), true);
    if (lock === "busy" || !lock) return false;
    // under the lock: a start that finished just before is seen now
    const st = readState(name);
    if (live(st) || cgroupBusy(roots, name)) return false;
    const recorded = readMark(mark);
    if (existsSync(`${NET_DIR}/${name}.json`)) {
      try {
        const { teardownNetwork } = require("../net/machine.ts") as typeof import("../net/machine.ts");
        teardownNetwork(name);
      } catch (e) {
        // the rest stays, so that the name is found again next time
        warn(`Removing the network of stale machine ${name}: ${message(e)}`);
        return false;
      }
    }
    // a process got in after all: leave the rest for a later look
    if (!removeCgroup(roots, name)) return false;
    removeState(name);
    const mine = new Set([lockPath(name), runMarkPath(name)]);
    for (const path of [...(st?.locks ?? []).map((l) => l.path), ...(recorded?.locks ?? [])]) {
      if (mine.has(path) || !isLockFile(path)) continue;
      try {
        removeUnheld(path);
      } catch {
        /* not ours to judge */
      }
    }
    collected = true;
    return true;
  } finally {
    // a name that is not stale keeps files it had (a run's mark names its
    // locks); what this look made goes again
    if (lock && lock !== "busy") dropFile(lock, collected || lock.created);
    dropFile(mark, collected || mark.created);
  }
}
