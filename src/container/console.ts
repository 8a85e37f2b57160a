// The console relay: the container's /dev/console is a pty whose master the
// supervisor holds. Interactive mode forwards both ways with the terminal in
// raw mode and the window size following the outer terminal; pressing ^]
// three times within a second asks to leave. Read-only forwards output only;
// passive forwards nothing until the end, when the last of its output is
// shown (the pty is drained all along: a guest never blocks on it).
//
// Reads go through Bun.file(fd).stream() on non-blocking fds, which the event
// loop polls; node:fs streams would start a thread pool for them.
import { ptr } from "bun:ffi";
import { writeSync } from "node:fs";
import { closeQuietly, isatty, shim } from "../sys/ffi.ts";
import type { ConsoleMode } from "../settings/types.ts";

export const ESCAPE = 0x1d; // ^]

export interface Relay {
  /** the container is gone: forward what is left in the pty, at most `ms` */
  drain(ms: number): Promise<void>;
  stop(): void;
}

export function writeAll(fd: number, data: Uint8Array): boolean {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Bun.sleepSync(1);
        continue;
      }
      return false;
    }
  }
  return true;
}

export function syncWindowSize(master: number): void {
  const ws = new Uint16Array(2);
  for (const fd of [1, 0, 2]) {
    if (isatty(fd) && shim().nsh_get_winsize(fd, ptr(ws)) === 0) {
      shim().nsh_set_winsize(master, ws[0]!, ws[1]!);
      return;
    }
  }
}

/** Counts ^] presses: three within a second means "leave". */
export class EscapeDetector {
  private presses: number[] = [];
  constructor(private now: () => number = Date.now) {}
  /** true when this chunk completed the escape sequence */
  feed(data: Uint8Array): boolean {
    for (const b of data) {
      if (b !== ESCAPE) {
        this.presses.length = 0;
        continue;
      }
      const t = this.now();
      this.presses.push(t);
      while (this.presses.length && t - this.presses[0]! > 1000) this.presses.shift();
      if (this.presses.length >= 3) {
        this.presses.length = 0;
        return true;
      }
    }
    return false;
  }
}

/** Pump a readable fd into a callback until EOF or EIO; resolves when done. */
export async function pump(fd: number, onData: (d: Uint8Array) => void, stop: { stopped: boolean }): Promise<void> {
  const reader = Bun.file(fd).stream().getReader();
  try {
    while (!stop.stopped) {
      const { done, value } = await reader.read();
      if (done || stop.stopped) break;
      onData(value);
    }
  } catch {
    /* EIO: the last slave is closed */
  } finally {
    try {
      reader.releaseLock();
    } catch {
      /* stream already gone */
    }
  }
}

/** how much of a passive console's output is kept for the end */
const PASSIVE_KEEP = 256 * 1024;

export interface RelayOptions {
  mode: ConsoleMode;
  /** the console has a fixed size (an OCI bundle's process.consoleSize, set by the plan), not the terminal's */
  fixedSize?: boolean;
  /** called when ^] was pressed three times within a second */
  onEscape(): void;
}

export function startRelay(master: number, opts: RelayOptions): Relay {
  const interactive = opts.mode === "interactive";
  let saved: Uint8Array | undefined;
  const stop = { stopped: false };
  let output: Promise<void> | undefined;
  const onWinch = () => syncWindowSize(master);
  shim().nsh_set_nonblock(master, 1);
  if (!opts.fixedSize) syncWindowSize(master);
  // The supervisor keeps a slave fd of its own while the container runs: a
  // booted system closes and reopens /dev/console (agetty, vhangup), and with
  // no slave open the master reads EIO and the relay would end. Closing it at
  // the end turns "buffer drained" into EIO.
  let peer = shim().nsh_pty_peer(master) as number;

  if (interactive) {
    if (isatty(0)) {
      saved = new Uint8Array(256);
      if (shim().nsh_tty_raw(0, ptr(saved)) !== 0) saved = undefined;
    }
    if (!opts.fixedSize) process.on("SIGWINCH", onWinch);
    const esc = new EscapeDetector();
    void (async () => {
      const reader = Bun.stdin.stream().getReader();
      try {
        while (!stop.stopped) {
          const { done, value } = await reader.read();
          if (done || stop.stopped) break;
          if (esc.feed(value)) {
            opts.onEscape();
            break;
          }
          writeAll(master, value);
        }
      } catch {
        /* stdin went away */
      }
    })();
  }
  const startOutput = () => {
    output = pump(master, (d) => writeAll(1, d), stop);
  };
  // passive: the pty is read all along, so that a guest writing to its
  // console never blocks on a full pty, and the last PASSIVE_KEEP bytes are
  // shown at the end (what nspawn's flush at exit shows)
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  if (opts.mode !== "passive") startOutput();
  else {
    output = pump(master, (d) => {
      kept.push(d.slice());
      keptBytes += d.length;
      while (keptBytes - kept[0]!.length >= PASSIVE_KEEP) keptBytes -= kept.shift()!.length;
    }, stop).then(() => {
      for (const d of kept.splice(0)) writeAll(1, d);
    });
  }

  const restore = () => {
    if (saved) {
      shim().nsh_tty_restore(0, ptr(saved));
      saved = undefined;
    }
  };
  return {
    drain(ms) {
      if (peer >= 0) {
        closeQuietly(peer);
        peer = -1;
      }
      if (!output) startOutput();
      return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        output!.then(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    stop() {
      stop.stopped = true;
      if (peer >= 0) {
        closeQuietly(peer);
        peer = -1;
      }
      restore();
      process.off("SIGWINCH", onWinch);
    },
  };
}
