// The image store, as systemd's discover-image.c sees it: images are found
// in /etc/machines, /run/machines, /var/lib/machines, /var/lib/container,
// /usr/local/lib/machines and /usr/lib/machines (the first one found wins);
// an image is a directory, a btrfs subvolume, a NAME.raw file or a block
// device node, possibly through a symlink; ".host" is the host's own root.
// New images go to /var/lib/machines, the pool.
//
// SPAWNCTL_IMAGE_PATH=DIR[:DIR...] replaces the search path (its first
// directory is then the pool); the tests use it for a private pool.
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync, type Stats } from "node:fs";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN, strerror } from "../sys/ffi.ts";
import { imageSearchPath } from "../settings/merge.ts";
import { config } from "../settings/config.ts";
import { allStates, leaderAlive, machineStopping, readState, type MachineState } from "../container/registry.ts";
import { SpawnctlError } from "../util/errors.ts";
import { lockTree, type Lock } from "../util/lock.ts";
import { isSubvolume, subvolumeReadOnly } from "./btrfs.ts";
import { isStack } from "../container/stack.ts";
import { isValidImageName, isHiddenImage } from "./names.ts";
import { blockDeviceReadOnly, blockDeviceSize, isImmutable, statFs, withFd } from "./sys.ts";

export type ImageType = "directory" | "subvolume" | "raw" | "block" | "oci";

/** An OCI image is the directory NAME.oci: a stack of layers (container/stack.ts) and an image.json. */
export const OCI_SUFFIX = ".oci";

export interface Image {
  name: string;
  type: ImageType;
  /** as found in the search path (a symlink stays a symlink) */
  path: string;
  readOnly: boolean;
  /** microseconds since the epoch */
  crtime?: number;
  mtime?: number;
  /** bytes, when known (raw files and block devices; directories only with btrfs quotas) */
  usage?: number;
  usageExclusive?: number;
  limit?: number;
  limitExclusive?: number;
}

export const HOST_IMAGE = ".host";

/** The image search path: $SPAWNCTL_IMAGE_PATH, else [images] path of spawnctl.toml, else machinectl's. */
export function searchPath(): string[] {
  return imageSearchPath();
}

/** Where new images go: the first directory of a configured search path, else /var/lib/machines. */
export function poolDir(): string {
  return process.env.SPAWNCTL_IMAGE_PATH || config().images.path ? searchPath()[0]! : "/var/lib/machines";
}

/** The pool directory, created (0700, as machined does) if missing. */
export function ensurePool(): string {
  const d = poolDir();
  try {
    mkdirSync(d, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new SpawnctlError(`creating the image pool ${d}: ${(e as Error).message}`);
  }
  return d;
}

/** Vendor images (below /usr) are never changed or removed, as machined's IMAGE_IS_VENDOR. */
export function isVendor(img: Image): boolean {
  return img.path.startsWith("/usr/");
}

export function isHost(img: Image): boolean {
  return img.name === HOST_IMAGE;
}

const us = (ms: number) => Math.round(ms * 1000);

function directoryReadOnly(path: string): boolean {
  try {
    if (statFs(path).readOnly) return true;
  } catch {
    /* treat as writable */
  }
  return isImmutable(path);
}

/** Describe one entry of a search directory, or undefined if it is not an image. */
export function imageAt(dir: string, entry: string): Image | undefined {
  if (entry.startsWith(".#")) return undefined; // temporary files and locks
  const path = `${dir}/${entry}`;
  let st: Stats;
  try {
    st = statSync(path); // images may be symlinks into the pool
  } catch {
    return undefined;
  }
  if (st.isDirectory() && entry.endsWith(OCI_SUFFIX) && isStack(path)) {
    const name = entry.slice(0, -OCI_SUFFIX.length);
    if (!isValidImageName(name)) return undefined;
    return {
      name,
      type: "oci",
      path,
      readOnly: directoryReadOnly(path),
      crtime: st.birthtimeMs > 0 ? us(st.birthtimeMs) : undefined,
      mtime: us(st.mtimeMs),
    };
  }
  if (st.isDirectory()) {
    if (!isValidImageName(entry)) return undefined;
    const sub = isSubvolume(path);
    return {
      name: entry,
      type: sub ? "subvolume" : "directory",
      path,
      readOnly: sub ? subvolumeReadOnly(path) || directoryReadOnly(path) : directoryReadOnly(path),
      crtime: st.birthtimeMs > 0 ? us(st.birthtimeMs) : undefined,
      mtime: us(st.mtimeMs),
    };
  }
  if (st.isFile() && entry.endsWith(".raw")) {
    const name = entry.slice(0, -4);
    if (!isValidImageName(name)) return undefined;
    let roFs = false;
    try {
      roFs = statFs(path).readOnly;
    } catch {
      /* writable */
    }
    return {
      name,
      type: "raw",
      path,
      readOnly: roFs || (st.mode & 0o222) === 0,
      crtime: st.birthtimeMs > 0 ? us(st.birthtimeMs) : undefined,
      mtime: us(st.mtimeMs),
      usage: st.blocks * 512,
      usageExclusive: st.blocks * 512,
      limit: st.size,
      limitExclusive: st.size,
    };
  }
  if (st.isBlockDevice()) {
    if (!isValidImageName(entry)) return undefined;
    let size: bigint | undefined;
    let ro = false;
    try {
      withFd(path, `reading the block device ${path}`, (fd) => {
        size = blockDeviceSize(fd);
        ro = blockDeviceReadOnly(fd);
      });
    } catch {
      /* no access: unknown size */
    }
    return {
      name: entry,
      type: "block",
      path,
      readOnly: ro,
      crtime: st.birthtimeMs > 0 ? us(st.birthtimeMs) : undefined,
      mtime: us(st.mtimeMs),
      usage: size === undefined ? undefined : Number(size),
      limit: size === undefined ? undefined : Number(size),
    };
  }
  return undefined;
}

function hostImage(): Image {
  const st = statSync("/");
  return { name: HOST_IMAGE, type: "directory", path: "/", readOnly: false, crtime: st.birthtimeMs > 0 ? us(st.birthtimeMs) : undefined, mtime: us(st.mtimeMs) };
}

/** Every image in the search path (the first of a name wins), hidden ones and .host included, sorted by name. */
export function listImages(): Image[] {
  const found = new Map<string, Image>();
  for (const dir of searchPath()) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const img = imageAt(dir, n);
      if (img && !found.has(img.name)) found.set(img.name, img);
    }
  }
  if (!found.has(HOST_IMAGE)) found.set(HOST_IMAGE, hostImage());
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The image called `name`, or undefined. */
export function findImage(name: string): Image | undefined {
  if (name === HOST_IMAGE) return hostImage();
  if (!isValidImageName(name)) return undefined;
  for (const dir of searchPath()) {
    for (const entry of [name, `${name}.raw`, `${name}${OCI_SUFFIX}`]) {
      if (!existsSync(`${dir}/${entry}`)) continue;
      const img = imageAt(dir, entry);
      if (img && img.name === name) return img;
    }
  }
  return undefined;
}

export function requireImage(name: string): Image {
  if (!isValidImageName(name)) throw new SpawnctlError(`Invalid image name '${name}'.`);
  const img = findImage(name);
  if (!img) throw new SpawnctlError(`No image '${name}' known.`);
  return img;
}

export { isHiddenImage };

/** Is an entry of this name (any type) in any search directory? Returns its path. */
export function nameTaken(name: string): string | undefined {
  for (const dir of searchPath()) {
    for (const entry of [name, `${name}.raw`, `${name}${OCI_SUFFIX}`]) {
      try {
        lstatSync(`${dir}/${entry}`);
        return `${dir}/${entry}`;
      } catch {
        /* free */
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Settings files, running machines, locks

/** Where NAME.nspawn may be, in the order systemd-nspawn reads them: /etc, /run, then beside the image. */
export function settingsPaths(name: string, imagePath?: string): string[] {
  const out = [`/etc/systemd/nspawn/${name}.nspawn`, `/run/systemd/nspawn/${name}.nspawn`];
  const dir = imagePath ? imagePath.slice(0, imagePath.lastIndexOf("/")) || "/" : poolDir();
  out.push(`${dir}/${name}.nspawn`);
  return out;
}

/** Where `enable` records a machine to start at boot (machine/autostart.ts): spawnctl's own marker, and the systemd unit's link. */
export const AUTOSTART_DIR = "/etc/spawnctl/autostart";
export const UNIT_DIR = "/etc/systemd/system";
export function autostartPaths(name: string): { marker: string; unitLink: string } {
  return { marker: `${AUTOSTART_DIR}/${name}`, unitLink: `${UNIT_DIR}/machines.target.wants/spawnctl@${name}.service` };
}

/** The running machine that uses this image (by name or by root directory), if any. */
export function machineUsing(img: Image): MachineState | undefined {
  const st = readState(img.name);
  if (st && leaderAlive(st)) return st;
  for (const m of allStates()) {
    if ((m.root === img.path || m.image === img.name) && leaderAlive(m)) return m;
  }
  return undefined;
}

export function refuseRunning(img: Image, doing: string): void {
  const m = machineUsing(img);
  if (m) throw new SpawnctlError(`${doing}: the machine '${m.name}' is running from it; stop it first (spawnctl poweroff ${m.name}).`);
}

/**
 * Take the image's lock as systemd-nspawn does (<dir>/.#NAME.lck and the
 * global one by inode): exclusive to change or remove it, shared to read it.
 * A running writable container holds it exclusively, a read-only one shared.
 */
export function lockImage(img: Image, shared: boolean, doing: string): Lock {
  try {
    return lockTree(img.path, shared, { waitWhile: machineStopping });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg.includes("currently busy")) throw new SpawnctlError(`${doing}: the image is in use (a container holds its lock ${img.path.slice(0, img.path.lastIndexOf("/"))}/.#${img.path.slice(img.path.lastIndexOf("/") + 1)}.lck).`);
    throw new SpawnctlError(`${doing}: ${msg}`);
  }
}

/**
 * Take a name for a new image (machined's image_name_lock:
 * /run/systemd/nspawn/locks/name-NAME), so two clones, renames or imports
 * to the same name cannot race between the "is it free?" check and the rename.
 */
export function lockName(name: string, doing: string): Lock {
  const dir = "/run/systemd/nspawn/locks";
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = `${dir}/name-${name}`;
  for (;;) {
    const fd = openSync(path, "a", 0o600);
    const r = flock(fd, LOCK_EX | LOCK_NB);
    if (r !== 0) {
      closeSync(fd);
      if (r === 11) throw new SpawnctlError(`${doing}: another process is creating or renaming an image called '${name}'.`);
      throw new SpawnctlError(`${doing}: locking ${path}: ${strerror(r)}`, { errno: r });
    }
    if (!existsSync(path)) {
      closeSync(fd); // unlinked by its previous holder between our open and flock
      continue;
    }
    let held = true;
    return {
      release() {
        if (!held) return;
        held = false;
        try {
          unlinkSync(path);
        } catch {
          /* gone */
        }
        flock(fd, LOCK_UN);
        closeSync(fd);
      },
      held: () => (held ? [{ fd, path }] : []),
    };
  }
}
