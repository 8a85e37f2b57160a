// Reading files inside a container tree from the host. The tree is untrusted:
// symlinks are followed by hand and clamped at the tree's root, so a link to
// "/etc/shadow" or "../../.." inside the tree never reads a host file.
import { lstatSync, readFileSync, readlinkSync, type Stats } from "node:fs";

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

export function readInRoot(root: string, path: string, max = 1 << 20): string | undefined {
  const p = chaseInRoot(root, path);
  if (!p) return undefined;
  try {
    const st = lstatSync(p);
    if (!st.isFile() || st.size > max) return undefined;
    return readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
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

export interface PasswdEntry { name: string; uid: number; gid: number; gecos: string; home: string; shell: string }
export interface GroupEntry { name: string; gid: number; members: string[] }

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !f[0] || line.startsWith("#")) continue;
    const uid = Number(f[2]), gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], uid, gid, gecos: f[4]!, home: f[5]!, shell: f[6]! });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !f[0] || line.startsWith("#")) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: f[3]!.split(",").filter(Boolean) });
  }
  return out;
}

export interface ResolvedUser { name: string; uid: number; gid: number; home: string; shell: string; groups: number[] }

/** -u NAME or -u UID, looked up in the tree's /etc/passwd and /etc/group (no getent needed). */
export function resolveUser(root: string, user: string): ResolvedUser | undefined {
  const passwd = parsePasswd(readInRoot(root, "/etc/passwd") ?? "");
  const groups = parseGroup(readInRoot(root, "/etc/group") ?? "");
  let e = passwd.find((p) => p.name === user);
  if (!e && /^\d+$/.test(user)) e = passwd.find((p) => p.uid === Number(user));
  if (!e) {
    if (/^\d+$/.test(user)) {
      const uid = Number(user);
      return { name: user, uid, gid: uid, home: "/", shell: "/bin/sh", groups: [] };
    }
    return undefined;
  }
  const supp = groups.filter((g) => g.members.includes(e!.name) && g.gid !== e!.gid).map((g) => g.gid);
  return { name: e.name, uid: e.uid, gid: e.gid, home: e.home || "/", shell: e.shell || "/bin/sh", groups: supp };
}
