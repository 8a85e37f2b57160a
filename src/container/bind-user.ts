// --bind-user=USER, as nspawn: a host user appears in a container with a
// user namespace. Its home is bound at /run/host/home/USER, its uid and gid
// are mapped to one container id from 60514…60577 (the same number for
// both), and the container learns of it twice over:
//  - userdb JSON records in /run/host/userdb/ (USER.user, UID.user,
//    USER.user-privileged with the password hash, USER.group, GID.group),
//    which nss-systemd (systemd 249+) reads, as nspawn writes them;
//  - where the guest has no nss-systemd (its nsswitch.conf's passwd line
//    does not name "systemd", or it has no nsswitch.conf: busybox, musl),
//    read-only copies of its /etc/passwd, /etc/group and /etc/shadow with
//    the user's lines added are bound over the originals: the tree's own
//    files are never changed, and the lines are gone when the machine stops.
//
// The host's accounts are read from its /etc/passwd, /etc/group and
// /etc/shadow (a host without systemd has no userdb to ask).
import { lstatSync, type Stats } from "node:fs";
import { chaseInRoot, readRegular, readInRoot, parsePasswd, parseGroup, statInRoot, type PasswdEntry, type ResolvedUser } from "../util/tree.ts";
import { SpawnctlError } from "../util/errors.ts";
import { MOUNT_ATTR, MS } from "../sys/consts.ts";
import type { Op } from "../sys/plan.ts";

/** the container ids nspawn hands to bound users */
export const BIND_USER_MIN = 60514;
export const BIND_USER_MAX = 60577;
const NOBODY = 65534;
/** where the guest-readable copies of the account files live inside the container */
const COPY_DIR = "/run/host/userdb/.etc";

export interface HostAccounts {
  passwd: string;
  group: string;
  /** undefined when unreadable or absent */
  shadow?: string;
}

export function readHostAccounts(root = "/"): HostAccounts {
  const read = (f: string) => readRegular(`${root === "/" ? "" : root}${f}`, 16 << 20);
  const shadow = read("/etc/shadow");
  return { passwd: read("/etc/passwd") ?? "", group: read("/etc/group") ?? "", ...(shadow !== undefined ? { shadow } : {}) };
}

export interface BoundUser {
  name: string;
  hostUid: number;
  hostGid: number;
  /** the container's uid and gid (one number for both) */
  id: number;
  /** the host's home directory: the bind's source */
  hostHome: string;
  /** /run/host/home/NAME */
  home: string;
  realName: string;
  /** the host's login shell, when the guest has it; else /bin/sh */
  shell: string;
  /** the password hash from the host's /etc/shadow ("" when locked or unknown) */
  hashedPassword: string;
  /** the rest of the shadow line (fields 3…9), for the guest's /etc/shadow copy */
  shadowAging: string;
  disposition: "regular" | "system";
}

function shadowEntry(text: string | undefined, name: string): string[] | undefined {
  if (text === undefined) return undefined;
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 2) return f;
  }
  return undefined;
}

/**
 * Resolve --bind-user= names on the host, check them against the container
 * (the tree as the container sees it: `view`) and its id range, and give
 * each a container id. Every refusal names the user and the reason.
 */
export function planBindUsers(names: string[], view: string, range: { shift: number; range: number }, host: HostAccounts): BoundUser[] {
  if (names.length === 0) return [];
  const hostUsers = parsePasswd(host.passwd);
  const hostGroups = parseGroup(host.group);
  const guestPasswd = parsePasswd(readInRoot(view, "/etc/passwd") ?? "");
  const guestGroups = parseGroup(readInRoot(view, "/etc/group") ?? "");
  if (range.range <= BIND_USER_MAX) {
    throw new SpawnctlError(`--bind-user= needs a user namespace range that covers ${BIND_USER_MIN}…${BIND_USER_MAX} (this one has ${range.range} ids).`);
  }
  const out: BoundUser[] = [];
  let next = BIND_USER_MIN;
  for (const name of names) {
    if (out.some((b) => b.name === name)) continue;
    const u = hostUsers.find((p) => p.name === name);
    if (!u) throw new SpawnctlError(`Failed to resolve user '${name}' (--bind-user=): no such user in the host's /etc/passwd.`);
    if (u.uid === 0 || name === "root") throw new SpawnctlError("Mapping 'root' user not supported, sorry.");
    if (u.uid === NOBODY || name === "nobody" || name === "nfsnobody") throw new SpawnctlError("Mapping 'nobody' user not supported, sorry.");
    if (Number.isNaN(u.uid) || Number.isNaN(u.gid)) throw new SpawnctlError(`/etc/passwd:${u.line}: user ${name} has an invalid uid or gid.`);
    if (u.uid >= range.shift && u.uid < range.shift + range.range) {
      throw new SpawnctlError(`UID of user '${name}' to map is already in container UID range, refusing.`);
    }
    const g = hostGroups.find((x) => x.gid === u.gid);
    if (!g) throw new SpawnctlError(`Failed to resolve group of user '${name}': no group ${u.gid} in the host's /etc/group.`);
    if (g.gid >= range.shift && g.gid < range.shift + range.range) {
      throw new SpawnctlError(`GID of group '${g.name}' to map is already in container GID range, refusing.`);
    }
    // one user and its private group: a shared group (users) would have to be
    // mapped too, and probably exists in the container already
    if (g.name !== name) throw new SpawnctlError(`Sorry, mapping users without private groups is currently not supported ('${name}' has group '${g.name}').`);
    if (guestPasswd.some((p) => p.name === name)) throw new SpawnctlError(`Sorry, the user '${name}' already exists in the container.`);
    if (guestGroups.some((x) => x.name === g.name)) throw new SpawnctlError(`Sorry, the group '${g.name}' already exists in the container.`);
    while (next <= BIND_USER_MAX && (guestPasswd.some((p) => p.uid === next) || guestGroups.some((x) => x.gid === next))) next++;
    if (next > BIND_USER_MAX) throw new SpawnctlError(`No suitable available UID in range ${BIND_USER_MIN}…${BIND_USER_MAX} in container detected, can't map user.`);
    if (!u.home.startsWith("/")) throw new SpawnctlError(`User '${name}' has no absolute home directory in the host's /etc/passwd.`);
    const sh = shadowEntry(host.shadow, name);
    out.push({
      name,
      hostUid: u.uid,
      hostGid: u.gid,
      id: next++,
      hostHome: u.home,
      home: `/run/host/home/${name}`,
      realName: u.gecos.split(",")[0] ?? "",
      shell: guestShell(view, u),
      hashedPassword: sh?.[1] ?? "",
      shadowAging: sh ? sh.slice(2, 9).join(":") : "::::::",
      disposition: u.uid < 1000 ? "system" : "regular",
    });
  }
  return out;
}

function lstatMaybe(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function guestShell(view: string, u: PasswdEntry): string {
  const st = u.shell.startsWith("/") ? statInRoot(view, u.shell) : undefined;
  return st && !st.isDirectory() ? u.shell : "/bin/sh";
}

/**
 * The container's uid_map (or gid_map) text: the range from its first id,
 * with each bound user's container id mapped to its host id instead.
 */
export function idMap(shift: number, range: number, bound: BoundUser[], which: "uid" | "gid"): string {
  const holes = bound.map((b) => b.id).sort((a, b) => a - b);
  const lines: string[] = [];
  let from = 0;
  for (const h of holes) {
    if (h > from) lines.push(`${from} ${shift + from} ${h - from}`);
    from = h + 1;
  }
  if (range > from) lines.push(`${from} ${shift + from} ${range - from}`);
  for (const b of bound) lines.push(`${b.id} ${which === "uid" ? b.hostUid : b.hostGid} 1`);
  return `${lines.join("\n")}\n`;
}

/** the guest resolves users through nss-systemd (and so reads /run/host/userdb) */
export function guestHasNssSystemd(view: string): boolean {
  const ns = readInRoot(view, "/etc/nsswitch.conf");
  if (ns === undefined) return false;
  const line = ns.split("\n").find((l) => /^\s*passwd\s*:/.test(l));
  return !!line && /\bsystemd\b/.test(line.replace(/#.*/, ""));
}

/** ResolvedUser of a bound user, for -u USER */
export function boundResolved(b: BoundUser): ResolvedUser {
  return { name: b.name, uid: b.id, gid: b.id, home: b.home, shell: b.shell, groups: [] };
}

function json(v: unknown): string {
  return `${JSON.stringify(v)}\n`;
}

function userRecord(b: BoundUser): Record<string, unknown> {
  return { userName: b.name, uid: b.id, gid: b.id, disposition: b.disposition, homeDirectory: b.home, service: "io.systemd.NSpawn" };
}

function groupRecord(b: BoundUser): Record<string, unknown> {
  return { groupName: b.name, gid: b.id, disposition: b.disposition, service: "io.systemd.NSpawn" };
}

function withNewline(text: string): string {
  return text === "" || text.endsWith("\n") ? text : `${text}\n`;
}

/** A guest account file with the bound users' lines added, bound over the tree's own. */
export interface AccountCopy {
  /** /etc/passwd, /etc/group, /etc/shadow */
  path: string;
  data: string;
  mode: number;
  /** the guest's shadow group, for /etc/shadow */
  gid?: number;
}

/**
 * For guests without nss-systemd: their /etc/passwd, /etc/group and
 * /etc/shadow with the bound users' lines added. A guest without such a
 * file (or with something else than a file there) keeps it as it is.
 */
export function accountCopies(bound: BoundUser[], view: string): AccountCopy[] {
  if (bound.length === 0 || guestHasNssSystemd(view)) return [];
  const files: Array<{ path: string; add: (b: BoundUser) => string; mode: number; group?: string }> = [
    { path: "/etc/passwd", add: (b) => `${b.name}:x:${b.id}:${b.id}:${b.realName.replace(/[:\n]/g, " ")}:${b.home}:${b.shell}\n`, mode: 0o644 },
    { path: "/etc/group", add: (b) => `${b.name}:x:${b.id}:\n`, mode: 0o644 },
    { path: "/etc/shadow", add: (b) => `${b.name}:${b.hashedPassword || "!*"}:${b.shadowAging}\n`, mode: 0o640, group: "shadow" },
  ];
  const guestGroups = parseGroup(readInRoot(view, "/etc/group") ?? "");
  const out: AccountCopy[] = [];
  for (const f of files) {
    // the file itself: a link (even to another file of the guest) is left
    // alone, or the copy would be bound over what it points at
    const etc = chaseInRoot(view, "/etc");
    const st = etc ? lstatMaybe(`${etc === "/" ? "" : etc}/${f.path.slice("/etc/".length)}`) : undefined;
    if (!st || !st.isFile()) continue;
    const text = readInRoot(view, f.path, 16 << 20);
    if (text === undefined) continue;
    const copy: AccountCopy = { path: f.path, data: withNewline(text) + bound.map(f.add).join(""), mode: f.mode };
    const gid = f.group ? guestGroups.find((g) => g.name === f.group)?.gid : undefined;
    if (gid !== undefined && !Number.isNaN(gid)) copy.gid = gid;
    else if (f.group) copy.mode = 0o600;
    out.push(copy);
  }
  return out;
}

/**
 * The child's ops, run after /run/host exists and before it becomes
 * read-only: the userdb records, and the account copies bound read-only
 * over the tree's files.
 */
export function bindUserOps(bound: BoundUser[], copies: AccountCopy[]): Op[] {
  if (bound.length === 0) return [];
  const ops: Op[] = [
    { kind: "mkdir", path: "/run/host/home", mode: 0o755, inRoot: true },
    { kind: "mkdir", path: "/run/host/userdb", mode: 0o755, inRoot: true },
  ];
  const put = (file: string, data: string, mode: number, id: number, suffix: string) => {
    ops.push({ kind: "write", path: `/run/host/userdb/${file}${suffix}`, data, mode, inRoot: true, create: true, trunc: true });
    ops.push({ kind: "symlink", target: `${file}${suffix}`, path: `/run/host/userdb/${id}${suffix}`, inRoot: true });
  };
  for (const b of bound) {
    put(b.name, json(groupRecord(b)), 0o644, b.id, ".group");
    if (b.hashedPassword) put(b.name, json({ privileged: { hashedPassword: [b.hashedPassword] } }), 0o600, b.id, ".user-privileged");
    put(b.name, json(userRecord(b)), 0o644, b.id, ".user");
  }
  if (copies.length > 0) ops.push({ kind: "mkdir", path: COPY_DIR, mode: 0o755, inRoot: true });
  for (const c of copies) {
    const copy = `${COPY_DIR}/${c.path.slice("/etc/".length)}`;
    ops.push({ kind: "write", path: copy, data: c.data, mode: c.mode, inRoot: true, create: true, trunc: true });
    if (c.gid !== undefined) ops.push({ kind: "chown", path: copy, uid: 0, gid: c.gid, inRoot: true });
    ops.push({
      kind: "mount", src: copy, srcInRoot: true, dst: c.path, dstInRoot: true, flags: MS.BIND,
      attrsAfter: MOUNT_ATTR.RDONLY, what: `binding ${c.path} with the bound users' lines over the tree's`,
    });
  }
  return ops;
}
