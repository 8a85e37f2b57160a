// A Packages index from a hostile mirror: Filename must stay inside the
// mirror and be a plain path, Package/Version/Architecture plain words; the
// error names the index and the field.
import { describe, expect, test } from "bun:test";
import { PackageIndex } from "../../../src/bootstrap/packages.ts";
import { stanza } from "./stanza.ts";

const WHAT = "bookworm main amd64 Packages";
const add = (fields: Record<string, string>, name = "evil", version = "1.0") => {
  const ix = new PackageIndex("amd64");
  ix.addPackagesFile(stanza(name, version, fields), WHAT);
  return ix;
};

describe("hostile values are refused, naming the index and the field", () => {
  const cases: Array<[string, Record<string, string>, string, string]> = [
    ["Filename with ..", { Filename: "../../etc/passwd" }, "Filename", '"../../etc/passwd", which contains ".." and would lead out of the mirror'],
    ["Filename with .. in the middle", { Filename: "pool/main/../../../x.deb" }, "Filename", 'contains ".."'],
    ["an absolute Filename", { Filename: "/etc/shadow" }, "Filename", '"/etc/shadow", an absolute path'],
    ["Filename with an empty component", { Filename: "pool//x.deb" }, "Filename", "not a plain relative path"],
    ["Filename with a . component", { Filename: "pool/./x.deb" }, "Filename", "not a plain relative path"],
    ["Filename with percent-encoding", { Filename: "pool/%2e%2e/x.deb" }, "Filename", "not a plain relative path"],
    ["Filename with shell syntax", { Filename: "pool/main/x;reboot.deb" }, "Filename", "not a plain relative path"],
    ["Filename with a space", { Filename: "pool/main/x y.deb" }, "Filename", "not a plain relative path"],
    ["Package with /", { Package: "../evil" }, "Package", '"../evil", which is not a package name'],
    ["Package with a space", { Package: "evil pkg" }, "Package", "not a package name"],
    ["Version with /", { Version: "1/../../x" }, "Version", "not a Debian version"],
  ];
  for (const [what, fields, field, detail] of cases) {
    test(what, () => {
      expect(() => add(fields)).toThrow(`reading ${WHAT}: the ${field} field of package`);
      expect(() => add(fields)).toThrow(detail);
    });
  }
});

test("a stanza of another architecture is skipped before its values are used at all", () => {
  expect(add({ Architecture: "amd64/../x", Filename: "../../x" }).size).toBe(0);
});

describe("real-looking values pass", () => {
  test("pool paths, epochs, +, ~ and : in versions and file names", () => {
    const ix = new PackageIndex("amd64");
    ix.addPackagesFile(stanza("libstdc++6", "12.2.0-14", { Filename: "pool/main/g/gcc-12/libstdc++6_12.2.0-14_amd64.deb" }), WHAT);
    ix.addPackagesFile(stanza("tzdata", "2024a-0+deb12u1", { Architecture: "all", Filename: "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb" }), WHAT);
    ix.addPackagesFile(stanza("apt", "2.6.1~rc1", { Filename: "pool/main/a/apt/apt_2.6.1~rc1_amd64.deb" }), WHAT);
    ix.addPackagesFile(stanza("perl", "1:5.36.0-7", { Filename: "pool/main/p/perl/perl_5.36.0-7_amd64.deb" }), WHAT);
    ix.addPackagesFile(stanza("epochy", "2:1.0", { Filename: "pool/main/e/epochy/epochy_2:1.0_amd64.deb" }), WHAT);
    expect(ix.size).toBe(5);
  });
});
