// The seccomp program, run through a small BPF interpreter.
import { describe, expect, test } from "bun:test";
import { compileFilter, evaluate, SECCOMP, precomputeDefaultPrograms, gatingMask } from "../../src/container/seccomp/compile.ts";
import { SYSCALLS_X86_64 as X, SYSCALLS_I386 as I } from "../../src/sys/syscalls.ts";
import { SYSCALLS_AARCH64 as R } from "../../src/sys/syscalls-aarch64.ts";
import { DEFAULT_CAP_MASK, capBit } from "../../src/settings/caps.ts";
import { PRECOMPILED } from "../../build/gen/seccomp.ts";

const A64 = SECCOMP.AUDIT_ARCH_X86_64, A32 = SECCOMP.AUDIT_ARCH_I386;
const ALLOW = SECCOMP.RET_ALLOW, EPERM = SECCOMP.RET_ERRNO | 1, ENOSYS = SECCOMP.RET_ERRNO | 38;
const prog = compileFilter({ caps: DEFAULT_CAP_MASK });
const call = (p: Uint8Array, name: string, arch = A64, args: number[] = []) => evaluate(p, arch, (arch === A64 ? X : I)[name]!, args);

describe("default policy", () => {
  test("everyday calls pass", () => {
    for (const n of ["read", "write", "openat", "execve", "clone", "clone3", "mount", "pivot_root", "setresuid", "socket", "bpf" in X ? "futex" : "futex", "io_uring_setup", "sethostname", "reboot", "ptrace"]) {
      expect(call(prog, n)).toBe(ALLOW);
    }
  });
  test("calls a container must not make fail with EPERM", () => {
    for (const n of ["swapon", "swapoff", "kexec_load", "init_module", "delete_module", "settimeofday", "clock_settime", "perf_event_open", "open_by_handle_at", "add_key", "iopl", "ioperm"]) {
      expect(call(prog, n)).toBe(EPERM);
    }
  });
  test("numbers no table knows fail with ENOSYS, as do x32 calls and foreign architectures", () => {
    expect(evaluate(prog, A64, 4000)).toBe(ENOSYS);
    expect(evaluate(prog, A64, 0x40000000 | 1)).toBe(ENOSYS);
    expect(evaluate(prog, 0x40000028 /* 32-bit arm */, 0)).toBe(ENOSYS);
    expect(evaluate(prog, 0x80000016 /* s390x */, 0)).toBe(ENOSYS);
    expect(evaluate(prog, SECCOMP.AUDIT_ARCH_AARCH64, 4000)).toBe(ENOSYS);
  });
  test("arm64 processes get arm64's table and the same policy", () => {
    const a = (name: string, args: number[] = []) => evaluate(prog, SECCOMP.AUDIT_ARCH_AARCH64, R[name]!, args);
    for (const n of ["read", "write", "openat", "execve", "clone", "clone3", "mount", "pivot_root", "setresuid", "futex", "reboot", "ptrace"]) expect(a(n)).toBe(ALLOW);
    for (const n of ["swapon", "kexec_load", "init_module", "settimeofday", "perf_event_open", "open_by_handle_at", "add_key"]) expect(a(n)).toBe(EPERM);
    // the same number means another call on x86-64: 0 is io_setup here, read there
    expect(R.io_setup).toBe(0);
    expect(a("socket", [16, 3, 9])).toBe(SECCOMP.RET_ERRNO | 97);
    expect(a("socket", [2, 1, 0])).toBe(ALLOW);
    // calls x86 has and arm64 never had are not in its table
    for (const n of ["open", "stat", "fork", "iopl"]) expect(R[n]).toBeUndefined();
  });
  test("audit netlink sockets are refused with EAFNOSUPPORT, other sockets pass", () => {
    expect(call(prog, "socket", A64, [16, 3, 9])).toBe(SECCOMP.RET_ERRNO | 97);
    expect(call(prog, "socket", A64, [16, 3, 0])).toBe(ALLOW);
    expect(call(prog, "socket", A64, [2, 1, 0])).toBe(ALLOW);
    expect(call(prog, "socket", A32, [16, 3, 9])).toBe(SECCOMP.RET_ERRNO | 97);
  });
  test("the i386 table is used for 32-bit processes", () => {
    expect(evaluate(prog, A32, I.read!)).toBe(ALLOW);
    expect(evaluate(prog, A32, I.socketcall!)).toBe(ALLOW);
    expect(evaluate(prog, A32, I.swapon!)).toBe(EPERM);
  });
  test("every number in the tables gets a verdict", () => {
    for (const nr of Object.values(X)) expect([ALLOW, EPERM, SECCOMP.RET_ERRNO | 97]).toContain(evaluate(prog, A64, nr, [2, 1, 0]));
  });
});

describe("capability-gated calls and custom lists", () => {
  test("@clock needs CAP_SYS_TIME, reboot needs CAP_SYS_BOOT", () => {
    expect(call(compileFilter({ caps: DEFAULT_CAP_MASK | capBit("SYS_TIME") }), "settimeofday")).toBe(ALLOW);
    expect(call(compileFilter({ caps: DEFAULT_CAP_MASK & ~capBit("SYS_BOOT") }), "reboot")).toBe(EPERM);
  });
  test("~LIST denies, LIST allows, groups expand", () => {
    const p = compileFilter({ caps: DEFAULT_CAP_MASK, deny: ["mkdir", "mkdirat"], allow: ["@swap"] });
    expect(call(p, "mkdir")).toBe(EPERM);
    expect(call(p, "mkdirat")).toBe(EPERM);
    expect(call(p, "rmdir")).toBe(ALLOW);
    expect(call(p, "swapon")).toBe(ALLOW);
    const g = compileFilter({ caps: DEFAULT_CAP_MASK, deny: ["@mount"] });
    expect(call(g, "mount")).toBe(EPERM);
    expect(call(g, "umount2")).toBe(EPERM);
  });
  test("--suppress-sync makes the sync calls succeed without running", () => {
    const p = compileFilter({ caps: DEFAULT_CAP_MASK, suppressSync: true });
    for (const n of ["fsync", "fdatasync", "sync", "syncfs"]) expect(call(p, n)).toBe(SECCOMP.RET_ERRNO | 0);
    expect(call(p, "write")).toBe(ALLOW);
  });
  test("the programs embedded at build time are the ones the compiler makes", () => {
    const pre = precomputeDefaultPrograms();
    for (const [k, v] of Object.entries(pre)) expect(PRECOMPILED[k]).toBe(Buffer.from(v).toString("base64"));
    expect(PRECOMPILED[gatingMask(DEFAULT_CAP_MASK).toString(16)]).toBeDefined();
  });
});
