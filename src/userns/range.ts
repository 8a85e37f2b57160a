// Choosing a container's UID/GID range (--private-users=), following
// systemd-nspawn: `yes` reads the base off the tree's root directory,
// `identity` is 0:65536, `UID[:RANGE]` is taken as given, and `pick` tries
// the tree's current base, then one hashed from the machine name, then
// random ones, taking the first that no other container holds and that no
// host user or group lives in.
//
// Locks: like nspawn, only picked ranges are locked (one lock file per base
// under /run/spawnctl/uid-range, held for as long as the container runs),
// because only pick promises a range nobody else uses. `yes`, `identity` and
// explicit ranges are what the administrator asked for: two containers given
// the same range on purpose share it, as under nspawn.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import type { PrivateUsersMode } from "../settings/types.ts";
import { SpawnctlError } from "../util/errors.ts";
import { type Lock, releaseFile, takeFile } from "../util/lock.ts";
import { SHIFT_RANGE, treeOwner } from "./ownership.ts";

/** The bases pick chooses from (systemd's CONTAINER_UID_BASE_MIN/MAX): above
 * the host's own users, below the ranges systemd keeps for itself. */
export const BASE_MIN = 0x80000; // 524288
export const BASE_MAX = 0x6fff0000; // 1878982656
const N_BASES = (BASE_MAX - BASE_MIN) / SHIFT_RANGE + 1;
/** The owner a tree's root gets while its ownership is being shifted (shim/shift.c). */
export const BUSY_BASE = 0xfffe0000;
export const LOCK_DIR = "/run/spawnctl/uid-range";
/** How many candidates pick tries before giving up (nspawn: 100). */
export const PICK_TRIES = 100;

// spawnctl's own key for hashing machine names into bases: a fixed key keeps
// the base a name hashes to the same across runs and hosts
const NAME_SEED = 0x5c1d8e27;

export interface Range {
  shift: number;
  /** 0 for --private-users=no: no user namespace */
  range: number;
  /** held for a picked range; release it when the container is gone */
  lock?: Lock;
}

/** Whether pick may use `n` as a base: a multiple of 65536 in [BASE_MIN, BASE_MAX]. */
export function validBase(n: number): boolean {
  return Number.isInteger(n) && n % SHIFT_RANGE === 0 && n >= BASE_MIN && n <= BASE_MAX;
}

/** The base a machine name hashes to (spread over the valid bases). */
export function nameCandidate(name: string): number {
  // 32-bit FNV-1a over the name's UTF-16 code units, from a fixed seed, with
  // a final avalanche: a stable function of the name that costs next to
  // nothing on a cold start (no BigInts, no buffers, no native hash to set up)
  let h = NAME_SEED;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return BASE_MIN + ((h >>> 0) % N_BASES) * SHIFT_RANGE;
}

/** A random valid base. */
export function randomCandidate(): number {
  const r = new Uint32Array(1);
  crypto.getRandomValues(r);
  return BASE_MIN + (r[0]! % N_BASES) * SHIFT_RANGE;
}

/**
 * The host users and groups whose ids fall in [base, base + range - 1], as
 * "user NAME (uid N)" / "group NAME (gid N)", from the text of /etc/passwd and
 * /etc/group (a user's primary gid counts too).
 */
export function idsInUse(passwd: string, group: string, base: number, range: number): string[] {
  const out: string[] = [];
  // the common case: no id of six digits or more at all
  if (base >= 100000 && !anyBigId(passwd) && !anyBigId(group)) return out;
  // plain field splitting: this runs on every start with -U
  const id = (s: string | undefined): number | undefined => {
    if (!s) return undefined;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) return undefined;
    }
    const n = Number(s);
    return n >= base && n < base + range ? n : undefined;
  };
  const each = (text: string, f: (fields: string[]) => void) => {
    for (const l of text.split("\n")) {
      const c = l.charCodeAt(0);
      if (l.length === 0 || c === 35 /* # */ || c === 43 /* + */ || c === 45 /* - */) continue;
      f(l.split(":"));
    }
  };
  each(passwd, (f) => {
    const uid = id(f[2]);
    if (uid !== undefined) out.push(`user ${f[0]} (uid ${uid})`);
    const gid = id(f[3]);
    if (gid !== undefined) out.push(`user ${f[0]} (gid ${gid})`);
  });
  each(group, (f) => {
    const gid = id(f[2]);
    if (gid !== undefined) out.push(`group ${f[0]} (gid ${gid})`);
  });
  return out;
}

/**
 * Whether a field of six digits or more (a ":"-separated field, the last of
 * its line too) is in the text. A scan of split pieces, not a regular
 * expression: compiling one costs a cold process ~0.1 ms, and this runs on
 * every start with -U.
 */
export function anyBigId(text: string): boolean {
  const pieces = text.split(":");
  // pieces[0] has no ":" before it
  for (let i = 1; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (p.length < 6) continue;
    let n = 0;
    for (let c = p.charCodeAt(0); c >= 48 && c <= 57; c = p.charCodeAt(++n));
    if (n >= 6 && (n === p.length || p.charCodeAt(n) === 10)) return true;
  }
  return false;
}

/**
 * The order pick tries bases in: the tree's current base, the name's, then
 * random ones, PICK_TRIES in all. Invalid bases are passed over (but count).
 * An iterable that makes each candidate when it is reached (a plain object,
 * not a generator: a generator's first use costs a cold process ~0.2 ms).
 */
export function pickCandidates(ownerBase: number | undefined, name: string, random: () => number = randomCandidate): Iterable<number> {
  return {
    [Symbol.iterator]() {
      let n = 0;
      let stage = 0; // 0 the owner's base, 1 the name's, 2 random ones
      return {
        next(): IteratorResult<number> {
          for (;;) {
            if (stage === 0) {
              stage = 1;
              if (ownerBase === undefined) continue;
              n++;
              if (validBase(ownerBase)) return { value: ownerBase, done: false };
              continue;
            }
            if (stage === 1) {
              stage = 2;
              if (!name) continue;
              n++;
              return { value: nameCandidate(name), done: false };
            }
            if (n >= PICK_TRIES) return { value: undefined, done: true };
            n++;
            return { value: random(), done: false };
          }
        },
      };
    },
  };
}

/** The base a tree's root says it is shifted to (owner & 0xFFFF0000), or why it has none. */
export function ownerBase(tree: string): { base?: number; problem?: string } {
  const { uid, gid } = treeOwner(tree);
  const base = (uid & 0xffff0000) >>> 0;
  if (base !== (gid & 0xffff0000) >>> 0) return { problem: `the UID and GID base of ${tree} (owner ${uid}:${gid}) don't match` };
  if (base === BUSY_BASE) return { problem: `an earlier ownership change of ${tree} was interrupted (its root is owned by ${uid}:${gid}); run with --private-users=pick or an explicit range and --private-users-ownership=chown to finish it` };
  return { base };
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Lock one base for this process; undefined if another process holds it. */
export function lockBase(base: number, dir = LOCK_DIR): Lock | undefined {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // made only when the range is taken (an error's stack costs a cold process)
  let taken: SpawnctlError | undefined;
  let h: { fd: number; path: string };
  try {
    h = takeFile(`${dir}/${base}`, false, () => (taken = new SpawnctlError(`UID range ${base} is in use`)));
  } catch (e) {
    if (e === taken) return undefined;
    throw e;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      releaseFile(h);
    },
    held: () => (held ? [{ ...h }] : []),
  };
}

/**
 * Pick a free range: the first candidate whose lock we get and in which no
 * host user or group lives. The lock is returned held.
 */
export function pickRange(
  tree: string,
  machine: string,
  opts: { lockDir?: string; passwd?: string; group?: string; random?: () => number } = {},
): Required<Range> {
  const passwd = opts.passwd ?? readText("/etc/passwd");
  const group = opts.group ?? readText("/etc/group");
  const owner = ownerBase(tree).base;
  const seen = new Set<number>();
  for (const base of pickCandidates(owner, machine, opts.random)) {
    if (seen.has(base)) continue;
    seen.add(base);
    const lock = lockBase(base, opts.lockDir);
    if (!lock) continue;
    if (idsInUse(passwd, group, base, SHIFT_RANGE).length > 0) {
      lock.release();
      continue;
    }
    return { shift: base, range: SHIFT_RANGE, lock };
  }
  throw new SpawnctlError(
    `Failed to pick a UID/GID range for ${machine || tree}: ${PICK_TRIES} candidates between ${BASE_MIN} and ${BASE_MAX + SHIFT_RANGE - 1} were taken by running containers or host users.`,
  );
}

/** The range pickRange would try first (for --print-plan): nothing is locked, so another start may take it meanwhile. */
export function previewRange(tree: string, machine: string): Range {
  const passwd = readText("/etc/passwd");
  const group = readText("/etc/group");
  // (a disk image's tree is not mounted for --print-plan: no owner to start from)
  const owner = existsSync(tree) ? ownerBase(tree).base : undefined;
  for (const base of pickCandidates(owner, machine)) {
    if (idsInUse(passwd, group, base, SHIFT_RANGE).length === 0) return { shift: base, range: SHIFT_RANGE };
  }
  throw new SpawnctlError(`Failed to pick a UID/GID range for ${machine || tree}.`);
}

/** The range --private-users=MODE gives the container of `tree` named `machine`. */
export function chooseRange(mode: PrivateUsersMode, tree: string, machine: string, dry = false): Range {
  switch (mode.mode) {
    case "no":
      return { shift: 0, range: 0 };
    case "identity":
      return { shift: 0, range: SHIFT_RANGE };
    case "yes": {
      // nspawn: the base is the root directory's owner with the low 16 bits cleared
      const o = ownerBase(tree);
      if (o.base === undefined) throw new SpawnctlError(`--private-users=yes: ${o.problem}.`);
      if (o.base > 0xffffffff - SHIFT_RANGE) throw new SpawnctlError(`--private-users=yes: the UID base ${o.base} of ${tree} is too high for a range of ${SHIFT_RANGE}.`);
      return { shift: o.base, range: SHIFT_RANGE };
    }
    case "fixed": {
      const { base, range } = mode;
      if (!Number.isInteger(base) || base < 0 || base === 0xffff || !Number.isInteger(range) || range < 1 || base > 0xffffffff - range) {
        throw new SpawnctlError(`--private-users=${base}:${range}: the UID range cannot be empty or go beyond 4294967295.`);
      }
      return { shift: base, range };
    }
    case "pick":
      return dry ? previewRange(tree, machine) : pickRange(tree, machine);
  }
}
