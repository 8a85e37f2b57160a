// copy-to / copy-from: files between the host and a running machine, with
// owners, modes and times kept. The machine's side is reached through an fd of
// /proc/LEADER/root and resolved with RESOLVE_IN_ROOT, so a symlink inside the
// container can never make us read or write a host file.
import { closeSync, fstatSync, lchownSync, lstatSync, mkdirSync, openSync, readSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeSync, lutimesSync, chmodSync, existsSync, type Stats } from "node:fs";
import { O } from "../sys/consts.ts";
import { RESOLVE, chmodFd, closeFd, lchownat, mkdirat, openInRoot, openat2, readlinkat, symlinkat, tryOpenat2, unlinkat, utimesAt } from "../sys/at.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { warn } from "../util/log.ts";
import { Progress } from "../util/progress.ts";
import { treeBytes } from "../util/copy.ts";
import { shim, strerror } from "../sys/ffi.ts";
import type { MachineState } from "../container/registry.ts";

const ONE = RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS;

// Owners across a user namespace: a container's uid u is host uid shift+u.
// Files copied in get the host owner's id shifted into the machine's range,
// files copied out get their id in the machine; what does not fit is nobody.
let toMachine = (id: number) => id;
let fromMachine = (id: number) => id;

function withShift<T>(m: MachineState, into: boolean, f: () => T): T {
  if (m.uidShift === undefined) return f();
  const shift = m.uidShift, range = m.uidRange ?? 65536;
  toMachine = (id) => shift + (id < range ? id : Math.min(65534, range - 1));
  fromMachine = (id) => (id >= shift && id < shift + range ? id - shift : 65534);
  // created files start out owned by the machine's root: an idmapped root
  // refuses a host root it cannot map
  if (into) {
    const r = shim().nsh_set_fsids(shift, shift) as number;
    if (r < 0) throw new SpawnctlError(`switching to the machine's root to copy: ${strerror(-r)}`);
  }
  try {
    return f();
  } finally {
    if (into) shim().nsh_set_fsids(0, 0);
    toMachine = (id) => id;
    fromMachine = (id) => id;
  }
}

function split(path: string): { dir: string; name: string } {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return { dir: i <= 0 ? "/" : p.slice(0, i), name: p.slice(i + 1) };
}

// the progress line of the copy under way: bytes (of a total for copy-to)
let moved: (n: number) => void = () => {};

function withProgress<T>(label: string, total: (() => number) | undefined, f: () => T): T {
  const line = new Progress();
  const all = line.isLive && total ? total() : undefined;
  let done = 0;
  moved = (n) => {
    done += n;
    line.bytes(label, done, all);
  };
  try {
    return f();
  } finally {
    moved = () => {};
    line.clear();
  }
}

function copyData(from: number, to: number): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const n = readSync(from, buf, 0, buf.length, null);
    if (n <= 0) break;
    let off = 0;
    while (off < n) off += writeSync(to, buf, off, n - off);
    moved(n);
  }
}

/** Copy host `src` to `name` in the machine directory `dirfd`. */
function copyIn(src: string, st: Stats, dirfd: number, name: string, force: boolean): void {
  const what = (verb: string) => `${verb} ${name} in the machine`;
  if (st.isDirectory()) {
    let e = mkdirat(dirfd, name, 0o700);
    if (e === 17 /* EEXIST */ && !force) throw new SpawnctlError(`Failed to copy ${src}: File exists`);
    const fd = openat2(dirfd, name, O.PATH | O.DIRECTORY, 0, ONE, what("opening"));
    try {
      for (const child of readdirSync(src)) copyIn(`${src}/${child}`, lstatSync(`${src}/${child}`), fd, child, force);
      lchownat(fd, "", toMachine(st.uid), toMachine(st.gid), what("changing owner of"));
      chmodFd(fd, st.mode & 0o7777, what("changing mode of"));
      utimesAt(fd, "", st.atimeMs / 1000, st.mtimeMs / 1000);
    } finally {
      closeFd(fd);
    }
    void e;
    return;
  }
  // a file, link or node replaces what is there only with --force
  const exists = tryOpenat2(dirfd, name, O.PATH | O.NOFOLLOW, 0, ONE) >= 0;
  if (exists) {
    if (!force) throw new SpawnctlError(`Failed to copy ${src}: File exists`);
    const r = unlinkat(dirfd, name, false);
    if (r !== 0 && r !== 2) throw new SpawnctlError(`replacing ${name} in the machine: ${fsMessage({ code: r === 21 ? "EISDIR" : "EPERM" })}`);
  }
  if (st.isSymbolicLink()) {
    symlinkat(readlinkSync(src), dirfd, name, what("creating symlink"));
    lchownat(dirfd, name, toMachine(st.uid), toMachine(st.gid), what("changing owner of"));
    utimesAt(dirfd, name, st.atimeMs / 1000, st.mtimeMs / 1000);
    return;
  }
  if (!st.isFile()) {
    warn(`Skipping ${src}: only files, directories and symlinks are copied.`);
    return;
  }
  const out = openat2(dirfd, name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600, ONE, what("creating"));
  const inp = openSync(src, "r");
  try {
    copyData(inp, out);
    lchownat(out, "", toMachine(st.uid), toMachine(st.gid), what("changing owner of"));
    chmodFd(out, st.mode & 0o7777, what("changing mode of"));
    utimesAt(out, "", st.atimeMs / 1000, st.mtimeMs / 1000);
  } finally {
    closeSync(inp);
    closeFd(out);
  }
}

export function copyTo(m: MachineState, src: string, dst: string, force: boolean): void {
  let st: Stats;
  try {
    st = lstatSync(src);
  } catch (e) {
    throw new SpawnctlError(`Failed to copy ${src}: ${fsMessage(e)}`);
  }
  const root = openSync(`/proc/${m.leader}/root`, O.PATH | O.DIRECTORY);
  try {
    const { dir, name } = split(dst.startsWith("/") ? dst : `/${dst}`);
    const dirfd = openInRoot(root, dir, O.PATH | O.DIRECTORY, `opening ${dir} in machine ${m.name}`);
    try {
      withProgress(`Copying ${src} to ${m.name}:${dst}`, () => treeBytes(src), () => withShift(m, true, () => copyIn(src, st, dirfd, name, force)));
    } finally {
      closeFd(dirfd);
    }
  } finally {
    closeFd(root);
  }
}

/** Copy the entry `name` of machine directory `dirfd` to host path `dst`. */
function copyOut(dirfd: number, name: string, dst: string, force: boolean): void {
  const fd = openat2(dirfd, name, O.PATH | O.NOFOLLOW, 0, ONE, `opening ${name} in the machine`);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) {
      if (existsSync(dst) && !force) throw new SpawnctlError(`Failed to copy to ${dst}: File exists`);
      if (!existsSync(dst)) mkdirSync(dst, { mode: 0o700 });
      const dfd = openat2(dirfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW, 0, ONE, `listing ${name} in the machine`);
      try {
        for (const child of readdirSync(`/proc/self/fd/${dfd}`)) copyOut(dfd, child, `${dst}/${child}`, force);
      } finally {
        closeFd(dfd);
      }
      lchownSync(dst, fromMachine(st.uid), fromMachine(st.gid));
      chmodSync(dst, st.mode & 0o7777);
      utimesSync(dst, st.atime, st.mtime);
      return;
    }
    if (existsSync(dst) || isLink(dst)) {
      if (!force) throw new SpawnctlError(`Failed to copy to ${dst}: File exists`);
      rmSync(dst, { force: true, recursive: statSync(dst, { throwIfNoEntry: false })?.isDirectory() ?? false });
    }
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkat(dirfd, name, `reading link ${name} in the machine`), dst);
      lchownSync(dst, fromMachine(st.uid), fromMachine(st.gid));
      lutimesSync(dst, st.atime, st.mtime);
      return;
    }
    if (!st.isFile()) {
      warn(`Skipping ${name}: only files, directories and symlinks are copied.`);
      return;
    }
    const inp = openat2(dirfd, name, O.RDONLY | O.NOFOLLOW, 0, ONE, `reading ${name} in the machine`);
    const out = openSync(dst, "wx", 0o600);
    try {
      copyData(inp, out);
    } finally {
      closeFd(inp);
      closeSync(out);
    }
    lchownSync(dst, fromMachine(st.uid), fromMachine(st.gid));
    chmodSync(dst, st.mode & 0o7777);
    utimesSync(dst, st.atime, st.mtime);
  } finally {
    closeFd(fd);
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export function copyFrom(m: MachineState, src: string, dst: string, force: boolean): void {
  const root = openSync(`/proc/${m.leader}/root`, O.PATH | O.DIRECTORY);
  try {
    const { dir, name } = split(src.startsWith("/") ? src : `/${src}`);
    const dirfd = openInRoot(root, dir, O.PATH | O.DIRECTORY, `opening ${dir} in machine ${m.name}`);
    try {
      // no total: sizing the machine's tree beforehand would walk it through paths the machine controls
      withProgress(`Copying ${m.name}:${src} to ${dst}`, undefined, () => withShift(m, false, () => copyOut(dirfd, name, dst, force)));
    } finally {
      closeFd(dirfd);
    }
  } finally {
    closeFd(root);
  }
}
