// Progress on a terminal for long work (downloads, extraction, configure),
// nothing in a pipe or with -q. One line, rewritten in place.
import { isatty } from "../sys/ffi.ts";
import { isQuiet, info } from "./log.ts";
import { formatBytes } from "./table.ts";

export class Progress {
  private readonly live = !isQuiet() && isatty(2);
  private last = 0;
  private shown = false;

  /** a phase line: shown on a terminal and in logs (unless -q) */
  phase(text: string): void {
    this.clear();
    info(text);
  }

  /** the live line: at most ~10 updates a second */
  update(text: string, force = false): void {
    if (!this.live) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    process.stderr.write(`\r\x1b[K${text}`);
    this.shown = true;
  }

  bytes(what: string, done: number, total: number): void {
    const pct = total > 0 ? ` ${Math.floor((done * 100) / total)}%` : "";
    this.update(`${what}: ${formatBytes(done)}${total ? ` of ${formatBytes(total)}` : ""}${pct}`);
  }

  clear(): void {
    if (this.shown) process.stderr.write("\r\x1b[K");
    this.shown = false;
  }
}
