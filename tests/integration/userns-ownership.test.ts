// --private-users ownership: the recursive shift (shim/shift.c) on a tree
// with every kind of inode, ACLs and file capabilities; idmapped mounts; and
// picking UID ranges with real lock files under /run/spawnctl/uid-range.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { IS_ROOT, leftovers, needs, removeTree, rootTest, tempDir } from "../helpers.ts";
import { listXattrs, mknod } from "../../src/sys/ffi.ts";
import { S_IF, makedev } from "../../src/sys/consts.ts";
import { ensureOwnership, idmappedTree, makeUserns, shiftTree, treeOwner } from "../../src/userns/ownership.ts";
import { BUSY_BASE, LOCK_DIR, chooseRange, nameCandidate } from "../../src/userns/range.ts";
import { SpawnctlError } from "../../src/util/errors.ts";

const SHIFT = 524288;
const HAVE_SETCAP = !!Bun.which("setcap");
const HAVE_SETFACL = !!Bun.which("setfacl");
const test = rootTest;
const capTest = needs("setcap (Debian package libcap2-bin)", IS_ROOT && HAVE_SETCAP);
const aclTest = needs("setfacl (Debian package acl)", IS_ROOT && HAVE_SETFACL);

let base = "";
let tree = "";
let outside = "";
const before = IS_ROOT ? leftovers() : [];
const mounted: string[] = [];

function sh(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

interface Entry {
  uid: number;
  gid: number;
  mode: number;
  ino: number;
  xattrs: Record<string, string>; // name -> hex
}

/** Every inode below dir (on dir's file system), by relative path. */
function snapshot(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const dev = lstatSync(dir).dev;
  const walk = (rel: string) => {
    const p = rel ? `${dir}/${rel}` : dir;
    const st = lstatSync(p);
    if (st.dev !== dev) return;
    const xattrs: Record<string, string> = {};
    if (!st.isSymbolicLink()) for (const [k, v] of listXattrs(p)) if (k !== "security.selinux") xattrs[k] = Buffer.from(v).toString("hex");
    out.set(rel || ".", { uid: st.uid, gid: st.gid, mode: st.mode, ino: st.ino, xattrs });
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
  };
  walk("");
  return out;
}

const shiftId = (shift: number, id: number) => shift + (id & 0xffff);

/** What shifting does to an xattr value, written independently of the C code. */
function shiftXattr(name: string, hex: string, shift: number): string {
  const b = Buffer.from(hex, "hex");
  if (name === "security.capability") {
    const magic = b.readUInt32LE(0);
    const rev = magic >>> 24;
    const root = rev === 3 ? b.readUInt32LE(20) : 0;
    const nroot = shiftId(shift, root);
    if (nroot === 0) return rev === 3 ? Buffer.concat([u32((0x02000000 | (magic & 1)) >>> 0), b.subarray(4, 20)]).toString("hex") : hex;
    return Buffer.concat([u32((0x03000000 | (magic & 1)) >>> 0), b.subarray(4, 20), u32(nroot)]).toString("hex");
  }
  if (name.startsWith("system.posix_acl_")) {
    const c = Buffer.from(b);
    for (let off = 4; off < c.length; off += 8) {
      const tag = c.readUInt16LE(off);
      if (tag === 0x02 || tag === 0x08) c.writeUInt32LE(shiftId(shift, c.readUInt32LE(off + 4)), off + 4);
    }
    return c.toString("hex");
  }
  return hex;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function expectShifted(orig: Map<string, Entry>, now: Map<string, Entry>, shift: number): void {
  expect([...now.keys()]).toEqual([...orig.keys()]);
  for (const [rel, o] of orig) {
    const n = now.get(rel)!;
    const want = {
      uid: shiftId(shift, o.uid),
      gid: shiftId(shift, o.gid),
      mode: o.mode,
      xattrs: Object.fromEntries(Object.entries(o.xattrs).map(([k, v]) => [k, shiftXattr(k, v, shift)])),
    };
    expect({ rel, uid: n.uid, gid: n.gid, mode: n.mode, xattrs: n.xattrs }).toEqual({ rel, ...want });
  }
}

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir("spawnctl-userns-");
  tree = `${base}/tree`;
  outside = `${base}/outside-file`;
  writeFileSync(outside, "host file\n");
  chownSync(outside, 1234, 1234);
  mkdirSync(`${tree}/etc`, { recursive: true });
  mkdirSync(`${tree}/usr/bin`, { recursive: true });
  mkdirSync(`${tree}/home/alice`, { recursive: true });
  mkdirSync(`${tree}/srv/shared`, { recursive: true });
  mkdirSync(`${tree}/dev`);
  mkdirSync(`${tree}/mnt`);
  writeFileSync(`${tree}/etc/passwd`, "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
  writeFileSync(`${tree}/home/alice/notes`, "hi\n");
  chownSync(`${tree}/home/alice`, 1000, 1000);
  chownSync(`${tree}/home/alice/notes`, 1000, 100);
  writeFileSync(`${tree}/nobody-file`, "");
  chownSync(`${tree}/nobody-file`, 65534, 65534);
  // setuid root and setgid group binaries: chown clears both bits
  writeFileSync(`${tree}/usr/bin/su`, "#!/bin/sh\n");
  chmodSync(`${tree}/usr/bin/su`, 0o4755);
  writeFileSync(`${tree}/usr/bin/wall`, "#!/bin/sh\n");
  chownSync(`${tree}/usr/bin/wall`, 0, 5);
  chmodSync(`${tree}/usr/bin/wall`, 0o2755);
  chownSync(`${tree}/srv/shared`, 1000, 1001);
  chmodSync(`${tree}/srv/shared`, 0o2775);
  // a hard link to a non-root file
  linkSync(`${tree}/home/alice/notes`, `${tree}/srv/notes-link`);
  // symlinks: out of the tree (must not be followed), relative, and dangling
  symlinkSync(outside, `${tree}/etc/abs-out`);
  symlinkSync("../../outside-file", `${tree}/etc/rel-out`);
  symlinkSync("passwd", `${tree}/etc/passwd-link`);
  lchownSync(`${tree}/etc/passwd-link`, 1000, 1000);
  symlinkSync("/nonexistent", `${tree}/dangling`);
  // device node, fifo, socket
  expect(mknod(`${tree}/dev/null`, S_IF.CHR | 0o666, makedev(1, 3))).toBe(0);
  expect(mknod(`${tree}/dev/fifo`, S_IF.FIFO | 0o600, 0)).toBe(0);
  expect(mknod(`${tree}/dev/sock`, S_IF.SOCK | 0o755, 0)).toBe(0);
  chownSync(`${tree}/dev/fifo`, 1000, 1000);
  // already in the target range: must stay as it is
  writeFileSync(`${tree}/pre-shifted`, "");
  chownSync(`${tree}/pre-shifted`, SHIFT + 3, SHIFT + 4);
  if (HAVE_SETCAP) {
    writeFileSync(`${tree}/usr/bin/ping`, "#!/bin/sh\n");
    chmodSync(`${tree}/usr/bin/ping`, 0o755);
    sh(["setcap", "cap_net_raw+ep", `${tree}/usr/bin/ping`]);
    // setuid and a capability on one file
    writeFileSync(`${tree}/usr/bin/both`, "#!/bin/sh\n");
    chmodSync(`${tree}/usr/bin/both`, 0o4750);
    chownSync(`${tree}/usr/bin/both`, 0, 1000);
    sh(["setcap", "cap_net_admin,cap_sys_time+p", `${tree}/usr/bin/both`]);
    chmodSync(`${tree}/usr/bin/both`, 0o4750);
  }
  if (HAVE_SETFACL) {
    sh(["setfacl", "-m", "u:1000:rw,g:2000:r,u:70000:r", `${tree}/etc/passwd`]);
    sh(["setfacl", "-m", "u:1001:rwx", "-d", "-m", "u:1000:rwx,g:1000:rx", `${tree}/srv/shared`]);
  }
  // a mount inside the tree: a different file system, not ours to change
  sh(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "spawnctl-test-mnt", `${tree}/mnt`]);
  mounted.push(`${tree}/mnt`);
  writeFileSync(`${tree}/mnt/inner`, "");
  chownSync(`${tree}/mnt/inner`, 1000, 1000);
});

afterAll(() => {
  if (!IS_ROOT) return;
  for (const m of mounted.reverse()) Bun.spawnSync(["umount", m]);
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

describe("shiftTree", () => {
  let orig = new Map<string, Entry>();

  test("the fixture has what the test is about", () => {
    orig = snapshot(tree);
    expect(orig.get("usr/bin/su")!.mode & 0o7777).toBe(0o4755);
    expect(orig.get("srv/shared")!.mode & 0o7777).toBe(0o2775);
    expect(orig.get("srv/notes-link")!.ino).toBe(orig.get("home/alice/notes")!.ino);
    expect(orig.has("mnt")).toBe(false); // another file system
  });
  capTest("the fixture has file capabilities", () => {
    expect(orig.get("usr/bin/ping")!.xattrs["security.capability"]).toBeDefined();
    expect(orig.get("usr/bin/both")!.mode & 0o7777).toBe(0o4750);
  });
  aclTest("the fixture has ACLs", () => {
    expect(orig.get("etc/passwd")!.xattrs["system.posix_acl_access"]).toBeDefined();
    expect(orig.get("srv/shared")!.xattrs["system.posix_acl_default"]).toBeDefined();
  });

  test(`shifting to ${SHIFT}: owners, modes, capabilities and ACLs`, () => {
    const r = shiftTree(tree, SHIFT);
    const now = snapshot(tree);
    expectShifted(orig, now, SHIFT);
    const inodes = new Set([...orig.values()].filter((e) => shiftId(SHIFT, e.uid) !== e.uid || shiftId(SHIFT, e.gid) !== e.gid).map((e) => e.ino));
    expect(r).toEqual({ visited: orig.size, changed: inodes.size });
    // the symlinks' targets outside the tree, and the mount inside it, are untouched
    expect(statSync(outside)).toMatchObject({ uid: 1234, gid: 1234 });
    expect(lstatSync(`${tree}/etc/abs-out`)).toMatchObject({ uid: SHIFT, gid: SHIFT });
    expect(statSync(`${tree}/mnt`)).toMatchObject({ uid: 0, gid: 0 });
    expect(statSync(`${tree}/mnt/inner`)).toMatchObject({ uid: 1000, gid: 1000 });
    expect(statSync(`${tree}/pre-shifted`)).toMatchObject({ uid: SHIFT + 3, gid: SHIFT + 4 });
    expect(treeOwner(tree)).toEqual({ uid: SHIFT, gid: SHIFT });
  });
  capTest("the tools agree: getcap shows the new root id", () => {
    expect(sh(["getcap", "-n", `${tree}/usr/bin/ping`])).toContain(`cap_net_raw=ep [rootid=${SHIFT}]`);
    expect(sh(["getcap", "-n", `${tree}/usr/bin/both`])).toContain(`[rootid=${SHIFT}]`);
    expect(statSync(`${tree}/usr/bin/both`).mode & 0o7777).toBe(0o4750);
  });
  aclTest("the tools agree: getfacl shows shifted ids", () => {
    const a = sh(["getfacl", "-n", "-p", `${tree}/etc/passwd`]);
    expect(a).toContain(`user:${SHIFT + 1000}:rw-`);
    expect(a).toContain(`group:${SHIFT + 2000}:r--`);
    expect(a).toContain(`user:${SHIFT + 70000 - 65536}:r--`); // ids keep their low 16 bits
    const d = sh(["getfacl", "-n", "-p", `${tree}/srv/shared`]);
    expect(d).toContain(`default:user:${SHIFT + 1000}:rwx`);
    expect(d).toContain(`default:group:${SHIFT + 1000}:r-x`);
  });

  test("a second shift to the same range changes nothing", () => {
    const r = shiftTree(tree, SHIFT);
    expect(r.changed).toBe(0);
    expect(r.visited).toBe(orig.size);
  });

  test("ensureOwnership skips a tree whose root is in the range", () => {
    expect(ensureOwnership(tree, SHIFT)).toBe(false);
  });

  test("shifting back with 0 restores the original tree (ids above 65535 keep their low 16 bits)", () => {
    expect(ensureOwnership(tree, 0)).toBe(true);
    const now = snapshot(tree);
    expectShifted(orig, now, 0);
    // everything that started in 0…65535 is exactly as it was, xattrs included
    for (const [rel, o] of orig) if (rel !== "pre-shifted" && rel !== "etc/passwd") expect({ rel, ...now.get(rel)! }).toEqual({ rel, ...o });
    chownSync(`${tree}/pre-shifted`, SHIFT + 3, SHIFT + 4);
  });

  test("an interrupted shift is recognisable: the root is in the busy range, and the next shift completes it", () => {
    chownSync(tree, BUSY_BASE, BUSY_BASE);
    expect(() => chooseRange({ mode: "yes" }, tree, "x")).toThrow(/was interrupted/);
    expect(ensureOwnership(tree, 0)).toBe(true);
    expect(treeOwner(tree)).toEqual({ uid: 0, gid: 0 });
  });

  test("errors name the path: too deep a tree", () => {
    const deep = `${base}/deep`;
    let p = deep;
    for (let i = 0; i < 520; i++) p += "/d";
    mkdirSync(p, { recursive: true });
    let err: unknown;
    try {
      shiftTree(deep, SHIFT);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpawnctlError);
    expect((err as SpawnctlError).errno).toBe(40);
    expect((err as SpawnctlError).message).toMatch(new RegExp(`^shifting the ownership of ${deep} to ${SHIFT}: ${deep}(/d)+: Too many levels of symbolic links`));
    // the root was marked busy and keeps that mark: the tree does not look shifted
    expect(treeOwner(deep).uid).toBe(BUSY_BASE);
    expect(() => shiftTree(`${base}/missing`, SHIFT)).toThrow(`${base}/missing: No such file or directory`);
    expect(() => shiftTree(tree, 1000)).toThrow(/multiple of 65536/);
  });
});

describe("idmapped mounts", () => {
  test("ext4 under /var/tmp supports them; /proc is refused with an errno auto's chown fallback knows", () => {
    const map = `0 ${SHIFT} 65536\n`;
    const ns = makeUserns(map, map);
    try {
      closeSync(idmappedTree(base, ns, false));
      let errno: number | undefined;
      try {
        closeSync(idmappedTree("/proc", ns, false));
      } catch (e) {
        errno = (e as SpawnctlError).errno;
      }
      expect([1, 22, 95]).toContain(errno!);
    } finally {
      closeSync(ns);
    }
  });
  test("makeUserns + idmappedTree: the detached mount shows the tree shifted", () => {
    const map = `0 ${SHIFT} 65536\n`;
    const ns = makeUserns(map, map);
    expect(ns).toBeGreaterThanOrEqual(0);
    try {
      const mnt = idmappedTree(tree, ns, false);
      try {
        expect(mnt).toBeGreaterThanOrEqual(0);
        expect(statSync(`/proc/self/fd/${mnt}/home/alice/notes`)).toMatchObject({ uid: SHIFT + 1000, gid: SHIFT + 100 });
        expect(statSync(`/proc/self/fd/${mnt}/usr/bin/su`)).toMatchObject({ uid: SHIFT, gid: SHIFT });
        // the tree itself is unchanged
        expect(statSync(`${tree}/home/alice/notes`)).toMatchObject({ uid: 1000, gid: 100 });
      } finally {
        closeSync(mnt);
      }
    } finally {
      closeSync(ns);
    }
  });
  test("errors carry the errno and name the path", () => {
    const ns = makeUserns(`0 ${SHIFT} 65536\n`, `0 ${SHIFT} 65536\n`);
    try {
      expect(() => idmappedTree(`${base}/missing`, ns, false)).toThrow(`creating an idmapped mount of ${base}/missing: No such file or directory`);
    } finally {
      closeSync(ns);
    }
    expect(() => makeUserns("bogus\n", "bogus\n")).toThrow(/creating a user namespace/);
  });
});

describe("chooseRange(pick) with real locks", () => {
  const mine = () => (existsSync(LOCK_DIR) ? readdirSync(LOCK_DIR) : []);
  test("while the first lock is held the same name gets another base; after release the same one again", () => {
    const name = "spawnctl-test-pick";
    const a = chooseRange({ mode: "pick" }, tree, name);
    const b = chooseRange({ mode: "pick" }, tree, name);
    try {
      expect(a.shift).toBe(nameCandidate(name));
      expect(b.shift).not.toBe(a.shift);
      expect(a.range).toBe(65536);
      expect(mine()).toEqual(expect.arrayContaining([String(a.shift), String(b.shift)]));
      expect(a.lock!.held()[0]!.path).toBe(`${LOCK_DIR}/${a.shift}`);
    } finally {
      a.lock!.release();
      b.lock!.release();
    }
    expect(mine()).not.toContain(String(a.shift));
    const c = chooseRange({ mode: "pick" }, tree, name);
    c.lock!.release();
    expect(c.shift).toBe(a.shift);
  });
  test("a tree whose root is owned by a valid base keeps it", () => {
    const owned = 0x6fff0000;
    const st = statSync(tree);
    chownSync(tree, owned, owned);
    try {
      const r = chooseRange({ mode: "pick" }, tree, "spawnctl-test-pick");
      r.lock!.release();
      expect(r.shift).toBe(owned);
      expect(chooseRange({ mode: "yes" }, tree, "x")).toEqual({ shift: owned, range: 65536 });
    } finally {
      chownSync(tree, st.uid, st.gid);
    }
    expect(mine().filter((f) => f === String(owned))).toEqual([]);
  });
});
