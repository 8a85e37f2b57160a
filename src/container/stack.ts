// Layered images (OCI images in the pool, src/oci/): a directory NAME.oci
// holding lower/NNNN, relative symlinks to read-only layer directories of the
// pool's layer store (bottom-most first), and the image's own upper/ and
// work/ directories. The container's root is an overlayfs of them, mounted
// by the child in its own mount namespace (build-plan.ts rootOps); the host
// only sees them through a short-lived read-only view while it prepares.
import { existsSync, lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { errno, libc, cstr, strerror } from "../sys/ffi.ts";
import { MS, MNT_DETACH } from "../sys/consts.ts";
import { SpawnctlError } from "../util/errors.ts";
import { escapeOverlayPath } from "./mountopts.ts";

export interface LayerStack {
  /** the image directory (NAME.oci) */
  dir: string;
  /** the directory every layer lives in (the store's layers/) */
  layerRoot: string;
  /** layer directory names inside layerRoot, top-most first (overlayfs order) */
  lower: string[];
  upper: string;
  work: string;
}

/** The kernel takes mount options of one page at most. */
export const MAX_MOUNT_DATA = 4095;

/** Is `dir` a layered image (it has lower/ and upper/)? */
export function isStack(dir: string): boolean {
  try {
    return lstatSync(`${dir}/lower`).isDirectory() && lstatSync(`${dir}/upper`).isDirectory();
  } catch {
    return false;
  }
}

/** Read a layered image's stack; every layer must be a directory of one layer store. */
export function readStack(dir: string): LayerStack | undefined {
  if (!isStack(dir)) return undefined;
  const links = readdirSync(`${dir}/lower`).filter((n) => /^\d{4}$/.test(n)).sort();
  if (links.length === 0) throw new SpawnctlError(`The layered image ${dir} has no layers (${dir}/lower is empty).`);
  let layerRoot: string | undefined;
  const lower: string[] = [];
  for (const l of links) {
    const link = `${dir}/lower/${l}`;
    if (!lstatSync(link).isSymbolicLink()) throw new SpawnctlError(`${link} is not a link to a layer.`);
    let real: string;
    try {
      real = realpathSync(link);
    } catch {
      throw new SpawnctlError(`The layer ${link} of the image ${dir} is missing from the layer store.`);
    }
    const parent = real.slice(0, real.lastIndexOf("/"));
    layerRoot ??= parent;
    if (parent !== layerRoot || !lstatSync(real).isDirectory()) throw new SpawnctlError(`The layer ${link} of the image ${dir} is not a directory of the layer store ${layerRoot}.`);
    lower.unshift(real.slice(parent.length + 1));
  }
  return { dir, layerRoot: layerRoot!, lower, upper: `${dir}/upper`, work: `${dir}/work` };
}

/**
 * overlayfs options for the stack `st` with the lower directories `lower`
 * (top-most first; short links to the layers, so that some hundred fit in
 * the one page the kernel takes) and `upper`/`work` (or none: read-only).
 * user.* xattrs always, inside and outside a user namespace, so that an
 * upper layer written by one kind of run reads the same in the other.
 */
export function stackMountData(st: LayerStack, lower: string[], upper: string | undefined, work: string | undefined): string {
  const data = `lowerdir=${lower.map(escapeOverlayPath).join(":")}${upper ? `,upperdir=${escapeOverlayPath(upper)},workdir=${escapeOverlayPath(work!)}` : ""},userxattr`;
  if (data.length > MAX_MOUNT_DATA) {
    throw new SpawnctlError(`The image ${st.dir} has ${st.lower.length} layers: their overlayfs options (${data.length} bytes) exceed the kernel's limit of ${MAX_MOUNT_DATA}; flatten it (export-tar, import-tar).`);
  }
  return data;
}

const VIEW_DIR = "/run/spawnctl/oci-view";

/** Views whose spawnctl died before it released them (SIGKILL): unmounted and removed. */
function sweepViews(): void {
  for (const e of readdirSync(VIEW_DIR)) {
    const pid = Number(/\.(\d+)$/.exec(e)?.[1]);
    if (!pid || existsSync(`/proc/${pid}`)) continue;
    removeView(`${VIEW_DIR}/${e}`);
  }
}

/** Unmount a view's root and remove its directory (its root and its links to the layers). */
function removeView(dir: string): void {
  libc().umount2(cstr(`${dir}/root`), MNT_DETACH);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* busy still: the next sweep */
  }
}

export interface StackView {
  path: string;
  release(): void;
}

/**
 * Mount a read-only overlay of the stack (its upper layer on top) on a
 * directory of the host, for the host's reads before a start (users, /etc,
 * os-release). The caller releases it before the container runs.
 */
export function mountStackView(st: LayerStack, name: string): StackView {
  mkdirSync(VIEW_DIR, { recursive: true, mode: 0o700 });
  sweepViews();
  const dir = `${VIEW_DIR}/${name}.${process.pid}`;
  removeView(dir);
  mkdirSync(`${dir}/root`, { recursive: true, mode: 0o700 });
  mkdirSync(`${dir}/l`, { mode: 0o700 });
  st.lower.forEach((l, i) => symlinkSync(`${st.layerRoot}/${l}`, `${dir}/l/${i}`));
  const data = stackMountData(st, [st.upper, ...st.lower.map((_, i) => `${dir}/l/${i}`)], undefined, undefined);
  const path = `${dir}/root`;
  if (libc().mount(cstr("overlay"), cstr(path), cstr("overlay"), BigInt(MS.RDONLY | MS.NOSUID | MS.NODEV), cstr(data)) !== 0) {
    const e = errno();
    removeView(dir);
    throw new SpawnctlError(`mounting a view of the layered image ${st.dir} on ${path}: mount: ${strerror(e)}`, { errno: e });
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      removeView(dir);
    },
  };
}

/** Run `fn` with a read-only view of the layered image `dir`, or with `dir` itself for other trees. */
export function withTreeView<T>(dir: string, name: string, fn: (view: string, stack: LayerStack | undefined) => T): T {
  const st = readStack(dir);
  if (!st) return fn(dir, undefined);
  const v = mountStackView(st, name);
  try {
    return fn(v.path, st);
  } finally {
    v.release();
  }
}
