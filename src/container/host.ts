// Facts about the host, gathered once per start and handed to the (pure) plan
// builder: cgroup layout, kernel features, files the container gets copies of.
import { existsSync, readFileSync, readlinkSync, lstatSync, statfsSync } from "node:fs";

export type CgroupLayout = "unified" | "hybrid" | "legacy" | "none";

export interface V1Hierarchy {
  /** where the host has it mounted */
  mountpoint: string;
  /** the name the container sees under /sys/fs/cgroup ("cpu,cpuacct", "systemd", ...) */
  dirName: string;
  /** the mount options that select it ("cpu,cpuacct" or "none,name=systemd") */
  options: string;
  /** controllers; empty for a named hierarchy */
  controllers: string[];
  /** named hierarchy ("systemd") */
  name?: string;
}

export interface CgroupFacts {
  layout: CgroupLayout;
  /** the cgroup2 mount point, if any */
  unified?: string;
  v1: V1Hierarchy[];
}

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

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): Array<{ id: number; parent: number; root: string; mountpoint: string; options: string; fstype: string; source: string; superOptions: string }> {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const g = post.split(" ");
    out.push({
      id: Number(f[0]), parent: Number(f[1]), root: unescapeMount(f[3]!), mountpoint: unescapeMount(f[4]!), options: f[5]!,
      fstype: g[0]!, source: unescapeMount(g[1] ?? ""), superOptions: g[2] ?? "",
    });
  }
  return out;
}

export function detectCgroups(mountinfo: string): CgroupFacts {
  const mounts = parseMountinfo(mountinfo);
  const at = (p: string) => mounts.filter((m) => m.mountpoint === p).pop();
  const top = at("/sys/fs/cgroup");
  if (top?.fstype === "cgroup2") return { layout: "unified", unified: "/sys/fs/cgroup", v1: [] };
  const v1: V1Hierarchy[] = [];
  const seen = new Set<string>();
  for (const m of mounts) {
    if (m.fstype !== "cgroup" || !m.mountpoint.startsWith("/sys/fs/cgroup/")) continue;
    if (seen.has(m.mountpoint)) continue;
    seen.add(m.mountpoint);
    const opts = m.superOptions.split(",");
    const name = opts.find((o) => o.startsWith("name="))?.slice(5);
    const controllers = opts.filter((o) => !o.startsWith("name=") && !["rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "favordynmods"].includes(o) && !o.startsWith("release_agent"));
    v1.push({
      mountpoint: m.mountpoint,
      dirName: m.mountpoint.slice("/sys/fs/cgroup/".length),
      options: name ? `none,name=${name}` : controllers.join(","),
      controllers,
      name,
    });
  }
  const unifiedMount = at("/sys/fs/cgroup/unified");
  if (v1.length === 0) return unifiedMount?.fstype === "cgroup2" ? { layout: "unified", unified: "/sys/fs/cgroup/unified", v1: [] } : { layout: "none", v1: [] };
  if (unifiedMount?.fstype === "cgroup2") return { layout: "hybrid", unified: "/sys/fs/cgroup/unified", v1 };
  return { layout: "legacy", v1 };
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
