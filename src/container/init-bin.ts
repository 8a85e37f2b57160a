// The stub init of --as-pid2 (the shim's source built static with -DNSH_INIT),
// embedded in the binary. PID 1 of the container execs it from a sealed
// memfd once it has forked the payload, so /proc/1/exe is that memfd and not
// spawnctl's own executable: no container process can get a handle on a file
// that host root runs (runc's CVE-2019-5736).
import { readFileSync } from "node:fs";
import initFile from "../../build/nsh-init" with { type: "file" };
import { sealedMemfd } from "../sys/ffi.ts";
import type { Plan } from "../sys/plan.ts";

/** Give the plan's stub init a sealed memfd of the init to exec; returns the fd (the caller closes it after the spawn), or -1 when the plan has none. */
export function attachInit(plan: Plan): number {
  const i = plan.ops.findIndex((op) => op.kind === "stubInit");
  if (i < 0) return -1;
  const fd = sealedMemfd("spawnctl-init", readFileSync(initFile));
  const stub = plan.ops[i]!;
  if (stub.kind === "stubInit") stub.exeFd = fd;
  // the fds were closed just before: keep this one across that
  for (let j = i - 1; j >= 0; j--) {
    const op = plan.ops[j]!;
    if (op.kind === "closeFrom") {
      op.keep = fd;
      break;
    }
  }
  return fd;
}
