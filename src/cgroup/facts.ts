// The host's cgroup layout (cgroup v2, hybrid, legacy v1), read from the
// mount table: what the cgroup code, user namespace delegation and the plan
// builder work from.

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
