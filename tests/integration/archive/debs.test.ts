// Real Debian packages: our .deb reader + extractor must produce the same
// tree as `dpkg-deb --fsys-tarfile | tar --keep-directory-symlink -x` (what
// mmdebstrap runs), down to modes, owners, link counts and mtimes.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { readDeb } from "../../../src/archive/deb.ts";
import { extractTar } from "../../../src/archive/extract.ts";
import { xzDecompress } from "../../../src/archive/xz.ts";
import { IS_ROOT, needs, removeTree, tempDir } from "../../helpers.ts";
import { hasTool, tool } from "../../unit/archive/fixtures.ts";

// setuid/setgid with a numeric group (passwd, login), hardlinks (perl-base),
// ./bin paths under merged /usr (coreutils), many small files (libc6).
const PACKAGES = ["coreutils", "perl-base", "passwd", "login", "libc6", "tar"];

const base = tempDir("spawnctl-debs-");
afterAll(() => removeTree(base));
let debs: string[] = [];
let downloadError = "";

beforeAll(() => {
  if (!IS_ROOT || !hasTool("apt-get") || !hasTool("tar")) return;
  mkdirSync(`${base}/debs`);
  const p = Bun.spawnSync(["apt-get", "download", ...PACKAGES], { cwd: `${base}/debs`, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) downloadError = p.stderr.toString();
  debs = readdirSync(`${base}/debs`).filter((f) => f.endsWith(".deb")).map((f) => `${base}/debs/${f}`);
}, 120_000);

const debTest = needs("root, GNU tar and apt-get download from the configured Debian mirror", IS_ROOT && hasTool("apt-get") && hasTool("tar"));

function mergedUsrRoot(path: string): string {
  mkdirSync(path);
  for (const d of ["bin", "sbin", "lib", "lib64"]) {
    mkdirSync(`${path}/usr/${d}`, { recursive: true });
    symlinkSync(`usr/${d}`, `${path}/${d}`);
  }
  return path;
}

/**
 * One line per path. Directory mtimes are left out: GNU tar creates symlinks
 * whose target contains ".." as placeholders and puts the real links in
 * place at the end, which touches their directories after it set their
 * times; so do later packages adding files to a shared directory. Neither is
 * about the archive's content. The merged-/usr links are made by the test.
 */
function listing(root: string): string[] {
  const out = new TextDecoder().decode(tool(["find", root, "-printf", "%P|%y|%m|%U|%G|%s|%l|%n|%T@\n"]));
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => (/^[^|]*\|d\|/.test(l) || /^(bin|sbin|lib|lib64)\|l\|/.test(l) ? l.replace(/\|[^|]*$/, "") : l))
    .sort();
}

describe("real .debs", () => {
  debTest("download", () => {
    expect(downloadError).toBe("");
    expect(debs.length).toBe(PACKAGES.length);
  });

  debTest("the same tree as dpkg-deb | tar --keep-directory-symlink", () => {
    const ours = mergedUsrRoot(`${base}/ours`);
    const theirs = mergedUsrRoot(`${base}/theirs`);
    for (const f of debs) {
      const bytes = readFileSync(f);
      const deb = readDeb(bytes, { name: f });
      expect(deb.control.has("control")).toBe(true);
      const stats = extractTar(deb.data(), ours, { keepDirectorySymlinks: true, name: f });
      expect(stats.entries).toBeGreaterThan(0);
      const tarBytes = hasTool("dpkg-deb") ? tool(["dpkg-deb", "--fsys-tarfile", f]) : deb.dataTar();
      // Our decoder's output is the data.tar dpkg-deb produces, byte for byte.
      expect(Buffer.from(deb.dataTar()).equals(Buffer.from(tarBytes))).toBe(true);
      tool(["tar", "-C", theirs, "--keep-directory-symlink", "--same-owner", "--same-permissions", "--numeric-owner", "-xf", "-"], tarBytes);
    }
    const a = listing(ours);
    const b = listing(theirs);
    expect(a.length).toBeGreaterThan(1000);
    expect(a.filter((l) => !b.includes(l))).toEqual([]);
    expect(b.filter((l) => !a.includes(l))).toEqual([]);
    // Spot checks of what matters for a bootstrap.
    expect(a.find((l) => l.startsWith("usr/bin/chage|"))).toMatch(/^usr\/bin\/chage\|f\|2755\|0\|42\|/);
    expect(a.find((l) => l.startsWith("usr/bin/perl|"))).toMatch(/\|2\|/);
  });

  debTest("xz: the TS decoder and liblzma agree on every data.tar", () => {
    for (const f of debs) {
      const deb = readDeb(readFileSync(f));
      if (!deb.dataMember.name.endsWith(".xz")) continue;
      const ts = xzDecompress(deb.dataMember.data, { backend: "ts" });
      expect(Buffer.from(ts).equals(Buffer.from(deb.dataTar()))).toBe(true);
    }
  });
});
