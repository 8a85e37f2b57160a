// MemberCheck / findUnsafeMember: the refuseEscapes rules on names alone,
// as the Debian bootstrap applies them to every package before anything is
// unpacked (dpkg unpacks most of them later, in the container).
import { describe, expect, test } from "bun:test";
import { MemberCheck, findUnsafeMember } from "../../../src/archive/extract.ts";
import { readTar, type TarEntry } from "../../../src/archive/tar.ts";
import { tarOf, text } from "./fixtures.ts";

type E = Pick<TarEntry, "path" | "type" | "linkname">;
const d = (path: string): E => ({ path, type: "dir", linkname: "" });
const f = (path: string): E => ({ path, type: "file", linkname: "" });
const l = (path: string, linkname: string): E => ({ path, type: "symlink", linkname });
const h = (path: string, linkname: string): E => ({ path, type: "hardlink", linkname });
const MERGED_USR = { bin: "usr/bin", sbin: "usr/sbin", lib: "usr/lib", lib64: "usr/lib64" };

describe("what real packages hold passes", () => {
  test("./ and ./usr/bin/x, absolute symlink targets, relative hardlinks, merged-/usr paths", () => {
    const entries = [
      d("."), d("usr"), d("usr/bin"), f("usr/bin/perl5.36.0"), h("usr/bin/perl", "./usr/bin/perl5.36.0"), h("usr/bin/perl2", "usr/bin/perl5.36.0"),
      d("lib64"), l("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), d("bin"), f("bin/sh"),
      l("usr/bin/awk", "/etc/alternatives/awk"), l("etc/mtab", "../proc/self/mounts"), d("usr/lib"), l("usr/lib/sub", "../share"), f("usr/lib/sub/file"),
      l("usr/bin/lnk", "perl5.36.0"), h("usr/bin/lnk2", "usr/bin/lnk"),
    ];
    expect(findUnsafeMember(entries, new MemberCheck(MERGED_USR))).toBeUndefined();
  });

  test("entries as readTar gives them from a TarWriter archive with ./ names", () => {
    const tar = tarOf([
      { path: "./", type: "dir" }, { path: "./usr/", type: "dir" }, { path: "./usr/bin/x", type: "file", data: text("x") },
      { path: "./usr/bin/y", type: "hardlink", linkname: "./usr/bin/x" }, { path: "./usr/bin/z", type: "symlink", linkname: "/usr/bin/x" },
    ]);
    expect(findUnsafeMember(readTar(tar))).toBeUndefined();
  });
});

describe("unsafe names are found, with the entry and the reason", () => {
  const cases: Array<[string, E[], string, RegExp]> = [
    ["an absolute name", [d("."), f("/etc/passwd")], "/etc/passwd", /its name "\/etc\/passwd" is absolute/],
    ["a leading ..", [f("../evil")], "../evil", /its name "..\/evil" contains "\.\."/],
    ["a .. in the middle", [d("usr"), f("usr/../../evil")], "usr/../../evil", /contains "\.\."/],
    ["a harmless-looking .. that stays inside", [d("a"), f("a/../b")], "a/../b", /contains "\.\."/],
    ["a NUL byte in the name", [f("etc/pass\0wd")], "etc/pass\0wd", /NUL byte/],
    ["a NUL byte in a symlink target", [l("x", "/etc\0")], "x", /symlink target contains a NUL byte/],
    ["a symlink out of the tree, then a file through it", [l("etc", "/tmp/xyz"), f("etc/passwd")], "etc/passwd", /goes through the symlink "etc" -> "\/tmp\/xyz", which points out of the tree/],
    ["a relative symlink that climbs out", [d("usr"), l("usr/up", "../.."), f("usr/up/evil")], "usr/up/evil", /"usr\/up" -> "..\/.."/],
    ["a nested climb", [d("a"), d("a/b"), l("a/b/c", "../x/../../../y"), f("a/b/c/evil")], "a/b/c/evil", /points out of the tree/],
    ["a link through a link", [l("a", "b"), l("b", "/"), f("a/evil")], "a/evil", /"b" -> "\/"/],
    ["a directory entry keeps the symlink (dpkg, --keep-directory-symlink)", [l("etc", "/x"), d("etc"), f("etc/passwd")], "etc/passwd", /goes through the symlink "etc"/],
    ["a symlink loop", [l("a", "b"), l("b", "a"), f("a/x")], "a/x", /too many levels of symbolic links/],
    ["a hardlink to an absolute path", [h("pw", "/etc/passwd")], "pw", /its hardlink target "\/etc\/passwd" is absolute/],
    ["a hardlink to ..", [h("pw", "../../etc/passwd")], "pw", /its hardlink target "..\/..\/etc\/passwd" contains "\.\."/],
    ["a hardlink with a NUL byte", [h("pw", "etc\0")], "pw", /hardlink target contains a NUL byte/],
    ["a hardlink through a symlink out of the tree", [l("e", "/etc"), h("pw", "e/passwd")], "pw", /hardlink target "e\/passwd" is unsafe: the target's parent goes through the symlink "e" -> "\/etc"/],
    ["a hardlink to a symlink that points out", [l("s", "/etc/shadow"), h("pw", "s")], "pw", /is a symlink to "\/etc\/shadow", outside the tree/],
    ["a hardlink to a relative symlink that climbs out", [d("a"), l("a/s", "../../x"), h("pw", "a/s")], "pw", /is a symlink to "..\/..\/x", outside the tree/],
    ["a hardlink to the root", [h("pw", "./")], "pw", /is the root directory/],
  ];
  for (const [what, entries, path, why] of cases) {
    test(what, () => {
      const bad = findUnsafeMember(entries);
      expect(bad?.path).toBe(path);
      expect(bad?.why).toMatch(why);
    });
  }

  test("the first unsafe entry is the one reported; entries before it are fine", () => {
    expect(findUnsafeMember([d("."), f("ok"), f("/abs1"), f("/abs2")])).toEqual({ path: "/abs1", why: 'its name "/abs1" is absolute' });
  });
});

describe("one checker over several archives, in unpacking order", () => {
  test("a symlink from an earlier package is known to a later one", () => {
    const c = new MemberCheck(MERGED_USR);
    expect(findUnsafeMember([d("usr"), l("usr/share", "/tmp/outside")], c)).toBeUndefined();
    expect(findUnsafeMember([d("usr"), d("usr/share"), f("usr/share/doc")], c)).toEqual({
      path: "usr/share/doc", why: 'its parent goes through the symlink "usr/share" -> "/tmp/outside", which points out of the tree',
    });
  });

  test("a later file or hardlink replaces a symlink: what comes after is checked against the new entry", () => {
    const c = new MemberCheck();
    expect(findUnsafeMember([l("x", "/outside"), f("x")], c)).toBeUndefined();
    expect(findUnsafeMember([h("y", "x"), f("x2")], c)).toBeUndefined();
  });

  test("the initial links are followed inside the tree (merged /usr)", () => {
    const c = new MemberCheck(MERGED_USR);
    expect(findUnsafeMember([d("bin"), f("bin/ls"), d("lib64"), f("lib64/ld.so"), h("bin/ls2", "bin/ls")], c)).toBeUndefined();
    const out = new MemberCheck({ bin: "/usr/bin" });
    expect(findUnsafeMember([f("bin/ls")], out)?.why).toMatch(/"bin" -> "\/usr\/bin"/);
  });
});
