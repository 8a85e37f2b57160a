// Starting a plan: hand it to the shim, answer its barriers, collect the fds it
// sends (the console), and turn a failed op into a sentence.
import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { CTL, FD_TAG, MSG, MSG_SIZE } from "../sys/abi.ts";
import { shim, strerror } from "../sys/ffi.ts";
import { describeOp, encodePlan, type Plan } from "../sys/plan.ts";
import { SpawnctlError } from "../util/errors.ts";
import { trace } from "../util/log.ts";

export interface Spawned {
  pid: number;
  /** the console's pty master, when the plan allocated one */
  consoleFd?: number;
  /** fds the plan sent with SEND_FD, by tag */
  fds: Map<number, number>;
  /** the pid a SEND_PID op reported (as seen from here) */
  reportedPid?: number;
}

export interface SpawnHooks {
  /** called right after the clone, before the first message from the child
   * is awaited: work done here overlaps with the child's own start-up */
  afterClone?(pid: number): void;
  /** called when driving the child failed (or was abandoned) and it was
   * killed: release what afterClone or barrier made and did not hand over */
  onFail?(): void;
  /** called at each BARRIER; the child waits until it returns. The fds it
   * returns are sent after the go-ahead (for the child's RECV_FD ops), then closed. */
  barrier?(id: number, pid: number): number[] | void;
  /** called once the child goes on from a barrier: work done here overlaps
   * with the child's own until its next barrier is answered */
  afterGo?(id: number, pid: number): void;
  /** called after afterClone: barriers to answer right away (barrier(id),
   * then the go-ahead), in this order, before the child has even asked */
  answerAhead?(): number[];
  /** for spawnPlan: let the shim answer barriers 1 and 3 within the clone's
   * call (nsh_spawn_userns); afterClone finds out how far it got in `result` */
  shimAnswer?: ShimAnswer;
  /** called after afterClone: the barriers that were answered already (by
   * the shim, or ahead of time), which the driver must not answer again */
  preAnswered?(): number[];
}

/** Whether nsh_spawn_userns did all it does (result[0] 5: barriers 1 and 3 answered, see shim/shift.c). */
export function answeredByShim(hooks: SpawnHooks): boolean {
  return hooks.shimAnswer?.result[0] === 5;
}

/** What nsh_spawn_userns needs (see shim/shift.c); it fills `result`, which starts as -1: not tried. */
export interface ShimAnswer {
  map: Buffer;
  root: Buffer;
  flags: number;
  shift: number;
  chown: Buffer;
  nChown: number;
  devNames: Buffer;
  majmin: Uint32Array;
  nDev: number;
  result: Int32Array;
  /** /dev's tmpfs options (build-plan.ts DEVFS_OPTIONS) */
  devOpts: Buffer;
}

/** Hooks that run a's, then b's (barrier: both their fds, a's first). */
export function chainHooks(a: SpawnHooks | undefined, b: SpawnHooks | undefined): SpawnHooks {
  if (!a) return b ?? {};
  if (!b) return a;
  return {
    afterClone: (pid) => {
      a.afterClone?.(pid);
      b.afterClone?.(pid);
    },
    onFail: () => {
      try {
        a.onFail?.();
      } finally {
        b.onFail?.();
      }
    },
    barrier: (id, pid) => [...(a.barrier?.(id, pid) ?? []), ...(b.barrier?.(id, pid) ?? [])],
    afterGo: (id, pid) => {
      a.afterGo?.(id, pid);
      b.afterGo?.(id, pid);
    },
    shimAnswer: a.shimAnswer ?? b.shimAnswer,
    preAnswered: () => [...(a.preAnswered?.() ?? []), ...(b.preAnswered?.() ?? [])],
    answerAhead: () => [...(a.answerAhead?.() ?? []), ...(b.answerAhead?.() ?? [])],
  };
}

// (syscall, errno) → a hint for the kernel's misleading answers
const HINTS: Record<string, string> = {
  "mount:28": "the kernel's mount table is full (see sysctl fs.mount-max)",
  "clone:1": "creating namespaces was refused; are user namespaces or this kind of namespace disabled?",
  "clone:22": "the kernel does not support one of the requested namespaces",
  "execve:13": "is the file executable, and is its file system mounted noexec?",
  "seccomp:22": "the kernel rejected the system call filter",
  "mount:19": "the kernel does not support this file system type",
  "open/write:30": "the file system is read-only",
};

export function opFailure(plan: Plan, index: number, errno: number): SpawnctlError {
  const op = plan.ops[index];
  if (index === 0xffffffff) return new SpawnctlError(`moving the container into its cgroup: ${strerror(errno)}`, { errno });
  if (!op) return new SpawnctlError(`the container's set-up failed at step ${index}: ${strerror(errno)}`, { errno });
  const { what, syscall } = describeOp(op, plan.root);
  const hint = HINTS[`${syscall}:${errno}`];
  const text = op.kind === "exec" ? `${what}: ${strerror(errno)}` : `${what}: ${syscall}: ${strerror(errno)}`;
  return new SpawnctlError(hint ? `${text} (${hint})` : text, { errno, syscall });
}

const EPIPE = 32;
const ECONNRESET = 104;

/**
 * The go-ahead for the barrier the child is at (or is about to be at), then
 * the fds for its RECV_FD ops; closes them. Ahead of time (the child has not
 * asked yet) a child that is gone is no error here: it failed on its own,
 * and said why in the socket, which the driver reads next.
 */
function sendGo(sync: number, send: number[], ahead = false): void {
  const sh = shim();
  try {
    const r = sh.nsh_send(sync, CTL.GO, -1) as number;
    if (r < 0) {
      if (ahead && (r === -EPIPE || r === -ECONNRESET)) return;
      throw new SpawnctlError(`releasing the container process: ${strerror(-r)}`, { errno: -r });
    }
    for (const fd of send) {
      const r2 = sh.nsh_send(sync, CTL.FD, fd) as number;
      if (r2 < 0) {
        if (ahead && (r2 === -EPIPE || r2 === -ECONNRESET)) return;
        throw new SpawnctlError(`sending a mount to the container process: ${strerror(-r2)}`, { errno: -r2 });
      }
    }
  } finally {
    for (const fd of send) closeSync(fd);
  }
}

function reap(pid: number): void {
  shim().nsh_wait(pid, -1);
}

export function spawnPlan(plan: Plan, hooks: SpawnHooks = {}): Spawned {
  trace("spawn: loading shim");
  const sh = shim();
  trace("spawn: encoding");
  const buf = encodePlan(plan);
  const fds = new Int32Array(2);
  trace("spawn: cloning");
  const a = hooks.shimAnswer;
  const pid = (a
    ? sh.nsh_spawn_userns(ptr(buf), buf.length, ptr(fds), a.map, a.root, a.flags, a.shift, a.chown, a.nChown, a.devNames, a.majmin, a.nDev, a.result, a.devOpts)
    : sh.nsh_spawn(ptr(buf), buf.length, ptr(fds))) as number;
  trace("spawn: cloned");
  if (pid < 0) throw cloneFailure(-pid);
  return driveChild(plan, pid, fds[0]!, hooks);
}

export function cloneFailure(e: number): SpawnctlError {
  const hint = HINTS[`clone:${e}`];
  return new SpawnctlError(`creating the container process: clone: ${strerror(e)}${hint ? ` (${hint})` : ""}`, { errno: e, syscall: "clone" });
}

/**
 * Talk a freshly cloned child through its plan: answer barriers, collect the
 * fds it sends, and turn an error report into a sentence. Returns once the
 * child has exec'd (EOF on the sync socket). On failure the child is killed,
 * and reaped unless it is someone else's child (the machine supervisor's).
 */
export function driveChild(plan: Plan, pid: number, sync: number, hooks: SpawnHooks = {}, reapOnFailure = true): Spawned {
  const d = ChildDriver.begin(plan, pid, sync, hooks, reapOnFailure);
  while (!d.step());
  return d.result!;
}

/**
 * driveChild in steps (a plain object, not a generator: generators cost a
 * cold process a third of a millisecond): step() returns after each
 * barrier's afterGo hook, so a caller starting several containers can
 * prepare the next one while this child does its mounts, and true once the
 * child has exec'd (then `result` holds what it sent). abort() kills the
 * child and closes what it sent. Made by begin().
 */
export class ChildDriver {
  result?: Spawned;
  private readonly out: Spawned;
  private readonly msg = new Uint8Array(MSG_SIZE);
  private readonly fdOut = new Int32Array(1);
  private ended = false;
  private failed = false;
  /** the barriers answered before the child reached them, as bits (1 << id) */
  private answered = 0;

  private constructor(
    private readonly plan: Plan,
    private readonly pid: number,
    private readonly sync: number,
    private readonly hooks: SpawnHooks = {},
    private readonly reapOnFailure = true,
  ) {
    this.out = { pid, fds: new Map() };
  }

  /**
   * A driver for a child just cloned, after its afterClone hook has run and
   * the barriers it answers ahead are answered: this comes first,
   * before anything else of the driver runs, because the child may be
   * waiting for it (a cold process pays for each new function it runs).
   */
  static begin(plan: Plan, pid: number, sync: number, hooks: SpawnHooks = {}, reapOnFailure = true): ChildDriver {
    let early: unknown;
    let answered = 0;
    try {
      hooks.afterClone?.(pid);
      for (const id of hooks.preAnswered?.() ?? []) answered |= 1 << id;
      for (const id of hooks.answerAhead?.() ?? []) {
        if (answered & (1 << id)) continue;
        sendGo(sync, hooks.barrier?.(id, pid) ?? [], true);
        answered |= 1 << id;
      }
    } catch (e) {
      early = e ?? new Error("afterClone failed");
    }
    const d = new ChildDriver(plan, pid, sync, hooks, reapOnFailure);
    d.answered = answered;
    if (early !== undefined) {
      d.fail();
      throw early;
    }
    return d;
  }

  get done(): boolean {
    return this.ended;
  }

  step(): boolean {
    if (this.failed) throw new SpawnctlError("the container process was already given up");
    if (this.ended) return true;
    try {
      return this.advance();
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  abort(): void {
    if (!this.ended) this.fail();
  }

  private advance(): boolean {
    const sh = shim();
    const { pid, sync, hooks, out } = this;
    const dv = new DataView(this.msg.buffer);
    for (;;) {
      const n = sh.nsh_recv(sync, ptr(this.msg), ptr(this.fdOut)) as number;
      if (n === 0) break; // EOF: exec succeeded
      // the child went with go-aheads sent ahead of time unread: the kernel
      // reports that once, before the messages it sent (its error) are read
      if (n === -ECONNRESET) continue;
      if (n < 0) throw new SpawnctlError(`talking to the container process: ${strerror(-n)}`, { errno: -n });
      const type = dv.getUint32(0, true), index = dv.getUint32(4, true), err = dv.getInt32(8, true), arg = dv.getUint32(12, true);
      if (type === MSG.ERROR) throw opFailure(this.plan, index, err);
      if (type === MSG.BARRIER) {
        const bit = 1 << arg;
        if (this.answered & bit) this.answered &= ~bit;
        else sendGo(sync, hooks.barrier?.(arg, pid) ?? []);
        hooks.afterGo?.(arg, pid);
        return false;
      } else if (type === MSG.FD) {
        const fd = this.fdOut[0]!;
        if (arg === FD_TAG.CONSOLE) out.consoleFd = fd;
        else out.fds.set(arg, fd);
      } else if (type === MSG.PID) {
        out.reportedPid = arg;
      }
    }
    this.ended = true;
    closeSync(sync);
    this.result = out;
    return true;
  }

  private fail(): void {
    this.ended = true;
    this.failed = true;
    try {
      process.kill(this.pid, 9);
    } catch {
      /* already gone */
    }
    if (this.reapOnFailure) reap(this.pid);
    if (this.out.consoleFd !== undefined) closeSync(this.out.consoleFd);
    for (const fd of this.out.fds.values()) closeSync(fd);
    closeSync(this.sync);
    this.hooks.onFail?.();
  }
}
