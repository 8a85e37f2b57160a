// Compiles a seccomp allow-list into a classic BPF program.
//
// The policy is nspawn's: syscalls in the allowed groups pass, syscalls the
// tables know but do not allow fail with EPERM, unknown ones with ENOSYS (so
// a newer libc falls back gracefully), and socket(AF_NETLINK, *, NETLINK_AUDIT)
// fails with EAFNOSUPPORT. Both x86 ABIs and arm64 are covered; x32 and
// 32-bit arm calls get ENOSYS.
// Instead of a linear list of comparisons the program is a balanced binary
// search over syscall-number ranges, so a lookup costs ~9 comparisons.
//
// The default programs are computed by build.ts and embedded; this module
// only runs at start-up for custom --system-call-filter= or capability sets.
import { SYSCALLS_X86_64, SYSCALLS_I386 } from "../../sys/syscalls.ts";
import { SYSCALLS_AARCH64 } from "../../sys/syscalls-aarch64.ts";
import { SYSCALL_GROUPS, NSPAWN_ALLOW } from "../../settings/syscall-groups.ts";
import { capBit, DEFAULT_CAP_MASK } from "../../settings/caps.ts";

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;
const X32_BIT = 0x40000000;

const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

// BPF opcodes
const LD_W_ABS = 0x20;
const JMP_JEQ_K = 0x15;
const JMP_JGE_K = 0x35;
const JMP_JA = 0x05;
const RET_K = 0x06;

type Insn = [code: number, jt: number, jf: number, k: number];

export interface FilterSpec {
  /** retained capabilities (gates @clock, @module, ptrace, reboot, ...) */
  caps: bigint;
  /** extra names or @groups to allow (--system-call-filter=LIST) */
  allow?: readonly string[];
  /** names or @groups to deny with EPERM (--system-call-filter=~LIST) */
  deny?: readonly string[];
  /** --suppress-sync: the @sync calls succeed without doing anything */
  suppressSync?: boolean;
}

export function expandGroup(name: string, seen = new Set<string>()): string[] {
  if (!name.startsWith("@")) return [name];
  if (name === "@known") return [...new Set([...Object.keys(SYSCALLS_X86_64), ...Object.keys(SYSCALLS_I386), ...Object.keys(SYSCALLS_AARCH64)])];
  const members = SYSCALL_GROUPS[name];
  if (!members) throw new Error(`unknown system call group ${name}`);
  if (seen.has(name)) return [];
  seen.add(name);
  return members.flatMap((m) => expandGroup(m, seen));
}


export { isKnownName } from "../../settings/syscall-groups.ts";

/** The capabilities that change the default program; used as the cache key. */
const GATING_CAPS = [...new Set(NSPAWN_ALLOW.filter((e) => e.cap).map((e) => e.cap!))];
export function gatingMask(caps: bigint): bigint {
  let m = 0n;
  for (const c of GATING_CAPS) {
    const b = capBit(c);
    if (caps & b) m |= b;
  }
  return m;
}

function allowedNames(spec: FilterSpec): { allow: Set<string>; deny: Set<string> } {
  const allow = new Set<string>();
  for (const e of NSPAWN_ALLOW) {
    if (e.cap && !(spec.caps & capBit(e.cap))) continue;
    for (const n of expandGroup(e.name)) allow.add(n);
  }
  for (const a of spec.allow ?? []) for (const n of expandGroup(a)) allow.add(n);
  const deny = new Set<string>();
  for (const d of spec.deny ?? []) for (const n of expandGroup(d)) deny.add(n);
  for (const d of deny) allow.delete(d);
  return { allow, deny };
}

type Action = number | "socket";

function archRanges(table: Record<string, number>, allow: Set<string>, socketNr: number | undefined, noop: Set<string>): Array<[number, Action]> {
  // action per number; numbers not in the table are unknown (ENOSYS)
  const max = Math.max(...Object.values(table)) + 1;
  const act: Action[] = new Array(max).fill(RET_ERRNO | ENOSYS);
  for (const [name, nr] of Object.entries(table)) act[nr] = noop.has(name) ? RET_ERRNO | 0 : allow.has(name) ? RET_ALLOW : RET_ERRNO | EPERM;
  if (socketNr !== undefined && act[socketNr] === RET_ALLOW) act[socketNr] = "socket";
  // ranges as [start, action]; the last range runs to infinity
  const ranges: Array<[number, Action]> = [];
  for (let nr = 0; nr < max; nr++) if (nr === 0 || act[nr] !== act[nr - 1]) ranges.push([nr, act[nr]!]);
  if (ranges[ranges.length - 1]![1] !== (RET_ERRNO | ENOSYS)) ranges.push([max, RET_ERRNO | ENOSYS]);
  return ranges;
}

function leaf(a: Action): Insn[] {
  if (a !== "socket") return [[RET_K, 0, 0, a]];
  // socket(domain, type, protocol): refuse the audit netlink family
  return [
    [LD_W_ABS, 0, 0, 16], // args[0], low word
    [JMP_JEQ_K, 0, 3, 16], // AF_NETLINK
    [LD_W_ABS, 0, 0, 32], // args[2], low word
    [JMP_JEQ_K, 0, 1, 9], // NETLINK_AUDIT
    [RET_K, 0, 0, RET_ERRNO | EAFNOSUPPORT],
    [RET_K, 0, 0, RET_ALLOW],
  ];
}

// Search tree over ranges; the accumulator holds the syscall number, except
// inside the socket leaf, which reloads it for nothing after (it returns).
function tree(r: Array<[number, Action]>): Insn[] {
  if (r.length === 1) return leaf(r[0]![1]);
  const mid = r.length >> 1;
  const left = tree(r.slice(0, mid));
  const right = tree(r.slice(mid));
  const k = r[mid]![0];
  if (left.length <= 255) return [[JMP_JGE_K, left.length, 0, k], ...left, ...right];
  return [[JMP_JGE_K, 0, 1, k], [JMP_JA, 0, 0, left.length], ...left, ...right];
}

function archSection(table: Record<string, number>, allow: Set<string>, x32guard: boolean, noop: Set<string>): Insn[] {
  const body = tree(archRanges(table, allow, table.socket, noop));
  const head: Insn[] = [[LD_W_ABS, 0, 0, 0]];
  if (x32guard) head.push([JMP_JGE_K, 0, 1, X32_BIT], [RET_K, 0, 0, RET_ERRNO | ENOSYS]);
  return [...head, ...body];
}

export function compileFilter(spec: FilterSpec): Uint8Array {
  const { allow } = allowedNames(spec);
  // "errno 0" is how a filter makes a call return success without running it
  const noop = new Set(spec.suppressSync ? expandGroup("@sync") : []);
  const x64 = archSection(SYSCALLS_X86_64, allow, true, noop);
  const x86 = archSection(SYSCALLS_I386, allow, false, noop);
  const a64 = archSection(SYSCALLS_AARCH64, allow, false, noop);
  return encode(layout([[AUDIT_ARCH_X86_64, x64], [AUDIT_ARCH_I386, x86], [AUDIT_ARCH_AARCH64, a64]]));
}

// The program: load the arch, dispatch to its section (a comparison and a
// long jump per arch), refuse every other arch.
function layout(sections: Array<[arch: number, body: Insn[]]>): Insn[] {
  const head: Insn[] = [[LD_W_ABS, 0, 0, 4]];
  const headLength = 1 + 2 * sections.length + 1;
  let start = headLength;
  for (const [arch, body] of sections) {
    head.push([JMP_JEQ_K, 0, 1, arch]);
    // a jump of k lands at its own index + 1 + k
    head.push([JMP_JA, 0, 0, start - (head.length + 1)]);
    start += body.length;
  }
  head.push([RET_K, 0, 0, RET_ERRNO | ENOSYS]);
  return [...head, ...sections.flatMap(([, body]) => body)];
}

function encode(prog: Insn[]): Uint8Array {
  if (prog.length > 4096) throw new Error(`seccomp program too long (${prog.length} instructions)`);
  const buf = new Uint8Array(prog.length * 8);
  const dv = new DataView(buf.buffer);
  prog.forEach(([code, jt, jf, k], i) => {
    dv.setUint16(i * 8, code, true);
    dv.setUint8(i * 8 + 2, jt);
    dv.setUint8(i * 8 + 3, jf);
    dv.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return buf;
}

/** The programs build.ts embeds: the default policy for the default capability sets. */
export function precomputeDefaultPrograms(): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const caps of [DEFAULT_CAP_MASK, DEFAULT_CAP_MASK | capBit("NET_ADMIN")]) {
    const key = gatingMask(caps).toString(16);
    out[key] ??= compileFilter({ caps });
  }
  return out;
}

/** A tiny BPF interpreter, for tests: what the program returns for a call. */
export function evaluate(prog: Uint8Array, arch: number, nr: number, args: number[] = []): number {
  const dv = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  const data = new DataView(new ArrayBuffer(64));
  data.setUint32(0, nr, true);
  data.setUint32(4, arch, true);
  args.forEach((a, i) => data.setUint32(16 + i * 8, a, true));
  let acc = 0;
  for (let pc = 0; pc < prog.length / 8; ) {
    const code = dv.getUint16(pc * 8, true), jt = dv.getUint8(pc * 8 + 2), jf = dv.getUint8(pc * 8 + 3), k = dv.getUint32(pc * 8 + 4, true);
    switch (code) {
      case LD_W_ABS: acc = data.getUint32(k, true); pc++; break;
      case JMP_JEQ_K: pc += 1 + (acc === k ? jt : jf); break;
      case JMP_JGE_K: pc += 1 + (acc >>> 0 >= k >>> 0 ? jt : jf); break;
      case JMP_JA: pc += 1 + k; break;
      case RET_K: return k;
      default: throw new Error(`bad insn ${code}`);
    }
  }
  throw new Error("fell off the program");
}

export const SECCOMP = { RET_ALLOW, RET_ERRNO, EPERM, ENOSYS, EAFNOSUPPORT, AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64 };
