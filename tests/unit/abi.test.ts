// The wire format between TypeScript and the shim has one source (abi.ts);
// this checks that the built shim agrees with it.
import { expect, test } from "bun:test";
import { dlopen } from "bun:ffi";
import { readFileSync } from "node:fs";
import { ABI_VERSION, HEADER_SIZE, MSG_SIZE, OP, OP_SIZE, SHIM_SYMBOLS, renderHeader } from "../../src/sys/abi.ts";
import { encodePlan } from "../../src/sys/plan.ts";
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
