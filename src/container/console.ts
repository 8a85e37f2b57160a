// The console relay: the container's /dev/console is a pty whose master the
// supervisor holds. Interactive mode forwards both ways with the terminal in
// raw mode and the window size following the outer terminal; pressing ^]
// three times within a second asks to leave. Read-only forwards output only;
// passive forwards nothing until the end, when pending output is flushed.
import { ptr } from "bun:ffi";
import { createReadStream, writeSync, type ReadStream } from "node:fs";
import { isatty } from "node:tty";
import { shim } from "../sys/ffi.ts";
import type { ConsoleMode } from "../settings/types.ts";

const ESCAPE = 0x1d; // ^]

export interface Relay {
  /** wait until the pty has no more output (the container is gone), at most `ms` */
  drain(ms: number): Promise<void>;
  stop(): void;
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Bun.sleepSync(1);
        continue;
      }
      return;
    }
  }
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

export interface RelayOptions {
  mode: ConsoleMode;
  /** called when ^] was pressed three times within a second */
  onEscape(): void;
}

export function startRelay(master: number, opts: RelayOptions): Relay {
  const interactive = opts.mode === "interactive";
  let saved: Uint8Array | undefined;
  let stdin: ReadStream | undefined;
  let output: ReadStream | undefined;
  let ended = false;
  const endWaiters: Array<() => void> = [];
  const finish = () => {
    ended = true;
    for (const w of endWaiters.splice(0)) w();
  };
  const onWinch = () => syncWindowSize(master);

  syncWindowSize(master);
  if (interactive) {
    if (isatty(0)) {
      saved = new Uint8Array(256);
      if (shim().nsh_tty_raw(0, ptr(saved)) !== 0) saved = undefined;
    }
    process.on("SIGWINCH", onWinch);
    const presses: number[] = [];
    stdin = createReadStream("", { fd: 0, autoClose: false, highWaterMark: 4096 });
    stdin.on("data", (chunk: Buffer | string) => {
      const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      for (const b of data) {
        if (b !== ESCAPE) {
          presses.length = 0;
          continue;
        }
        const now = Date.now();
        presses.push(now);
        while (presses.length && now - presses[0]! > 1000) presses.shift();
        if (presses.length >= 3) {
          presses.length = 0;
          opts.onEscape();
          return;
        }
      }
      writeAll(master, data);
    });
    stdin.on("error", () => {});
  }
  const startOutput = () => {
    output = createReadStream("", { fd: master, autoClose: false, highWaterMark: 65536 });
    output.on("data", (chunk: Buffer | string) => writeAll(1, typeof chunk === "string" ? Buffer.from(chunk) : chunk));
    // EIO once the last slave fd is closed: the container is gone
    output.on("error", finish);
    output.on("end", finish);
    output.on("close", finish);
  };
  if (opts.mode !== "passive") startOutput();

  const restore = () => {
    if (saved) {
      shim().nsh_tty_restore(0, ptr(saved));
      saved = undefined;
    }
  };
  return {
    drain(ms) {
      if (!output) startOutput();
      if (ended) return Promise.resolve();
      return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        endWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    stop() {
      restore();
      process.off("SIGWINCH", onWinch);
      stdin?.destroy();
      output?.destroy();
    },
  };
}
