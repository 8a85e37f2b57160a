// -i/--image=FILE: a raw disk image as a container's root. The image's
// layout is read here (gpt.ts), each partition gets a loop device of its own
// (loop.ts: no partition scan, no udev) and its file system is mounted under
// a private directory of this run, /run/spawnctl/disk/PID-XXXXXX, the root
// first and /usr, /var, /home, /srv, /tmp over it. That tree is what the
// container's plan binds (or idmaps) as its root, exactly like a -D tree.
//
// Nothing outlives the container: once its child has cloned its mount
// namespace (and made its idmapped copies), the host's mounts are detached
// again (`spawned`); the child's copies hold the file systems, the file
// systems hold their auto-clear loop devices, and all of it goes when the
// container's mount namespace does. A run killed before that leaves its
// directory, named with its pid, to sweepDiskMounts (the stale collector).
import { type FFIFunction } from "bun:ffi";
import { closeSync, constants, fstatSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmdirSync, unlinkSync, writeSync } from "node:fs";
import { type Lib, cstr, dlopenLibc, errno, libc, strerror } from "../../sys/ffi.ts";
import { MNT_DETACH, MS } from "../../sys/consts.ts";
import { mkdirInRoot } from "../../sys/at.ts";
import type { Settings } from "../../settings/types.ts";
import type { Cleanup, TreeSource } from "../../container/prepare.ts";
import { SpawnctlError, fsMessage } from "../../util/errors.ts";
import { print, trace, warn } from "../../util/log.ts";
import { chaseInRoot } from "../../util/tree.ts";
import { pidAlive, sweepTemp } from "../../cgroup/gc.ts";
import { blockDeviceSize, reflink, seekData, seekHole } from "../sys.ts";
import { LayoutError, MOUNT_POINTS, hostArch, readLayout, type DiskLayout, type Partition } from "./gpt.ts";
import { attachLoop, releaseLoop, type LoopDevice } from "./loop.ts";

/** Where the images of running containers are mounted until their child has its own copy. */
export const DISK_DIR = "/run/spawnctl/disk";

const SYMBOLS = {
  mount: { args: ["cstring", "cstring", "cstring", "u64", "cstring"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;
let lib: Lib<typeof SYMBOLS> | undefined;
function c(): Lib<typeof SYMBOLS> {
  if (!lib) lib = dlopenLibc(SYMBOLS);
  return lib;
}

function mount(src: string | null, dst: string, fstype: string | null, flags: number, data: string | null): number {
  const r = c().mount(src === null ? null : cstr(src), cstr(dst), fstype === null ? null : cstr(fstype), flags, data === null ? null : cstr(data)) as number;
  return r < 0 ? errno() : 0;
}

const EACCES = 13;
const EROFS = 30;
const EPERM = 1;

/** File systems that are read-only by design. */
const READ_ONLY_FS = new Set(["squashfs", "erofs"]);

function readerOf(fd: number): (offset: number, length: number) => Uint8Array {
  return (offset, length) => {
    const b = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, b, got, length - got, offset + got);
      if (n <= 0) break;
      got += n;
    }
    return b.subarray(0, got);
  };
}

/** The size of an image file or block device (whose st_size is 0). */
function sizeOf(fd: number): number {
  const st = fstatSync(fd);
  return st.isBlockDevice() ? Number(blockDeviceSize(fd) ?? 0n) : st.size;
}

/** The image's layout, or a sentence naming the image. */
export function inspectImage(path: string, fd: number): DiskLayout {
  const arch = hostArch();
  if (!arch) throw new SpawnctlError(`--image=${path}: disk images are supported on x86-64 and arm64 only.`);
  const size = sizeOf(fd);
  try {
    return readLayout(readerOf(fd), size, arch);
  } catch (e) {
    if (e instanceof LayoutError) throw new SpawnctlError(`Failed to dissect image ${path}: ${e.message}.`);
    throw e;
  }
}

function openImage(path: string, readOnly: boolean): { fd: number; readOnly: boolean } {
  const open = (ro: boolean) => openSync(path, (ro ? constants.O_RDONLY : constants.O_RDWR) | 0o2000000 /* O_CLOEXEC */ | constants.O_NOCTTY);
  try {
    const fd = open(readOnly);
    const st = fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) {
      closeSync(fd);
      if (st.isDirectory()) throw new SpawnctlError(`--image=${path} is a directory; use --directory= for a directory tree.`);
      throw new SpawnctlError(`--image=${path} is neither a regular file nor a block device.`);
    }
    // root may write anything: an image without write bits (machinectl read-only) is read-only all the same
    if (!readOnly && st.isFile() && (st.mode & 0o222) === 0) {
      closeSync(fd);
      return openImage(path, true);
    }
    return { fd, readOnly };
  } catch (e) {
    if (e instanceof SpawnctlError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EISDIR") throw new SpawnctlError(`--image=${path} is a directory; use --directory= for a directory tree.`);
    // a read-only file (or file system) is used read-only, as nspawn does
    if (!readOnly && (code === "EACCES" || code === "EROFS" || code === "EPERM")) return openImage(path, true);
    throw new SpawnctlError(`Failed to open image ${path}: ${fsMessage(e)}`);
  }
}

const EPHEMERAL_PREFIX = ".#spawnctl-ephemeral-";

/** A throw-away copy of the image for -x, beside it (a reflink there is free) or in /var/tmp. */
function ephemeralCopy(path: string): { fd: number; copy: string } {
  const src = openImage(path, true).fd;
  try {
    // (a block device's copy goes to /var/tmp, never to /dev)
    const dirs = fstatSync(src).isBlockDevice() ? ["/var/tmp"] : [path.slice(0, path.lastIndexOf("/")) || "/", "/var/tmp"];
    let lastErr: unknown;
    for (const dir of dirs) {
      // what a SIGKILLed run copied here before its loop devices held the copy
      sweepTemp(dir, [EPHEMERAL_PREFIX]);
      let dst: number;
      const copy = `${dir}/${EPHEMERAL_PREFIX}${process.pid}-${Math.random().toString(16).slice(2, 10)}.raw`;
      try {
        dst = openSync(copy, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | 0o2000000, 0o600);
      } catch (e) {
        lastErr = e;
        continue;
      }
      try {
        copyInto(src, dst);
        return { fd: dst, copy };
      } catch (e) {
        closeSync(dst);
        try {
          unlinkSync(copy);
        } catch {
          /* gone */
        }
        throw new SpawnctlError(`copying ${path} to ${copy} for --ephemeral: ${e instanceof Error ? e.message : e}`);
      }
    }
    throw new SpawnctlError(`copying ${path} for --ephemeral: no writable place beside it or in /var/tmp (${fsMessage(lastErr)})`);
  } finally {
    closeSync(src);
  }
}

/** A reflink where the file system can, else the data extents (holes stay holes). */
function copyInto(src: number, dst: number): void {
  const size = sizeOf(src);
  if (reflink(src, dst) === 0) return;
  const buf = new Uint8Array(1 << 20);
  const copyRange = (from: number, to: number) => {
    for (let p = from; p < to; ) {
      const n = readSync(src, buf, 0, Math.min(buf.length, to - p), p);
      if (n <= 0) break;
      for (let w = 0; w < n; ) w += writeSync(dst, buf, w, n - w, p + w);
      p += n;
    }
  };
  // a block device knows no holes: all of it
  if (fstatSync(src).isBlockDevice()) {
    copyRange(0, size);
    return;
  }
  let off = 0;
  while (off < size) {
    const data = seekData(src, off);
    if (data < 0 || data >= size) break;
    const hole = Math.min(seekHole(src, data), size);
    copyRange(data, hole);
    off = hole;
  }
  ftruncateSync(dst, size);
}

function describe(p: Partition): string {
  const where = p.designator === "root" ? "root" : MOUNT_POINTS[p.designator];
  const what = p.number ? `partition ${p.number}` : "the whole image";
  return `${what} (${where}, ${p.fstype})`;
}

/** Unmount everything below `dir` (lazily: a mount that is busy goes when its last user does) and remove it. */
function detachDir(dir: string): void {
  const r = libc().umount2(cstr(dir), MNT_DETACH) as number;
  const e = r < 0 ? errno() : 0;
  // EINVAL: nothing mounted there (any more)
  if (e !== 0 && e !== 22 && e !== 2) warn(`unmounting ${dir}: ${strerror(e)}`);
  try {
    rmdirSync(`${dir}/root`);
  } catch {
    /* never made, or on the detached tmpfs */
  }
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") warn(`removing ${dir}: ${fsMessage(err)}`);
  }
}

/** The mounted image of one start of a container. */
export interface MountedImage {
  /** the host path of the container's root while it is mounted */
  tree: string;
  layout: DiskLayout;
  /** the root is read-only (asked for, a read-only image file, the GPT flag or the file system) */
  readOnly: boolean;
  /** let go of the host's mounts (the child holds its own); idempotent */
  detach(): void;
}

/**
 * Attach and mount `image`. Undo steps go on `cleanup` before each side
 * effect; a failure undoes everything (no mount, no loop device, no copy).
 */
export function mountImage(image: string, o: { readOnly: boolean; ephemeral: boolean }, cleanup: Cleanup): MountedImage {
  let fd: number;
  let readOnly = o.readOnly;
  let dropCopy = () => {};
  if (o.ephemeral) {
    const c = ephemeralCopy(image);
    fd = c.fd;
    dropCopy = () => {
      try {
        unlinkSync(c.copy);
      } catch {
        /* gone */
      }
    };
    cleanup.push(dropCopy);
  } else {
    const im = openImage(image, readOnly);
    fd = im.fd;
    if (im.readOnly && !readOnly) trace(`disk: ${image} is not writable: read-only`);
    readOnly = im.readOnly;
  }
  const loops: LoopDevice[] = [];
  try {
    const layout = inspectImage(image, fd);
    const root = layout.partitions.find((p) => p.designator === "root")!;
    const rootRo = readOnly || root.readOnly || READ_ONLY_FS.has(root.fstype);
    mkdirSync(DISK_DIR, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(`${DISK_DIR}/${process.pid}-`);
    let detached = false;
    const detach = () => {
      if (detached) return;
      detached = true;
      detachDir(dir);
    };
    cleanup.push(detach);
    // a private tmpfs of our own: mounts below it propagate nowhere, so the
    // host's copy can be detached without touching the child's
    let err = mount("tmpfs", dir, "tmpfs", MS.NOSUID | MS.NODEV | MS.NOEXEC, "mode=0700,size=64k");
    if (err) throw new SpawnctlError(`mounting a tmpfs on ${dir}: mount: ${strerror(err)}`, { errno: err });
    err = mount(null, dir, null, MS.PRIVATE, null);
    if (err) throw new SpawnctlError(`making ${dir} private: mount: ${strerror(err)}`, { errno: err });
    const tree = `${dir}/root`;
    mkdirSync(tree, { mode: 0o755 });
    for (const p of layout.partitions) {
      const ro = readOnly || p.readOnly || READ_ONLY_FS.has(p.fstype);
      const loop = attachLoop(fd, p.offset, p.size, ro, image);
      loops.push(loop);
      trace(`disk: ${describe(p)} on ${loop.path}${ro ? " (read-only)" : ""}`);
      let target = tree;
      if (p.designator !== "root") {
        const mp = MOUNT_POINTS[p.designator];
        const direct = `${tree}${mp}`;
        const found = chaseInRoot(tree, mp);
        if (found !== undefined && found !== direct) throw new SpawnctlError(`Failed to mount ${describe(p)} of ${image}: ${mp} is a symlink in the root file system; refusing.`);
        if (found === undefined) {
          if (rootRo) throw new SpawnctlError(`Failed to mount ${describe(p)} of ${image}: the read-only root file system has no ${mp}.`);
          mkdirInRoot(tree, mp, 0o755);
        }
        target = direct;
      }
      err = mount(loop.path, target, p.fstype, ro ? MS.RDONLY : 0, null);
      if (err) {
        const hint = err === 19 ? " (the kernel does not support this file system type)" : err === EROFS || err === EACCES || err === EPERM ? " (a read-only device?)" : "";
        throw new SpawnctlError(`Failed to mount ${describe(p)} of ${image} (${loop.path}) on ${target}: ${strerror(err)}${hint}`, { errno: err, syscall: "mount" });
      }
      // the mount holds the device now
      releaseLoop(loop);
    }
    // the loop devices keep the copy's data: its name goes now, so that
    // nothing of it is left whatever way this process ends
    dropCopy();
    return { tree, layout, readOnly: rootRo, detach };
  } finally {
    for (const l of loops) releaseLoop(l);
    closeSync(fd);
  }
}

/** What --print-plan says about the image (read, never attached). */
export function describeImage(image: string, o: { readOnly: boolean; ephemeral: boolean }): { lines: string[]; readOnly: boolean } {
  const im = openImage(image, true);
  try {
    let ro = o.readOnly;
    if (!ro && !o.ephemeral) {
      const w = openImage(image, false);
      ro = w.readOnly;
      closeSync(w.fd);
    }
    const layout = inspectImage(image, im.fd);
    const lines = [`# disk image ${image}: ${layout.kind === "gpt" ? `GUID partition table (${layout.header} header, ${layout.sectorSize}-byte sectors)` : layout.kind === "mbr" ? "MBR partition table" : "a file system without partition table"}`];
    if (o.ephemeral) lines.push(`#   copied to a throw-away file beside it (reflink where possible), removed once attached`);
    for (const p of layout.partitions) {
      const pro = ro || p.readOnly || READ_ONLY_FS.has(p.fstype);
      lines.push(`#   ${describe(p)}: loop device (offset ${p.offset}, size ${p.size}${pro ? ", read-only" : ""}, auto-clear) mounted on ${DISK_DIR}/PID-XXXXXX/root${p.designator === "root" ? "" : MOUNT_POINTS[p.designator]}`);
    }
    const root = layout.partitions[0]!;
    return { lines, readOnly: ro || root.readOnly || READ_ONLY_FS.has(root.fstype) };
  } finally {
    closeSync(im.fd);
  }
}

/**
 * What a SIGKILLed run left between mounting its image and starting its
 * container: its directory under DISK_DIR (named PID-...) with the image's
 * mounts below it, detached here (never removed recursively: that would
 * delete the image's files). Their loop devices go with the mounts. Never throws.
 */
export function sweepDiskMounts(): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync(DISK_DIR);
  } catch {
    return 0;
  }
  for (const e of entries) {
    const pid = Number(e.slice(0, e.indexOf("-")));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    try {
      detachDir(`${DISK_DIR}/${e}`);
      n++;
    } catch (err) {
      warn(`removing the stale image mount ${DISK_DIR}/${e}: ${err instanceof Error ? err.message : err}`);
    }
  }
  return n;
}

/**
 * The TreeSource of a container started from a disk image: mounted for each
 * start (a reboot mounts it anew), detached from the host once the child has it.
 */
export function diskSource(s: Settings): TreeSource {
  // refused before anything else is done: the image must open and its layout must make sense
  const im = openImage(s.image, true);
  try {
    inspectImage(s.image, im.fd);
  } finally {
    closeSync(im.fd);
  }
  let current: MountedImage | undefined;
  const journalFor = (st: Settings): Settings["linkJournal"] => {
    // the guest's journal cannot be linked from the host: its tree is gone from there once the container runs
    if (st.linkJournal === "guest") throw new SpawnctlError("--link-journal=guest needs a directory tree (-D), not a disk image.");
    return st.linkJournal === "try-guest" ? "no" : st.linkJournal;
  };
  return {
    path: s.image,
    open(st: Settings, cleanup: Cleanup) {
      // -x runs on a copy: the copy is the snapshot, not an overlay on top of it
      const base = { ...st, ephemeral: false, linkJournal: journalFor(st) };
      if (st.printPlan) {
        const d = describeImage(st.image, st);
        print(d.lines.join("\n"));
        const tree = `${DISK_DIR}/PID-XXXXXX/root`;
        return { tree, settings: { ...base, directory: tree, readOnly: st.readOnly || d.readOnly } };
      }
      current = mountImage(st.image, st, cleanup);
      return { tree: current.tree, settings: { ...base, directory: current.tree, readOnly: st.readOnly || current.readOnly } };
    },
    spawned() {
      current?.detach();
      current = undefined;
    },
  };
}
