// The binary starts with JavaScriptCore's tier-up thresholds raised (build.ts
// passes --compile-jit-policy): most commands run for milliseconds, and
// compiling their code in the higher JIT tiers costs more CPU than it saves
// (measured: a container start ~3 ms faster, `start` of 50 machines ~10%).
// Long computations (bootstrap, image transfers, the xz decoder) put the
// normal thresholds back first.

/** The normal JIT policy, for a long computation. */
export function fullJit(): void {
  (Bun as unknown as { unsafe?: { setJITPolicy?: (n: number) => void } }).unsafe?.setJITPolicy?.(1);
}
