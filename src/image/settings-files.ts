// `cat` and `edit` of .nspawn files, the two verbs machinectl runs locally.
// A NAME (or NAME.nspawn) is looked up where systemd-nspawn reads settings:
// /etc/systemd/nspawn, /run/systemd/nspawn, then beside the image. `edit`
// always writes to /etc/systemd/nspawn/NAME.nspawn (starting from the file
// found, or an empty one): an edited copy of a file from beside the image or
// from /run lands in /etc, where it takes precedence and is trusted.
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { isValidMachineName } from "../settings/parse.ts";
import { SpawnctlError, fsMessage, usage } from "../util/errors.ts";
import { info, print } from "../util/log.ts";
import { tempPath } from "./names.ts";
import { findImage, settingsPaths } from "./pool.ts";

export const SETTINGS_DIR = "/etc/systemd/nspawn";

interface Target {
  /** the .nspawn file name */
  file: string;
  /** the file found, if any */
  found?: string;
  /** an absolute path given on the command line */
  explicit?: string;
}

function safePath(p: string): boolean {
  return p.startsWith("/") && !p.split("/").includes("..");
}

function resolveArg(arg: string): Target {
  if (arg.startsWith("/")) {
    if (!safePath(arg)) throw usage(`Invalid settings file path '${arg}'.`);
    return { file: arg.slice(arg.lastIndexOf("/") + 1), explicit: arg, found: existsSync(arg) ? arg : undefined };
  }
  let name: string;
  if (arg.endsWith(".nspawn")) {
    name = arg.slice(0, -".nspawn".length);
    if (arg.includes("/") || name === "") throw usage(`Invalid settings file name '${arg}'.`);
  } else {
    if (!isValidMachineName(arg)) throw usage(`Invalid machine name '${arg}'.`);
    name = arg;
  }
  const img = findImage(name);
  const found = settingsPaths(name, img?.path).find((p) => existsSync(p));
  return { file: `${name}.nspawn`, found };
}

/** The text `cat` prints for each argument: "# PATH" and the file, as machinectl's cat_files. */
export function catSettings(args: string[]): void {
  const parts: string[] = [];
  for (const a of args) {
    const t = resolveArg(a);
    if (!t.found) throw new SpawnctlError(t.explicit ? `Reading ${t.explicit}: No such file or directory` : `No settings file for '${a}' found (looked in ${SETTINGS_DIR}, /run/systemd/nspawn and beside the image).`);
    let text: string;
    try {
      text = readFileSync(t.found, "utf8");
    } catch (e) {
      throw new SpawnctlError(`reading ${t.found}: ${fsMessage(e)}`, { cause: e });
    }
    parts.push(`# ${t.found}\n${text.endsWith("\n") || text === "" ? text : `${text}\n`}`);
  }
  print(parts.join("\n").replace(/\n$/, ""));
}

/** The editor command, as systemd's edit-util: $SYSTEMD_EDITOR, $EDITOR, $VISUAL (split at whitespace), then editor, nano, vim, vi. */
export function editorCommand(env: Record<string, string | undefined> = process.env, which: (c: string) => string | null = Bun.which): string[] {
  for (const v of ["SYSTEMD_EDITOR", "EDITOR", "VISUAL"]) {
    const s = env[v]?.trim();
    if (!s) continue;
    const argv = s.split(/\s+/);
    if (which(argv[0]!)) return argv;
  }
  for (const e of ["editor", "nano", "vim", "vi"]) if (which(e)) return [e];
  throw new SpawnctlError("Cannot edit files, no editor available. Please set either $SYSTEMD_EDITOR, $EDITOR or $VISUAL.");
}

export function editSettings(args: string[]): void {
  const jobs: Array<{ target: string; tmp: string; original: string }> = [];
  try {
    mkdirSync(SETTINGS_DIR, { recursive: true, mode: 0o755 });
    for (const a of args) {
      const t = resolveArg(a);
      const target = t.explicit ?? `${SETTINGS_DIR}/${t.file}`;
      const dir = target.slice(0, target.lastIndexOf("/")) || "/";
      const tmp = tempPath(dir, `edit-${t.file}`);
      jobs.push({ target, tmp, original: "" });
      const job = jobs[jobs.length - 1]!;
      if (t.found) {
        copyFileSync(t.found, tmp);
        job.original = readFileSync(tmp, "utf8");
      } else {
        closeSync(openSync(tmp, "wx", 0o644));
      }
    }
    const cmd = editorCommand();
    // ^C on the terminal reaches the editor too: it decides; we only must not die with our temporary files left
    const ignore = () => {};
    process.on("SIGINT", ignore);
    let p;
    try {
      p = Bun.spawnSync([...cmd, ...jobs.map((j) => j.tmp)], { stdio: ["inherit", "inherit", "inherit"] });
    } finally {
      process.off("SIGINT", ignore);
    }
    if (p.exitCode !== 0) throw new SpawnctlError(`Editor ${cmd[0]} exited with status ${p.exitCode ?? `signal ${p.signalCode}`}; nothing was changed.`);
    for (const j of jobs) {
      const text = readFileSync(j.tmp, "utf8");
      if (text.trim() === "") {
        info(`Editing "${j.target}" canceled: temporary file is empty.`);
        continue;
      }
      if (text === j.original && existsSync(j.target)) {
        info(`${j.target} was not modified.`);
        continue;
      }
      // keep the mode of the file being replaced
      let mode = 0o644;
      try {
        mode = statSync(j.target).mode & 0o7777;
      } catch {
        /* new file */
      }
      try {
        chmodSync(j.tmp, mode);
        renameSync(j.tmp, j.target); // replaces the old file atomically
      } catch (e) {
        throw new SpawnctlError(`installing ${j.target}: ${fsMessage(e)}`, { cause: e });
      }
      info(`Successfully installed edited file '${j.target}'.`);
    }
  } finally {
    for (const j of jobs) {
      try {
        unlinkSync(j.tmp);
      } catch {
        /* installed or never made */
      }
    }
  }
}
