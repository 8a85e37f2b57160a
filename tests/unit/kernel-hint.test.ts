// ENOSYS from spawnctl's own system calls on a kernel older than 5.6 (no
// openat2) says which kernel spawnctl needs.
import { expect, test } from "bun:test";
import { oldKernelHint, strerror } from "../../src/sys/ffi.ts";

test("ENOSYS on a kernel older than 5.6 names the kernel spawnctl needs", () => {
  expect(oldKernelHint("4.18.0-553.el8_10.x86_64")).toBe(" (spawnctl needs Linux 5.6 or newer; this kernel is 4.18.0-553.el8_10.x86_64)");
  expect(oldKernelHint("3.10.0-1160.el7.x86_64")).toContain("needs Linux 5.6");
  expect(oldKernelHint("5.4.0-150-generic")).toContain("needs Linux 5.6");
  for (const k of ["5.6.0", "5.10.0-30-amd64", "6.1.0-18-amd64", "10.0"]) expect(oldKernelHint(k)).toBe("");
  expect(strerror(2)).toBe("No such file or directory");
});
