// The tree a bootstrap builds: a temporary directory beside DEST, renamed
// to DEST at the end, removed on failure (debootstrap and pacstrap alike).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import type { Cleanup } from "../container/prepare.ts";

/** Paths of the target tree: a temporary name beside DEST, renamed at the end. */
export function prepareTarget(dest: string, cleanup: Cleanup): string {
  if (dest === "/" || dest === "") throw new SpawnctlError("Refusing to bootstrap into the root directory.");
  if (existsSync(dest)) {
    const st = statSync(dest);
    if (!st.isDirectory()) throw new SpawnctlError(`${dest} exists and is not a directory.`);
    if (readdirSync(dest).some((e) => e !== "lost+found")) throw new SpawnctlError(`${dest} exists and is not empty.`);
  }
  const parent = dest.replace(/\/[^/]+\/?$/, "") || "/";
  mkdirSync(parent, { recursive: true });
  const name = dest.slice(parent.length + 1).replace(/\/$/, "");
  const tmp = mkdtempSync(`${parent}/.#${name}.bootstrap-`);
  chmodSync(tmp, 0o755);
  cleanup.push(() => rmSync(tmp, { recursive: true, force: true }));
  return tmp;
}

/**
 * SIGINT and SIGTERM interrupt a bootstrap: `signal` aborts its downloads,
 * check() throws once it has come, release() stops listening.
 */
export function interruption(): { signal: AbortSignal; check(): void; release(): void } {
  const abort = new AbortController();
  const onSignal = () => abort.abort(new SpawnctlError("Interrupted."));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: abort.signal,
    check() {
      if (abort.signal.aborted) throw abort.signal.reason;
    },
    release() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}
