// The pure parts of the image verbs: names, local names from URLs and
// files, compression formats, sizes, SHA256SUMS, temporary names, and the
// editor and keyring choices.
import { describe, expect, test } from "bun:test";
import {
  checkPullUrl, chooseFormat, formatFromFileName, isHiddenImage, isValidImageName, localNameFor, parseFormat, parseLimit, parseSha256Sums,
  parseVerify, stripRawSuffix, stripTarSuffix, sumsListed, tempOwner, tempPath, urlLastComponent, urlSibling,
} from "../../../src/image/names.ts";
import { editorCommand } from "../../../src/image/settings-files.ts";
import { importKeyringPath } from "../../../src/image/transfer.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";

describe("image names", () => {
  test("valid names as image_name_is_valid", () => {
    for (const n of ["debian", "web-1", "a.b", ".hidden", "x_y", "ÄÖ", "a".repeat(255)]) expect(isValidImageName(n)).toBe(true);
    for (const n of ["", ".", "..", "a/b", ".#tmp", ".#x.lck", "a\nb", "a\x7fb", "a".repeat(256), "a\0b"]) expect(isValidImageName(n)).toBe(false);
  });

  test("hidden images start with a dot", () => {
    expect(isHiddenImage(".old")).toBe(true);
    expect(isHiddenImage(".host")).toBe(true);
    expect(isHiddenImage("web")).toBe(false);
  });

  test("tar and raw suffixes are stripped as importd does", () => {
    expect(stripTarSuffix("debian-12.tar.xz")).toBe("debian-12");
    expect(stripTarSuffix("x.tgz")).toBe("x");
    expect(stripTarSuffix("x.tar")).toBe("x");
    expect(stripTarSuffix("x.tar.zst")).toBe("x");
    expect(stripTarSuffix("x.img")).toBe("x.img");
    expect(stripTarSuffix(".tar")).toBe(".tar");
    expect(stripRawSuffix("disk.raw.xz")).toBe("disk");
    expect(stripRawSuffix("fedora.qcow2.gz")).toBe("fedora");
    expect(stripRawSuffix("a.img")).toBe("a");
    expect(stripRawSuffix("plain")).toBe("plain");
  });

  test("local names from URLs and files must be machine names", () => {
    expect(localNameFor("tar", "https://example.org/images/debian-12.tar.xz?x=1#f", true)).toBe("debian-12");
    expect(localNameFor("raw", "file:///srv/img/disk.raw.zst", true)).toBe("disk");
    expect(localNameFor("tar", "/srv/backup/web.tar.gz", false)).toBe("web");
    expect(localNameFor("fs", "/srv/trees/bb/", false)).toBe("bb");
    expect(() => localNameFor("tar", "https://example.org/bad_name!.tar", true)).toThrow("is not a suitable machine name");
    expect(() => localNameFor("tar", "/x/.tar", false)).toThrow(SpawnctlError);
  });

  test("URLs: last component, siblings, schemes", () => {
    expect(urlLastComponent("https://h/a/b/c.tar?q#f")).toBe("c.tar");
    expect(urlLastComponent("https://h/a/")).toBe("");
    expect(urlSibling("https://h/a/b/c.tar.xz?token=1", "SHA256SUMS")).toBe("https://h/a/b/SHA256SUMS");
    expect(urlSibling("file:///srv/x/c.tar", "SHA256SUMS.gpg")).toBe("file:///srv/x/SHA256SUMS.gpg");
    expect(checkPullUrl("http://127.0.0.1:8080/x.tar")).toBe("http");
    expect(checkPullUrl("file:///x.tar")).toBe("file");
    expect(() => checkPullUrl("ftp://h/x.tar")).toThrow("use http, https or file");
    expect(() => checkPullUrl("https://h/dir/")).toThrow("names no file");
    expect(() => checkPullUrl("not a url")).toThrow("is not valid");
  });
});

describe("formats", () => {
  test("--format wins, else the suffix, else uncompressed", () => {
    expect(chooseFormat(undefined, "x.tar.gz")).toBe("gzip");
    expect(chooseFormat(undefined, "x.tgz")).toBe("gzip");
    expect(chooseFormat(undefined, "x.tar.xz")).toBe("xz");
    expect(chooseFormat(undefined, "x.tar.zst")).toBe("zstd");
    expect(chooseFormat(undefined, "x.tar.bz2")).toBe("bzip2");
    expect(chooseFormat(undefined, "x.tar")).toBe("uncompressed");
    expect(chooseFormat(undefined, undefined)).toBe("uncompressed");
    expect(chooseFormat("zstd", "x.tar.gz")).toBe("zstd");
    expect(chooseFormat("uncompressed", "x.tar.xz")).toBe("uncompressed");
    expect(formatFromFileName("disk.raw.xz")).toBe("xz");
    expect(parseFormat("gz")).toBe("gzip");
    expect(() => parseFormat("lz4")).toThrow("Unknown format 'lz4'");
  });

  test("--verify", () => {
    expect(parseVerify("no")).toBe("no");
    expect(parseVerify("checksum")).toBe("checksum");
    expect(parseVerify("signature")).toBe("signature");
    expect(parseVerify("false")).toBe("no");
    expect(parseVerify("yes")).toBe("signature");
    expect(() => parseVerify("maybe")).toThrow("Unknown verification mode");
  });
});

describe("sizes for set-limit", () => {
  test("1024-based suffixes, fractions, and no limit", () => {
    expect(parseLimit("4096")).toBe(4096n);
    expect(parseLimit("10K")).toBe(10240n);
    expect(parseLimit("512M")).toBe(512n * 1024n * 1024n);
    expect(parseLimit("1.5G")).toBe(1536n * 1024n * 1024n);
    expect(parseLimit("2T")).toBe(2n * 1024n ** 4n);
    expect(parseLimit("1GiB")).toBe(1024n ** 3n);
    expect(parseLimit("-")).toBeUndefined();
    expect(parseLimit("none")).toBeUndefined();
    expect(parseLimit("infinity")).toBeUndefined();
    for (const bad of ["", "x", "1X", "-5", "1.2.3G", "99999999999E"]) expect(() => parseLimit(bad)).toThrow("Failed to parse size");
  });
});

describe("SHA256SUMS", () => {
  const h1 = "a".repeat(64);
  const h2 = "0123456789abcdef".repeat(4);
  const text = `${h1} *image.tar.xz\n${h2}  other.raw\r\n${"b".repeat(64)} lxc-style.tar\nnot a line\n${"C".repeat(64)}  upper.tar`;

  test("binary, text and single-space lines; CRLF; upper-case hex", () => {
    expect(parseSha256Sums(text)).toEqual([
      { sha256: h1, file: "image.tar.xz" },
      { sha256: h2, file: "other.raw" },
      { sha256: "b".repeat(64), file: "lxc-style.tar" },
      { sha256: "c".repeat(64), file: "upper.tar" },
    ]);
  });

  test("a file counts only with its exact hash", () => {
    expect(sumsListed(text, "image.tar.xz", h1)).toBe(true);
    expect(sumsListed(text, "image.tar.xz", h1.toUpperCase())).toBe(true);
    expect(sumsListed(text, "image.tar.xz", h2)).toBe(false);
    expect(sumsListed(text, "image.tar", h1)).toBe(false);
    expect(sumsListed(text, "other.raw", h2)).toBe(true);
    expect(sumsListed(text, "upper.tar", "c".repeat(64))).toBe(true);
    // a hash inside a longer name or line is not a match
    expect(sumsListed(`x${h1} *image.tar.xz\n`, "image.tar.xz", h1)).toBe(false);
    expect(sumsListed(`${h1} *image.tar.xz.sig\n`, "image.tar.xz", h1)).toBe(false);
  });
});

describe("temporary names", () => {
  test("hidden, in the target directory, owned by this process", () => {
    const p = tempPath("/var/lib/machines/", "import-web");
    expect(p.startsWith("/var/lib/machines/.#spawnctl.")).toBe(true);
    const base = p.slice(p.lastIndexOf("/") + 1);
    expect(isValidImageName(base)).toBe(false); // never listed as an image
    expect(tempOwner(base)).toBe(process.pid);
    expect(tempOwner(".#web.lck")).toBeUndefined();
    expect(tempOwner("web")).toBeUndefined();
    expect(tempPath("/d", "a b/c")).toMatch(/^\/d\/\.#spawnctl\.\d+\.[0-9a-z]+\.a_b_c$/);
  });
});

describe("choices made from the environment", () => {
  test("editor: $SYSTEMD_EDITOR, $EDITOR, $VISUAL, then editor, nano, vim, vi", () => {
    const has = (...names: string[]) => (c: string) => (names.includes(c) ? `/usr/bin/${c}` : null);
    expect(editorCommand({ EDITOR: "emacs -nw", VISUAL: "vim" }, has("emacs", "vim"))).toEqual(["emacs", "-nw"]);
    expect(editorCommand({ SYSTEMD_EDITOR: "mcedit", EDITOR: "emacs" }, has("mcedit", "emacs"))).toEqual(["mcedit"]);
    expect(editorCommand({ EDITOR: "missing", VISUAL: "vim" }, has("vim"))).toEqual(["vim"]);
    expect(editorCommand({}, has("nano", "vi"))).toEqual(["nano"]);
    expect(editorCommand({}, has("vi"))).toEqual(["vi"]);
    expect(() => editorCommand({}, has())).toThrow("no editor available");
  });

  test("keyring: SPAWNCTL_IMPORT_KEYRING, /etc, /usr/lib, else a clear error", () => {
    const only = (...paths: string[]) => (p: string) => paths.includes(p);
    expect(importKeyringPath({ SPAWNCTL_IMPORT_KEYRING: "/k.gpg" }, only("/k.gpg"))).toBe("/k.gpg");
    expect(() => importKeyringPath({ SPAWNCTL_IMPORT_KEYRING: "/k.gpg" }, only())).toThrow("does not exist");
    expect(importKeyringPath({}, only("/etc/systemd/import-pubring.gpg", "/usr/lib/systemd/import-pubring.gpg"))).toBe("/etc/systemd/import-pubring.gpg");
    expect(importKeyringPath({}, only("/usr/lib/systemd/import-pubring.gpg"))).toBe("/usr/lib/systemd/import-pubring.gpg");
    expect(() => importKeyringPath({}, only())).toThrow("--verify=checksum");
  });
});
