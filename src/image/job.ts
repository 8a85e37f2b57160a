// Long image work (imports, pulls, clones, exports) as a job with undo
// steps: each step that leaves something on disk registers how to take it
// away *before* doing it, and on an error, SIGINT or SIGTERM the steps run
// last-in-first-out, so nothing half-done stays behind (mmdebstrap's
// phases). The work yields to the event loop regularly (Job.tick), which is
// when a signal handler gets to run and the job notices it was cancelled.
import { lstatSync, readdirSync, rmdirSync, rmSync, unlinkSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import { isSubvolume, destroySubvolumeRecursive, setSubvolumeReadOnly } from "./btrfs.ts";
import { changeInodeFlags, FS_APPEND_FL, FS_IMMUTABLE_FL, withFd } from "./sys.ts";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const SIGNAL_CODES: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

export class Job {
  readonly controller = new AbortController();
  private undo: Array<{ what: string; fn: () => void }> = [];
  private signalName: string | undefined;
  private lastYield = performance.now();

  constructor(readonly what: string) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Register how to undo the next step; call before taking the step. */
  onUndo(what: string, fn: () => void): void {
    this.undo.push({ what, fn });
  }

  /** Remove a path on failure (a temporary file or tree). */
  removeOnFailure(path: string): void {
    this.onUndo(`removing ${path}`, () => removePath(path));
  }

  cancel(sig: string): void {
    if (this.signalName) return;
    this.signalName = sig;
    this.controller.abort(new SpawnctlError(`${this.what}: cancelled by ${sig}`, { exitCode: 128 + (SIGNAL_CODES[sig] ?? 15) }));
  }

  /** Throw if the job was cancelled. */
  check(): void {
    if (this.signalName) throw this.controller.signal.reason as SpawnctlError;
  }

  /** Give signal handlers a chance (at most every 50 ms), then check for cancellation. */
  async tick(): Promise<void> {
    const now = performance.now();
    if (now - this.lastYield >= 50) {
      this.lastYield = now;
      await new Promise((r) => setImmediate(r));
    }
    this.check();
  }

  /** `p`, or the cancellation if that comes first (for waits that cannot be interrupted, like reading stdin). */
  race<T>(p: Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  }

  /** Undo everything done so far, newest first; failures are reported, not thrown. */
  rollback(): void {
    for (const step of this.undo.reverse()) {
      try {
        step.fn();
      } catch (e) {
        warn(`${this.what}: while cleaning up, ${step.what} failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.undo = [];
  }

  /** The work is complete: nothing to undo any more. */
  commit(): void {
    this.undo = [];
  }
}

/**
 * Run `fn` as a job: SIGINT/SIGTERM/SIGHUP cancel it, and an error (or the
 * cancellation) rolls back its undo steps before it is rethrown.
 */
export async function runJob<T>(what: string, fn: (job: Job) => Promise<T>): Promise<T> {
  const job = new Job(what);
  const handlers = SIGNALS.map((s) => {
    const h = () => job.cancel(s);
    process.on(s, h);
    return [s, h] as const;
  });
  try {
    const r = await fn(job);
    job.check();
    job.commit();
    return r;
  } catch (e) {
    job.rollback();
    // a cancellation surfaces as whatever the interrupted step threw (an AbortError from
    // fetch, "cancelled" from a download): report the signal, with its exit status
    if (job.signal.aborted) throw job.signal.reason;
    throw e;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
}

/**
 * Remove a file or a whole tree, whatever it is: btrfs subvolumes (nested
 * ones too) are deleted with their ioctl, read-only subvolumes made writable
 * first, and immutable or append-only entries (chattr +i/+a, as read-only
 * images have) lose those flags so they can go.
 */
export function removePath(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // already gone
  }
  if (!st.isDirectory()) {
    try {
      unlinkSync(path);
    } catch (e) {
      if (!st.isFile() || !clearFlags(path, e)) throw new SpawnctlError(`removing ${path}: ${fsMessage(e)}`, { cause: e });
      unlinkSync(path);
    }
    return;
  }
  if (isSubvolume(path)) {
    try {
      setSubvolumeReadOnly(path, false);
    } catch {
      /* destroy may still work */
    }
    if (destroySubvolumeRecursive(path) === 0) return;
  }
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") throw new SpawnctlError(`removing ${path}: ${fsMessage(e)}`, { cause: e });
  }
  // Something in the tree is immutable or append-only: walk it by hand.
  removeSlowly(path);
}

function clearFlags(path: string, e: unknown): boolean {
  if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  try {
    withFd(path, `clearing the flags of ${path}`, (fd) => changeInodeFlags(fd, 0, FS_IMMUTABLE_FL | FS_APPEND_FL));
    return true;
  } catch {
    return false;
  }
}

function removeSlowly(path: string): void {
  const st = lstatSync(path);
  if (st.isDirectory()) {
    try {
      withFd(path, `clearing the flags of ${path}`, (fd) => changeInodeFlags(fd, 0, FS_IMMUTABLE_FL | FS_APPEND_FL));
    } catch {
      /* no flags to clear */
    }
    if (isSubvolume(path)) {
      try {
        setSubvolumeReadOnly(path, false);
      } catch {
        /* rmdir will tell */
      }
    }
    for (const n of readdirSync(path)) removeSlowly(`${path}/${n}`);
    try {
      rmdirSync(path);
    } catch (e) {
      throw new SpawnctlError(`removing ${path}: ${fsMessage(e)}`, { cause: e });
    }
    return;
  }
  try {
    unlinkSync(path);
  } catch (e) {
    // only regular files are opened to clear their flags: opening a device node can have effects
    if (st.isFile() && clearFlags(path, e)) {
      unlinkSync(path);
      return;
    }
    throw new SpawnctlError(`removing ${path}: ${fsMessage(e)}`, { cause: e });
  }
}
