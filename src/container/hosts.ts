// Machine names that resolve on the host, as nss-mymachines makes them
// resolve on systemd hosts (`hosts: files mymachines ...`), for glibc and musl
// alike with nothing installed: a block of /etc/hosts that spawnctl keeps,
// one line per running machine with an address of its own. Opt-in, as
// mymachines is: `hosts = true` in the [network] table of spawnctl.toml.
//
// The block is made anew from what runs (the registry's machines and their
// network plans) after every start and stop and by the stale collector, so a
// killed spawnctl leaves nothing the next command does not repair. The
// admin's own lines are never touched; the file is replaced atomically,
// keeping its mode and owner.
import { chownSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { config } from "../settings/config.ts";
import { readPlan } from "../net/plan.ts";
import { MACHINES_DIR, leaderAlive, readState } from "./registry.ts";
import { warn } from "../util/log.ts";

export const HOSTS_BEGIN = "# BEGIN spawnctl machines: kept by spawnctl (hosts = true in /etc/spawnctl/spawnctl.toml); edits here are replaced";
export const HOSTS_END = "# END spawnctl machines";

/** The file: /etc/hosts, or SPAWNCTL_HOSTS_FILE (for the tests). */
export function hostsFile(): string {
  return process.env.SPAWNCTL_HOSTS_FILE || "/etc/hosts";
}

/** `text` with spawnctl's block replaced by one for `entries` (none: no block), every other line kept as it is. */
export function withMachineBlock(text: string, entries: Array<[name: string, address: string]>): string {
  const lines = text.split("\n");
  const trailing = lines.length > 0 && lines[lines.length - 1] === "";
  if (trailing) lines.pop();
  const out: string[] = [];
  let inBlock = false;
  for (const l of lines) {
    if (l === HOSTS_BEGIN) inBlock = true;
    else if (inBlock && l === HOSTS_END) inBlock = false;
    else if (!inBlock) out.push(l);
  }
  if (entries.length) out.push(HOSTS_BEGIN, ...entries.map(([n, a]) => `${a}\t${n}`), HOSTS_END);
  return out.length ? `${out.join("\n")}\n` : "";
}

/** The running machines with an address of their own (a plain veth's or a zone's), by name. */
export function machineAddressEntries(): Array<[string, string]> {
  let files: string[];
  try {
    files = readdirSync(MACHINES_DIR).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  const out: Array<[string, string]> = [];
  for (const f of files.sort()) {
    const name = f.slice(0, -5);
    const st = readState(name);
    if (!st || !leaderAlive(st)) continue;
    const plan = readPlan(name);
    const v = plan?.veth;
    const addr = v?.subnet?.container ?? v?.zone?.subnet?.container;
    if (addr) out.push([name, addr]);
  }
  return out;
}

/** Make the block say what runs now (nothing without hosts = true, but a block left from before goes). */
export function syncHosts(): void {
  const path = hostsFile();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return;
  }
  const enabled = config().network.hosts === true;
  if (!enabled && !text.includes(HOSTS_BEGIN)) return;
  const next = withMachineBlock(text, enabled ? machineAddressEntries() : []);
  if (next === text) return;
  try {
    const st = statSync(path);
    const tmp = `${path}.spawnctl-${process.pid}.tmp`;
    writeFileSync(tmp, next, { mode: st.mode & 0o7777 });
    chownSync(tmp, st.uid, st.gid);
    renameSync(tmp, path);
  } catch (e) {
    warn(`Updating ${path}: ${e instanceof Error ? e.message : e}`);
  }
}
