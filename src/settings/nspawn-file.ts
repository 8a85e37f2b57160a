// .nspawn files: systemd's INI dialect (sections, repeated keys, "\" line
// continuation, "#" and ";" comments), mapped onto the settings table. A bad
// value is a warning naming file:line and is skipped, as systemd-nspawn does
// ("[file:line] Failed to parse ..., ignoring"); an unknown key warns. A few
// values fail the whole file instead (CPUAffinity=, as in systemd-nspawn;
// SystemCallFilter=, whose typo must not drop a deny list). Values are shown
// escaped and shortened: a file may hold anything.
import { usage } from "../util/errors.ts";
import { ParseError, displayValue, sanitizeMessage } from "./parse.ts";
import { rowByFileKey } from "./table.ts";
import type { PartialSettings } from "./types.ts";

export interface IniEntry { section: string; key: string; value: string; line: number }

export function parseIni(text: string, file: string, warnRaw: (m: string) => void): IniEntry[] {
  const warn = (m: string) => warnRaw(sanitizeMessage(m));
  const out: IniEntry[] = [];
  const lines = text.split("\n");
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    // continuation lines
    while (line.endsWith("\\") && i + 1 < lines.length) {
      const next = lines[++i]!;
      if (/^\s*[#;]/.test(next)) continue;
      line = `${line.slice(0, -1)} ${next}`;
    }
    const t = line.trim();
    if (!t || t.startsWith("#") || t.startsWith(";")) continue;
    if (t.startsWith("[")) {
      const m = /^\[([^\]]+)\]$/.exec(t);
      if (!m) {
        warn(`${file}:${lineNo}: Invalid section header '${t}', ignoring.`);
        section = "\0invalid";
        continue;
      }
      section = m[1]!;
      continue;
    }
    const eq = t.indexOf("=");
    if (eq < 0) {
      warn(`${file}:${lineNo}: Missing '=', ignoring line.`);
      continue;
    }
    if (!section) {
      warn(`${file}:${lineNo}: Assignment outside of section, ignoring.`);
      continue;
    }
    if (section === "\0invalid") continue;
    out.push({ section, key: t.slice(0, eq).trim(), value: t.slice(eq + 1).trim(), line: lineNo });
  }
  return out;
}

export interface LoadedFile {
  path: string;
  trusted: boolean;
  settings: PartialSettings;
  /** mask groups the file set */
  groups: Set<string>;
  /** groups that cover more fields than merge.ts's table says (an OCI bundle's capabilities and user) */
  groupFields?: Record<string, (keyof PartialSettings)[]>;
}

const KNOWN_SECTIONS = new Set(["Exec", "Files", "Network"]);

export function applyNspawnFile(path: string, text: string, trusted: boolean, cwd: string, warnRaw: (m: string) => void): LoadedFile {
  const warn = (m: string) => warnRaw(sanitizeMessage(m));
  const lf: LoadedFile = { path, trusted, settings: {}, groups: new Set() };
  const ignored = new Set<string>();
  for (const e of parseIni(text, path, warn)) {
    if (!KNOWN_SECTIONS.has(e.section)) {
      warn(`${path}:${e.line}: Unknown section '${e.section}'. Ignoring.`);
      continue;
    }
    const key = `${e.section}.${e.key}`;
    const row = rowByFileKey(key);
    if (!row) {
      warn(`${path}:${e.line}: Unknown key name '${e.key}' in section '${e.section}', ignoring.`);
      continue;
    }
    if (!trusted) {
      const untrustedAllow = key === "Exec.SystemCallFilter" && e.value.trim().startsWith("~");
      if (row.trusted && !untrustedAllow) {
        ignored.add(`${e.key}=`);
        continue;
      }
      if (key === "Exec.SystemCallFilter" && !e.value.trim().startsWith("~")) {
        ignored.add(`${e.key}=`);
        continue;
      }
    }
    try {
      row.set(lf.settings, e.value, "file", cwd, key);
      lf.groups.add(row.group);
    } catch (err) {
      // the reason may quote the value: shown as the value is
      let reason = err instanceof Error ? err.message : String(err);
      if (e.value && displayValue(e.value) !== e.value) reason = reason.split(e.value).join(displayValue(e.value));
      if (err instanceof ParseError && err.fatalInFile) {
        throw usage(sanitizeMessage(`${path}:${e.line}: Failed to parse ${e.key}=${displayValue(e.value)}: ${reason}`));
      }
      warn(`${path}:${e.line}: Failed to parse ${e.key}=${displayValue(e.value)}, ignoring: ${reason}`);
    }
  }
  if (ignored.size > 0) warn(`Ignoring ${[...ignored].join(", ")} settings, file ${path} is not trusted.`);
  return lf;
}
