// enable/disable: start a machine when the host boots. Where the host runs
// systemd, a unit spawnctl@NAME.service wanted by machines.target; on any
// other init system a marker in /etc/spawnctl/autostart that
// `spawnctl autostart` (called from the init system, see the README) reads.
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { warn, info } from "../util/log.ts";
import { findImagePath } from "../settings/merge.ts";
import { mergeEnv } from "../container/host-env.ts";
import { leaderAlive, readState } from "../container/registry.ts";
import { AUTOSTART_DIR, UNIT_DIR, autostartPaths } from "../image/pool.ts";
import { self } from "../util/self.ts";

export { AUTOSTART_DIR };

export function hostRunsSystemd(): boolean {
  return existsSync("/run/systemd/system");
}

function unitText(exe: string): string {
  return `# Written by spawnctl enable: start a container machine at boot.
[Unit]
Description=Container %i (spawnctl)
Documentation=man:systemd-nspawn(1)
PartOf=machines.target
Before=machines.target
After=network.target local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${exe} start %i
ExecStop=${exe} poweroff %i
TimeoutStopSec=90s

[Install]
WantedBy=machines.target
`;
}

export function enable(name: string): void {
  if (!findImagePath(name, mergeEnv())) throw new SpawnctlError(`No image for machine '${name}'.`);
  if (hostRunsSystemd()) {
    mkdirSync(`${UNIT_DIR}/machines.target.wants`, { recursive: true });
    writeFileSync(`${UNIT_DIR}/spawnctl@.service`, unitText(self().argv.join(" ")));
    const link = autostartPaths(name).unitLink;
    if (!existsSync(link)) symlinkSync(`${UNIT_DIR}/spawnctl@.service`, link);
    info(`Created symlink ${link} → ${UNIT_DIR}/spawnctl@.service.`);
    return;
  }
  mkdirSync(AUTOSTART_DIR, { recursive: true, mode: 0o755 });
  writeFileSync(autostartPaths(name).marker, "");
  info(`Machine ${name} will be started by 'spawnctl autostart'.`);
}

export function disable(name: string): void {
  const { marker, unitLink: link } = autostartPaths(name);
  if (existsSync(link)) {
    unlinkSync(link);
    info(`Removed ${link}.`);
  }
  rmSync(marker, { force: true });
}

export function enabled(): string[] {
  try {
    return readdirSync(AUTOSTART_DIR).filter((n) => !n.startsWith("."));
  } catch {
    return [];
  }
}

/** Start every enabled machine that is not running; 1 if any failed. */
export async function autostart(): Promise<number> {
  const { startMachines } = await import("./start.ts");
  let failed = 0;
  const names = enabled().filter((name) => {
    const st = readState(name);
    return !(st && leaderAlive(st));
  });
  startMachines(names, (name, e) => {
    warn(`Failed to start machine ${name}: ${e instanceof Error ? e.message : e}`);
    failed++;
  });
  return failed ? 1 : 0;
}
