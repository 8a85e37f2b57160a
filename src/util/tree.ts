// Reading files inside a container tree from the host. The tree is untrusted:
// symlinks are followed by hand and clamped at the tree's root, so a link to
// "/etc/shadow" or "../../.." inside the tree never reads a host file.
import { SpawnctlError } from "./errors.ts";
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readlinkSync, type Stats } from "node:fs";

const MAX_LINKS = 40;

/** Resolve `path` (absolute, inside the tree) to a host path inside `root`, or undefined if it does not exist. */
export function chaseInRoot(root: string, path: string): string | undefined {
  const base = root === "/" ? "" : root.replace(/\/+$/, "");
  let todo = path.split("/").filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === ".") continue;
    if (c === "..") {
      done.pop();
      continue;
    }
    const p = `${base}/${[...done, c].join("/")}`;
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = readlinkSync(p);
      if (target.startsWith("/")) done.length = 0;
      todo = [...target.split("/").filter(Boolean), ...todo];
      continue;
    }
    done.push(c);
  }
  return `${base}/${done.join("/")}` || "/";
}

/**
 * A regular file as text, or undefined (missing, a link, not a regular file,
 * larger than `max`). Opened without following a link and without blocking,
 * then checked on the open file: a FIFO or device put there is never read.
 */
export function readRegular(path: string, max: number): string | undefined {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > max) return undefined;
    return readFileSync(fd, "utf8");
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

export function readInRoot(root: string, path: string, max = 1 << 20): string | undefined {
  const p = chaseInRoot(root, path);
  if (!p) return undefined;
  return readRegular(p, max);
}

export function existsInRoot(root: string, path: string): boolean {
  return chaseInRoot(root, path) !== undefined;
}

/** lstat of the resolved path, or undefined */
export function statInRoot(root: string, path: string): Stats | undefined {
  const p = chaseInRoot(root, path);
  if (!p) return undefined;
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]!] = v.replace(/\\(.)/g, "$1");
  }
  return out;
}

export function readOsRelease(root: string): Record<string, string> | undefined {
  const t = readInRoot(root, "/etc/os-release") ?? readInRoot(root, "/usr/lib/os-release");
  return t === undefined ? undefined : parseOsRelease(t);
}

export interface PasswdEntry { name: string; uid: number; gid: number; gecos: string; home: string; shell: string; line: number }
export interface GroupEntry { name: string; gid: number; members: string[]; line: number }

export interface ResolvedUser { name: string; uid: number; gid: number; home: string; shell: string; groups: number[] }

/** The largest valid uid or gid: (uid_t)-1 means "none" to the kernel. */
export const MAX_ID = 4294967294;

/** A uid or gid as text: decimal digits, 0…4294967294; else NaN. */
export function parseId(text: string): number {
  if (!/^\d{1,10}$/.test(text)) return Number.NaN;
  const n = Number(text);
  return n <= MAX_ID ? n : Number.NaN;
}

/** Entries of an /etc/passwd; an id that is no valid uid/gid is NaN (see resolveUser). */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const f = line.split(":");
    if (f.length < 7 || !f[0] || line.startsWith("#")) continue;
    out.push({ name: f[0], uid: parseId(f[2]!), gid: parseId(f[3]!), gecos: f[4]!, home: f[5]!, shell: f[6]!, line: i + 1 });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const f = line.split(":");
    if (f.length < 4 || !f[0] || line.startsWith("#")) continue;
    out.push({ name: f[0], gid: parseId(f[2]!), members: f[3]!.split(",").filter(Boolean), line: i + 1 });
  }
  return out;
}

/**
 * -u NAME or -u UID, looked up in the tree's /etc/passwd and /etc/group (no
 * getent needed). An id that is no valid uid/gid (above 4294967294, negative,
 * not a number) is an error naming the file and line, or the option: it is
 * never truncated into another id (4294967296 would be root).
 */
export function resolveUser(root: string, user: string): ResolvedUser | undefined {
  const passwd = parsePasswd(readInRoot(root, "/etc/passwd") ?? "");
  const groups = parseGroup(readInRoot(root, "/etc/group") ?? "");
  const where = (file: string, line: number) => `${root === "/" ? "" : root}${file}:${line}`;
  let e = passwd.find((p) => p.name === user);
  if (!e && /^\d+$/.test(user)) {
    const uid = parseId(user);
    if (Number.isNaN(uid)) throw new SpawnctlError(`Invalid user ID ${user} (-u/--user=): a uid is 0…${MAX_ID}.`);
    e = passwd.find((p) => p.uid === uid);
    if (!e) return { name: user, uid, gid: uid, home: "/", shell: "/bin/sh", groups: [] };
  }
  if (!e) return undefined;
  if (Number.isNaN(e.uid) || Number.isNaN(e.gid)) {
    throw new SpawnctlError(`${where("/etc/passwd", e.line)}: user ${e.name} has an invalid ${Number.isNaN(e.uid) ? "uid" : "gid"} (valid ids are 0…${MAX_ID}).`);
  }
  const supp: number[] = [];
  for (const g of groups) {
    if (!g.members.includes(e.name) || g.gid === e.gid) continue;
    if (Number.isNaN(g.gid)) throw new SpawnctlError(`${where("/etc/group", g.line)}: group ${g.name} of user ${e.name} has an invalid gid (valid ids are 0…${MAX_ID}).`);
    supp.push(g.gid);
  }
  return { name: e.name, uid: e.uid, gid: e.gid, home: e.home || "/", shell: e.shell || "/bin/sh", groups: supp };
}
