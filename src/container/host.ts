// Facts about the host, gathered once per start and handed to the (pure) plan
// builder: cgroup layout, kernel features, files the container gets copies of.
import { existsSync, readFileSync, readlinkSync, lstatSync, statfsSync } from "node:fs";

import { detectCgroups, type CgroupFacts } from "../cgroup/facts.ts";
export { detectCgroups, parseMountinfo, type CgroupFacts, type CgroupLayout, type V1Hierarchy } from "../cgroup/facts.ts";

export interface HostFacts {
  cgroup: CgroupFacts;
  osRelease: string;
  resolvConf?: { host?: string; stub?: string; uplink?: string; static?: string; resolvedRunning: boolean };
  localtime?: { symlinkZone?: string; content?: Uint8Array };
  hasFuse: boolean;
  hasNetTun: boolean;
  boundingSet: bigint;
  hostname: string;
}

function readMaybe(p: string): string | undefined {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
}

export function boundingSet(status = readMaybe("/proc/self/status") ?? ""): bigint {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

let cached: HostFacts | undefined;

export function hostFacts(): HostFacts {
  if (cached) return cached;
  const resolvedRunning = existsSync("/run/systemd/resolve/io.systemd.Resolve");
  let localtime: HostFacts["localtime"];
  try {
    const st = lstatSync("/etc/localtime");
    if (st.isSymbolicLink()) {
      const t = readlinkSync("/etc/localtime");
      const m = /(?:^|\/)zoneinfo\/(.+)$/.exec(t);
      localtime = { symlinkZone: m?.[1], content: readFileSync("/etc/localtime") };
    } else localtime = { content: readFileSync("/etc/localtime") };
  } catch {
    localtime = undefined;
  }
  cached = {
    cgroup: detectCgroups(readMaybe("/proc/self/mountinfo") ?? ""),
    osRelease: readMaybe("/etc/os-release") ?? readMaybe("/usr/lib/os-release") ?? "",
    resolvConf: {
      host: readMaybe("/etc/resolv.conf"),
      stub: readMaybe("/run/systemd/resolve/stub-resolv.conf"),
      uplink: readMaybe("/run/systemd/resolve/resolv.conf"),
      static: readMaybe("/usr/lib/systemd/resolv.conf") ?? readMaybe("/lib/systemd/resolv.conf"),
      resolvedRunning,
    },
    localtime,
    hasFuse: existsSync("/dev/fuse"),
    hasNetTun: existsSync("/dev/net/tun"),
    boundingSet: boundingSet(),
    hostname: (readMaybe("/proc/sys/kernel/hostname") ?? "localhost").trim(),
  };
  return cached;
}

/** Is `path` on btrfs (so -x could use a snapshot)? */
export function isBtrfs(path: string): boolean {
  try {
    return statfsSync(path).type === 0x9123683e;
  } catch {
    return false;
  }
}
