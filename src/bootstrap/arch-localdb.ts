// pacman's local database (/var/lib/pacman/local), written by spawnctl itself
// when the tree has no pacman to do it (a toy repository in tests, or a
// package set without pacman): ALPM_DB_VERSION, then per package NAME-VERSION/
//   desc     what libalpm's _alpm_local_db_write puts there, in its order
//   files    %FILES% (sorted byte-wise, directories with a trailing "/") and
//            %BACKUP% (path, tab, MD5 of the file as installed)
//   mtree    the package's .MTREE, gzip-compressed as in the package
//   install  the .INSTALL scriptlet, when the package has one
// Pure functions of the package's .PKGINFO and payload: no file system here.
import { createHash } from "node:crypto";
import type { TarEntry } from "../archive/tar.ts";

/** The local database schema version pacman 6 and 7 write and expect. */
export const ALPM_DB_VERSION = "9";

export type Validation = "none" | "md5" | "sha256" | "pgp";

export interface LocalEntry {
  /** .PKGINFO as parsed by parsePkginfo() */
  pkginfo: Record<string, string[]>;
  /** seconds since the epoch */
  installDate: number;
  /** installed as a dependency (%REASON% 1) rather than explicitly */
  asDependency: boolean;
  validation: Validation[];
}

const one = (info: Record<string, string[]>, k: string) => info[k]?.[0] ?? "";

/** NAME-VERSION, the entry's directory name under local/. */
export function localDirName(pkginfo: Record<string, string[]>): string {
  return `${one(pkginfo, "pkgname")}-${one(pkginfo, "pkgver")}`;
}

/** The desc file, field for field as libalpm writes it (empty fields are left out, as it does). */
export function localDesc(e: LocalEntry): string {
  const i = e.pkginfo;
  let out = `%NAME%\n${one(i, "pkgname")}\n\n%VERSION%\n${one(i, "pkgver")}\n\n`;
  // libalpm leaves out unset strings and zero numbers
  const field = (name: string, value: string, numeric = false) => {
    if (value !== "" && !(numeric && Number(value) === 0)) out += `%${name}%\n${value}\n\n`;
  };
  const list = (name: string, values: string[] | undefined) => {
    if (values?.length) out += `%${name}%\n${values.join("\n")}\n\n`;
  };
  field("BASE", one(i, "pkgbase"));
  field("DESC", one(i, "pkgdesc"));
  field("URL", one(i, "url"));
  field("ARCH", one(i, "arch"));
  field("BUILDDATE", one(i, "builddate"), true);
  field("INSTALLDATE", String(e.installDate), true);
  field("PACKAGER", one(i, "packager"));
  field("SIZE", one(i, "size"), true);
  if (e.asDependency) field("REASON", "1");
  list("GROUPS", i.group);
  list("LICENSE", i.license);
  list("VALIDATION", e.validation.length ? e.validation : ["none"]);
  list("REPLACES", i.replaces);
  list("DEPENDS", i.depend);
  list("OPTDEPENDS", i.optdepend);
  list("CONFLICTS", i.conflict);
  list("PROVIDES", i.provides);
  list("XDATA", i.xdata);
  return out;
}

/** libalpm sorts file lists with strcmp: compare the UTF-8 bytes, not UTF-16 units. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The files file: every payload entry ("usr/", "usr/bin/", "usr/bin/ls"),
 * then the backup files with the MD5 of their content, which pacman uses on
 * upgrade to tell whether the administrator changed them.
 */
export function localFiles(entries: TarEntry[], pkginfo: Record<string, string[]>): string {
  const names = entries.filter((e) => e.path !== "." && e.path !== "").map((e) => (e.type === "dir" ? `${e.path.replace(/\/+$/, "")}/` : e.path));
  names.sort(byteOrder);
  let out = names.length ? `%FILES%\n${names.join("\n")}\n\n` : "";
  const backup = pkginfo.backup ?? [];
  if (backup.length) {
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const md5 = (p: string): string => {
      let e = byPath.get(p);
      // a hard link's content is its target's
      for (let hops = 0; e?.type === "hardlink" && hops < 8; hops++) e = byPath.get(e.linkname.replace(/^\.\//, ""));
      return e?.type === "file" ? createHash("md5").update(e.data).digest("hex") : "";
    };
    out += `%BACKUP%\n${backup.map((p) => `${p}\t${md5(p)}`).join("\n")}\n\n`;
  }
  return out;
}

/** Does the scriptlet define FUNC? (libalpm only calls a function the script mentions.) */
export function scriptletHas(install: string | undefined, func: string): boolean {
  return install !== undefined && new RegExp(`(^|[^A-Za-z0-9_])${func}([^A-Za-z0-9_]|$)`, "m").test(install);
}

/**
 * The modification time .MTREE records for `path` ("./.INSTALL"), in seconds.
 * pacman extracts .INSTALL and .CHANGELOG into the local database with the
 * archive's times, and `pacman -Qkk` compares them with the mtree.
 */
export function mtreeTime(mtree: string | undefined, path: string): number | undefined {
  if (mtree === undefined) return undefined;
  for (const line of mtree.split("\n")) {
    if (!line.startsWith(`${path} `)) continue;
    const m = /(?:^|\s)time=(\d+)(?:\.\d+)?(?:\s|$)/.exec(line);
    return m ? Number(m[1]) : undefined;
  }
  return undefined;
}
