// Helpers for the image verb tests: unique image names, an async runner
// (for tests that serve HTTP from this process), a rich test tree, a
// manifest of everything tar must carry (types, owners, modes, hardlinks,
// symlinks, devices, xattrs, contents), and a check that nothing of ours is
// left in the pool, /etc/systemd/nspawn or the lock directory.
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { listXattrs, mknod, setXattr } from "../../../src/sys/ffi.ts";
import { SPAWNCTL, makeBusyboxTree, type Result } from "../../helpers.ts";

export const POOL = "/var/lib/machines";
export const TAG = `sctest-img`;

/** An image name unique to this test process: sctest-img-<what>-<pid>. */
export function imgName(what: string): string {
  return `${TAG}-${what}-${process.pid}`;
}

export async function runAsync(args: string[], opts: { env?: Record<string, string>; stdin?: Uint8Array; timeout?: number; onStart?(pid: number): void } = {}): Promise<Result> {
  const p = Bun.spawn([SPAWNCTL, ...args], {
    stdin: opts.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  opts.onStart?.(p.pid);
  const timer = setTimeout(() => p.kill(9), opts.timeout ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code: code ?? -1, stdout, stderr };
}

/** A file capability (cap_net_raw+ep) as the kernel stores it in security.capability (VFS_CAP_REVISION_2). */
export const CAP_NET_RAW_EP = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/**
 * The busybox tree plus everything an OS tree may hold that tar must carry:
 * setuid/setgid/sticky modes, other owners, hardlinks, absolute and relative
 * symlinks, a fifo, a device node (with `devices`), extended attributes
 * (user.*, trusted.*, a file capability), long and non-ASCII names, empty
 * files and directories.
 */
export function makeRichTree(dir: string, opts: { devices?: boolean } = {}): string {
  makeBusyboxTree(dir, { machineId: "0123456789abcdef0123456789abcdef", files: { "etc/hostname": "rich\n" } });
  writeFileSync(`${dir}/usr/bin/suid-tool`, "#!/bin/sh\necho suid\n");
  chmodSync(`${dir}/usr/bin/suid-tool`, 0o4755);
  writeFileSync(`${dir}/usr/bin/sgid-tool`, "#!/bin/sh\n");
  chownSync(`${dir}/usr/bin/sgid-tool`, 0, 5);
  chmodSync(`${dir}/usr/bin/sgid-tool`, 0o2711);
  chmodSync(`${dir}/tmp`, 0o1777);
  writeFileSync(`${dir}/home/tester/notes`, "mine\n");
  chownSync(`${dir}/home/tester/notes`, 1000, 1000);
  chmodSync(`${dir}/home/tester/notes`, 0o600);
  writeFileSync(`${dir}/usr/bin/hard-a`, "same inode\n");
  linkSync(`${dir}/usr/bin/hard-a`, `${dir}/usr/bin/hard-b`);
  linkSync(`${dir}/usr/bin/hard-a`, `${dir}/etc/hard-c`);
  symlinkSync("/usr/bin/busybox", `${dir}/usr/bin/abs-link`);
  symlinkSync("../../etc/os-release", `${dir}/usr/bin/rel-link`);
  symlinkSync("does-not-exist", `${dir}/etc/dangling`);
  mkdirSync(`${dir}/var/empty`);
  chmodSync(`${dir}/var/empty`, 0o555);
  writeFileSync(`${dir}/etc/empty-file`, "");
  const long = `${dir}/usr/share/${"d".repeat(90)}/${"e".repeat(90)}`;
  mkdirSync(long, { recursive: true });
  writeFileSync(`${long}/${"f".repeat(120)}.txt`, "long path\n");
  writeFileSync(`${dir}/etc/ünïcødé-名前`, "utf-8 name\n");
  if (mknod(`${dir}/run/fifo`, 0o010644, 0) !== 0) throw new Error("mknod fifo");
  if (opts.devices) {
    if (mknod(`${dir}/dev/null`, 0o020666, 0x103) !== 0) throw new Error("mknod /dev/null");
    chmodSync(`${dir}/dev/null`, 0o666); // past the umask
  }
  const x = (p: string, n: string, v: Uint8Array | string) => {
    const e = setXattr(`${dir}/${p}`, n, typeof v === "string" ? new TextEncoder().encode(v) : v);
    if (e) throw new Error(`setxattr ${n} on ${p}: errno ${e}`);
  };
  x("etc/os-release", "user.spawnctl.test", "hello");
  x("etc", "trusted.spawnctl", "dir-xattr");
  x("usr/bin/suid-tool", "security.capability", CAP_NET_RAW_EP);
  x("home/tester/notes", "user.binary", new Uint8Array([0, 1, 2, 255]));
  // bigger than one write batch
  writeFileSync(`${dir}/var/log/big.log`, Buffer.alloc(3 << 20, "x"));
  return dir;
}

export interface ManifestEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  target?: string;
  rdev?: number;
  sha256?: string;
  xattrs: string;
  /** the first path (in walk order) with the same inode, for hardlinks */
  link?: string;
}

/** Everything about a tree that an export/import round trip must keep (not times). */
export function manifest(root: string): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>();
  const inodes = new Map<number, string>();
  const walk = (rel: string) => {
    const p = rel ? `${root}/${rel}` : root;
    const st = lstatSync(p);
    const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : "other";
    const xattrs = [...listXattrs(p)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${Buffer.from(v).toString("hex")}`).join(",");
    const e: ManifestEntry = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs };
    if (type === "symlink") {
      e.target = readlinkSync(p);
      delete (e as Partial<ManifestEntry>).mode; // symlink modes are always 0777 and not restored
    }
    if (type === "file") {
      e.size = st.size;
      e.sha256 = createHash("sha256").update(readFileSync(p)).digest("hex");
      if (st.nlink > 1) {
        const first = inodes.get(st.ino);
        if (first) e.link = first;
        else inodes.set(st.ino, rel);
      }
    }
    if (type === "char" || type === "block") e.rdev = st.rdev;
    out.set(rel || ".", e);
    if (type === "dir") for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return out;
}

/** Differences between two manifests, as readable lines (empty when equal). */
export function compareManifests(a: Map<string, ManifestEntry>, b: Map<string, ManifestEntry>): string[] {
  const diffs: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w) diffs.push(`missing in the copy: ${k}`);
    else if (JSON.stringify(v) !== JSON.stringify(w)) diffs.push(`${k}: ${JSON.stringify(v)} != ${JSON.stringify(w)}`);
  }
  for (const k of b.keys()) if (!a.has(k)) diffs.push(`extra in the copy: ${k}`);
  return diffs;
}

/** Whatever of this test process is still around: images, temporary names, settings files, name locks. */
export function ourLeftovers(pool = POOL): string[] {
  const out: string[] = [];
  const scan = (dir: string, match: (n: string) => boolean) => {
    try {
      for (const n of readdirSync(dir)) if (match(n)) out.push(`${dir}/${n}`);
    } catch {
      /* no such directory */
    }
  };
  const mine = (n: string) => n.includes(`-${process.pid}`) && n.includes(TAG);
  scan(pool, (n) => mine(n) || n.startsWith(".#spawnctl."));
  scan("/etc/systemd/nspawn", mine);
  scan("/run/systemd/nspawn", mine);
  scan("/etc/spawnctl/properties", mine);
  scan("/run/systemd/nspawn/locks", (n) => n.startsWith("name-") && mine(n));
  scan("/run/spawnctl/machines", mine);
  return out;
}

export function exists(p: string): boolean {
  return existsSync(p);
}

/**
 * Create the directories the tests write into (a fresh machine may have no
 * /etc/systemd/nspawn or /var/lib/machines); the returned function removes
 * again those that did not exist, if they are empty.
 */
export function ensureDirs(...dirs: string[]): () => void {
  const created: string[] = [];
  for (const d of dirs) {
    const parts = d.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = `/${parts.slice(0, i).join("/")}`;
      if (!existsSync(p)) {
        mkdirSync(p, { mode: p === POOL ? 0o700 : 0o755 });
        created.push(p);
      }
    }
  }
  return () => {
    for (const p of created.reverse()) {
      try {
        rmdirSync(p);
      } catch {
        /* not empty: someone else uses it now */
      }
    }
  };
}

/**
 * A manifest less /etc/machine-id, for comparing a new image (clone,
 * import) with its source: the new image gets an empty machine ID of its own
 * (checked with expectFreshMachineId), everything else is the same.
 */
export function manifestButMachineId(root: string): Map<string, ManifestEntry> {
  const m = manifest(root);
  m.delete("etc/machine-id");
  return m;
}

/** What a new image's /etc/machine-id is: there, empty, 0444, owned as the source's was. */
export function machineIdOf(root: string): { size: number; mode: number; uid: number; type: string } {
  const st = lstatSync(`${root}/etc/machine-id`);
  return { size: st.size, mode: st.mode & 0o7777, uid: st.uid, type: st.isFile() ? "file" : "other" };
}
export const FRESH_MACHINE_ID = { size: 0, mode: 0o444, uid: 0, type: "file" };
