// The part of the stale-machine collector (src/machine/gc.ts) that `run`'s
// own path (src/container, which must not import src/machine) needs too:
//  - the mark a foreground container holds for as long as its spawnctl
//    lives: NAME.run in the registry's directory, locked (flock) and naming
//    the lock files that process holds. `run` writes no state file, so this
//    is how a collector tells a run that is still setting up (its cgroup
//    directory empty for a moment) from one that was SIGKILLed, and which
//    tree locks the dead one left;
//  - lock files taken the way their owners take them (without waiting,
//    and again when the file was unlinked between open and flock);
//  - a machine's cgroup directories looked at and removed, never killing
//    anything: a directory with processes in it stays.
import { stillAt } from "../util/lock.ts";
import { lazySchema, parseState } from "../util/state.ts";
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { LOCK_EX, LOCK_NB, LOCK_UN, flock, strerror } from "../sys/ffi.ts";
import { CGROUP_PARENT, LEGACY_PARENT, machineCgroupRel, scopeMachine, subtree } from "./cgroup.ts";

/** The registry's directory (src/container/registry.ts uses this one). */
export const MACHINES_DIR = "/run/spawnctl/machines";

export function runMarkPath(name: string): string {
  return `${MACHINES_DIR}/${name}.run`;
}

/** A lock file this process holds exclusively. */
export interface HeldFile {
  fd: number;
  path: string;
  /** made by this process just now (nobody had it before) */
  created: boolean;
  /** its size when taken (a run mark with content is a dead run's) */
  size: number;
}

const EWOULDBLOCK = 11;

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/**
 * Take the lock file `path` exclusively without waiting: "busy" when another
 * process holds it (shared or exclusive), undefined when it does not exist
 * and `create` is false. Throws only on other errors.
 */
export function grabFile(path: string, create: boolean): HeldFile | "busy" | undefined {
  for (;;) {
    // (no exception on the common paths: it costs a cold process more than the syscalls)
    const existed = existsSync(path);
    if (!existed && !create) return undefined;
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW | (create ? constants.O_CREAT : 0), 0o600);
    } catch (e) {
      if (code(e) === "ENOENT" && !create) return undefined;
      throw e;
    }
    const r = flock(fd, LOCK_EX | LOCK_NB);
    if (r !== 0) {
      closeSync(fd);
      if (r === EWOULDBLOCK) return "busy";
      throw new Error(`locking ${path}: ${strerror(r)}`);
    }
    // the holder before us may have unlinked it between our open and flock:
    // then the file at `path` (if any) is another one
    if (stillAt(fd, path)) return { fd, path, created: !existed, size: fstatSync(fd).size };
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

/** Let go of a file taken with grabFile; `remove` unlinks it first (while still holding it, as every owner does). */
export function dropFile(h: HeldFile, remove: boolean): void {
  if (remove) {
    try {
      unlinkSync(h.path);
    } catch {
      /* gone */
    }
  }
  flock(h.fd, LOCK_UN);
  try {
    closeSync(h.fd);
  } catch {
    /* closed */
  }
}

/** Lock directories whose files nobody holds are garbage: the global tree locks by inode, the picked UID ranges'. */
export const LOCK_DIRS = ["/run/systemd/nspawn/locks", "/run/spawnctl/uid-range"];

/**
 * Only what lockTree and lockBase make is removed on a record's word: a
 * tree's lock beside it (.#NAME.lck, never through a symlink: see
 * grabFile), the global ones by inode and UID range locks.
 */
export function isLockFile(path: string): boolean {
  if (!path.startsWith("/") || path.includes("/../") || path.includes("/./")) return false;
  const dir = path.slice(0, path.lastIndexOf("/"));
  const file = path.slice(path.lastIndexOf("/") + 1);
  if (dir === LOCK_DIRS[0]) return file.startsWith("inode-");
  if (dir === LOCK_DIRS[1]) return file !== "" && !file.startsWith(".");
  return file.startsWith(".#") && file.endsWith(".lck");
}

/** Remove a lock file nobody holds; one that is held stays. */
export function removeUnheld(path: string): void {
  const h = grabFile(path, false);
  if (h && h !== "busy") dropFile(h, true);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** What a run's mark says. */
export interface RunMark {
  pid: number;
  /** the lock files the run holds (its tree's), to release after it died */
  locks: string[];
}

/**
 * Mark this process as running machine `name` in the foreground, until the
 * returned function is called (or the process dies: the fd closes with it).
 * A collector holds the mark for a moment while it looks at the name: then
 * this waits. Another live run of the same name holds it all along: then,
 * after a second, the run goes on unmarked and is refused where it was
 * before (its cgroup already has processes). Never throws.
 */
export function markRun(name: string, locks: string[]): () => void {
  try {
    const path = runMarkPath(name);
    let h: HeldFile | "busy" | undefined;
    try {
      h = grabFile(path, true);
    } catch (e) {
      if (code(e) !== "ENOENT") throw e;
      mkdirSync(MACHINES_DIR, { recursive: true, mode: 0o755 });
      h = grabFile(path, true);
    }
    const end = Date.now() + 1000;
    while (h === "busy" && Date.now() < end) {
      sleepMs(5);
      h = grabFile(path, true);
    }
    if (!h || h === "busy") return () => {};
    const held = h;
    const mark: RunMark = { pid: process.pid, locks };
    if (held.size > 0) {
      // the mark of a dead run of this name (no collector has been by
      // since): release what it names before it is forgotten
      for (const l of readMark(held)?.locks ?? []) {
        try {
          if (!locks.includes(l) && isLockFile(l)) removeUnheld(l);
        } catch {
          /* not ours to judge */
        }
      }
      ftruncateSync(held.fd, 0);
      writeSync(held.fd, `${JSON.stringify(mark)}\n`, 0);
    } else writeFileSync(held.fd, `${JSON.stringify(mark)}\n`);
    return () => dropFile(held, true);
  } catch {
    return () => {};
  }
}

const markSchema = lazySchema((z) => z.object({ pid: z.number(), locks: z.array(z.string()) }));

/** The mark's content, read through the fd of a collector that holds it. */
export function readMark(h: HeldFile): RunMark | undefined {
  try {
    return parseState(markSchema(), readFileSync(h.fd, "utf8"), "run mark");
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// cgroups

/**
 * The machines with a directory under <root>/machine.slice (machine-<escaped
 * name>.scope) or under the layout of before, <root>/spawnctl/<name>, per
 * hierarchy root (roots with neither parent left out).
 */
export function cgroupNames(roots: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const dirs = (d: string) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  for (const r of roots) {
    let found: string[] | undefined;
    try {
      found = dirs(`${r}/${CGROUP_PARENT}`).flatMap((n) => scopeMachine(n) ?? []);
    } catch {
      /* no machine.slice in this hierarchy */
    }
    try {
      found = [...(found ?? []), ...dirs(`${r}/${LEGACY_PARENT}`)];
    } catch {
      /* no old parent */
    }
    if (found) out.set(r, found);
  }
  return out;
}

/** A machine's directories in a hierarchy: today's, and the one of the layout before. */
function machineDirs(r: string, name: string): string[] {
  return [`${r}/${machineCgroupRel(name)}`, `${r}/${LEGACY_PARENT}/${name}`];
}

function hasProcs(dir: string): boolean {
  try {
    return readFileSync(`${dir}/cgroup.procs`, "utf8").trim() !== "";
  } catch {
    return false;
  }
}

/** Has machine `name` a process in any hierarchy (sub-cgroups included)? */
export function cgroupBusy(roots: string[], name: string): boolean {
  return roots.some((r) => machineDirs(r, name).some((d) => subtree(d).some(hasProcs)));
}

/**
 * Remove machine `name`'s cgroup directories, children first, killing
 * nothing: false when one could not go (a process got in: EBUSY), and the
 * rest of that hierarchy's directory stays.
 */
export function removeCgroup(roots: string[], name: string): boolean {
  let ok = true;
  for (const r of roots) {
    for (const top of machineDirs(r, name)) {
      for (const d of subtree(top)) {
        try {
          rmdirSync(d);
        } catch (e) {
          if (code(e) === "ENOENT") continue;
          ok = false;
          break;
        }
      }
    }
  }
  return ok;
}

/** The machines' parents (machine.slice, and spawnctl of before) with no machine left; a container starting meanwhile keeps its own. */
export function removeEmptyParents(roots: string[]): void {
  for (const r of roots) {
    try {
      rmdirSync(`${r}/${CGROUP_PARENT}`);
    } catch {
      /* in use, or gone */
    }
    try {
      rmdirSync(`${r}/${LEGACY_PARENT}`);
    } catch {
      /* in use, or gone */
    }
  }
}

// ---------------------------------------------------------------------------
// temporary directories of a run (an empty --bind source, an --overlay's
// upper layer and work directory): named with the pid of the run that made
// them, removed by whoever finds them once that run is gone

/** The prefix of a temporary directory this process makes: `${prefix}${pid}-` */
export function tempName(prefix: string): string {
  return `${prefix}${process.pid}-`;
}

/** Is process `pid` there (a zombie is gone)? */
export function pidAlive(pid: number): boolean {
  try {
    // a zombie is gone
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Remove the entries of `dir` named `${prefix}PID-...` whose PID is gone. Never throws. */
export function sweepTemp(dir: string, prefixes: string[]): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    const prefix = prefixes.find((p) => e.startsWith(p));
    if (!prefix) continue;
    const rest = e.slice(prefix.length);
    const dash = rest.indexOf("-");
    const pid = Number(rest.slice(0, dash));
    if (dash <= 0 || !Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    try {
      rmSync(`${dir}/${e}`, { recursive: true, force: true });
      n++;
    } catch {
      /* someone else's to judge */
    }
  }
  return n;
}
