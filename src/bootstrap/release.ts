// The Release file of a Debian/Ubuntu archive suite (dists/SUITE/InRelease
// after its signature is checked): what the suite is, until when it may be
// trusted, and the size and SHA-256 of every index file it vouches for.
import { SpawnctlError } from "../util/errors.ts";
import { parseControl } from "./deb822.ts";

export interface IndexFile {
  size: number;
  sha256: string;
}

export interface Release {
  suite?: string;
  codename?: string;
  date?: Date;
  validUntil?: Date;
  architectures: string[];
  components: string[];
  /** files may (and should) be fetched as dists/SUITE/DIR/by-hash/SHA256/HASH */
  acquireByHash: boolean;
  /** "No-Support-for-Architecture-all: Packages": Architecture: all packages are listed in each binary-ARCH/Packages, there is no binary-all */
  noSupportForArchitectureAll: boolean;
  /** path relative to dists/SUITE/ -> size and SHA-256, from the SHA256 field */
  files: Map<string, IndexFile>;
}

// The fields read (matched case-insensitively); the MD5Sum table and the rest are skipped.
const FIELDS = ["Suite", "Codename", "Date", "Valid-Until", "Architectures", "Components", "Acquire-By-Hash", "No-Support-for-Architecture-all", "SHA256"] as const;

/** Parse the (already verified) text of a Release file. `what` names it in errors. */
export function parseRelease(signedText: string, what = "the Release file"): Release {
  const stanzas = parseControl(signedText, what, FIELDS);
  if (stanzas.length !== 1) throw new SpawnctlError(`parsing ${what}: expected one stanza, found ${stanzas.length}`);
  const f = stanzas[0]!;
  const get = (name: (typeof FIELDS)[number]) => f[name];
  const words = (name: (typeof FIELDS)[number]) => (get(name) ?? "").split(/\s+/).filter(Boolean);
  const date = (name: (typeof FIELDS)[number]) => {
    const v = get(name);
    if (v === undefined) return undefined;
    const d = parseRfc2822(v);
    if (!d) throw new SpawnctlError(`parsing ${what}: ${name} is not a date: ${JSON.stringify(v)}`);
    return d;
  };

  const sha256 = get("SHA256");
  if (sha256 === undefined) throw new SpawnctlError(`parsing ${what}: it has no SHA256 field, so its files cannot be verified`);
  const files = new Map<string, IndexFile>();
  for (const line of sha256.split("\n")) {
    if (line.trim() === "") continue;
    const m = /^\s*([0-9a-fA-F]{64})\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (!m) throw new SpawnctlError(`parsing ${what}: malformed SHA256 line ${JSON.stringify(line)}`);
    files.set(m[3]!, { sha256: m[1]!.toLowerCase(), size: Number(m[2]) });
  }

  return {
    suite: get("Suite"),
    codename: get("Codename"),
    date: date("Date"),
    validUntil: date("Valid-Until"),
    architectures: words("Architectures"),
    components: words("Components"),
    acquireByHash: (get("Acquire-By-Hash") ?? "").toLowerCase() === "yes",
    noSupportForArchitectureAll: words("No-Support-for-Architecture-all").includes("Packages"),
    files,
  };
}

/**
 * Refuse a Release file past its Valid-Until date (a replayed or stale
 * mirror), unless `allowExpired` (for archived or air-gapped mirrors). The
 * message follows apt's.
 */
export function checkValidUntil(release: Release, now: Date, allowExpired: boolean): void {
  if (!release.validUntil || allowExpired) return;
  const late = now.getTime() - release.validUntil.getTime();
  if (late <= 0) return;
  const name = release.codename ?? release.suite ?? "this suite";
  throw new SpawnctlError(`Release file for ${name} is expired (invalid since ${formatDuration(late / 1000)})`);
}

/** apt's TimeToStr: "23d 1h 27min", "1h 27min 5s", "27min 5s", "5s". */
export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h ${m}min`;
  if (h > 0) return `${h}h ${m}min ${s % 60}s`;
  if (m > 0) return `${m}min ${s % 60}s`;
  return `${s}s`;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/**
 * The dates archives write: "Sat, 11 Jul 2026 10:16:37 UTC" (RFC 2822, with
 * "UTC", "GMT", "Z" or a numeric offset as the zone; the weekday optional).
 * Parsed by hand: Date.parse accepts different things in different engines.
 */
export function parseRfc2822(text: string): Date | undefined {
  const m = /^(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(UTC|GMT|Z|[+-]\d{4})$/.exec(text.trim());
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  if (month < 0) return undefined;
  let offset = 0;
  const zone = m[7]!;
  if (zone[0] === "+" || zone[0] === "-") offset = (zone[0] === "-" ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  const ms = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)) - offset * 60_000;
  return new Date(ms);
}
