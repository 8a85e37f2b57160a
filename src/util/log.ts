// The one place that writes spawnctl's own messages. Everything below the CLI
// reports through here so that --quiet, --json and progress output are decided
// in one spot.
import { writeSync } from "node:fs";

let quiet = false;

export function setQuiet(q: boolean): void {
  quiet = q;
}

function out(fd: number, text: string): void {
  try {
    writeSync(fd, text.endsWith("\n") ? text : `${text}\n`);
  } catch {
    /* a closed stderr must not turn into a crash */
  }
}

/** status lines nspawn prints ("Spawning container ..."), suppressed by -q */
export function info(text: string): void {
  if (!quiet) out(2, text);
}

export function warn(text: string): void {
  out(2, text);
}

export function error(text: string): void {
  out(2, text);
}

/** plain output for the user (tables, plans) on stdout */
export function print(text: string): void {
  out(1, text);
}

export function isQuiet(): boolean {
  return quiet;
}

const T0 = performance.now();
const tracing = !!process.env.SPAWNCTL_TRACE;
/** timing trace for development: SPAWNCTL_TRACE=1 */
export function trace(what: string): void {
  if (tracing) out(2, `[${(performance.now() - T0).toFixed(2)} ms @${((performance.timeOrigin + performance.now()) % 100000).toFixed(2)}] ${what}`);
}
