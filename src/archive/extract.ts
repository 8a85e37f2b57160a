// Extracting tar entries into a directory tree that must contain them.
//
// The model is "tar inside the root": every name is taken relative to
// `root`, and the tree is walked component by component with lstat, so no
// system call is ever handed a path whose parents have not been checked:
//   - leading "/" and ".." components are clamped at the root (or, with
//     refuseEscapes, fail the whole extraction naming the entry);
//   - a symlink met while resolving a parent directory is followed inside the
//     root: an absolute target restarts at the root and ".." stops there,
//     like openat2's RESOLVE_IN_ROOT (refuseEscapes fails instead when the
//     link is absolute or climbs above the root, as hostile imports should);
//   - the entry itself is never followed: an existing file, symlink or empty
//     directory in its place is removed first and the new one is created
//     with O_EXCL|O_NOFOLLOW, so a planted "etc/passwd -> /etc/passwd" is
//     replaced, not written through;
//   - a hardlink's target is resolved the same way, must exist, must not be a
//     directory, and must not be a symlink that points out of the tree.
// Metadata: chown before chmod (chown clears setuid/setgid), extended
// attributes after chown (it clears security.capability, so that one goes
// last), times last. Directory metadata is applied at the end, deepest first,
// since creating entries inside a directory changes its mtime and a 0555
// directory would stop the extraction of its contents as non-root. It is
// applied through an O_NOFOLLOW descriptor whose inode is checked, so a
// directory that a later entry replaced is left alone.
//
// The checks assume nobody else changes the tree during the extraction (it is
// a fresh bootstrap or import target, not a running container's root).
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import { mknod, setXattr, strerror } from "../sys/ffi.ts";
import type { TarEntry } from "./tar.ts";

export interface ExtractOptions {
  /** create character and block devices (mknod); otherwise they are skipped and counted */
  devices?: boolean;
  /** with devices off: a device entry fails the extraction instead of being skipped */
  refuseDevices?: boolean;
  /** an archive directory where the tree has a symlink to a directory keeps the symlink (tar --keep-directory-symlink) */
  keepDirectorySymlinks?: boolean;
  /** chown to the archive's numeric uid/gid (default: when running as root) */
  owners?: boolean;
  /** restore extended attributes (default true) */
  xattrs?: boolean;
  /** fail on absolute names, "..", and symlinks that would lead out of the tree, instead of clamping */
  refuseEscapes?: boolean;
  /** called with the entry's normalised path ("usr/bin/ls", "." for the root); true skips the entry */
  skip?(path: string): boolean;
  /** called after each entry is handled (progress) */
  onEntry?(entry: TarEntry): void;
  /** the archive's name in error messages */
  name?: string;
}

export interface ExtractStats {
  entries: number;
  /** bytes of file data written */
  bytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  fifos: number;
  /** entries skipped by opts.skip or because devices are off */
  skipped: number;
  /** extended attributes the filesystem or our privileges did not allow */
  xattrsSkipped: number;
}

const MAX_SYMLINKS = 40;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const ENOTSUP = 95;
const EPERM = 1;
const OPEN_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | 0o2000000; /* O_CLOEXEC */
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | 0o2000000;

interface PendingDir {
  path: string;
  dev: number;
  ino: number;
  entry: TarEntry;
}

class Extractor {
  readonly root: string;
  readonly stats: ExtractStats = { entries: 0, bytes: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, devices: 0, fifos: 0, skipped: 0, xattrsSkipped: 0 };
  /** lexical parent path -> physical path; cleared whenever a symlink appears or a directory/symlink is removed */
  private readonly dirCache = new Map<string, string>();
  private readonly pending = new Map<string, PendingDir>();
  private readonly owners: boolean;
  private readonly isRoot = process.getuid?.() === 0;
  private current = "";

  constructor(
    root: string,
    private readonly opts: ExtractOptions,
  ) {
    try {
      this.root = realpathSync(root);
      if (!lstatSync(this.root).isDirectory()) throw new Error("Not a directory");
    } catch (e) {
      throw new SpawnctlError(`extracting ${opts.name ?? "an archive"} into ${root}: ${fsMessage(e)}`);
    }
    this.owners = opts.owners ?? this.isRoot;
  }

  private fail(message: string, errno?: number, syscall?: string): SpawnctlError {
    return new SpawnctlError(`extracting ${JSON.stringify(this.current)}${this.opts.name ? ` from ${this.opts.name}` : ""} into ${this.root}: ${message}`, { errno, syscall });
  }

  private refused(why: string): SpawnctlError {
    return this.fail(`refusing the archive: ${why}`);
  }

  /** Run an fs call; errors become "extracting X ...: syscall path: reason". */
  private sys<T>(syscall: string, path: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      throw this.fail(`${syscall} ${path}: ${fsMessage(e)}`, typeof errno === "number" ? Math.abs(errno) : undefined, syscall);
    }
  }

  private lstat(path: string): Stats | undefined {
    try {
      return lstatSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return undefined;
      throw this.fail(`lstat ${path}: ${fsMessage(e)}`, undefined, "lstat");
    }
  }

  /** Split an archive name into components, clamping or refusing absolute names and "..". */
  private components(name: string, what: string): string[] {
    if (name.includes("\0")) throw this.refused(`${what} contains a NUL byte`);
    if (this.opts.refuseEscapes && name.startsWith("/")) throw this.refused(`${what} ${JSON.stringify(name)} is absolute`);
    const out: string[] = [];
    for (const c of name.split("/")) {
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (this.opts.refuseEscapes) throw this.refused(`${what} ${JSON.stringify(name)} contains ".."`);
        out.pop(); // clamped at the root
        continue;
      }
      out.push(c);
    }
    return out;
  }

  private abs(phys: string[]): string {
    return phys.length ? `${this.root}/${phys.join("/")}` : this.root;
  }

  /**
   * The physical path of the directory named by `parts`, following symlinks
   * inside the root. Missing directories are created (mode 0755) when
   * `create`; otherwise undefined is returned for a missing one.
   */
  private resolveDir(parts: string[], create: boolean, refuse = !!this.opts.refuseEscapes): string | undefined {
    const key = parts.join("/");
    const hit = this.dirCache.get(key);
    if (hit !== undefined) return hit;
    const phys: string[] = [];
    let todo = parts.slice();
    let links = 0;
    let lastLink = "";
    while (todo.length) {
      const c = todo.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (phys.length === 0) {
          if (refuse) throw this.refused(`resolving its parent ${JSON.stringify(key)} leads above the root${lastLink ? ` through the symlink ${lastLink}` : ""}`);
          continue;
        }
        phys.pop();
        continue;
      }
      const p = `${this.abs(phys)}/${c}`;
      const st = this.lstat(p);
      if (!st) {
        if (!create) return undefined;
        this.sys("mkdir", p, () => mkdirSync(p, 0o755));
        phys.push(c);
        continue;
      }
      if (st.isDirectory()) {
        phys.push(c);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw this.fail(`resolving ${JSON.stringify(key)}: too many levels of symbolic links`);
        const target = this.sys("readlink", p, () => readlinkSync(p));
        lastLink = `${JSON.stringify(phys.concat(c).join("/"))} -> ${JSON.stringify(target)}`;
        if (target.startsWith("/")) {
          if (refuse) throw this.refused(`its parent ${JSON.stringify(key)} goes through the symlink ${lastLink}, which points out of the tree`);
          phys.length = 0;
        }
        todo = target.split("/").concat(todo);
        continue;
      }
      throw this.fail(`${JSON.stringify(phys.concat(c).join("/"))} is not a directory`, 20, "mkdir");
    }
    const out = this.abs(phys);
    this.dirCache.set(key, out);
    return out;
  }

  /** Remove what stands where a new entry goes. Directories only when empty. */
  private removeExisting(path: string, st: Stats): void {
    if (st.isDirectory()) {
      this.sys("rmdir", path, () => rmdirSync(path));
      this.pending.delete(path);
      this.dirCache.clear();
    } else {
      this.sys("unlink", path, () => unlinkSync(path));
      if (st.isSymbolicLink()) this.dirCache.clear();
    }
  }

  extract(e: TarEntry): void {
    this.current = e.path;
    this.stats.entries++;
    const parts = this.components(e.path, "its name");
    const rel = parts.length ? parts.join("/") : ".";
    if (this.opts.skip?.(rel)) {
      this.stats.skipped++;
      return;
    }
    if (parts.length === 0) {
      // "./" itself: only a directory may describe the root.
      if (e.type !== "dir") throw this.refused(`a ${e.type} entry names the root directory`);
      const st = this.sys("lstat", this.root, () => lstatSync(this.root));
      this.defer(this.root, st, e);
      this.stats.dirs++;
      return;
    }
    const leaf = parts[parts.length - 1]!;
    const parent = this.resolveDir(parts.slice(0, -1), true)!;
    const path = `${parent}/${leaf}`;
    const existing = this.lstat(path);

    switch (e.type) {
      case "dir": {
        if (existing?.isDirectory()) {
          this.defer(path, existing, e);
        } else if (existing?.isSymbolicLink() && this.opts.keepDirectorySymlinks && this.symlinkIsDir(parts)) {
          // Keep bin -> usr/bin; its target's metadata stays as it is.
        } else {
          if (existing) this.removeExisting(path, existing);
          this.sys("mkdir", path, () => mkdirSync(path, 0o700));
          this.defer(path, this.sys("lstat", path, () => lstatSync(path)), e);
        }
        this.stats.dirs++;
        break;
      }
      case "file": {
        if (existing) this.removeExisting(path, existing);
        const fd = this.sys("open", path, () => openSync(path, OPEN_NEW, 0o600));
        try {
          let off = 0;
          const data = e.data;
          while (off < data.length) off += this.sys("write", path, () => writeSync(fd, data, off, data.length - off));
          if (this.owners) this.sys("chown", path, () => fchownSync(fd, e.uid, e.gid));
          this.sys("chmod", path, () => fchmodSync(fd, e.mode));
          this.setXattrs(path, e);
          this.sys("utimes", path, () => futimesSync(fd, e.mtime, e.mtime));
        } finally {
          closeSync(fd);
        }
        this.stats.files++;
        this.stats.bytes += e.data.length;
        break;
      }
      case "symlink": {
        if (existing) this.removeExisting(path, existing);
        this.sys("symlink", path, () => symlinkSync(e.linkname, path));
        this.dirCache.clear();
        if (this.owners) this.sys("lchown", path, () => lchownSync(path, e.uid, e.gid));
        this.setXattrs(path, e);
        this.sys("lutimes", path, () => lutimesSync(path, e.mtime, e.mtime));
        this.stats.symlinks++;
        break;
      }
      case "hardlink": {
        const target = this.hardlinkTarget(e.linkname);
        const tst = this.sys("lstat", target, () => lstatSync(target));
        if (existing && existing.ino === tst.ino && existing.dev === tst.dev) {
          this.stats.hardlinks++;
          break; // already the same file
        }
        if (existing) this.removeExisting(path, existing);
        // link(2) does not follow a symlink given as the old path on Linux:
        // linking to a (checked) symlink makes another link to the symlink itself.
        this.sys("link", path, () => linkSync(target, path));
        this.stats.hardlinks++;
        break;
      }
      case "char":
      case "block":
      case "fifo": {
        if (e.type !== "fifo" && !this.opts.devices) {
          if (this.opts.refuseDevices) throw this.refused(`it is a ${e.type} device (${e.devmajor}:${e.devminor}) and device nodes are not allowed`);
          this.stats.skipped++;
          break;
        }
        if (existing) this.removeExisting(path, existing);
        const kind = e.type === "char" ? S_IFCHR : e.type === "block" ? S_IFBLK : S_IFIFO;
        const err = mknod(path, kind | 0o600, e.type === "fifo" ? 0 : makedev(e.devmajor, e.devminor));
        if (err) throw this.fail(`mknod ${path}: ${strerror(err)}`, err, "mknod");
        // Nothing can have replaced the node since mknod: the tree is ours.
        if (this.owners) this.sys("lchown", path, () => lchownSync(path, e.uid, e.gid));
        this.sys("chmod", path, () => chmodSync(path, e.mode));
        this.setXattrs(path, e);
        this.sys("lutimes", path, () => lutimesSync(path, e.mtime, e.mtime));
        if (e.type === "fifo") this.stats.fifos++;
        else this.stats.devices++;
        break;
      }
    }
  }

  /** Does the existing symlink at `parts` lead (inside the root) to a directory? */
  private symlinkIsDir(parts: string[]): boolean {
    try {
      // Clamped resolution even in refuse mode: keeping the link writes nothing;
      // entries below it are checked when they are resolved.
      const p = this.resolveDir(parts, false, false);
      return p !== undefined;
    } catch {
      return false;
    } finally {
      this.dirCache.delete(parts.join("/"));
    }
  }

  private hardlinkTarget(linkname: string): string {
    const parts = this.components(linkname, "its hardlink target");
    if (parts.length === 0) throw this.refused(`the hardlink target ${JSON.stringify(linkname)} is the root directory`);
    const dir = this.resolveDir(parts.slice(0, -1), false);
    const target = dir === undefined ? undefined : `${dir}/${parts[parts.length - 1]}`;
    const st = target === undefined ? undefined : this.lstat(target);
    if (!target || !st) throw this.fail(`the hardlink target ${JSON.stringify(linkname)} does not exist in the tree`);
    if (st.isDirectory()) throw this.refused(`the hardlink target ${JSON.stringify(linkname)} is a directory`);
    if (st.isSymbolicLink()) {
      // A second name for a symlink is harmless only while the symlink stays inside the tree.
      const to = this.sys("readlink", target, () => readlinkSync(target));
      let depth = dir!.slice(this.root.length).split("/").filter(Boolean).length;
      let escapes = to.startsWith("/");
      for (const c of to.split("/")) {
        if (c === "..") depth--;
        else if (c !== "" && c !== ".") depth++;
        if (depth < 0) escapes = true;
      }
      if (escapes) throw this.refused(`the hardlink target ${JSON.stringify(linkname)} is a symlink to ${JSON.stringify(to)}, outside the tree`);
    }
    return target;
  }

  private defer(path: string, st: Stats, e: TarEntry): void {
    this.pending.delete(path);
    this.pending.set(path, { path, dev: st.dev, ino: st.ino, entry: e });
  }

  private setXattrs(path: string, e: TarEntry): void {
    if (this.opts.xattrs === false || e.xattrs.size === 0) return;
    // security.capability last: chown and writes clear it.
    const names = [...e.xattrs.keys()].sort((a, b) => Number(a === "security.capability") - Number(b === "security.capability"));
    for (const name of names) {
      const err = setXattr(path, name, e.xattrs.get(name)!);
      if (err === 0) continue;
      if (err === ENOTSUP || (err === EPERM && !this.isRoot)) {
        this.stats.xattrsSkipped++;
        continue;
      }
      throw this.fail(`setting the extended attribute ${name} on ${path}: ${strerror(err)}`, err, "lsetxattr");
    }
  }

  /** Directory metadata, deepest first, through a checked O_NOFOLLOW descriptor. */
  finish(): void {
    for (const d of [...this.pending.values()].reverse()) {
      this.current = d.entry.path;
      let fd: number;
      try {
        fd = openSync(d.path, OPEN_DIR);
      } catch {
        continue; // replaced by a later entry
      }
      try {
        const st = fstatSync(fd);
        if (st.ino !== d.ino || st.dev !== d.dev) continue;
        const e = d.entry;
        if (this.owners) this.sys("chown", d.path, () => fchownSync(fd, e.uid, e.gid));
        this.sys("chmod", d.path, () => fchmodSync(fd, e.mode));
        this.setXattrs(d.path, e);
        this.sys("utimes", d.path, () => futimesSync(fd, e.mtime, e.mtime));
      } finally {
        closeSync(fd);
      }
    }
    this.pending.clear();
  }
}

/** glibc's dev_t encoding (12-bit major / 20-bit minor split over 64 bits). */
export function makedev(major: number, minor: number): number {
  const dev = ((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn);
  return Number(dev);
}

/**
 * Extract `entries` into `root` (which must exist). Throws a SpawnctlError
 * naming the entry on the first failure; what was extracted before stays.
 */
export function extractTar(entries: Iterable<TarEntry>, root: string, opts: ExtractOptions = {}): ExtractStats {
  const x = new Extractor(root, opts);
  try {
    for (const e of entries) {
      x.extract(e);
      opts.onEntry?.(e);
    }
  } catch (e) {
    // Directory metadata is still applied, so a partly extracted tree is not
    // left with 0700 directories; the first error is the one reported.
    try {
      x.finish();
    } catch {
      /* already failing */
    }
    throw e;
  }
  x.finish();
  return x.stats;
}

// ---------------------------------------------------------------------------
// Checking member names without extracting anything

/** An entry that cannot be extracted without leaving the tree, and why. */
export interface UnsafeMember {
  /** the entry's name as readTar gives it ("etc/passwd", "../x", "/abs") */
  path: string;
  /** what is wrong with it, e.g. `its name "../x" contains ".."` */
  why: string;
}

/**
 * The refuseEscapes rules of extractTar, applied to names alone (no file
 * system), for archives that something else unpacks (dpkg in the second stage
 * of a bootstrap) or that must be checked before a target exists: an entry is
 * unsafe when its name or its hardlink target has a NUL byte, is absolute or
 * has a ".." component, when its parent goes through a symlink an earlier
 * entry made that is absolute or climbs above the root, or when it is a
 * hardlink to such a symlink. One checker can see several archives in the
 * order they are unpacked, so that a symlink from one package is known when
 * the next one is checked. A directory entry where a symlink is keeps the
 * symlink (dpkg, tar --keep-directory-symlink); any other entry replaces it.
 */
export class MemberCheck {
  /** symlinks made so far: normalised path -> target */
  private readonly links = new Map<string, string>();

  /** `links`: symlinks the tree has before the first archive (merged /usr: "bin" -> "usr/bin") */
  constructor(links: Record<string, string> = {}) {
    for (const [path, target] of Object.entries(links)) this.links.set(path, target);
  }

  /** Why `e` is unsafe, or undefined; a safe entry is then recorded (symlinks). */
  check(e: Pick<TarEntry, "path" | "type" | "linkname">): string | undefined {
    const name = this.split(e.path, "its name");
    if (typeof name === "string") return name;
    if (name.length === 0) return undefined; // "./": the root itself
    const parent = this.resolve(name.slice(0, -1), e.path);
    if (typeof parent === "string") return parent;
    const path = [...parent, name[name.length - 1]!].join("/");
    switch (e.type) {
      case "symlink":
        if (e.linkname.includes("\0")) return "its symlink target contains a NUL byte";
        this.links.set(path, e.linkname);
        return undefined;
      case "dir":
        return undefined;
      case "hardlink": {
        const why = this.hardlink(e.linkname);
        if (why) return why;
        break;
      }
    }
    this.links.delete(path);
    return undefined;
  }

  private split(name: string, what: string): string[] | string {
    if (name.includes("\0")) return `${what} contains a NUL byte`;
    if (name.startsWith("/")) return `${what} ${JSON.stringify(name)} is absolute`;
    const out: string[] = [];
    for (const c of name.split("/")) {
      if (c === "" || c === ".") continue;
      if (c === "..") return `${what} ${JSON.stringify(name)} contains ".."`;
      out.push(c);
    }
    return out;
  }

  /** The components of a directory with the recorded symlinks followed, or why that leaves the tree. */
  private resolve(parts: string[], name: string): string[] | string {
    const phys: string[] = [];
    let todo = parts.slice();
    let links = 0;
    while (todo.length) {
      const c = todo.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (phys.length === 0) return `resolving the parent of ${JSON.stringify(name)} leads above the root`;
        phys.pop();
        continue;
      }
      const here = [...phys, c].join("/");
      const target = this.links.get(here);
      if (target === undefined) {
        phys.push(c);
        continue;
      }
      if (++links > MAX_SYMLINKS) return `resolving the parent of ${JSON.stringify(name)}: too many levels of symbolic links`;
      if (target.startsWith("/") || climbs(phys.length, target)) {
        return `its parent goes through the symlink ${JSON.stringify(here)} -> ${JSON.stringify(target)}, which points out of the tree`;
      }
      todo = target.split("/").concat(todo);
    }
    return phys;
  }

  private hardlink(linkname: string): string | undefined {
    const parts = this.split(linkname, "its hardlink target");
    if (typeof parts === "string") return parts;
    if (parts.length === 0) return `its hardlink target ${JSON.stringify(linkname)} is the root directory`;
    const dir = this.resolve(parts.slice(0, -1), linkname);
    if (typeof dir === "string") return `its hardlink target ${JSON.stringify(linkname)} is unsafe: ${dir.replace(/^its parent/, "the target's parent")}`;
    const target = this.links.get([...dir, parts[parts.length - 1]!].join("/"));
    if (target !== undefined && (target.startsWith("/") || climbs(dir.length, target))) {
      return `its hardlink target ${JSON.stringify(linkname)} is a symlink to ${JSON.stringify(target)}, outside the tree`;
    }
    return undefined;
  }
}

/** Does a relative symlink target, in a directory `depth` levels below the root, climb above the root? */
function climbs(depth: number, target: string): boolean {
  for (const c of target.split("/")) {
    if (c === "..") {
      if (--depth < 0) return true;
    } else if (c !== "" && c !== ".") {
      depth++;
    }
  }
  return false;
}

/** The first entry of `entries` that `check` finds unsafe (see MemberCheck), or undefined. */
export function findUnsafeMember(entries: Iterable<Pick<TarEntry, "path" | "type" | "linkname">>, check = new MemberCheck()): UnsafeMember | undefined {
  for (const e of entries) {
    const why = check.check(e);
    if (why !== undefined) return { path: e.path, why };
  }
  return undefined;
}
