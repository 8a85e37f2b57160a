// Progress of long image work (import, export, clone, pull) on a terminal:
// bytes, total, percent, rate and ETA on one line rewritten in place, drawn
// by util/progress.ts. Nothing when stderr is not a terminal or with -q: the
// callers print their final line themselves.
import { Progress as Line } from "../util/progress.ts";

export class Progress {
  private readonly line = new Line();

  constructor(private readonly label: string) {}

  /** is the line drawn at all? (a total that costs a walk of the tree is worth it only then) */
  get live(): boolean {
    return this.line.isLive;
  }

  /** `done` bytes, of `total` when known */
  update(done: number, total?: number): void {
    this.line.bytes(this.label, done, total);
  }

  /** Remove the status line (the caller prints its own result). */
  clear(): void {
    this.line.clear();
  }
}
