// pacman's local database as spawnctl writes it when the tree has no pacman.
// tests/integration/bootstrap-arch compares the result with what pacman -U
// writes for the same packages; here the format rules one by one.
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { ALPM_DB_VERSION, localDesc, localDirName, localFiles, mtreeTime, scriptletHas } from "../../../src/bootstrap/arch-localdb.ts";
import type { TarEntry } from "../../../src/archive/tar.ts";

function entry(path: string, type: TarEntry["type"] = "file", data = "", linkname = ""): TarEntry {
  const bytes = new TextEncoder().encode(data);
  return { path, type, mode: 0o644, uid: 0, gid: 0, uname: "root", gname: "root", mtime: 0, size: bytes.length, linkname, devmajor: 0, devminor: 0, xattrs: new Map(), data: bytes };
}

const PKGINFO: Record<string, string[]> = {
  pkgname: ["toy"], pkgbase: ["toy-base"], pkgver: ["1:1.2-3"], pkgdesc: ["A toy"], url: ["https://example.invalid"], builddate: ["1700000000"],
  packager: ["Someone <a@b.invalid>"], size: ["4096"], arch: ["x86_64"], license: ["MIT", "GPL-2.0-or-later"], group: ["toys"],
  replaces: ["old-toy"], depend: ["glibc>=2.38", "sh"], optdepend: ["bash: completion"], conflict: ["other-toy"], provides: ["toy-virtual=1.2"],
  backup: ["etc/toy.conf"], xdata: ["pkgtype=pkg"], makedepend: ["gcc"],
};

describe("desc", () => {
  test("libalpm's field order; dependencies get %REASON% 1", () => {
    const d = localDesc({ pkginfo: PKGINFO, installDate: 1700000100, asDependency: true, validation: ["sha256", "pgp"] });
    expect(d).toBe(
      "%NAME%\ntoy\n\n%VERSION%\n1:1.2-3\n\n%BASE%\ntoy-base\n\n%DESC%\nA toy\n\n%URL%\nhttps://example.invalid\n\n%ARCH%\nx86_64\n\n" +
        "%BUILDDATE%\n1700000000\n\n%INSTALLDATE%\n1700000100\n\n%PACKAGER%\nSomeone <a@b.invalid>\n\n%SIZE%\n4096\n\n%REASON%\n1\n\n" +
        "%GROUPS%\ntoys\n\n%LICENSE%\nMIT\nGPL-2.0-or-later\n\n%VALIDATION%\nsha256\npgp\n\n%REPLACES%\nold-toy\n\n" +
        "%DEPENDS%\nglibc>=2.38\nsh\n\n%OPTDEPENDS%\nbash: completion\n\n%CONFLICTS%\nother-toy\n\n%PROVIDES%\ntoy-virtual=1.2\n\n%XDATA%\npkgtype=pkg\n\n",
    );
  });

  test("explicit packages have no %REASON%; unset fields and zero numbers are left out; a desc of \"0\" is kept", () => {
    const d = localDesc({ pkginfo: { pkgname: ["meta"], pkgver: ["3-1"], size: ["0"], builddate: ["0"], pkgdesc: ["0"] }, installDate: 5, asDependency: false, validation: [] });
    expect(d).toBe("%NAME%\nmeta\n\n%VERSION%\n3-1\n\n%DESC%\n0\n\n%INSTALLDATE%\n5\n\n%VALIDATION%\nnone\n\n");
  });

  test("the directory name and the schema version", () => {
    expect(localDirName(PKGINFO)).toBe("toy-1:1.2-3");
    expect(ALPM_DB_VERSION).toBe("9");
  });
});

describe("files", () => {
  test("sorted byte-wise, directories with a slash, the root left out", () => {
    const f = localFiles([entry(".", "dir"), entry("usr", "dir"), entry("usr/bin", "dir"), entry("usr/bin/b"), entry("usr/bin/[", "symlink", "", "b"), entry("usr/bin/B"), entry("usr/bin/é"), entry("usr/bin/z")], { pkgname: ["x"] });
    // UTF-8 "é" (0xc3 0xa9) sorts after "z", as strcmp has it; "[" (0x5b) between "B" and "b"
    expect(f).toBe("%FILES%\nusr/\nusr/bin/\nusr/bin/B\nusr/bin/[\nusr/bin/b\nusr/bin/z\nusr/bin/é\n\n");
  });

  test("backup files with the MD5 of their content, through a hard link", () => {
    const conf = "setting=1\n";
    const md5 = createHash("md5").update(conf).digest("hex");
    const f = localFiles([entry("etc", "dir"), entry("etc/toy.conf", "file", conf), entry("etc/alias.conf", "hardlink", "", "etc/toy.conf")], { backup: ["etc/toy.conf", "etc/alias.conf", "etc/absent.conf"] });
    expect(f).toBe(`%FILES%\netc/\netc/alias.conf\netc/toy.conf\n\n%BACKUP%\netc/toy.conf\t${md5}\netc/alias.conf\t${md5}\netc/absent.conf\t\n\n`);
  });

  test("a package without files has an empty files file", () => {
    expect(localFiles([], { pkgname: ["meta"] })).toBe("");
  });
});

describe("scriptlets and mtree", () => {
  test("scriptletHas: the function's name as a word", () => {
    const s = "pre_install() {\n  :\n}\npost_upgrade() {\n  post_install $1\n}\n";
    expect(scriptletHas(s, "pre_install")).toBe(true);
    expect(scriptletHas(s, "post_install")).toBe(true); // mentioned: libalpm would call it too
    expect(scriptletHas("my_post_install_helper() { :; }", "post_install")).toBe(false);
    expect(scriptletHas(undefined, "post_install")).toBe(false);
  });

  test("mtreeTime: the time of one path", () => {
    const m = "#mtree\n/set type=file uid=0 gid=0 mode=644\n./.BUILDINFO time=1.0 size=3\n./.INSTALL time=1795950537.5 size=261 md5digest=x\n./usr time=2.0 type=dir\n";
    expect(mtreeTime(m, "./.INSTALL")).toBe(1795950537);
    expect(mtreeTime(m, "./.CHANGELOG")).toBeUndefined();
    expect(mtreeTime(undefined, "./.INSTALL")).toBeUndefined();
  });
});
