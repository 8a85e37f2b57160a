// spawnctl's own executable, and the command that starts it again (the port
// forwarder, the journal of a tree, the autostart unit, the supervisor's
// clean-up). Usually process.execPath. Started through a dynamic loader —
// `ld-musl-x86_64.so.1 --library-path DIR spawnctl`, the way a musl build
// runs on a host without musl, or `ld-linux-x86-64.so.2 spawnctl` — the
// kernel ran the loader, so process.execPath is the loader: the program is
// the loader's first operand, read from /proc/self/cmdline (the loader moves
// argv past its own arguments, the kernel's copy keeps them).
import { readFileSync, realpathSync } from "node:fs";

/** ld.so's and musl's loader options that take a value */
const LOADER_VALUE_OPTIONS = new Set(["--library-path", "--inhibit-rpath", "--audit", "--preload", "--argv0", "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"]);

export interface SelfCommand {
  /** the spawnctl executable (what to open, link to, name in a unit) */
  exe: string;
  /** how to run it: [exe], or the loader with its options and then exe */
  argv: string[];
}

let cached: SelfCommand | undefined;

/** Is this (process.execPath, a resolved path) a dynamic loader? musl's is its libc: Debian links ld-musl-*.so.1 to libc.so, Alpine libc.musl-*.so.1 to it. */
export function isLoader(path: string): boolean {
  return /^(ld-(linux|musl)[\w.-]*\.so(\.\d+)*|libc(\.musl-\w+)?\.so(\.\d+)*)$/.test(path.slice(path.lastIndexOf("/") + 1));
}

/** Parse the loader's command line (the NUL-separated /proc/self/cmdline): its own options, then the program. */
export function parseLoaderCmdline(args: string[], cwd: string): { options: string[]; program: string } | undefined {
  const options: string[] = [];
  let i = 1;
  while (i < args.length && args[i]!.startsWith("--")) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    const [name] = a.split("=", 1);
    const takesValue = LOADER_VALUE_OPTIONS.has(name!) && !a.includes("=");
    // --argv0 only renames the program for itself; a re-run gets its real name
    // (a relative --library-path would mean something else from another directory)
    const value = takesValue ? args[i + 1] ?? "" : undefined;
    const fixed = name === "--library-path" && value !== undefined ? value.split(":").map((d) => (d && !d.startsWith("/") ? `${cwd}/${d}` : d)).join(":") : value;
    if (name !== "--argv0") options.push(...(fixed !== undefined ? [a, fixed] : [a]));
    i += takesValue ? 2 : 1;
  }
  const program = args[i];
  if (!program) return undefined;
  return { options, program: program.startsWith("/") ? program : `${cwd}/${program}` };
}

export function self(): SelfCommand {
  if (cached) return cached;
  const exec = process.execPath;
  cached = { exe: exec, argv: [exec] };
  if (isLoader(exec)) {
    try {
      const args = readFileSync("/proc/self/cmdline", "latin1").replace(/\0$/, "").split("\0");
      const p = parseLoaderCmdline(args, process.cwd());
      if (p) {
        const exe = realpathSync(p.program);
        cached = { exe, argv: [exec, ...p.options, exe] };
      }
    } catch {
      /* no /proc: the loader it is */
    }
  }
  return cached;
}
