// Starting a plan: clone its child, run the parent's side (the shim's ops
// and TypeScript's steps, in the plan's order), collect the fds the child
// sends (the console), and turn a failed op of either side into a sentence.
import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { FD_TAG, MSG, MSG_SIZE, PARENT_REGS, PARENT_STATE_SIZE } from "../sys/abi.ts";
import { shim, strerror } from "../sys/ffi.ts";
import { describeOp, describeParentOp, encodeParent, encodePlan, type ParentOp, type Plan, type StepName } from "../sys/plan.ts";
import { recoverIdmap } from "./userns-setup.ts";
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

/** What the TypeScript steps of the parent's side do (see sys/plan.ts PARENT_STEPS), for the child pid. */
export type ParentSteps = Partial<Record<StepName, (pid: number) => void>>;

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

/** A parent step that failed, as a sentence. */
export function parentFailure(op: ParentOp, errno: number, part: number): SpawnctlError {
  if (op.kind === "go") return new SpawnctlError(`releasing the container process: ${strerror(errno)}`, { errno });
  const { what, syscall } = describeParentOp(op, part);
  return new SpawnctlError(`${what}: ${syscall}: ${strerror(errno)}`, { errno, syscall });
}

function reap(pid: number): void {
  shim().nsh_wait(pid, -1);
}

/** Clone the plan's child and drive it to its exec (see ChildDriver). */
export function spawnPlan(plan: Plan, steps: ParentSteps = {}): Spawned {
  const d = ChildDriver.spawn(plan, steps);
  while (!d.step());
  return d.result!;
}

export function cloneFailure(e: number): SpawnctlError {
  const hint = HINTS[`clone:${e}`];
  return new SpawnctlError(`creating the container process: clone: ${strerror(e)}${hint ? ` (${hint})` : ""}`, { errno: e, syscall: "clone" });
}

/**
 * Drive a child someone else cloned (a machine's supervisor, `shell`'s
 * supervisor) through its plan to its exec. On failure the child is
 * killed, and reaped unless it is someone else's child.
 */
export function driveChild(plan: Plan, pid: number, sync: number, steps: ParentSteps = {}, reapOnFailure = true): Spawned {
  const d = ChildDriver.attach(plan, pid, sync, steps, reapOnFailure);
  while (!d.step());
  return d.result!;
}

/** A fresh state for nsh_parent_run: empty registers (-1), an empty queue; and its result array. */
function newParentState(): { state: Int32Array; res: Int32Array } {
  const state = new Int32Array(PARENT_STATE_SIZE);
  state.fill(-1, 0, PARENT_REGS);
  return { state, res: new Int32Array(4) };
}

/**
 * The one driver of a plan's two sides. The child runs its ops on its own;
 * this runs the parent's side in order: the shim runs its ops (maps,
 * mounts, /dev, chowns, go-aheads) until a TypeScript step, which runs
 * here, and so on. A go-ahead is sent whether or not the child has reached
 * its barrier yet (it reads it there), so nothing here waits for the child
 * until the parent's side is done; then the child's messages are read to
 * its exec (EOF on the sync socket): the fds it sent (its console), its
 * pid, or the op that failed, as a sentence.
 *
 * step() does one stretch of the parent's side (up to and with the next
 * TypeScript step), or, once that is done, the rest; true when the child
 * has exec'd (then `result` holds what it sent). A caller starting several
 * containers works on another between steps. abort() kills the child.
 */
export class ChildDriver {
  result?: Spawned;
  private readonly out: Spawned;
  private readonly msg = new Uint8Array(MSG_SIZE);
  private readonly fdOut = new Int32Array(1);
  private readonly ops: ParentOp[];
  private readonly prog?: Uint8Array;
  /** nsh_parent_run's registers and queue (see abi.ts), and its result */
  private readonly state: Int32Array;
  private readonly res: Int32Array;
  /** the next parent op */
  private pc = 0;
  private ended = false;
  private failed = false;

  private constructor(
    private readonly plan: Plan,
    private readonly pid: number,
    private readonly sync: number,
    private readonly steps: ParentSteps,
    private readonly reapOnFailure: boolean,
    prog: Uint8Array | undefined,
    shimState = newParentState(),
  ) {
    this.out = { pid, fds: new Map() };
    this.ops = plan.parent ?? [];
    this.prog = prog;
    this.state = shimState.state;
    this.res = shimState.res;
  }

  /**
   * Clone the child and run the parent's side up to its first TypeScript
   * step in the same call into the shim: the child waits for no JavaScript
   * before that.
   */
  static spawn(plan: Plan, steps: ParentSteps = {}): ChildDriver {
    trace("spawn: loading shim");
    const sh = shim();
    trace("spawn: encoding");
    const buf = encodePlan(plan);
    const prog = plan.parent?.length ? encodeParent(plan.parent) : undefined;
    const fds = new Int32Array(2);
    trace("spawn: cloning");
    let d: ChildDriver;
    if (prog) {
      const ps = newParentState();
      const pid = sh.nsh_spawn_parent(ptr(buf), buf.length, ptr(fds), ptr(prog), prog.length, ptr(ps.state), ptr(ps.res)) as number;
      trace("spawn: cloned");
      if (pid < 0) throw cloneFailure(-pid);
      d = new ChildDriver(plan, pid, fds[0]!, steps, true, prog, ps);
      try {
        d.settle(ps.res[3]!);
      } catch (e) {
        d.fail();
        throw e;
      }
    } else {
      const pid = sh.nsh_spawn(ptr(buf), buf.length, ptr(fds)) as number;
      trace("spawn: cloned");
      if (pid < 0) throw cloneFailure(-pid);
      d = new ChildDriver(plan, pid, fds[0]!, steps, true, undefined);
    }
    return d;
  }

  /** A driver for a child cloned elsewhere; its parent's side starts with the first step(). */
  static attach(plan: Plan, pid: number, sync: number, steps: ParentSteps = {}, reapOnFailure = true): ChildDriver {
    return new ChildDriver(plan, pid, sync, steps, reapOnFailure, plan.parent?.length ? encodeParent(plan.parent) : undefined);
  }

  get done(): boolean {
    return this.ended;
  }

  step(): boolean {
    if (this.failed) throw new SpawnctlError("the container process was already given up");
    if (this.ended) return true;
    try {
      if (this.pc < this.ops.length) {
        const op = this.ops[this.pc]!;
        if (op.kind === "step") {
          const run = this.steps[op.name];
          if (!run) throw new SpawnctlError(`the parent's step ${op.name} has no implementation here`);
          trace(`parent: ${op.name}`);
          run(this.pid);
          this.pc++;
        }
        this.runShim();
        return false;
      }
      return this.readChild();
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  abort(): void {
    if (!this.ended) this.fail();
  }

  /** The shim runs the parent's ops from pc up to the next TypeScript step. */
  private runShim(): void {
    if (this.pc >= this.ops.length || this.ops[this.pc]!.kind === "step") return;
    const r = shim().nsh_parent_run(this.pid, this.sync, ptr(this.prog!), this.prog!.length, this.pc, ptr(this.state), ptr(this.res)) as number;
    this.settle(r);
  }

  /** Where nsh_parent_run stopped: a step, the end, or a failure that is recovered from, ends the child, or is thrown. */
  private settle(r: number): void {
    if (r >= 0) {
      this.pc = r;
      return;
    }
    const [at, errno, part] = [this.res[0]!, this.res[1]!, this.res[2]!];
    const op = this.ops[at];
    if (!op) throw new SpawnctlError(`the parent's side of the plan was refused: ${strerror(errno)}`, { errno });
    if (op.kind === "go" && (errno === EPIPE || errno === ECONNRESET)) {
      // the child is gone: it said why in the socket, which is read next
      this.pc = this.ops.length;
      return;
    }
    if (op.kind === "idmapTree") {
      const fd = recoverIdmap(op, errno, this.state[op.reg]!);
      const q = PARENT_REGS;
      this.state[q + 1 + this.state[q]!] = fd;
      this.state[q]!++;
      this.pc = at + 1;
      this.runShim();
      return;
    }
    throw parentFailure(op, errno, part);
  }

  /** The child's messages, to its exec. */
  private readChild(): boolean {
    const sh = shim();
    const { sync, out } = this;
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
        // answered by a go of the parent's side, sent already (or never: a planning bug)
        if (!this.ops.some((o) => o.kind === "go" && o.barrier === arg)) {
          throw new SpawnctlError(`the container process waits at barrier ${arg}, which no step of the parent's side answers`);
        }
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
    shim().nsh_parent_release(ptr(this.state));
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
    shim().nsh_parent_release(ptr(this.state));
    if (this.out.consoleFd !== undefined) closeSync(this.out.consoleFd);
    for (const fd of this.out.fds.values()) closeSync(fd);
    closeSync(this.sync);
  }
}
