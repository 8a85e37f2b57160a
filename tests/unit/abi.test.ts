// The wire format between TypeScript and the shim has one source (abi.ts);
// this checks that the built shim agrees with it.
import { expect, test } from "bun:test";
import { dlopen } from "bun:ffi";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ABI_VERSION, HEADER_SIZE, MSG_SIZE, OP, OP_SIZE, PARENT_STATE_SIZE, POP, SHIM_SYMBOLS, renderHeader } from "../../src/sys/abi.ts";
import { encodeParent, encodePlan } from "../../src/sys/plan.ts";
import { ROOT } from "../helpers.ts";

test("the built shim reports the ABI the TypeScript side speaks", () => {
  const lib = dlopen(`${ROOT}/build/nsh.so`, SHIM_SYMBOLS as never).symbols as Record<string, () => number>;
  expect(lib.nsh_abi_version!()).toBe(ABI_VERSION);
  expect(lib.nsh_op_size!()).toBe(OP_SIZE);
  expect(lib.nsh_header_size!()).toBe(HEADER_SIZE);
  expect(lib.nsh_msg_size!()).toBe(MSG_SIZE);
});

test("the generated header is the one rendered from abi.ts", () => {
  expect(readFileSync(`${ROOT}/shim/nsh_abi.h`, "utf8")).toBe(renderHeader());
  for (const [k, v] of Object.entries(OP)) expect(renderHeader()).toContain(`#define NSH_OP_${k} ${v}u`);
});

test("the shim refuses malformed plans before cloning", () => {
  const lib = dlopen(`${ROOT}/build/nsh.so`, SHIM_SYMBOLS as never).symbols as Record<string, (...a: unknown[]) => number>;
  const good = encodePlan({ cloneFlags: 0, ops: [{ kind: "exec", file: "/bin/true", argv: ["true"], env: [] }] });
  const fds = new Int32Array(2);
  // truncated
  expect(lib.nsh_spawn!(good, good.length - 1, fds)).toBe(-22);
  // wrong version
  const bad = new Uint8Array(good);
  new DataView(bad.buffer).setUint32(4, ABI_VERSION + 1, true);
  expect(lib.nsh_spawn!(bad, bad.length, fds)).toBe(-71 /* EPROTO */);
  // a string offset past the table
  const off = new Uint8Array(good);
  new DataView(off.buffer).setUint32(HEADER_SIZE + 8, 0xfffffff0, true);
  expect(lib.nsh_spawn!(off, off.length, fds)).toBe(-22);
  // an unknown op kind
  const kind = new Uint8Array(good);
  new DataView(kind.buffer).setUint32(HEADER_SIZE, 999, true);
  expect(lib.nsh_spawn!(kind, kind.length, fds)).toBe(-22);
});

test("the parent's side and the child's do not mix: each refuses the other's ops", () => {
  const lib = dlopen(`${ROOT}/build/nsh.so`, SHIM_SYMBOLS as never).symbols as Record<string, (...a: unknown[]) => number>;
  const fds = new Int32Array(2);
  const state = new Int32Array(PARENT_STATE_SIZE).fill(-1, 0, 8);
  const res = new Int32Array(4);
  // a parent op in the child's plan
  const child = encodePlan({ cloneFlags: 0, ops: [{ kind: "exec", file: "/bin/true", argv: ["true"], env: [] }] });
  const withParent = new Uint8Array(child);
  new DataView(withParent.buffer).setUint32(HEADER_SIZE, POP.GO, true);
  expect(lib.nsh_spawn!(withParent, withParent.length, fds)).toBe(-22);
  // a child op in the parent's: refused before any clone
  const prog = encodeParent([{ kind: "go", barrier: 1 }]);
  const bad = new Uint8Array(prog);
  new DataView(bad.buffer).setUint32(HEADER_SIZE, OP.EXEC, true);
  expect(lib.nsh_spawn_parent!(child, child.length, fds, bad, bad.length, state, res)).toBe(-22);
  // a register out of range
  const reg = encodeParent([{ kind: "closeReg", reg: 0 }]);
  new DataView(reg.buffer).setUint32(HEADER_SIZE + 24, 8, true);
  expect(lib.nsh_parent_run!(0, -1, reg, reg.length, 0, state, res)).toBe(-1);
  expect(res[1]).toBe(22);
  // a step stops the shim where TypeScript takes over; the end is nops
  const steps = encodeParent([{ kind: "closeReg", reg: 1 }, { kind: "step", name: "net-links" }, { kind: "closeReg", reg: 1 }]);
  expect(lib.nsh_parent_run!(0, -1, steps, steps.length, 0, state, res)).toBe(1);
  expect(lib.nsh_parent_run!(0, -1, steps, steps.length, 2, state, res)).toBe(3);
  // a failure names the op and the part of it: the second path of a chown
  // (to the owner it has: no root needed)
  const own = `${tmpdir()}/spawnctl-abi-${process.pid}`;
  writeFileSync(own, "");
  const chown = encodeParent([{ kind: "chownPaths", paths: [own, "/nonexistent/spawnctl-test"], uid: process.getuid!(), gid: process.getgid!(), what: "t" }]);
  expect(lib.nsh_parent_run!(0, -1, chown, chown.length, 0, state, res)).toBe(-1);
  rmSync(own);
  expect([...res.subarray(0, 3)]).toEqual([0, 2, 1]);
});

test("encodePlan lays out header, fixed records and a string table", () => {
  const buf = encodePlan({ cloneFlags: 0x20000, ops: [{ kind: "hostname", name: "box" }, { kind: "hostname", name: "box" }] });
  const dv = new DataView(buf.buffer);
  expect(dv.getUint32(8, true)).toBe(2);
  expect(Number(dv.getBigUint64(16, true))).toBe(0x20000);
  const strtab = HEADER_SIZE + 2 * OP_SIZE;
  expect(buf.length).toBe(strtab + dv.getUint32(12, true));
  // identical strings are stored once
  const s0 = dv.getUint32(HEADER_SIZE + 8, true);
  expect(dv.getUint32(HEADER_SIZE + OP_SIZE + 8, true)).toBe(s0);
  expect(new TextDecoder().decode(buf.subarray(strtab + s0, strtab + s0 + 3))).toBe("box");
});
