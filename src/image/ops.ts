// The image pool verbs that change images: clone, rename, remove,
// read-only, set-limit and clean, with what machined does around them:
// .nspawn files travel with their image, locks keep running containers'
// trees safe, vendor images (/usr) and the host (.host) are never touched.
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { PROPERTIES_DIR } from "./properties-store.ts";
import { consoleLog, processStart } from "../container/registry.ts";
import { strerror } from "../sys/ffi.ts";
import { SpawnctlError, usage, fsMessage } from "../util/errors.ts";
import { info, warn } from "../util/log.ts";
import { formatBytes } from "../util/table.ts";
import { createSubvolume, isBtrfs, isSubvolume, setQgroupLimit, setSubvolumeReadOnly, snapshotRecursive } from "./btrfs.ts";
import { copyTreeAsync, treeBytes } from "../util/copy.ts";
import { removePath, runJob, type Job } from "./job.ts";
import { isValidImageName, tempOwner, tempPath } from "./names.ts";
import {
  OCI_SUFFIX, autostartPaths, ensurePool, findImage, isHost, isVendor, listImages, lockImage, lockName, machineUsing, nameTaken, poolDir, refuseRunning,
  requireImage, searchPath, settingsPaths, type Image,
} from "./pool.ts";
import { Progress } from "./progress.ts";
import { copyRawFile } from "./raw.ts";
import { resetMachineId } from "./identity.ts";
import {
  changeInodeFlags, EOPNOTSUPP, ENOTTY, FS_IMMUTABLE_FL, fsName, isImmutable, renameInto, setBlockDeviceReadOnly, withFd,
} from "./sys.ts";

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

function refuseHostAndVendor(img: Image, doing: string): void {
  if (isHost(img)) throw new SpawnctlError(`${doing}: .host is the host's own root directory, which image verbs never change.`);
  if (isVendor(img)) throw new SpawnctlError(`${doing}: ${img.path} is a vendor image below /usr, which is read-only.`);
}

function checkNewName(name: string): void {
  if (!isValidImageName(name)) throw usage(`Invalid image name '${name}'.`);
}

function refuseTaken(name: string, doing: string): void {
  const at = nameTaken(name);
  if (at) throw new SpawnctlError(`${doing}: an image called '${name}' already exists (${at}).`);
}

/** Set or clear the immutable flag on a directory image's top directory (chattr ±i), as machined marks trees read-only. */
export function setImmutable(path: string, on: boolean, doing: string): void {
  withFd(path, doing, (fd) => {
    const e = changeInodeFlags(fd, on ? FS_IMMUTABLE_FL : 0, FS_IMMUTABLE_FL);
    if (e === ENOTTY || e === EOPNOTSUPP) throw new SpawnctlError(`${doing}: the file system of ${path} (${fsName(path)}) has no immutable flag.`, { errno: e });
    if (e) throw new SpawnctlError(`${doing}: setting the immutable flag of ${path}: ${strerror(e)}`, { errno: e });
  });
}


/** A symlinked image is the link itself: never follow it to change flags on its target. */
function isRealDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Machine settings that belong to an image name: its .nspawn files and its persisted properties. */
function sideFiles(name: string, img: Image): string[] {
  return [...settingsPaths(name, img.path), `${PROPERTIES_DIR}/${name}.conf`];
}

function sideFileFor(path: string, oldName: string, newName: string, newImagePath?: string): string {
  if (path.endsWith(`/${oldName}.conf`)) return `${dirOf(path)}/${newName}.conf`;
  // the .nspawn beside the image goes beside the new image
  const beside = newImagePath && !path.startsWith("/etc/systemd/nspawn/") && !path.startsWith("/run/systemd/nspawn/");
  return `${beside ? dirOf(newImagePath!) : dirOf(path)}/${newName}.nspawn`;
}

// ---------------------------------------------------------------------------
// clone

export async function cloneImage(name: string, newName: string, readOnly: boolean): Promise<Image> {
  const doing = `cloning image '${name}' to '${newName}'`;
  const src = requireImage(name);
  checkNewName(newName);
  if (isHost(src)) throw new SpawnctlError(`${doing}: copying the host's own root (.host) is not supported; use import-fs on a tree that is not in use.`);
  if (src.type === "block") throw new SpawnctlError(`${doing}: block device images cannot be cloned.`);
  const pool = ensurePool();
  return runJob(doing, async (job) => {
    const nameLock = lockName(newName, doing);
    let srcLock;
    try {
      refuseTaken(newName, doing);
      // shared: refused while a writable container runs from it (the copy would be inconsistent)
      srcLock = lockImage(src, true, doing);
      const progress = new Progress(`Cloning '${name}'`);
      const target = src.type === "raw" ? `${pool}/${newName}.raw` : src.type === "oci" ? `${pool}/${newName}${OCI_SUFFIX}` : `${pool}/${newName}`;
      const tmp = tempPath(pool, `clone-${newName}`);
      job.removeOnFailure(tmp);
      let roDone = false;
      if (src.type === "raw") {
        await copyRawFile(src.path, tmp, job, (d, t) => progress.update(d, t));
        if (readOnly) chmodSync(tmp, statSync(tmp).mode & 0o7555);
        roDone = true;
      } else if (src.type === "oci") {
        // the same layers (links into the store), and a copy of the image's own changes only
        await cloneStack(src.path, tmp, job, progress);
      } else {
        let snapshotted = false;
        let sub = false;
        if (src.type === "subvolume") {
          // a snapshot where pool and image share a btrfs file system; EXDEV and
          // friends fall back to a copy. Writable at first: its machine ID is reset
          snapshotted = snapshotRecursive(src.path, tmp, false) === 0;
          sub = snapshotted;
        }
        if (!snapshotted) {
          sub = isBtrfs(pool) && createSubvolume(tmp) === 0;
          const from = realpathSync(src.path);
          const total = progress.live ? treeBytes(from) : undefined;
          await copyTreeAsync(from, tmp, { intoExisting: sub, progress: (_n, b) => progress.update(b, total), yield: () => job.tick() });
        }
        // the clone is a machine of its own
        resetMachineId(tmp, doing);
        if (sub && readOnly) {
          setSubvolumeReadOnly(tmp, true);
          roDone = true;
        }
      }
      progress.clear();
      job.onUndo(`removing ${target}`, () => removePath(target));
      renameInto(tmp, target, doing);
      // an immutable directory cannot be renamed: the flag goes on last
      if (readOnly && !roDone) setImmutable(target, true, doing);
      copySideFiles(src, name, newName, target, job);
      info(`Cloned image '${name}' to '${newName}'${readOnly ? " (read-only)" : ""}.`);
      return findImage(newName)!;
    } finally {
      srcLock?.release();
      nameLock.release();
    }
  });
}

/** A layered image's clone: its links to the layers, its image.json, and a copy of its upper layer. */
async function cloneStack(from: string, tmp: string, job: Job, progress: Progress): Promise<void> {
  mkdirSync(tmp, { mode: 0o700 });
  mkdirSync(`${tmp}/lower`, { mode: 0o755 });
  for (const l of readdirSync(`${from}/lower`)) symlinkSync(readlinkSync(`${from}/lower/${l}`), `${tmp}/lower/${l}`);
  for (const f of readdirSync(from)) {
    if (f !== "lower" && f !== "upper" && f !== "work" && lstatSync(`${from}/${f}`).isFile()) copyFileSync(`${from}/${f}`, `${tmp}/${f}`);
  }
  mkdirSync(`${tmp}/work`, { mode: 0o700 });
  await copyTreeAsync(`${from}/upper`, `${tmp}/upper`, { progress: (_n, b) => progress.update(b), yield: () => job.tick() });
}

function copySideFiles(src: Image, name: string, newName: string, target: string, job: Job): void {
  for (const p of sideFiles(name, src)) {
    if (!existsSync(p)) continue;
    const to = sideFileFor(p, name, newName, target);
    if (existsSync(to)) {
      warn(`Not copying ${p}: ${to} exists already.`);
      continue;
    }
    const tmp = tempPath(dirOf(to), `${newName}.settings`);
    job.removeOnFailure(tmp);
    copyFileSync(p, tmp);
    job.onUndo(`removing ${to}`, () => removePath(to));
    renameInto(tmp, to, `copying ${p} to ${to}`);
  }
}

// ---------------------------------------------------------------------------
// rename

export function renameImage(name: string, newName: string): void {
  const doing = `renaming image '${name}' to '${newName}'`;
  const img = requireImage(name);
  checkNewName(newName);
  refuseHostAndVendor(img, doing);
  if (img.type === "block" && img.path.startsWith("/dev/")) throw new SpawnctlError(`${doing}: block devices in /dev are named by the kernel.`);
  refuseRunning(img, doing);
  const lock = lockImage(img, false, doing);
  const nameLock = (() => {
    try {
      return lockName(newName, doing);
    } catch (e) {
      lock.release();
      throw e;
    }
  })();
  try {
    refuseTaken(newName, doing);
    const newPath = `${dirOf(img.path)}/${img.type === "raw" ? `${newName}.raw` : img.type === "oci" ? `${newName}${OCI_SUFFIX}` : newName}`;
    // an immutable directory cannot be renamed: drop the flag for the rename, as machined does
    const immutable = (img.type === "directory" || img.type === "oci") && isRealDirectory(img.path) && isImmutable(img.path);
    if (immutable) setImmutable(img.path, false, doing);
    try {
      renameInto(img.path, newPath, doing);
    } catch (e) {
      if (immutable) setImmutable(img.path, true, doing);
      throw e;
    }
    if (immutable) setImmutable(newPath, true, doing);
    for (const p of sideFiles(name, img)) {
      if (!existsSync(p)) continue;
      const to = sideFileFor(p, name, newName);
      try {
        renameInto(p, to, `renaming ${p}`);
      } catch (e) {
        warn(`${doing}: the image was renamed, but its settings file was not: ${(e as Error).message}`);
      }
    }
    info(`Renamed image '${name}' to '${newName}'.`);
  } finally {
    nameLock.release();
    // releasing unlinks the old lock file <dir>/.#OLD.lck: the lock moves with the name
    lock.release();
  }
}

// ---------------------------------------------------------------------------
// remove

/** The image's path and, if it differs (a symlinked image), its real path. */
function treeRoots(path: string): string[] {
  try {
    const real = realpathSync(path);
    return real === path ? [path] : [path, real];
  } catch {
    return [path];
  }
}

/**
 * What machines of the image `name` left on the host, which goes with the
 * image (the settings go by sideFiles): the autostart `enable` made (its
 * marker and its systemd unit link), the console log (and its rotated
 * predecessor), and the journal links --link-journal=try-guest made,
 * /var/log/journal/<machine-id> -> a directory inside the tree.
 */
function machineFiles(name: string, roots: string[]): string[] {
  const { marker, unitLink } = autostartPaths(name);
  const out = [marker, unitLink, consoleLog(name), `${consoleLog(name)}.1`];
  let ids: string[] = [];
  try {
    ids = readdirSync(JOURNAL_DIR).filter((n) => /^[0-9a-f]{32}$/.test(n));
  } catch {
    /* no journal directory */
  }
  for (const id of ids) {
    const p = `${JOURNAL_DIR}/${id}`;
    try {
      if (!lstatSync(p).isSymbolicLink()) continue;
      const target = readlinkSync(p);
      if (roots.some((r) => target.startsWith(`${r}/`))) out.push(p);
    } catch {
      /* gone */
    }
  }
  return out;
}

const JOURNAL_DIR = "/var/log/journal";

/**
 * Remove an image, its settings files and what its machines left on the host
 * (machineFiles: autostart, console log, journal links). `keepSettings`: only
 * the image, as when --force replaces it with a new one of the same name.
 */
export function removeImage(name: string, opts: { quiet?: boolean; keepSettings?: boolean } = {}): void {
  const doing = `removing image '${name}'`;
  if (name === ".host") throw new SpawnctlError(`${doing}: refusing to remove the host's own root directory.`);
  const img = requireImage(name);
  refuseHostAndVendor(img, doing);
  if (img.type === "block" && img.path.startsWith("/dev/")) throw new SpawnctlError(`${doing}: block devices in /dev cannot be removed.`);
  refuseRunning(img, doing);
  const lock = lockImage(img, false, doing);
  try {
    // where the tree is, for the journal links into it (taken before it moves)
    const roots = img.type === "directory" || img.type === "subvolume" ? treeRoots(img.path) : [];
    const real = isRealDirectory(img.path);
    // read-only marks would stop the rename and the removal
    if (real && (img.type === "directory" || img.type === "oci") && isImmutable(img.path)) setImmutable(img.path, false, doing);
    if (real && img.type === "subvolume") setSubvolumeReadOnly(img.path, false);
    // out of sight first (atomic), then deleted: an interrupted removal leaves a
    // hidden leftover that `clean` finishes, never a half image under its name
    const tmp = tempPath(dirOf(img.path), `remove-${name}`);
    renameInto(img.path, tmp, doing);
    try {
      removePath(tmp);
    } catch (e) {
      throw new SpawnctlError(`${doing}: the image is gone from the pool, but deleting ${tmp} failed (spawnctl clean removes it): ${(e as Error).message}`);
    }
    for (const p of opts.keepSettings ? [] : [...sideFiles(name, img), ...machineFiles(name, roots)]) {
      try {
        unlinkSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") warn(`${doing}: removing ${p}: ${fsMessage(e)}`);
      }
    }
  } finally {
    lock.release();
  }
  if (!opts.quiet) info(`Removed image '${name}'.`);
}

// ---------------------------------------------------------------------------
// read-only

export function markReadOnly(name: string, ro: boolean): void {
  const doing = `marking image '${name}' ${ro ? "read-only" : "writable"}`;
  const img = requireImage(name);
  refuseHostAndVendor(img, doing);
  switch (img.type) {
    case "subvolume":
      setSubvolumeReadOnly(img.path, ro);
      break;
    case "directory":
    case "oci":
      setImmutable(img.path, ro, doing);
      break;
    case "raw": {
      const mode = statSync(img.path).mode & 0o7777;
      try {
        chmodSync(img.path, ro ? mode & 0o7555 : (mode & 0o7777) | 0o200);
      } catch (e) {
        throw new SpawnctlError(`${doing}: chmod ${img.path}: ${fsMessage(e)}`, { cause: e });
      }
      break;
    }
    case "block":
      withFd(img.path, doing, (fd) => {
        const e = setBlockDeviceReadOnly(fd, ro);
        if (e) throw new SpawnctlError(`${doing}: BLKROSET on ${img.path}: ${strerror(e)}`, { errno: e });
      });
      break;
  }
}

// ---------------------------------------------------------------------------
// set-limit

export function setLimit(name: string | undefined, bytes: bigint | undefined): void {
  const size = bytes === undefined ? "no limit" : formatBytes(bytes);
  if (name === undefined) {
    const pool = poolDir();
    const doing = `setting the size limit of the image pool ${pool} to ${size}`;
    if (!existsSync(pool)) throw new SpawnctlError(`${doing}: ${pool} does not exist.`);
    if (!isSubvolume(pool)) {
      const fs = fsName(pool);
      throw new SpawnctlError(fs === "btrfs"
        ? `${doing}: ${pool} is a plain directory on btrfs; size limits need it to be a btrfs subvolume (btrfs subvolume create).`
        : `${doing}: ${pool} is on ${fs}; size limits need btrfs quotas, which ${fs} does not have.`);
    }
    setQgroupLimit(pool, bytes);
    return;
  }
  const doing = `setting the size limit of image '${name}' to ${size}`;
  const img = requireImage(name);
  refuseHostAndVendor(img, doing);
  if (img.type !== "subvolume") {
    const fs = fsName(img.path);
    const what = img.type === "raw" ? "a raw disk image file" : img.type === "block" ? "a block device" : "a plain directory";
    throw new SpawnctlError(fs === "btrfs" && img.type === "directory"
      ? `${doing}: ${img.path} is a plain directory on btrfs, not a subvolume; size limits need btrfs subvolumes (images imported or cloned into a btrfs pool are subvolumes).`
      : `${doing}: ${img.path} is ${what} on ${fs}; size limits need btrfs subvolumes with quotas.`);
  }
  setQgroupLimit(img.path, bytes);
}

// ---------------------------------------------------------------------------
// clean

export interface CleanResult {
  removed: string[];
  kept: Array<{ name: string; reason: string }>;
  leftovers: string[];
}

/** Remove hidden images (all images with `all`), except vendor images, .host and images in use; and leftovers of interrupted work. */
export function cleanPool(all: boolean): CleanResult {
  const res: CleanResult = { removed: [], kept: [], leftovers: [] };
  for (const img of listImages()) {
    if (isHost(img) || isVendor(img)) continue;
    if (!all && !img.name.startsWith(".")) continue;
    const m = machineUsing(img);
    if (m) {
      res.kept.push({ name: img.name, reason: `the machine '${m.name}' runs from it` });
      continue;
    }
    try {
      removeImage(img.name, { quiet: true });
      res.removed.push(img.name);
    } catch (e) {
      res.kept.push({ name: img.name, reason: (e as Error).message });
    }
  }
  for (const dir of searchPath()) {
    if (dir.startsWith("/usr/")) continue;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const pid = tempOwner(n);
      if (pid === undefined || processStart(pid) !== undefined) continue;
      try {
        removePath(`${dir}/${n}`);
        res.leftovers.push(`${dir}/${n}`);
      } catch (e) {
        warn(`Removing the leftover ${dir}/${n}: ${(e as Error).message}`);
      }
    }
  }
  return res;
}
