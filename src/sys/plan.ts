// Plan operations as TypeScript values, their encoding into the flat buffer
// the shim reads (see abi.ts), and their description for error messages and
// --print-plan.
import { ABI_MAGIC, ABI_VERSION, F, HEADER_SIZE, NO_STRING, OP, OP_SIZE, POP } from "./abi.ts";
import { makedev } from "./consts.ts";

interface Common {
  /** ENOENT (and EEXIST for creation) is not an error */
  optional?: boolean;
  /** no error at all stops the plan */
  ignoreErrors?: boolean;
}

export type Op = Common &
  (
    | { kind: "barrier"; id: number }
    | { kind: "setns"; path: string; nstype: number }
    | { kind: "unshare"; flags: number }
    | { kind: "forkWait" }
    | { kind: "stubInit"; /** a sealed memfd with the static init to exec (see container/init-bin.ts) */ exeFd?: number }
    | { kind: "prctl"; option: number; arg2: number | bigint; arg3?: number; what: string }
    | {
        kind: "mount"; src?: string; dst?: string; fstype?: string; flags: number; data?: string;
        srcInRoot?: boolean; dstInRoot?: boolean; mkdir?: boolean; mkfile?: boolean; inaccessible?: boolean;
        /** MOUNT_ATTR_* bits set on the new mount once it is there (read-only binds); RECURSIVE with `recursive` */
        attrsAfter?: number; recursive?: boolean;
        /** for messages: what this mount is ("binding /srv to /srv") */
        what?: string;
      }
    | { kind: "setattr"; dst?: string; dstInRoot?: boolean; slot?: number; set: number; clear?: number; propagation?: number; recursive?: boolean; idmapSlot?: number }
    | { kind: "umount"; dst: string; dstInRoot?: boolean; flags: number }
    | { kind: "mkdir"; path: string; mode: number; inRoot: boolean }
    | { kind: "mknod"; path: string; mode: number; dev: number; inRoot: boolean }
    | { kind: "symlink"; target: string; path: string; inRoot: boolean }
    | { kind: "unlink"; path: string; inRoot: boolean }
    | { kind: "rmdir"; path: string; inRoot: boolean }
    | { kind: "write"; path: string; data: string | Uint8Array; mode: number; inRoot: boolean; create?: boolean; trunc?: boolean; mkdir?: boolean; nofollow?: boolean }
    | { kind: "chown"; path: string; uid: number; gid: number; inRoot: boolean }
    | { kind: "chmod"; path: string; mode: number; inRoot: boolean }
    | { kind: "setRoot"; path: string }
    | { kind: "pivot" }
    | { kind: "hostname"; name: string }
    | { kind: "domainname"; name: string }
    | { kind: "umask"; mask: number }
    | { kind: "console"; ptmx: string; link?: string; stdio?: boolean; size?: { rows: number; cols: number } }
    | { kind: "setsid"; ctty: boolean; cttyStdin?: boolean }
    | { kind: "rlimit"; resource: number; soft: bigint; hard: bigint; name: string }
    | { kind: "personality"; persona: number }
    | { kind: "affinity"; mask: Uint8Array }
    | { kind: "seccomp"; program: Uint8Array }
    | { kind: "capbset"; keep: bigint }
    | { kind: "setgroups"; gids: number[] }
    | { kind: "setgid"; gid: number }
    | { kind: "setuid"; uid: number }
    | { kind: "caps"; set: bigint; ambient: bigint }
    | { kind: "chdir"; path: string }
    | { kind: "closeFrom"; fd: number; /** one more fd to keep open */ keep?: number }
    | { kind: "sigreset" }
    | { kind: "exec"; file: string; argv: string[]; env: string[]; searchPath?: boolean; fallback?: boolean }
    | { kind: "recvFd"; slot: number }
    | { kind: "sendFd"; slot: number; tag: number }
    | { kind: "open"; path: string; flags: number; mode: number; slot: number; inRoot: boolean }
    | { kind: "moveMount"; slot: number; dst: string; dstInRoot: boolean; mkdir?: boolean; mkfile?: boolean }
    | { kind: "openTree"; path: string; flags: number; slot: number; inRoot: boolean }
    | { kind: "sendPid" }
    | { kind: "exit"; code: number }
    | { kind: "ifUp"; name: string }
    | { kind: "bindSocket"; path: string; inRoot: boolean; slot: number }
  );

/** The parent's steps that TypeScript runs (POP.STEP n0 is the index here). */
export const PARENT_STEPS = [
  /** the network's links (veth, moved interfaces) in the child's namespace, and what DHCP needs of them */
  "net-links",
  /** what must be ready before the payload runs: DHCP is answered */
  "net-ready",
  /** the host's side of the network (addresses, NAT, port forwards), while the payload starts */
  "net-host",
  /** an OCI bundle's prestart hooks, once the container exists and before its payload runs */
  "oci-prestart",
] as const;
export type StepName = (typeof PARENT_STEPS)[number];

/**
 * A step of the parent's side of a plan, in order; where each goes among
 * the `go` steps says when it runs relative to the child (a `go` answers
 * the child's barrier of the same id: before it, the child waits at that
 * barrier; after it, the step overlaps with the child's ops up to its next
 * barrier). All but `step` are run by the shim (see abi.ts POP).
 */
export type ParentOp =
  | { kind: "mapUserns"; uidMap: string; gidMap: string; reg: number }
  | { kind: "makeUserns"; uidMap: string; gidMap: string; reg: number }
  | {
      kind: "idmapTree"; path: string; reg: number; recursive: boolean;
      /** refused with submounts: the tree's own mount alone is tried (the host's /proc under -D /) */
      flatRetry?: boolean;
      /** where the file system cannot be idmapped at all: ownership auto chowns the tree to `shift`
       * and sends it plain, or says why it may not (`refused`) */
      fallback?: { tree: string; shift: number } | { refused: string };
      /** what the mount is for, to begin the message when the file system cannot be idmapped */
      context?: string;
    }
  | { kind: "cloneTree"; path: string; recursive: boolean }
  | { kind: "makeDevfs"; options: string; nodes: Array<[name: string, major: number, minor: number]>; uid: number; gid: number }
  | { kind: "chownPaths"; paths: string[]; uid: number; gid: number; what: string }
  | { kind: "closeReg"; reg: number }
  | { kind: "go"; barrier: number }
  | { kind: "step"; name: StepName };

export interface Plan {
  /** clone flags (CLONE_NEW*) for the child */
  cloneFlags: number;
  ops: Op[];
  /** the parent's side; none: the child waits for nothing */
  parent?: ParentOp[];
  /** the host path the container's root is staged at, for messages */
  root?: string;
  /** an open cgroup2 directory the child starts in (set by the supervisor, not the planner) */
  cgroupFd?: number;
}

// Strings are laid out at their final offsets as they are added; the table is
// copied into the plan buffer once. (This runs on every start: keep it lean.)
class StringTable {
  private parts: Array<string | Uint8Array> = [];
  size = 1;
  private index = new Map<string, number>();
  add(s: string | Uint8Array | undefined): number {
    if (s === undefined) return NO_STRING;
    if (typeof s === "string") {
      if (s === "") return 0;
      const hit = this.index.get(s);
      if (hit !== undefined) return hit;
      const off = this.push(s);
      this.index.set(s, off);
      return off;
    }
    return this.push(s);
  }
  /** consecutive NUL-terminated strings */
  block(list: string[]): number {
    if (list.length === 0) return NO_STRING;
    const off = this.size;
    for (const s of list) this.push(s);
    return off;
  }
  private push(b: string | Uint8Array): number {
    const off = this.size;
    this.parts.push(b);
    this.size += (typeof b === "string" ? Buffer.byteLength(b) : b.length) + 1;
    return off;
  }
  writeTo(out: Buffer, at: number): void {
    out[at] = 0;
    let o = at + 1;
    for (const p of this.parts) {
      if (typeof p === "string") o += out.write(p, o);
      else {
        out.set(p, o);
        o += p.length;
      }
      out[o++] = 0;
    }
  }
}

/** A uid or gid for the shim, which takes 32 bits: anything that is no valid
 * id (above 4294967294, negative, fractional) would be truncated into another
 * one (4294967296 into root), so it is a bug that must not reach it. */
function id(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 4294967294) throw new Error(`invalid uid/gid ${v} in a plan`);
  return v;
}

export function encodePlan(plan: Plan): Uint8Array {
  const st = new StringTable();
  const recs = new Uint8Array(plan.ops.length * OP_SIZE);
  const dv = new DataView(recs.buffer);
  const s = [0, 0, 0, 0];
  const n: Array<number | bigint> = [0, 0, 0, 0];
  plan.ops.forEach((op, i) => {
    let kind: number;
    let flags = 0;
    s[0] = s[1] = s[2] = s[3] = NO_STRING;
    n[0] = n[1] = n[2] = n[3] = 0;
    if (op.optional) flags |= F.OPTIONAL;
    if (op.ignoreErrors) flags |= F.IGNORE_ERRORS;
    const inRoot = (b: boolean | undefined) => (b ? F.DST_IN_ROOT : 0);
    switch (op.kind) {
      case "barrier": kind = OP.BARRIER; n[0] = op.id; break;
      case "setns": kind = OP.SETNS; s[1] = st.add(op.path); n[0] = op.nstype; break;
      case "unshare": kind = OP.UNSHARE; n[0] = op.flags; break;
      case "forkWait": kind = OP.FORK_WAIT; break;
      case "stubInit": kind = OP.STUB_INIT; if (op.exeFd !== undefined) { n[0] = op.exeFd; n[1] = 1; } break;
      case "prctl": kind = OP.PRCTL; n[0] = op.option; n[1] = op.arg2; n[2] = op.arg3 ?? 0; break;
      case "mount":
        kind = OP.MOUNT;
        s[0] = st.add(op.src); s[1] = st.add(op.dst); s[2] = st.add(op.fstype); s[3] = st.add(op.data);
        n[0] = op.flags;
        flags |= inRoot(op.dstInRoot) | (op.srcInRoot ? F.SRC_IN_ROOT : 0) | (op.mkdir ? F.MKDIR : 0) | (op.mkfile ? F.MKFILE : 0) | (op.inaccessible ? F.INACCESSIBLE : 0);
        if (op.attrsAfter) {
          flags |= F.SETATTR_AFTER | (op.recursive ? F.RECURSIVE : 0);
          n[1] = op.attrsAfter;
        }
        break;
      case "setattr":
        kind = OP.SETATTR;
        s[1] = st.add(op.dst); n[0] = op.set; n[1] = op.clear ?? 0; n[2] = op.dst === undefined ? op.slot ?? 0 : op.propagation ?? 0;
        flags |= inRoot(op.dstInRoot) | (op.recursive ? F.RECURSIVE : 0);
        if (op.idmapSlot !== undefined) { flags |= F.IDMAP_SLOT; n[3] = op.idmapSlot; }
        break;
      case "umount": kind = OP.UMOUNT; s[1] = st.add(op.dst); n[0] = op.flags; flags |= inRoot(op.dstInRoot); break;
      case "mkdir": kind = OP.MKDIR; s[1] = st.add(op.path); n[0] = op.mode; flags |= inRoot(op.inRoot); break;
      case "mknod": kind = OP.MKNOD; s[1] = st.add(op.path); n[0] = op.mode; n[1] = op.dev; flags |= inRoot(op.inRoot); break;
      case "symlink": kind = OP.SYMLINK; s[0] = st.add(op.target); s[1] = st.add(op.path); flags |= inRoot(op.inRoot); break;
      case "unlink": kind = OP.UNLINK; s[1] = st.add(op.path); flags |= inRoot(op.inRoot); break;
      case "rmdir": kind = OP.RMDIR; s[1] = st.add(op.path); flags |= inRoot(op.inRoot); break;
      case "write": {
        kind = OP.WRITE;
        const bytes = typeof op.data === "string" ? Buffer.from(op.data) : op.data;
        s[0] = bytes.length ? st.add(bytes) : NO_STRING; s[1] = st.add(op.path); n[0] = op.mode; n[1] = bytes.length;
        flags |= inRoot(op.inRoot) | (op.create ? F.CREATE : 0) | (op.trunc ? F.TRUNC : 0) | (op.mkdir ? F.MKDIR : 0) | (op.nofollow ? F.NOFOLLOW : 0);
        break;
      }
      case "chown": kind = OP.CHOWN; s[1] = st.add(op.path); n[0] = id(op.uid); n[1] = id(op.gid); flags |= inRoot(op.inRoot); break;
      case "chmod": kind = OP.CHMOD; s[1] = st.add(op.path); n[0] = op.mode; flags |= inRoot(op.inRoot); break;
      case "setRoot": kind = OP.SET_ROOT; s[1] = st.add(op.path); break;
      case "pivot": kind = OP.PIVOT; break;
      case "hostname": kind = OP.HOSTNAME; s[0] = st.add(op.name); break;
      case "domainname": kind = OP.DOMAINNAME; s[0] = st.add(op.name); break;
      case "umask": kind = OP.UMASK; n[0] = op.mask; break;
      case "console":
        kind = OP.CONSOLE; s[1] = st.add(op.ptmx); s[2] = st.add(op.link); flags |= F.DST_IN_ROOT | (op.stdio ? F.STDIO : 0);
        if (op.size) { n[0] = op.size.rows; n[1] = op.size.cols; }
        break;
      case "setsid": kind = OP.SETSID; flags |= (op.ctty ? F.CTTY : 0) | (op.cttyStdin ? F.CTTY_STDIN : 0); break;
      case "rlimit": kind = OP.RLIMIT; n[0] = op.resource; n[1] = op.soft; n[2] = op.hard; break;
      case "personality": kind = OP.PERSONALITY; n[0] = op.persona; break;
      case "affinity": kind = OP.AFFINITY; s[0] = st.add(op.mask); n[0] = op.mask.length; break;
      case "seccomp": kind = OP.SECCOMP; s[0] = st.add(op.program); n[0] = op.program.length / 8; break;
      case "capbset": kind = OP.CAPBSET; n[0] = op.keep; break;
      case "setgroups": {
        kind = OP.SETGROUPS;
        const b = new Uint8Array(op.gids.length * 4);
        const v = new DataView(b.buffer);
        op.gids.forEach((g, k) => v.setUint32(k * 4, id(g), true));
        s[0] = op.gids.length ? st.add(b) : NO_STRING; n[0] = op.gids.length;
        break;
      }
      case "setgid": kind = OP.SETGID; n[0] = id(op.gid); break;
      case "setuid": kind = OP.SETUID; n[0] = id(op.uid); break;
      case "caps": kind = OP.CAPS; n[0] = op.set; n[1] = op.ambient; break;
      case "chdir": kind = OP.CHDIR; s[1] = st.add(op.path); break;
      case "closeFrom": kind = OP.CLOSE_FROM; n[0] = op.fd; if (op.keep !== undefined) { n[1] = op.keep; n[2] = 1; } break;
      case "sigreset": kind = OP.SIGRESET; break;
      case "exec":
        kind = OP.EXEC; s[0] = st.add(op.file); s[1] = st.block(op.argv); s[2] = st.block(op.env);
        n[0] = op.argv.length; n[1] = op.env.length;
        flags |= (op.searchPath ? F.SEARCH_PATH : 0) | (op.fallback ? F.FALLBACK : 0);
        break;
      case "recvFd": kind = OP.RECV_FD; n[2] = op.slot; break;
      case "sendFd": kind = OP.SEND_FD; n[0] = op.tag; n[2] = op.slot; break;
      case "open": kind = OP.OPEN; s[1] = st.add(op.path); n[0] = op.flags; n[1] = op.mode; n[2] = op.slot; flags |= inRoot(op.inRoot); break;
      case "moveMount":
        kind = OP.MOVE_MOUNT; s[1] = st.add(op.dst); n[2] = op.slot;
        flags |= inRoot(op.dstInRoot) | (op.mkdir ? F.MKDIR : 0) | (op.mkfile ? F.MKFILE : 0);
        break;
      case "openTree": kind = OP.OPEN_TREE; s[1] = st.add(op.path); n[0] = op.flags; n[2] = op.slot; flags |= inRoot(op.inRoot); break;
      case "sendPid": kind = OP.SEND_PID; break;
      case "exit": kind = OP.EXIT; n[0] = op.code; break;
      case "ifUp": kind = OP.IFUP; s[1] = st.add(op.name); break;
      case "bindSocket": kind = OP.BIND_SOCKET; s[1] = st.add(op.path); n[2] = op.slot; flags |= inRoot(op.inRoot); break;
    }
    const o = i * OP_SIZE;
    dv.setUint32(o, kind, true);
    dv.setUint32(o + 4, flags, true);
    for (let k = 0; k < 4; k++) dv.setUint32(o + 8 + k * 4, s[k]!, true);
    for (let k = 0; k < 4; k++) {
      const v = n[k]!;
      if (typeof v === "number" && v >= 0 && v <= 0xffffffff) {
        dv.setUint32(o + 24 + k * 8, v, true);
      } else {
        // a value that does not fit 64 bits would be truncated into another
        // one: a planning bug (the settings bound every number), never sent
        const b = BigInt(v);
        if (b >= 1n << 64n || b < -(1n << 63n)) throw new Error(`op ${i} (${op.kind}): ${b} does not fit 64 bits`);
        dv.setBigUint64(o + 24 + k * 8, BigInt.asUintN(64, b), true);
      }
    }
  });
  const out = Buffer.alloc(HEADER_SIZE + recs.length + st.size);
  header(out, plan.ops.length, st.size, plan.cloneFlags, plan.cgroupFd ?? -1);
  out.set(recs, HEADER_SIZE);
  st.writeTo(out, HEADER_SIZE + recs.length);
  return out;
}

function header(out: Buffer, nops: number, strtab: number, cloneFlags: number, cgroupFd: number): void {
  const hv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  hv.setUint32(0, ABI_MAGIC, true);
  hv.setUint32(4, ABI_VERSION, true);
  hv.setUint32(8, nops, true);
  hv.setUint32(12, strtab, true);
  hv.setUint32(16, cloneFlags >>> 0, true);
  hv.setUint32(20, Math.floor(cloneFlags / 0x100000000), true);
  hv.setInt32(24, cgroupFd, true);
}

/** The parent's side in the shim's format (nsh_parent_run). */
export function encodeParent(ops: ParentOp[]): Uint8Array {
  const st = new StringTable();
  const recs = new Uint8Array(ops.length * OP_SIZE);
  const dv = new DataView(recs.buffer);
  ops.forEach((op, i) => {
    const s = [NO_STRING, NO_STRING, NO_STRING, NO_STRING];
    const n = [0, 0, 0, 0];
    let kind: number;
    switch (op.kind) {
      case "mapUserns": case "makeUserns":
        kind = op.kind === "mapUserns" ? POP.MAP_USERNS : POP.MAKE_USERNS;
        s[0] = st.add(op.uidMap); s[1] = st.add(op.gidMap); n[0] = op.reg;
        break;
      case "idmapTree": kind = POP.IDMAP_TREE; s[1] = st.add(op.path); n[0] = op.reg; n[1] = op.recursive ? 1 : 0; break;
      case "cloneTree": kind = POP.CLONE_TREE; s[1] = st.add(op.path); n[1] = op.recursive ? 1 : 0; break;
      case "makeDevfs": {
        kind = POP.MAKE_DEVFS;
        const devs = new Uint8Array(op.nodes.length * 8);
        const v = new DataView(devs.buffer);
        op.nodes.forEach(([, maj, min], k) => v.setBigUint64(k * 8, BigInt(makedev(maj, min)), true));
        s[0] = st.add(op.options); s[1] = st.block(op.nodes.map(([name]) => name)); s[2] = op.nodes.length ? st.add(devs) : NO_STRING;
        n[0] = op.nodes.length; n[1] = id(op.uid); n[2] = id(op.gid);
        break;
      }
      case "chownPaths": kind = POP.CHOWN_PATHS; s[1] = st.block(op.paths); n[0] = op.paths.length; n[1] = id(op.uid); n[2] = id(op.gid); break;
      case "closeReg": kind = POP.CLOSE_REG; n[0] = op.reg; break;
      case "go": kind = POP.GO; n[0] = op.barrier; break;
      case "step": kind = POP.STEP; n[0] = PARENT_STEPS.indexOf(op.name); break;
    }
    const o = i * OP_SIZE;
    dv.setUint32(o, kind, true);
    for (let k = 0; k < 4; k++) dv.setUint32(o + 8 + k * 4, s[k]!, true);
    for (let k = 0; k < 4; k++) dv.setUint32(o + 24 + k * 8, n[k]!, true);
  });
  const out = Buffer.alloc(HEADER_SIZE + recs.length + st.size);
  header(out, ops.length, st.size, 0, -1);
  out.set(recs, HEADER_SIZE);
  st.writeTo(out, HEADER_SIZE + recs.length);
  return out;
}

/** What a parent step does, as the start of an error sentence (`part`: which map file, path or node failed). */
export function describeParentOp(op: ParentOp, part: number): { what: string; syscall: string } {
  switch (op.kind) {
    case "mapUserns": {
      const file = ["uid_map", "gid_map", "ns/user"][part] ?? "uid_map";
      if (file === "ns/user") return { what: "opening the container's user namespace (/proc/PID/ns/user)", syscall: "open" };
      return { what: `writing the container's ${file} (${(file === "uid_map" ? op.uidMap : op.gidMap).trim()})`, syscall: "write" };
    }
    case "makeUserns": return { what: `creating a user namespace for an idmapped mount (${op.uidMap.trim()})`, syscall: "clone" };
    case "idmapTree": return { what: `making an idmapped mount of ${op.path}`, syscall: "mount_setattr" };
    case "cloneTree": return { what: `cloning the mount at ${op.path}`, syscall: "open_tree" };
    case "makeDevfs": {
      const node = op.nodes[part];
      return node ? { what: `creating device node /dev/${node[0]}`, syscall: "mknod" } : { what: "creating the container's /dev (tmpfs)", syscall: "fsmount" };
    }
    case "chownPaths": return { what: `${op.what}: ${op.paths[part] ?? ""}`, syscall: "chown" };
    case "closeReg": return { what: "closing a user namespace", syscall: "close" };
    case "go": return { what: `releasing the container process from barrier ${op.barrier}`, syscall: "sendmsg" };
    case "step": return { what: op.name, syscall: "" };
  }
}

function rp(root: string | undefined, p: string, inRoot?: boolean): string {
  if (!inRoot || !root) return p;
  return p === "/" ? root : `${root}${p}`;
}

/** What an op does, as the start of an error sentence, and the system call it makes. */
export function describeOp(op: Op, root?: string): { what: string; syscall: string } {
  switch (op.kind) {
    case "barrier": return { what: "waiting for the supervisor", syscall: "recv" };
    case "setns": return { what: `joining namespace ${op.path}`, syscall: "setns" };
    case "unshare": return { what: "creating namespaces", syscall: "unshare" };
    case "forkWait": case "stubInit": return { what: "forking", syscall: "clone" };
    case "prctl": return { what: op.what, syscall: "prctl" };
    case "mount": {
      if (op.what) return { what: op.what, syscall: "mount" };
      const dst = op.dst ? rp(root, op.dst, op.dstInRoot) : "";
      if (op.inaccessible) return { what: `making ${dst} inaccessible`, syscall: "mount" };
      if (op.flags & 4096 /* MS_BIND */) return { what: `binding ${op.src ? rp(root, op.src, op.srcInRoot) : ""} to ${dst}`, syscall: "mount" };
      if (op.flags & (0x40000 | 0x80000 | 0x100000 | 0x20000)) return { what: `changing propagation of ${dst}`, syscall: "mount" };
      return { what: `mounting ${op.fstype ?? op.src} on ${dst}`, syscall: "mount" };
    }
    case "setattr": return { what: `changing mount attributes of ${op.dst ? rp(root, op.dst, op.dstInRoot) : "a detached mount"}`, syscall: "mount_setattr" };
    case "umount": return { what: `unmounting ${rp(root, op.dst, op.dstInRoot)}`, syscall: "umount2" };
    case "mkdir": return { what: `creating directory ${rp(root, op.path, op.inRoot)}`, syscall: "mkdir" };
    case "mknod": return { what: `creating device node ${rp(root, op.path, op.inRoot)}`, syscall: "mknod" };
    case "symlink": return { what: `creating symlink ${rp(root, op.path, op.inRoot)} -> ${op.target}`, syscall: "symlink" };
    case "unlink": return { what: `removing ${rp(root, op.path, op.inRoot)}`, syscall: "unlink" };
    case "rmdir": return { what: `removing directory ${rp(root, op.path, op.inRoot)}`, syscall: "rmdir" };
    case "write": return { what: `writing ${rp(root, op.path, op.inRoot)}`, syscall: "open/write" };
    case "chown": return { what: `changing owner of ${rp(root, op.path, op.inRoot)}`, syscall: "chown" };
    case "chmod": return { what: `changing mode of ${rp(root, op.path, op.inRoot)}`, syscall: "chmod" };
    case "setRoot": return { what: `opening root directory ${op.path}`, syscall: "open" };
    case "pivot": return { what: `switching root to ${root ?? "the container tree"}`, syscall: "pivot_root" };
    case "hostname": return { what: `setting hostname to ${op.name}`, syscall: "sethostname" };
    case "domainname": return { what: `setting domain name to ${op.name}`, syscall: "setdomainname" };
    case "umask": return { what: `setting the file mode creation mask to ${op.mask.toString(8).padStart(4, "0")}`, syscall: "umask" };
    case "console": return { what: "allocating the container console", syscall: "open" };
    case "setsid": return { what: "making the console the controlling terminal", syscall: "ioctl" };
    case "rlimit": return { what: `setting resource limit ${op.name}`, syscall: "setrlimit" };
    case "personality": return { what: "setting the execution domain", syscall: "personality" };
    case "affinity": return { what: "setting CPU affinity", syscall: "sched_setaffinity" };
    case "seccomp": return { what: "installing the system call filter", syscall: "seccomp" };
    case "capbset": return { what: "dropping capabilities from the bounding set", syscall: "prctl" };
    case "setgroups": return { what: `setting supplementary groups ${op.gids.join(",")}`, syscall: "setgroups" };
    case "setgid": return { what: `changing to group ${op.gid}`, syscall: "setresgid" };
    case "setuid": return { what: `changing to user ${op.uid}`, syscall: "setresuid" };
    case "caps": return { what: "setting capabilities", syscall: "capset" };
    case "chdir": return { what: `changing directory to ${op.path}`, syscall: "chdir" };
    case "closeFrom": return { what: "closing file descriptors", syscall: "close_range" };
    case "sigreset": return { what: "resetting signals", syscall: "sigprocmask" };
    case "exec": return { what: `execv(${op.file}) failed`, syscall: "execve" };
    case "recvFd": return { what: "receiving a file descriptor", syscall: "recvmsg" };
    case "sendFd": return { what: "sending a file descriptor", syscall: "sendmsg" };
    case "open": return { what: `opening ${rp(root, op.path, op.inRoot)}`, syscall: "open" };
    case "moveMount": return { what: `attaching a mount at ${rp(root, op.dst, op.dstInRoot)}`, syscall: "move_mount" };
    case "openTree": return { what: `cloning the mount at ${rp(root, op.path, op.inRoot)}`, syscall: "open_tree" };
    case "sendPid": return { what: "reporting the process id", syscall: "sendmsg" };
    case "exit": return { what: "exiting", syscall: "exit" };
    case "ifUp": return { what: `bringing up network link ${op.name}`, syscall: "ioctl(SIOCSIFFLAGS)" };
    case "bindSocket": return { what: `making the socket ${rp(root, op.path, op.inRoot)}`, syscall: "bind" };
  }
}

function fieldsOf(op: object): string {
  return Object.entries(op)
    .filter(([k]) => k !== "kind")
    .map(([k, v]) => {
      if (v instanceof Uint8Array) return `${k}=<${v.length} bytes>`;
      if (typeof v === "bigint") return `${k}=0x${v.toString(16)}`;
      if (typeof v === "string" || Array.isArray(v) || (v && typeof v === "object")) return `${k}=${JSON.stringify(v)}`;
      return `${k}=${v}`;
    })
    .join(" ");
}

/** One line per op of each side, for --print-plan: the child's, then the parent's. */
export function formatPlan(plan: Plan): string {
  const lines = [`# child: clone flags 0x${plan.cloneFlags.toString(16)}`];
  plan.ops.forEach((op, i) => lines.push(`${String(i).padStart(3)} ${op.kind} ${fieldsOf(op)}`.trimEnd()));
  const parent = plan.parent ?? [];
  lines.push(`# parent: ${parent.length ? "in order; a go answers the child's barrier of that id" : "nothing (the child waits for no barrier)"}`);
  parent.forEach((op, i) => lines.push(`${String(i).padStart(3)} ${op.kind} ${fieldsOf(op)}`.trimEnd()));
  return lines.join("\n");
}
