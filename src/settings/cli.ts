// The systemd-nspawn command line, parsed as getopt_long does with a leading
// "+": options end at the first non-option, and everything after it (flags
// included) belongs to the payload. cac cannot stop there, so this is a small
// parser driven by the settings table.
import { usage } from "../util/errors.ts";
import { invalidShortOption, unrecognizedOption } from "../util/suggest.ts";
import { ParseError, displayValue, sanitizeMessage } from "./parse.ts";
import { META_OPTIONS, ROWS, rowByLong, rowByShort, rowFlag, type Row } from "./table.ts";
import type { PartialSettings } from "./types.ts";

export interface CommandLine {
  settings: PartialSettings;
  /** mask groups the command line set */
  groups: Set<string>;
  /** the payload: command and its arguments, or init's arguments with --boot */
  args: string[];
  meta: Set<string>;
}

/**
 * The error for a bad value: nspawn's sentence where it has one, else
 * "Failed to parse --flag= argument VALUE: reason". It always names the
 * option (a sentence that does not gets "Invalid --flag= argument: " before
 * it), and shows the value escaped and shortened: it may hold terminal
 * escapes, newlines or 100000 characters.
 */
export function parseFailure(r: Row, value: string | undefined, e: unknown, given?: string): Error {
  if (e instanceof ParseError) {
    // the option as it was given (--uid is --user's other name), else the row's own
    const flag = given ?? rowFlag(r);
    if (e.sentence) {
      let sentence = e.message.endsWith(".") ? e.message : `${e.message}.`;
      if (value && displayValue(value) !== value) sentence = sentence.split(value).join(displayValue(value));
      const named = sentence.includes(`${flag}=`) || (r.long ?? []).some((l) => sentence.includes(`--${l}=`));
      return usage(sanitizeMessage(named ? sentence : `Invalid ${flag}= argument: ${sentence}`));
    }
    return usage(sanitizeMessage(`Failed to parse ${flag}= argument ${displayValue(value ?? "")}: ${e.message}`));
  }
  return e as Error;
}

function apply(cl: CommandLine, r: Row, v: string | undefined, cwd: string, given?: string): void {
  try {
    r.set(cl.settings, v, "cli", cwd);
  } catch (e) {
    throw parseFailure(r, v, e, given);
  }
  cl.groups.add(r.group);
}

export function parseCommandLine(argv: readonly string[], cwd = process.cwd()): CommandLine {
  const cl: CommandLine = { settings: {}, groups: new Set(), args: [], meta: new Set() };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (META_OPTIONS.has(name)) {
        cl.meta.add(name);
        continue;
      }
      const r = rowByLong(name);
      if (!r) throw usage(sanitizeMessage(unrecognizedOption(name, [...ROWS.flatMap((x) => x.long ?? []), ...META_OPTIONS])));
      if (r.arg === "none") {
        if (inline !== undefined) throw usage(`option '--${name}' doesn't allow an argument`);
        apply(cl, r, undefined, cwd);
      } else if (r.arg === "optional") {
        apply(cl, r, inline, cwd, `--${name}`);
      } else {
        let v = inline;
        if (v === undefined) {
          if (i + 1 >= argv.length) throw usage(`option '--${name}' requires an argument`);
          v = argv[++i]!;
        }
        apply(cl, r, v, cwd, `--${name}`);
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const ch = a[k]!;
        if (ch === "h") {
          cl.meta.add("help");
          continue;
        }
        const r = rowByShort(ch);
        if (!r) throw usage(sanitizeMessage(invalidShortOption(ch)));
        if (r.arg === "none") {
          apply(cl, r, undefined, cwd);
          continue;
        }
        let v = a.slice(k + 1);
        if (v === "") {
          if (i + 1 >= argv.length) throw usage(`option requires an argument -- '${ch}'`);
          v = argv[++i]!;
        }
        apply(cl, r, v, cwd);
        break;
      }
      continue;
    }
    break;
  }
  cl.args = argv.slice(i);
  if (cl.args.length > 0) cl.groups.add("parameters");
  return cl;
}
