// Which packages make up a Debian/Ubuntu bootstrap, the way debootstrap picks
// them: seed packages by variant (Essential: yes, a Priority level, apt,
// build-essential), then the closure over Depends and Pre-Depends.
//
// Alternatives and virtual packages are chosen like apt does for a fresh
// install, which is what reproduces debootstrap's sets exactly (88 packages
// for bookworm minbase): a dependency some already chosen package satisfies
// needs nothing more; otherwise the first alternative that some package can
// satisfy wins, a real package before the providers of a virtual one, and
// among providers the most important Priority (so "awk" is mawk, Priority
// required, and not gawk, which sorts first by name and drags in more).
import { SpawnctlError } from "../util/errors.ts";
import { formatDependency, type Dependency, type PackageIndex, type Pkg, type Relation } from "./packages.ts";
import { satisfiesVersion } from "./version.ts";

export type Variant = "essential" | "minbase" | "buildd" | "required" | "important" | "standard";

export interface ResolveOptions {
  variant: Variant;
  /** more packages (or virtual ones); debootstrap adds ca-certificates for an https mirror, the caller does that here */
  include: string[];
  /** packages never to install, neither as seeds nor as dependencies */
  exclude: string[];
  /** the suite's codename (the Release file's Codename: "bookworm", not "stable") */
  suite: string;
  arch: string;
}

export interface Resolution {
  /** the Essential: yes packages and what they depend on: unpacked first, then configured by dpkg */
  essential: Pkg[];
  /** every package of the bootstrap, essential ones included; both lists sorted by name */
  all: Pkg[];
  /** dependencies left out because all that satisfies them is excluded (by `exclude`, or usrmerge by the merged-/usr rule) */
  dropped: string[];
}

/**
 * What each variant seeds, on top of the Essential: yes packages:
 * essential ⊂ required ⊂ minbase ⊂ buildd, and minbase ⊂ important ⊂
 * standard. debootstrap's minbase is Priority: required plus apt, its buildd
 * adds build-essential, its default variant (here "important") Priority:
 * important.
 */
const VARIANTS: Record<Variant, { priorities: string[]; packages: string[] }> = {
  essential: { priorities: [], packages: [] },
  required: { priorities: ["required"], packages: [] },
  minbase: { priorities: ["required"], packages: ["apt"] },
  buildd: { priorities: ["required"], packages: ["apt", "build-essential"] },
  important: { priorities: ["required", "important"], packages: ["apt"] },
  standard: { priorities: ["required", "important", "standard"], packages: ["apt"] },
};

/**
 * Merged /usr, per release (debootstrap's scripts/debian-common). spawnctl
 * always creates the /bin -> usr/bin symlinks itself, so the usrmerge
 * package, a live migration tool that pulls in perl, is never wanted as a
 * dependency; bookworm then needs the empty usr-is-merged package to satisfy
 * init-system-helpers' "usrmerge | usr-is-merged". Releases before bookworm
 * have neither package; later ones ship the symlinks in base-files.
 */
const MERGED_USR: Array<{ suites: string[]; add: string[]; excludeDependency: string[] }> = [
  { suites: ["etch", "lenny", "squeeze", "wheezy", "jessie", "stretch", "buster", "bullseye"], add: [], excludeDependency: [] },
  { suites: ["bookworm"], add: ["usr-is-merged"], excludeDependency: ["usrmerge"] },
];
const MERGED_USR_DEFAULT = { add: [] as string[], excludeDependency: ["usrmerge"] };

const PRIORITY_RANK: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };

export function resolveDebian(index: PackageIndex, opts: ResolveOptions): Resolution {
  const what = `resolving the ${opts.variant} package set of ${opts.suite}/${opts.arch}`;
  if (index.arch !== opts.arch) throw new SpawnctlError(`${what}: the package index is for ${index.arch}`);
  const variant = VARIANTS[opts.variant];
  if (!variant) throw new SpawnctlError(`${what}: unknown variant ${JSON.stringify(opts.variant)} (expected one of ${Object.keys(VARIANTS).join(", ")})`);
  const usr = MERGED_USR.find((p) => p.suites.includes(opts.suite)) ?? MERGED_USR_DEFAULT;
  const excluded = new Set(opts.exclude);
  const noDependency = new Set([...opts.exclude, ...usr.excludeDependency]);

  const seeds: Pkg[] = [];
  const essentialSeeds: Pkg[] = [];
  for (const pkg of index.packages()) {
    if (excluded.has(pkg.name)) continue;
    if (pkg.essential) essentialSeeds.push(pkg);
    if (pkg.essential || variant.priorities.includes(pkg.priority)) seeds.push(pkg);
  }
  const named = [...variant.packages, ...(opts.variant === "essential" ? [] : usr.add)].filter((n) => !excluded.has(n));
  for (const name of [...named, ...opts.include]) {
    const pkg = pickNamed(index, name);
    if (!pkg) throw new SpawnctlError(`${what}: there is no package ${name}${opts.include.includes(name) ? " (from --include)" : ""}`);
    seeds.push(pkg);
  }

  const dropped: string[] = [];
  const all = new Selection(opts.arch);
  all.close(seeds, (dep) => choose(index, dep, noDependency, opts.arch), what, dropped);

  // The essential set is the closure of the Essential: yes packages within
  // `all`: since `all` is closed, every dependency finds a member there
  // (except those dropped above, already reported), and the essential set is
  // a subset by construction.
  const essential = new Selection(opts.arch);
  essential.close(essentialSeeds, (dep) => all.find(dep) ?? "excluded", what, []);

  const byName = (a: Pkg, b: Pkg) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { essential: [...essential.packages()].sort(byName), all: [...all.packages()].sort(byName), dropped };
}

/** What satisfies a dependency nobody satisfies yet: a package, nothing, or only packages that are excluded. */
type Choice = Pkg | undefined | "excluded";

/** The chosen packages, and which names (real and virtual) they satisfy. */
class Selection {
  private readonly chosen = new Map<string, Pkg>();
  private readonly provided = new Map<string, Array<{ pkg: Pkg; version?: string }>>();

  constructor(private readonly arch: string) {}

  packages(): IterableIterator<Pkg> {
    return this.chosen.values();
  }

  private add(pkg: Pkg): boolean {
    if (this.chosen.has(pkg.name)) return false;
    this.chosen.set(pkg.name, pkg);
    for (const p of pkg.provides) {
      const list = this.provided.get(p.name);
      const entry = p.version !== undefined ? { pkg, version: p.version } : { pkg };
      if (list) list.push(entry);
      else this.provided.set(p.name, [entry]);
    }
    return true;
  }

  /** the first chosen package that satisfies `dep`, in the order of its alternatives */
  find(dep: Dependency): Pkg | undefined {
    for (const rel of dep) {
      const pkg = this.chosen.get(rel.name);
      if (pkg && realSatisfies(pkg, rel, this.arch)) return pkg;
      const provider = this.provided.get(rel.name)?.find((p) => providerSatisfies(p, rel, this.arch));
      if (provider) return provider.pkg;
    }
    return undefined;
  }

  /**
   * Add `seeds` and everything they need. All seeds go in before any
   * dependency is looked at, so a dependency a seed satisfies never pulls in
   * an alternative.
   */
  close(seeds: Pkg[], pick: (dep: Dependency) => Choice, what: string, dropped: string[]): void {
    const queue = seeds.filter((p) => this.add(p));
    for (let i = 0; i < queue.length; i++) {
      const pkg = queue[i]!;
      for (const dep of [...pkg.preDepends, ...pkg.depends]) {
        if (this.find(dep)) continue;
        const next = pick(dep);
        if (next === "excluded") {
          dropped.push(`${pkg.name} depends on "${formatDependency(dep)}"`);
        } else if (!next) {
          throw new SpawnctlError(`${what}: ${pkg} depends on "${formatDependency(dep)}", which no package in the index satisfies`);
        } else if (this.add(next)) {
          queue.push(next);
        }
      }
    }
  }
}

function choose(index: PackageIndex, dep: Dependency, noDependency: Set<string>, arch: string): Choice {
  let excluded = false;
  for (const rel of dep) {
    const real = index.get(rel.name);
    if (real && realSatisfies(real, rel, arch)) {
      if (!noDependency.has(real.name)) return real;
      excluded = true;
    }
    const providers = index.providers(rel.name).filter((p) => providerSatisfies(p, rel, arch));
    const allowed = providers.filter((p) => !noDependency.has(p.pkg.name)).map((p) => p.pkg);
    if (allowed.length > 0) return mostImportant(allowed);
    if (providers.length > 0) excluded = true;
  }
  return excluded ? "excluded" : undefined;
}

/** A name given on the command line or by the variant: the real package, else the best provider. */
function pickNamed(index: PackageIndex, name: string): Pkg | undefined {
  const providers = index.providers(name).map((p) => p.pkg);
  return index.get(name) ?? (providers.length > 0 ? mostImportant(providers) : undefined);
}

/** The provider with the most important Priority; the name breaks ties, so the choice is stable. */
function mostImportant(pkgs: Pkg[]): Pkg {
  const rank = (p: Pkg) => PRIORITY_RANK[p.priority] ?? 5;
  return pkgs.reduce((best, p) => (rank(p) < rank(best) || (rank(p) === rank(best) && p.name < best.name) ? p : best));
}

/**
 * Does the real package `pkg` satisfy `rel`? The index holds one
 * architecture (plus "all", which counts as native), so an arch qualifier
 * only matters as: ":any" needs a Multi-Arch: allowed package (dpkg's rule),
 * ":native" always holds, ":ARCH" must name this architecture.
 */
function realSatisfies(pkg: Pkg, rel: Relation, arch: string): boolean {
  if (rel.arch === "any" && pkg.multiArch !== "allowed") return false;
  if (rel.arch !== undefined && rel.arch !== "any" && rel.arch !== "native" && rel.arch !== arch) return false;
  return !rel.op || satisfiesVersion(pkg.version, rel.op, rel.version!);
}

/** A provided virtual package satisfies a versioned dependency only if it is provided with a version. */
function providerSatisfies(p: { pkg: Pkg; version?: string }, rel: Relation, arch: string): boolean {
  if (rel.arch !== undefined && rel.arch !== "any" && rel.arch !== "native" && rel.arch !== arch) return false;
  if (!rel.op) return true;
  return p.version !== undefined && satisfiesVersion(p.version, rel.op, rel.version!);
}
