// Mount option strings ("ro,nosuid,size=10%") → mount(2) flags and the data
// string the filesystem gets, as mount(8) splits them.
import { MS } from "../sys/consts.ts";

const FLAG_OPTS: Record<string, [set: number, clear: number]> = {
  ro: [MS.RDONLY, 0], rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0], suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0], dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0], exec: [0, MS.NOEXEC],
  sync: [MS.SYNCHRONOUS, 0], async: [0, MS.SYNCHRONOUS],
  dirsync: [MS.DIRSYNC, 0],
  noatime: [MS.NOATIME, 0], atime: [0, MS.NOATIME],
  nodiratime: [MS.NODIRATIME, 0], diratime: [0, MS.NODIRATIME],
  relatime: [MS.RELATIME, 0], norelatime: [0, MS.RELATIME],
  strictatime: [MS.STRICTATIME, 0], nostrictatime: [0, MS.STRICTATIME],
  lazytime: [MS.LAZYTIME, 0], nolazytime: [0, MS.LAZYTIME],
  nosymfollow: [MS.NOSYMFOLLOW, 0],
};

export function parseMountOptions(opts: string, base = 0): { flags: number; data: string } {
  let flags = base;
  const data: string[] = [];
  for (const o of opts.split(",")) {
    if (!o) continue;
    const f = FLAG_OPTS[o];
    if (f) {
      flags = (flags | f[0]) & ~f[1];
    } else data.push(o);
  }
  return { flags, data: data.join(",") };
}

/** overlayfs wants ':' ',' and '\' in layer paths escaped */
export function escapeOverlayPath(p: string): string {
  return p.replace(/([\\:,])/g, "\\$1");
}
