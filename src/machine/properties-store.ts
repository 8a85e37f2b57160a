// Resource properties set with `set-property` persist in
// /etc/spawnctl/properties/NAME.conf (one KEY=VALUE per line) and are applied
// at every start, like systemd's drop-ins for the machine's scope.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseProperty } from "../cgroup/properties.ts";

export const PROPERTIES_DIR = "/etc/spawnctl/properties";

export function loadProperties(name: string): string[] {
  try {
    return readFileSync(`${PROPERTIES_DIR}/${name}.conf`, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  } catch {
    return [];
  }
}

/** Merge assignments into the machine's file (a later value for a key replaces the earlier one). */
export function saveProperties(name: string, assignments: string[]): void {
  const byKey = new Map<string, string>();
  for (const a of [...loadProperties(name), ...assignments]) byKey.set(parseProperty(a).name, a);
  mkdirSync(PROPERTIES_DIR, { recursive: true, mode: 0o755 });
  const p = `${PROPERTIES_DIR}/${name}.conf`;
  writeFileSync(`${p}.tmp`, `${[...byKey.values()].join("\n")}\n`);
  renameSync(`${p}.tmp`, p);
}
