// The seccomp program for a start. The default policy for the usual capability
// sets was compiled at build time (build/gen/seccomp.ts); only a custom
// --system-call-filter= or an unusual capability set compiles here, and that
// loads the syscall tables lazily.
import { PRECOMPILED, GATING_MASK } from "../../../build/gen/seccomp.ts";
import { SpawnctlError } from "../../util/errors.ts";

export function loadFilter(caps: bigint, allow: readonly string[], deny: readonly string[], suppressSync = false): Uint8Array {
  if (allow.length === 0 && deny.length === 0 && !suppressSync) {
    const hit = PRECOMPILED[(caps & GATING_MASK).toString(16)];
    if (hit) return Buffer.from(hit, "base64");
  }
  // biome-ignore lint: lazy import keeps the tables off the common start path
  const { compileFilter, isKnownName } = require("./compile.ts") as typeof import("./compile.ts");
  for (const n of [...allow, ...deny]) {
    if (!isKnownName(n)) throw new SpawnctlError(`Failed to parse system call filter: unknown system call or group ${n}.`);
  }
  return compileFilter({ caps, allow, deny, suppressSync });
}
