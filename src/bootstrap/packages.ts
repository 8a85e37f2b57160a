// The package index of one architecture: the Packages files of a suite's
// components merged, one entry per package name, with virtual packages
// (Provides) indexed. Relationship fields are parsed on first use: a
// bootstrap looks at a hundred or so of the 63,000 stanzas in bookworm.
import { SpawnctlError } from "../util/errors.ts";
import { parseControl } from "./deb822.ts";
import { compareVersions, type VersionOp } from "./version.ts";

export type MultiArch = "no" | "same" | "foreign" | "allowed";

/** One package of a dependency: "libc6 (>= 2.34)", "perl:any", "python3:native (>= 3.11)". */
export interface Relation {
  name: string;
  /** "any", "native" or an architecture name */
  arch?: string;
  op?: VersionOp;
  version?: string;
}

/** A dependency: the alternatives of "a | b (>= 1) | c", any one of which satisfies it. */
export type Dependency = Relation[];

/** A virtual package a package provides, optionally with a version ("Provides: foo (= 1.2)"). */
export interface Provided {
  name: string;
  version?: string;
}

const NONE: readonly never[] = Object.freeze([]);

export class Pkg {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly essential: boolean;
  readonly priority: string;
  readonly section: string;
  readonly multiArch: MultiArch;
  /** path of the .deb relative to the mirror root */
  readonly filename: string;
  readonly size: number;
  readonly sha256: string;
  private readonly rawDepends?: string;
  private readonly rawPreDepends?: string;
  private readonly rawProvides?: string;
  private parsedDepends?: readonly Dependency[];
  private parsedPreDepends?: readonly Dependency[];
  private parsedProvides?: readonly Provided[];

  constructor(f: Record<string, string>, what: string) {
    const need = (field: string) => {
      const v = f[field];
      if (v === undefined || v === "") throw new SpawnctlError(`reading ${what}: package ${f.Package ?? "(unnamed)"} has no ${field} field`);
      return v;
    };
    this.name = need("Package");
    this.version = need("Version");
    this.architecture = need("Architecture");
    this.essential = f.Essential === "yes";
    this.priority = f.Priority ?? "optional";
    this.section = f.Section ?? "";
    this.multiArch = (f["Multi-Arch"] as MultiArch | undefined) ?? "no";
    this.filename = need("Filename");
    this.size = Number(need("Size"));
    this.sha256 = need("SHA256").toLowerCase();
    if (!Number.isSafeInteger(this.size) || !/^[0-9a-f]{64}$/.test(this.sha256)) throw new SpawnctlError(`reading ${what}: package ${this.name} has a malformed Size or SHA256 field`);
    checkStanzaNames(this, what);
    this.rawDepends = f.Depends;
    this.rawPreDepends = f["Pre-Depends"];
    this.rawProvides = f.Provides;
  }

  // Parsed on first use; most packages never have theirs read, and most have
  // no Provides at all, so those share one empty list.
  get depends(): readonly Dependency[] {
    return (this.parsedDepends ??= this.rawDepends === undefined ? NONE : parseDependencies(this.rawDepends, `the Depends field of ${this}`));
  }

  get preDepends(): readonly Dependency[] {
    return (this.parsedPreDepends ??= this.rawPreDepends === undefined ? NONE : parseDependencies(this.rawPreDepends, `the Pre-Depends field of ${this}`));
  }

  get provides(): readonly Provided[] {
    return (this.parsedProvides ??= this.rawProvides === undefined ? NONE : parseProvides(this.rawProvides, `the Provides field of ${this}`));
  }

  toString(): string {
    return `${this.name} ${this.version}`;
  }
}

const PACKAGE_NAME_FIELD = /^[A-Za-z0-9][A-Za-z0-9+.-]*$/;
const ARCHITECTURE_FIELD = /^[a-z0-9][a-z0-9-]*$/;
const VERSION_FIELD = /^[0-9A-Za-z][A-Za-z0-9.+~:-]*$/;
/**
 * one component of a pool path: Debian's pool holds letters, digits and
 * "._+~-" (":" is let through for archives that keep epochs in file names);
 * never "%" (a URL would decode "%2e%2e" to ".."), spaces or shell syntax
 */
const FILENAME_COMPONENT = /^[A-Za-z0-9_+~-][A-Za-z0-9._+~:-]*$/;

/**
 * A Packages index is only as trusted as the Release file that lists it (and
 * not at all with --no-verify), and its values go into URLs, cache file
 * names, bundle member names, the dpkg command line and error messages:
 * Filename must be a relative path inside the mirror (no "/" at the start, no
 * "." or ".." component, no empty component, only the characters of real
 * pool names), and Package, Version and Architecture plain words.
 */
function checkStanzaNames(p: Pkg, what: string): void {
  const bad = (field: string, value: string, rule: string) =>
    new SpawnctlError(`reading ${what}: the ${field} field of package ${JSON.stringify(p.name)} is ${JSON.stringify(value)}, ${rule}; refusing the index`);
  if (!PACKAGE_NAME_FIELD.test(p.name)) throw bad("Package", p.name, "which is not a package name (letters, digits and \"+.-\")");
  if (!VERSION_FIELD.test(p.version)) throw bad("Version", p.version, "which is not a Debian version");
  if (!ARCHITECTURE_FIELD.test(p.architecture)) throw bad("Architecture", p.architecture, "which is not an architecture name");
  const f = p.filename;
  if (f.startsWith("/")) throw bad("Filename", f, "an absolute path where a path inside the mirror belongs");
  const parts = f.split("/");
  if (parts.includes("..")) throw bad("Filename", f, "which contains \"..\" and would lead out of the mirror");
  if (!parts.every((c) => FILENAME_COMPONENT.test(c))) throw bad("Filename", f, "which is not a plain relative path (letters, digits and \"._+~:-\" between single slashes)");
}

// name[:arch] [(op version)]; "<" and ">" are dpkg's obsolete spellings of "<=" and ">=".
const RELATION = /^([A-Za-z0-9][A-Za-z0-9+.-]*)(?::([a-z0-9-]+))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([0-9A-Za-z][^\s()]*)\s*\))?$/;

/** Parse a Depends/Pre-Depends value. Binary packages carry no [arch] or <profile> restrictions. */
export function parseDependencies(text: string, what: string): Dependency[] {
  const out: Dependency[] = [];
  for (const item of text.split(",")) {
    if (item.trim() === "") continue;
    const alternatives: Relation[] = [];
    for (const alt of item.split("|")) {
      const m = RELATION.exec(alt.trim());
      if (!m) throw new SpawnctlError(`parsing ${what}: cannot read ${JSON.stringify(alt.trim())}`);
      const rel: Relation = { name: m[1]! };
      if (m[2]) rel.arch = m[2];
      if (m[3]) {
        rel.op = m[3] === "<" ? "<=" : m[3] === ">" ? ">=" : (m[3] as VersionOp);
        rel.version = m[4]!;
      }
      alternatives.push(rel);
    }
    out.push(alternatives);
  }
  return out;
}

const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9+.-]*$/;
const VERSION = /^[0-9A-Za-z][^\s()]*$/;

/**
 * Parse a Provides value; only "=" versions are allowed there. Written
 * without the relation regex: building the provider index reads all 37,000
 * provided names of bookworm, and this is three times faster.
 */
export function parseProvides(text: string, what: string): Provided[] {
  const out: Provided[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const paren = item.indexOf("(");
    const name = paren < 0 ? item : item.slice(0, paren).trimEnd();
    let version: string | undefined;
    if (paren >= 0) {
      const inner = item.endsWith(")") ? item.slice(paren + 1, -1).trim() : "";
      version = inner.startsWith("=") && !inner.startsWith("==") ? inner.slice(1).trim() : "";
    }
    if (!PACKAGE_NAME.test(name) || (version !== undefined && !VERSION.test(version))) {
      throw new SpawnctlError(`parsing ${what}: ${JSON.stringify(item)} is not "name" or "name (= version)"`);
    }
    out.push(version !== undefined ? { name, version } : { name });
  }
  return out;
}

/** Format a dependency back as it is written in control files. */
export function formatDependency(dep: Dependency): string {
  return dep.map((r) => `${r.name}${r.arch ? `:${r.arch}` : ""}${r.op ? ` (${r.op} ${r.version})` : ""}`).join(" | ");
}

/** the fields a Pkg is made of; the other half of each stanza is not even copied */
const FIELDS = ["Package", "Version", "Architecture", "Essential", "Priority", "Section", "Multi-Arch", "Filename", "Size", "SHA256", "Depends", "Pre-Depends", "Provides"];

export class PackageIndex {
  private readonly byName = new Map<string, Pkg>();
  private providedBy?: Map<string, Array<{ pkg: Pkg; version?: string }>>;

  /** `arch` is the native architecture; stanzas of other architectures (not "all") are skipped. */
  constructor(readonly arch: string) {}

  /** Build an index from the Packages files of several components. */
  static fromPackagesFiles(arch: string, files: Array<{ text: string; what: string }>): PackageIndex {
    const index = new PackageIndex(arch);
    for (const f of files) index.addPackagesFile(f.text, f.what);
    return index;
  }

  /** Add a Packages file; `what` names it in errors ("bookworm main amd64 Packages"). */
  addPackagesFile(text: string, what: string): void {
    for (const stanza of parseControl(text, what, FIELDS)) this.add(stanza, what);
  }

  /**
   * Add one stanza. Archives can list a name more than once (bookworm has four
   * such names, and a tampering mirror could prepend an old stanza): the
   * highest version wins, and the first one seen among equals.
   */
  add(stanza: Record<string, string>, what: string): void {
    const arch = stanza.Architecture;
    if (arch !== this.arch && arch !== "all") return;
    const pkg = new Pkg(stanza, what);
    const old = this.byName.get(pkg.name);
    if (old && compareVersions(old.version, pkg.version) >= 0) return;
    this.byName.set(pkg.name, pkg);
    this.providedBy = undefined;
  }

  get(name: string): Pkg | undefined {
    return this.byName.get(name);
  }

  /** the packages that provide `name`, each with the version it provides (if any) */
  providers(name: string): ReadonlyArray<{ pkg: Pkg; version?: string }> {
    if (!this.providedBy) {
      this.providedBy = new Map();
      for (const pkg of this.byName.values()) {
        for (const p of pkg.provides) {
          const list = this.providedBy.get(p.name);
          const entry = p.version !== undefined ? { pkg, version: p.version } : { pkg };
          if (list) list.push(entry);
          else this.providedBy.set(p.name, [entry]);
        }
      }
    }
    return this.providedBy.get(name) ?? [];
  }

  get size(): number {
    return this.byName.size;
  }

  packages(): IterableIterator<Pkg> {
    return this.byName.values();
  }
}
