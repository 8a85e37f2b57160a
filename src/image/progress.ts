// Progress of long image work on a terminal: one status line on stderr,
// rewritten in place (cursor up, erase line) at most a few times a second.
// Nothing at all when stderr is not a terminal or with -q, so scripts and
// logs get only the final messages.
import { isatty } from "../sys/ffi.ts";
import { info, isQuiet } from "../util/log.ts";
import { formatBytes } from "../util/table.ts";

export class Progress {
  private readonly enabled: boolean;
  private shown = false;
  private last = 0;
  private readonly start = performance.now();

  constructor(private readonly label: string) {
    this.enabled = !isQuiet() && isatty(2) && process.env.TERM !== "dumb";
  }

  /** `done` bytes (or entries with `unit`), of `total` when known */
  update(done: number, total?: number, extra = ""): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 200) return;
    this.last = now;
    const secs = (now - this.start) / 1000;
    const rate = secs > 0.5 ? `, ${formatBytes(Math.round(done / secs))}/s` : "";
    const pct = total && total > 0 ? ` of ${formatBytes(total)} (${Math.min(100, Math.floor((done * 100) / total))}%)` : "";
    this.line(`${this.label}: ${formatBytes(done)}${pct}${rate}${extra}`);
  }

  private line(text: string): void {
    // "\x1b[1A\x1b[2K": up one line and erase it, so the status line is rewritten in place
    info(this.shown ? `\x1b[1A\x1b[2K${text}` : text);
    this.shown = true;
  }

  /** Remove the status line (the caller prints its own result). */
  clear(): void {
    if (this.enabled && this.shown) info("\x1b[1A\x1b[2K\x1b[1A");
    this.shown = false;
  }
}
