// Progress on a terminal for work that takes more than a moment (downloads,
// extraction, dpkg, exports, imports, copies): one line on stderr, rewritten
// in place ("\r" and erase) at most ten times a second and cut to the
// terminal's width. In a pipe, in a log or with -q there is no live line at
// all; phase() and finish() lines are what a log gets (and -q drops them too).
// The formatting is pure functions, so it is tested without a terminal.
import { isatty } from "../sys/ffi.ts";
import { isQuiet, info } from "./log.ts";
import { writeSync } from "node:fs";

// the same fd and the same synchronous writes as log.ts, so lines never overtake each other
function writeStderr(text: string): void {
  try {
    writeSync(2, text);
  } catch {
    /* a closed stderr must not turn into a crash */
  }
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** 1024-based, one decimal from KiB up: "512 B", "23.1 MiB". */
export function formatSize(n: number): string {
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** Seconds as "0:07", "12:34", "1:02:03". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (x: number) => String(x).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

export interface TransferState {
  /** "Exporting 'web'" */
  label: string;
  done: number;
  /** bytes in all, when known */
  total?: number;
  /** since the start, in milliseconds */
  elapsedMs: number;
}

/**
 * "Exporting 'web': 23.1 MiB/48.0 MiB (48%), 11.6 MiB/s, ETA 0:02"; without a
 * total "Copying: 23.1 MiB, 11.6 MiB/s". The rate (and with it the ETA) shows
 * after half a second, when it means something.
 */
export function formatTransfer(s: TransferState): string {
  const parts: string[] = [];
  const known = s.total !== undefined && s.total > 0;
  parts.push(known ? `${formatSize(s.done)}/${formatSize(s.total!)} (${Math.min(100, Math.floor((s.done * 100) / s.total!))}%)` : formatSize(s.done));
  const secs = s.elapsedMs / 1000;
  if (secs >= 0.5 && s.done > 0) {
    const rate = s.done / secs;
    parts.push(`${formatSize(rate)}/s`);
    if (known && s.done < s.total!) parts.push(`ETA ${formatDuration((s.total! - s.done) / rate)}`);
  }
  return `${s.label}: ${parts.join(", ")}`;
}

/**
 * "Downloading 57/120 packages, 23.1 MiB/48.0 MiB"; "Unpacking 40/120
 * packages"; a detail (the package at hand) goes last: "Extracting 3/120
 * packages: dash".
 */
export function formatCount(verb: string, done: number, total: number, noun = "packages", bytes?: { done: number; total?: number }, detail?: string): string {
  let t = `${verb} ${done}/${total} ${noun}`;
  if (bytes) t += `, ${formatSize(bytes.done)}${bytes.total ? `/${formatSize(bytes.total)}` : ""}`;
  if (detail) t += `: ${detail}`;
  return t;
}

/** The line cut to `columns` - 1 characters (the last column would wrap on some terminals). */
export function fitWidth(text: string, columns: number | undefined): string {
  const max = (columns && columns > 10 ? columns : 80) - 1;
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** At most one "yes" per interval; `force` always says yes and restarts the interval. */
export class RateLimiter {
  private last = -Infinity;
  constructor(private readonly intervalMs = 100, private readonly clock: () => number = () => performance.now()) {}
  ready(force = false): boolean {
    const now = this.clock();
    if (!force && now - this.last < this.intervalMs) return false;
    this.last = now;
    return true;
  }
}

export interface ProgressOptions {
  /** draw the live line (default: stderr is a terminal, TERM is not dumb, no -q) */
  live?: boolean;
  write?: (text: string) => void;
  /** the terminal's width (default: stderr's) */
  columns?: () => number | undefined;
  clock?: () => number;
  intervalMs?: number;
}

export class Progress {
  private readonly live: boolean;
  private readonly write: (text: string) => void;
  private readonly columns: () => number | undefined;
  private readonly clock: () => number;
  private readonly limiter: RateLimiter;
  private shown = false;
  private started: number;

  constructor(o: ProgressOptions = {}) {
    this.live = o.live ?? (!isQuiet() && isatty(2) && process.env.TERM !== "dumb");
    this.write = o.write ?? writeStderr;
    this.columns = o.columns ?? (() => process.stderr.columns);
    this.clock = o.clock ?? (() => performance.now());
    this.limiter = new RateLimiter(o.intervalMs ?? 100, this.clock);
    this.started = this.clock();
  }

  /** is the live line drawn at all? */
  get isLive(): boolean {
    return this.live;
  }

  /** Restart the clock of rate and ETA (a new stage). */
  restart(): void {
    this.started = this.clock();
  }

  /** A stage's heading: on a terminal and in logs (not with -q). */
  phase(text: string): void {
    this.clear();
    info(text);
  }

  /** The live line, at most ten times a second unless forced. */
  update(text: string, force = false): void {
    if (!this.live || !this.limiter.ready(force)) return;
    this.write(`\r\x1b[K${fitWidth(text, this.columns())}`);
    this.shown = true;
  }

  /** bytes of a transfer: with a total, percent, rate and ETA */
  bytes(label: string, done: number, total?: number, force = false): void {
    if (!this.live) return;
    this.update(formatTransfer({ label, done, total, elapsedMs: this.clock() - this.started }), force);
  }

  /** Remove the live line (the caller prints its own result). */
  clear(): void {
    if (this.shown) this.write("\r\x1b[K");
    this.shown = false;
  }

  /** The line that stays: the live one is replaced by it; printed in logs too (not with -q). */
  finish(text: string): void {
    this.clear();
    info(text);
  }
}
