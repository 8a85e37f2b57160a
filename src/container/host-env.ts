// What the host tells the settings merge (src/settings/merge.ts): the
// working directory, whether we are root and on a terminal, the host name,
// file reads, randomness, the capability bounding set. One place for the
// command line (cli/run.ts), machines (machine/start.ts, autostart) and
// the bootstrap's containers (container/exec.ts).
import { existsSync, readFileSync, statSync } from "node:fs";
import type { MergeEnv } from "../settings/merge.ts";
import { isatty } from "../sys/ffi.ts";
import { warn } from "../util/log.ts";
import { boundingSet } from "./host.ts";
import { randomHex } from "./prepare.ts";

export function mergeEnv(): MergeEnv {
  return {
    cwd: process.cwd(),
    isRoot: process.getuid?.() === 0,
    isTty: isatty(0) && isatty(1),
    hostname: () => {
      try {
        return readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
      } catch {
        return "localhost";
      }
    },
    isDir: (p) => {
      try {
        return statSync(p).isDirectory();
      } catch {
        return false;
      }
    },
    isFile: (p) => {
      try {
        const st = statSync(p);
        return st.isFile() || st.isBlockDevice();
      } catch {
        return false;
      }
    },
    readFile: (p) => {
      if (!existsSync(p)) return undefined;
      try {
        return readFileSync(p, "utf8");
      } catch {
        return undefined;
      }
    },
    random64: () => randomHex(8),
    warn,
    boundingSet: boundingSet(),
  };
}

