// What a Debian/Ubuntu bootstrap checks before it fetches a package or writes
// anything into DEST: the request (suite, architecture, variant, components)
// against a bundle's manifest or the mirror's Release file, the names given to
// --include/--exclude against the package index, and, from a bundle, that every
// package of the set is in it. Each mismatch names both sides. Pure functions:
// no file system, no network.
import { SpawnctlError } from "../util/errors.ts";
import type { PackageIndex, Pkg } from "./packages.ts";
import type { Release } from "./release.ts";
import type { Variant } from "./resolve.ts";

/** What the command line asked for; undefined where it named nothing (a bundle then decides). */
export interface Request {
  distro: string;
  suite?: string;
  arch?: string;
  variant?: Variant;
  components?: string[];
  include: string[];
  exclude: string[];
}

/** What a bundle's manifest says it was made for. */
export interface BundleFacts {
  distro: string;
  suite: string;
  arch: string;
  components: string[];
  variant: Variant;
}

/** "foo", "foo or bar", "foo, bar or baz" */
export function orList(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * "bookworm (amd64, minbase)", with the distribution in front and the
 * components after the suite where they matter ("ubuntu noble main,universe (amd64, minbase)").
 */
export function describeBundle(b: BundleFacts, opts: { distro?: boolean; components?: boolean } = {}): string {
  return `${opts.distro ? `${b.distro} ` : ""}${b.suite}${opts.components ? ` ${b.components.join(",")}` : ""} (${b.arch}, ${b.variant})`;
}

/**
 * Refuse a bundle that holds something else than the command line asks for.
 * `aliases` are other names of the bundle's suite (the Codename and Suite of
 * its signed Release file: "stable" for a bundle made as "bookworm").
 */
export function checkBundleRequest(bundle: string, b: BundleFacts, r: Request, aliases: readonly string[] = []): void {
  const distro = r.distro !== b.distro;
  const suite = !!r.suite && r.suite !== b.suite && !aliases.includes(r.suite);
  const arch = r.arch !== undefined && r.arch !== b.arch;
  const variant = r.variant !== undefined && r.variant !== b.variant;
  const comps = r.components !== undefined && !sameSet(r.components, b.components);
  if (!(distro || suite || arch || variant || comps)) return;
  const showComponents = comps || !sameSet(b.components, ["main"]);
  const given = [r.arch, r.variant].filter((x): x is string => x !== undefined);
  const want = `${distro ? `${r.distro} ` : ""}${r.suite || b.suite}${comps ? ` ${r.components!.join(",")}` : ""}${given.length ? ` (${given.join(", ")})` : ""}`;
  throw new SpawnctlError(`--from-bundle=${bundle} holds ${describeBundle(b, { distro, components: showComponents })}, not ${want}.`);
}

/** The path of a URL without scheme and host: what an error may show of a mirror. */
export function urlPath(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname);
  } catch {
    return url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, "");
  }
}

/** The error for a suite whose InRelease the mirror does not have. */
export function unknownSuite(suite: string, inReleaseUrl: string, known?: readonly string[]): SpawnctlError {
  const has = known && known.length > 0 ? ` Suites it has: ${known.join(", ")}.` : "";
  return new SpawnctlError(`Unknown suite ${suite}: the mirror has no ${urlPath(inReleaseUrl)}.${has}`);
}

/**
 * The architecture and components against what the Release file lists (when
 * it lists them). `where` names the Release file ("the mirror's
 * /debian/dists/bookworm/InRelease").
 */
export function checkReleaseRequest(release: Release, arch: string, components: readonly string[], where: string): void {
  // an archive without binary-all lists "all" too; that is no architecture to bootstrap
  const archs = release.architectures.filter((a) => a !== "all");
  if (archs.length > 0 && !archs.includes(arch)) {
    throw new SpawnctlError(`--arch=${arch}: ${where} lists no architecture ${arch} (it lists ${archs.join(", ")}).`);
  }
  if (release.components.length > 0) {
    // "updates/main" in a security Release is named "main" on the command line too
    const known = (c: string) => release.components.includes(c) || release.components.some((k) => k.endsWith(`/${c}`));
    const missing = components.filter((c) => !known(c));
    if (missing.length > 0) {
      throw new SpawnctlError(`--components=${components.join(",")}: ${where} lists no component ${orList(missing)} (it lists ${release.components.join(", ")}).`);
    }
  }
}

/** Is `name` a package of the index, real or virtual (provided by one)? With `has`, only packages `has` accepts count. */
function knows(index: PackageIndex, name: string, has: (p: Pkg) => boolean = () => true): boolean {
  const real = index.get(name);
  if (real && has(real)) return true;
  return index.providers(name).some((p) => has(p.pkg));
}

export interface NamesSource {
  /** "bookworm main (amd64)": the index the names are looked up in */
  index: string;
  /** from a bundle: its path, and which packages it holds */
  bundle?: { path: string; has: (p: Pkg) => boolean };
}

/**
 * Every --include name must be a package (or a virtual package some package
 * provides): in the index from a mirror, among the bundle's packages from a
 * bundle. Every --exclude name must at least be known to the index: one that
 * is not is a typo, and the package meant would be installed without a word.
 */
export function checkNames(index: PackageIndex, include: readonly string[], exclude: readonly string[], src: NamesSource): void {
  const b = src.bundle;
  const check = (flag: string, names: readonly string[], has?: (p: Pkg) => boolean) => {
    const missing = names.filter((n) => !knows(index, n, has));
    if (missing.length === 0) return;
    const opt = `--${flag}=${missing.join(",")}`;
    throw new SpawnctlError(b && has ? `${opt}: ${b.path} has no package ${orList(missing)}.` : `${opt}: no package ${orList(missing)} in ${b ? `the ${src.index} index of ${b.path}` : src.index}.`);
  };
  check("include", include, b?.has ?? (() => true));
  check("exclude", exclude);
}

/**
 * From a bundle: the resolved set must be in it (more --include, or an
 * --exclude that makes an alternative win, can ask for packages it lacks).
 */
export function checkBundleSet(all: readonly Pkg[], has: (p: Pkg) => boolean, bundle: string, what: string, r: Pick<Request, "include" | "exclude">): void {
  const missing = all.filter((p) => !has(p)).map((p) => p.name);
  if (missing.length === 0) return;
  const opts = [r.include.length ? `--include=${r.include.join(",")}` : "", r.exclude.length ? `--exclude=${r.exclude.join(",")}` : ""].filter(Boolean).join(" ");
  const shown = missing.length > 8 ? [...missing.slice(0, 8), `${missing.length - 8} more`] : missing;
  throw new SpawnctlError(`--from-bundle=${bundle} has no package ${orList(shown)}, which ${what} needs${opts ? ` with ${opts}` : ""}.`);
}
