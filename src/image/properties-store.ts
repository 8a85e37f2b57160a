// Resource properties set with `set-property` persist in
// /etc/spawnctl/properties/NAME.conf (one KEY=VALUE per line) and are applied
// at every start, like systemd's drop-ins for the machine's scope. NAME is
// checked before it becomes part of a path, and only a machine or image that
// exists gets a file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseProperty } from "../cgroup/properties.ts";
import { findImage } from "./pool.ts";
import { isValidImageName } from "./names.ts";
import { displayValue } from "../settings/parse.ts";
import { SpawnctlError } from "../util/errors.ts";
import { readState } from "../container/registry.ts";

export const PROPERTIES_DIR = "/etc/spawnctl/properties";

/** A name that can be part of the file's path: an image name (no "/", not "." or "..", no control characters). */
function checkName(name: string): void {
  if (!isValidImageName(name)) throw new SpawnctlError(`Invalid machine name: ${displayValue(name)}`);
}

export function loadProperties(name: string): string[] {
  checkName(name);
  try {
    return readFileSync(`${PROPERTIES_DIR}/${name}.conf`, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  } catch {
    return [];
  }
}

/**
 * Merge assignments into the machine's file (a later value for a key
 * replaces the earlier one). The values are checked first, then the name:
 * as `systemctl set-property` parses every assignment before the manager is
 * asked for the unit, a bad value is reported even for a machine that does
 * not exist, and a good one for a machine that does not exist is
 * "No machine 'NAME' known." (nothing is written).
 */
export function saveProperties(name: string, assignments: string[]): void {
  const parsed = assignments.map((a) => [parseProperty(a).name, a] as const);
  checkName(name);
  if (!readState(name) && !findImage(name)) throw new SpawnctlError(`No machine '${displayValue(name)}' known.`);
  const byKey = new Map<string, string>();
  for (const a of loadProperties(name)) {
    let key = a.slice(0, Math.max(0, a.indexOf("=")));
    try {
      key = parseProperty(a).name;
    } catch {
      /* kept as it is, under the name it was written with */
    }
    byKey.set(key, a);
  }
  for (const [k, a] of parsed) byKey.set(k, a);
  mkdirSync(PROPERTIES_DIR, { recursive: true, mode: 0o755 });
  const p = `${PROPERTIES_DIR}/${name}.conf`;
  writeFileSync(`${p}.tmp`, `${[...byKey.values()].join("\n")}\n`);
  renameSync(`${p}.tmp`, p);
}
