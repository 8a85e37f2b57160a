// importd's verbs, done by spawnctl: export-tar -> import-tar round trips
// that keep every owner, mode, link, device and attribute (uncompressed,
// gzip, zstd, xz, stdin/stdout, GNU tar interoperability); import-fs;
// hostile archives refused with nothing left behind; import-raw/export-raw;
// pull-tar and pull-raw from file:// and from an HTTP server in this process,
// with --verify=checksum and --verify=signature (a throw-away gpg key);
// SIGINT and SIGTERM in the middle leave nothing behind.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import { readTar, TarWriter, type TarWriteEntry } from "../../../src/archive/tar.ts";
import { removePath } from "../../../src/image/job.ts";
import { IS_ROOT, SPAWNCTL, busyboxPath, leftovers, needs, run, tempDir } from "../../helpers.ts";
import {
  FRESH_MACHINE_ID, compareManifests, ensureDirs, imgName, machineIdOf, makeRichTree, manifest, manifestButMachineId, ourLeftovers, POOL, runAsync,
} from "./lib.ts";

const ok = IS_ROOT && !!busyboxPath();
const test = needs("root and busybox-static", ok);
const gpgTest = needs("root, busybox-static and gpg", ok && !!Bun.which("gpg"));
const before = IS_ROOT ? leftovers() : [];
let base = "";
let rich = "";
/** an image made from the rich tree, the source of the round trips */
let src = "";
let srcPath = "";
const made: string[] = [];
let removeDirs = () => {};
function track(...p: string[]): void {
  made.push(...p);
}

beforeAll(() => {
  if (!ok) return;
  removeDirs = ensureDirs(POOL);
  base = tempDir("sctest-img-transfer-");
  rich = makeRichTree(`${base}/rich`, { devices: true });
  src = imgName("rt-src");
  srcPath = `${POOL}/${src}`;
  track(srcPath);
  const r = run(["import-fs", rich, src]);
  if (r.code !== 0) throw new Error(r.stderr);
});

afterAll(() => {
  if (!ok || !base) return;
  for (const p of made.reverse()) removePath(p);
  if (existsSync(`${base}/gnupg`)) Bun.spawnSync(["gpgconf", "--kill", "all"], { env: { ...process.env, GNUPGHOME: `${base}/gnupg` } });
  if (existsSync(`${base}/gnupg2`)) Bun.spawnSync(["gpgconf", "--kill", "all"], { env: { ...process.env, GNUPGHOME: `${base}/gnupg2` } });
  removePath(base);
  removeDirs();
  expect(ourLeftovers()).toEqual([]);
  expect(leftovers().filter((l) => !before.includes(l) && l.includes("sctest-img"))).toEqual([]);
});

const sha256 = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

/** `diff -r`, less its notes on device nodes and fifos of the same kind on both sides (it cannot compare those; the manifest does) */
function diffR(a: string, b: string): string {
  const p = Bun.spawnSync(["diff", "-r", "--no-dereference", a, b]);
  return (p.stdout.toString() + p.stderr.toString())
    .split("\n")
    .filter((l) => l && !/^File .* is a (character special file|block special file|fifo) while file .* is a \1$/.test(l))
    .join("\n");
}

/** Import `file` as a new image and check it equals the source image in every respect. */
function importAndCompare(file: string, tag: string, env: Record<string, string> = {}): void {
  const name = imgName(tag);
  track(`${POOL}/${name}`);
  const r = run(["import-tar", "--devices", file, name], { env });
  expect(r.stderr).toMatch(new RegExp(`^Imported image '${name}' from ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: \\d+ entries, `));
  expect(r.code).toBe(0);
  expect(compareManifests(manifest(srcPath), manifest(`${POOL}/${name}`))).toEqual([]);
  expect(diffR(srcPath, `${POOL}/${name}`)).toBe("");
  expect(run(["remove", name]).code).toBe(0);
}

describe("export-tar and import-tar", () => {
  test("import-fs keeps everything; the copy is the source's twin", () => {
    expect(compareManifests(manifestButMachineId(rich), manifestButMachineId(srcPath))).toEqual([]);
    // a machine of its own: the source's ID is not copied, the guest makes one at its first boot
    expect(readFileSync(`${rich}/etc/machine-id`, "utf8")).toBe("0123456789abcdef0123456789abcdef\n");
    expect(machineIdOf(srcPath)).toEqual(FRESH_MACHINE_ID);
    const m = manifest(srcPath);
    expect(m.get("usr/bin/suid-tool")).toMatchObject({ mode: 0o4755 });
    expect(m.get("usr/bin/suid-tool")!.xattrs).toContain("security.capability=");
    expect(m.get("usr/bin/hard-b")!.link).toBe("etc/hard-c");
    expect(m.get("dev/null")).toMatchObject({ type: "char", rdev: 0x103, mode: 0o666 });
    expect(m.get("home/tester/notes")).toMatchObject({ uid: 1000, gid: 1000, mode: 0o600 });
  });

  for (const [ext, magic] of [["tar", "7573746172"], ["tar.gz", "1f8b"], ["tar.zst", "28b52ffd"], ["tar.xz", "fd377a585a00"]] as const) {
    test(`round trip through .${ext}: owners, modes, setuid, hardlinks, symlinks, devices, xattrs`, () => {
      const file = `${base}/export.${ext}`;
      const r = run(["export-tar", src, file]);
      if (ext === "tar.xz" && !Bun.which("xz")) {
        expect(r.stderr).toContain("xz compression needs the xz program");
        return;
      }
      expect(r.stderr).toMatch(new RegExp(`^Exported image '${src}' to ${file} \\(\\w+\\): \\d+ entries, `));
      expect(r.code).toBe(0);
      const head = readFileSync(file).subarray(0, 262);
      expect(ext === "tar" ? Buffer.from(head.subarray(257, 262)).toString("hex") : Buffer.from(head).toString("hex").slice(0, magic.length)).toBe(magic);
      importAndCompare(file, `rt-${ext.replace(".", "")}`);
      // GNU tar reads it, setuid bits and all
      const list = Bun.spawnSync(["tar", "-tvf", file]).stdout.toString().split("\n");
      expect(list.filter((l) => /^-rwsr-xr-x 0\/0 .* \.\/usr\/bin\/suid-tool$/.test(l))).toHaveLength(1);
      expect(list.filter((l) => /^crw-rw-rw- 0\/0 +1,3 .* \.\/dev\/null$/.test(l))).toHaveLength(1);
      // the first name in walk order (etc/ before usr/) holds the data, the others link to it
      expect(list.filter((l) => /^hrw-r--r-- 0\/0 .* \.\/usr\/bin\/hard-[ab] link to \.\/etc\/hard-c$/.test(l))).toHaveLength(2);
    });
  }

  test("import-tar gives the new image an empty /etc/machine-id of its own", () => {
    // an archive of a tree that has an ID (GNU tar's, so no spawnctl step is between)
    const file = `${base}/with-id.tar`;
    expect(Bun.spawnSync(["tar", "-C", rich, "--exclude=./dev/null", "-cf", file, "."]).exitCode).toBe(0);
    const name = imgName("id-tar");
    track(`${POOL}/${name}`);
    const r = run(["import-tar", file, name]);
    expect(r.code).toBe(0);
    expect(machineIdOf(`${POOL}/${name}`)).toEqual(FRESH_MACHINE_ID);
    // the rest of /etc as it was
    expect(readFileSync(`${POOL}/${name}/etc/hostname`, "utf8")).toBe("rich\n");
    expect(run(["remove", name]).code).toBe(0);
  });

  test("GNU tar and spawnctl understand each other's archives (xattrs included)", () => {
    // ours, extracted by GNU tar
    const ours = `${base}/ours.tar`;
    expect(run(["export-tar", src, ours]).code).toBe(0);
    const out = `${base}/gnu-extract`;
    mkdirSync(out);
    const x = Bun.spawnSync(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", ours, "-C", out]);
    expect(x.stderr.toString()).toBe("");
    expect(compareManifests(manifest(srcPath), manifest(out))).toEqual([]);
    removePath(out);
    // GNU tar's, imported by spawnctl
    const gnu = `${base}/gnu.tar.gz`;
    const c = Bun.spawnSync(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-czpf", gnu, "-C", srcPath, "."]);
    expect(c.exitCode).toBe(0);
    importAndCompare(gnu, "rt-gnu");
  });

  test("--format, stdout and stdin", () => {
    const bin = `${base}/forced.bin`;
    expect(run(["export-tar", src, bin, "--format=zstd"]).code).toBe(0);
    expect(readFileSync(bin).subarray(0, 4).toString("hex")).toBe("28b52ffd");
    expect(run(["export-tar", src, `${base}/x.tar.bz2`]).stderr).toContain("bzip2 compression is not supported");
    expect(run(["export-tar", src, `${base}/x.tar`, "--format=lz4"]).stderr).toBe("Unknown format 'lz4' (uncompressed, gzip, zstd, xz).\n");
    expect(existsSync(`${base}/x.tar.bz2`)).toBe(false);

    const p = Bun.spawnSync([SPAWNCTL, "export-tar", src, "--format=gzip"], { stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(p.stderr.toString()).toMatch(/^Exported image '.*' \(gzip\): /);
    const entries = [...readTar(Bun.gunzipSync(new Uint8Array(p.stdout)))];
    expect(entries.find((e) => e.path === "usr/bin/suid-tool")?.mode).toBe(0o4755);

    const name = imgName("stdin");
    track(`${POOL}/${name}`);
    const i = Bun.spawnSync([SPAWNCTL, "import-tar", "--devices", "-", name], { stdin: p.stdout, stdout: "pipe", stderr: "pipe" });
    expect(i.stderr.toString()).toMatch(new RegExp(`^Imported image '${name}' from standard input: `));
    expect(compareManifests(manifest(srcPath), manifest(`${POOL}/${name}`))).toEqual([]);
    expect(run(["remove", name]).code).toBe(0);
    expect(run(["import-tar", "-"]).stderr).toBe("Importing from standard input needs a NAME for the new image.\n");
  });

  test("without an xz program: export says so clearly, import decodes in-process", () => {
    const env = { PATH: "/nonexistent" };
    const r = run(["export-tar", src, `${base}/noxz.tar.xz`], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`exporting image '${src}' to ${base}/noxz.tar.xz: xz compression needs the xz program, which is not installed on this host (apt-get install xz-utils); --format=zstd or --format=gzip work without it.\n`);
    expect(readdirSync(base).filter((n) => n.includes("noxz"))).toEqual([]);
  });
  needs("root and the xz command (xz-utils)", ok && !!Bun.which("xz"))("an archive made by xz imports without an xz program (decoded in-process)", () => {
    const env = { PATH: "/nonexistent" };
    const xz = `${base}/made-by-xz.tar.xz`;
    expect(run(["export-tar", src, xz]).code).toBe(0);
    importAndCompare(xz, "rt-noxz", env);
  });

  test("names: from the file, taken ones, --force, --read-only", () => {
    const name = imgName("byname");
    const file = `${base}/${name}.tar.zst`;
    expect(run(["export-tar", src, file]).code).toBe(0);
    track(`${POOL}/${name}`);
    expect(run(["import-tar", "--devices", file]).code).toBe(0);
    expect(existsSync(`${POOL}/${name}/etc/os-release`)).toBe(true);
    const again = run(["import-tar", "--devices", file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`importing ${file} as image '${name}': an image called '${name}' already exists (${POOL}/${name}); use --force to replace it.\n`);
    writeFileSync(`${POOL}/${name}/marker`, "old");
    const forced = run(["import-tar", "--devices", "--force", "--read-only", file]);
    expect(forced.code).toBe(0);
    expect(existsSync(`${POOL}/${name}/marker`)).toBe(false);
    expect(run(["show-image", name, "-P", "ReadOnly"]).stdout).toBe("yes\n");
    expect(run(["import-tar", "--devices", file, "bad_name!"]).stderr).toBe('Local name "bad_name!" is not a suitable machine name.\n');
    expect(run(["import-tar", "--devices", `${base}/missing.tar`, imgName("m")]).stderr).toContain("No such file or directory");
    expect(run(["export-tar", ".host", `${base}/h.tar`]).stderr).toContain("exporting the host's own root (.host) is not supported");
    expect(run(["remove", name]).code).toBe(0);

    const fs = imgName("fsro");
    track(`${POOL}/${fs}`);
    expect(run(["import-fs", "--read-only", rich, fs]).code).toBe(0);
    expect(run(["show-image", fs, "-P", "ReadOnly"]).stdout).toBe("yes\n");
    expect(run(["import-fs", rich, fs]).stderr).toContain("already exists");
    expect(run(["import-fs", `${rich}/etc/passwd`, imgName("x")]).stderr).toContain("Not a directory");
    expect(run(["remove", fs]).code).toBe(0);
  });
});

describe("hostile archives", () => {
  const outside = () => `${base}/outside`;
  const evilFile = `/etc/sctest-img-evil-${process.pid}`;
  const file = (path: string): TarWriteEntry => ({ path, type: "file", data: new TextEncoder().encode("evil\n"), mode: 0o644 });
  const cases: Array<{ name: string; entries: () => TarWriteEntry[]; why: string }> = [
    { name: "../x", entries: () => [{ path: ".", type: "dir" }, file("etc/ok"), file("../x")], why: 'its name "../x" contains ".."' },
    { name: "a/../../x", entries: () => [file("a/../../x")], why: 'contains ".."' },
    { name: "an absolute name", entries: () => [file(evilFile)], why: `its name "${evilFile}" is absolute` },
    { name: "a symlink to an absolute directory, then a file through it", entries: () => [{ path: "link", type: "symlink", linkname: outside() }, file("link/x")], why: "which points out of the tree" },
    { name: "a symlink climbing out with .., then a file through it", entries: () => [{ path: "etc", type: "dir" }, { path: "etc/up", type: "symlink", linkname: "../../../../../../../../../.." + outside() }, file("etc/up/x")], why: "leads above the root" },
    { name: "a hardlink to a host file", entries: () => [{ path: "passwd", type: "hardlink", linkname: "../../../../../../etc/passwd" }], why: 'contains ".."' },
    { name: "a device node", entries: () => [{ path: "dev", type: "dir" }, { path: "dev/sda", type: "block", devmajor: 8, devminor: 0, mode: 0o660 }], why: "device nodes are not allowed" },
  ];

  for (const c of cases) {
    test(`refused: ${c.name}; nothing left behind`, () => {
      mkdirSync(outside(), { recursive: true });
      const w = new TarWriter();
      for (const e of c.entries()) w.add(e);
      const tar = `${base}/hostile.tar`;
      writeFileSync(tar, w.finish());
      const name = imgName("hostile");
      track(`${POOL}/${name}`);
      const r = run(["import-tar", tar, name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("refusing the archive");
      expect(r.stderr).toContain(c.why);
      expect(existsSync(`${POOL}/${name}`)).toBe(false);
      expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl."))).toEqual([]);
      expect(readdirSync(outside())).toEqual([]);
      expect(existsSync(evilFile)).toBe(false);
      expect(existsSync(`${base}/x`)).toBe(false);
    });
  }

  test("device nodes are created when asked for (--devices)", () => {
    const w = new TarWriter();
    w.addDir("dev");
    w.addDevice("dev/null", "char", 1, 3, { mode: 0o666 });
    const tar = `${base}/dev.tar`;
    writeFileSync(tar, w.finish());
    const name = imgName("dev");
    track(`${POOL}/${name}`);
    expect(run(["import-tar", "--devices", tar, name]).code).toBe(0);
    const st = statSync(`${POOL}/${name}/dev/null`);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0x103);
    expect(run(["remove", name]).code).toBe(0);
  });

  test("corrupt and truncated archives fail with nothing left behind", () => {
    const good = readFileSync(`${base}/export.tar`);
    const cut = `${base}/cut.tar`;
    writeFileSync(cut, good.subarray(0, Math.floor(good.length / 2) + 100));
    const name = imgName("cut");
    const r = run(["import-tar", "--devices", cut, name]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("truncated archive");
    expect(existsSync(`${POOL}/${name}`)).toBe(false);
    const gz = `${base}/bad.tar.gz`;
    writeFileSync(gz, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(100, 0x55)]));
    const g = run(["import-tar", "--devices", gz, name]);
    expect(g.code).toBe(1);
    expect(g.stderr).toContain("(gzip)");
    expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl.") || n === name)).toEqual([]);
  });
});

describe("raw images", () => {
  test("import-raw / export-raw round trip, sparse; compressed; stdin; qcow2 refused", () => {
    // 64 MiB with three islands of data
    const disk = `${base}/disk.img`;
    const fd = openSync(disk, "w");
    for (const off of [0, 10 << 20, (64 << 20) - 4096]) writeSync(fd, Buffer.alloc(4096, off % 251 || 1), 0, 4096, off);
    closeSync(fd);
    const hash = sha256(disk);
    const name = imgName("raw");
    const target = `${POOL}/${name}.raw`;
    track(target);
    const r = run(["import-raw", disk, name]);
    expect(r.stderr).toBe(`Imported image '${name}' from ${disk}: 64M.\n`);
    expect(sha256(target)).toBe(hash);
    expect(statSync(target).blocks * 512).toBeLessThan(1 << 20); // holes stayed holes
    const l = run(["list-images", "--no-legend"]).stdout;
    expect(l).toMatch(new RegExp(`${name} +raw +no +\\d+(\\.\\d)?K `));
    expect(run(["show-image", name]).stdout).toContain(`Type=raw\nReadOnly=no\n`);
    expect(run(["show-image", name, "-P", "Limit"]).stdout).toBe(`${64 << 20}\n`);

    const out = `${base}/out.raw`;
    expect(run(["export-raw", name, out]).code).toBe(0);
    expect(sha256(out)).toBe(hash);
    expect(statSync(out).blocks * 512).toBeLessThan(1 << 20);
    for (const ext of ["gz", "zst"]) {
      const z = `${base}/out.raw.${ext}`;
      expect(run(["export-raw", name, z]).code).toBe(0);
      const back = imgName(`raw${ext}`);
      track(`${POOL}/${back}.raw`);
      expect(run(["import-raw", z, back]).code).toBe(0);
      expect(sha256(`${POOL}/${back}.raw`)).toBe(hash);
      expect(statSync(`${POOL}/${back}.raw`).blocks * 512).toBeLessThan(1 << 20);
      expect(run(["remove", back]).code).toBe(0);
    }
    const p = Bun.spawnSync([SPAWNCTL, "export-raw", name, "--format=gzip"], { stdout: "pipe", stderr: "pipe" });
    expect(createHash("sha256").update(Bun.gunzipSync(new Uint8Array(p.stdout))).digest("hex")).toBe(hash);
    const fromStdin = imgName("rawstdin");
    track(`${POOL}/${fromStdin}.raw`);
    const s = Bun.spawnSync([SPAWNCTL, "import-raw", "-", fromStdin], { stdin: p.stdout, stdout: "pipe", stderr: "pipe" });
    expect(s.stderr.toString()).toContain(`Imported image '${fromStdin}' from standard input`);
    expect(sha256(`${POOL}/${fromStdin}.raw`)).toBe(hash);

    const clone = imgName("rawclone");
    track(`${POOL}/${clone}.raw`);
    expect(run(["clone", name, clone]).code).toBe(0);
    expect(sha256(`${POOL}/${clone}.raw`)).toBe(hash);

    const qcow = `${base}/vm.qcow2`;
    writeFileSync(qcow, Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(1000)]));
    const q = run(["import-raw", qcow, imgName("qcow")]);
    expect(q.code).toBe(1);
    expect(q.stderr).toContain("is a qcow2 image, which spawnctl does not convert; convert it first (qemu-img convert -O raw");
    expect(run(["export-raw", src, `${base}/dir.raw`]).stderr).toContain("it is a directory tree; use export-tar");
    expect(run(["export-tar", name, `${base}/raw.tar`]).stderr).toContain("it is a raw disk image; use export-raw");
    expect(run(["remove", name, fromStdin, clone]).code).toBe(0);
  });
});

describe("pull-tar and pull-raw", () => {
  let pub = "";
  let archive = "";
  const archiveName = () => `${imgName("pulled")}.tar.gz`;

  function publish(): void {
    if (pub) return;
    pub = `${base}/pub`;
    mkdirSync(pub);
    archive = `${pub}/${archiveName()}`;
    expect(run(["export-tar", src, archive]).code).toBe(0);
    writeFileSync(`${pub}/${imgName("pulled")}.nspawn`, "[Exec]\nBoot=yes\n");
    const sums = Bun.spawnSync(["sha256sum", archiveName(), `${imgName("pulled")}.nspawn`], { cwd: pub }).stdout.toString();
    writeFileSync(`${pub}/SHA256SUMS`, sums);
  }

  test("file:// with --verify=checksum; the name from the URL; the .nspawn beside it comes along", () => {
    publish();
    const name = imgName("pulled");
    track(`${POOL}/${name}`, `${POOL}/${name}.nspawn`);
    const r = run(["pull-tar", "--devices", `file://${archive}`, "--verify=checksum"]);
    expect(r.stderr).toContain(`SHA-256 checksum of file://${archive} is valid.\n`);
    expect(r.stderr).toContain(`Installed ${POOL}/${name}.nspawn from file://${pub}/${name}.nspawn.\n`);
    expect(r.code).toBe(0);
    expect(compareManifests(manifest(srcPath), manifest(`${POOL}/${name}`))).toEqual([]);
    expect(readFileSync(`${POOL}/${name}.nspawn`, "utf8")).toBe("[Exec]\nBoot=yes\n");
    expect(run(["remove", name]).code).toBe(0);
    expect(existsSync(`${POOL}/${name}.nspawn`)).toBe(false);
  });

  test("a checksum that does not match, or no SHA256SUMS: refused, nothing left behind", () => {
    publish();
    const bad = `${base}/badpub`;
    mkdirSync(bad);
    writeFileSync(`${bad}/img.tar.gz`, readFileSync(archive));
    writeFileSync(`${bad}/SHA256SUMS`, `${"0".repeat(64)} *img.tar.gz\n`);
    const name = imgName("tampered");
    const r = run(["pull-tar", "--devices", `file://${bad}/img.tar.gz`, name, "--verify=checksum"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`DOWNLOAD INVALID: the SHA-256 of img.tar.gz (${sha256(archive)}) is not what file://${bad}/SHA256SUMS lists`);
    expect(existsSync(`${POOL}/${name}`)).toBe(false);
    expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl."))).toEqual([]);

    const nosums = `${base}/nosums`;
    mkdirSync(nosums);
    writeFileSync(`${nosums}/img.tar.gz`, readFileSync(archive));
    const n = run(["pull-tar", "--devices", `file://${nosums}/img.tar.gz`, name, "--verify=checksum"]);
    expect(n.stderr).toContain("--verify=checksum needs file://");
    expect(n.stderr).toContain("use --verify=no to skip verification");
    // the SUSE style: FILE.sha256 instead of SHA256SUMS
    writeFileSync(`${nosums}/img.tar.gz.sha256`, `${sha256(archive)}  img.tar.gz\n`);
    track(`${POOL}/${name}`);
    expect(run(["pull-tar", "--devices", `file://${nosums}/img.tar.gz`, name, "--verify=checksum"]).code).toBe(0);
    expect(run(["remove", name]).code).toBe(0);
    // --verify=no needs nothing beside the file
    const plain = imgName("noverify");
    track(`${POOL}/${plain}`);
    expect(run(["pull-tar", "--devices", `file://${bad}/img.tar.gz`, plain, "--verify=no"]).code).toBe(0);
    expect(run(["remove", plain]).code).toBe(0);
    expect(run(["pull-tar", "--devices", "ftp://example.org/x.tar", name]).stderr).toContain('has the scheme "ftp"; use http, https or file.');
    expect(run(["pull-tar", "--devices", `file://${base}/none.tar`, name, "--verify=no"]).stderr).toContain("No such file or directory");
  });

  gpgTest("--verify=signature: SHA256SUMS.gpg checked against the keyring (SPAWNCTL_IMPORT_KEYRING)", () => {
    publish();
    const gpg = (home: string, ...args: string[]) => {
      const p = Bun.spawnSync(["gpg", "--batch", "--quiet", "--no-tty", ...args], { env: { ...process.env, GNUPGHOME: home }, cwd: pub });
      if (p.exitCode !== 0) throw new Error(`gpg ${args.join(" ")}: ${p.stderr.toString()}`);
      return p.stdout;
    };
    const home = `${base}/gnupg`;
    const other = `${base}/gnupg2`;
    for (const h of [home, other]) {
      mkdirSync(h, { mode: 0o700 });
      gpg(h, "--passphrase", "", "--quick-gen-key", `spawnctl test ${h.slice(-1)} <test@spawnctl.invalid>`, "ed25519", "sign", "never");
    }
    const keyring = `${base}/import-pubring.gpg`;
    writeFileSync(keyring, gpg(home, "--export"));
    const env = { SPAWNCTL_IMPORT_KEYRING: keyring };
    const url = `file://${archive}`;
    const name = imgName("signed");
    track(`${POOL}/${name}`, `${POOL}/${name}.nspawn`);

    // no signature published yet
    const missing = run(["pull-tar", "--devices", url, name, "--verify=signature"], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`--verify=signature needs file://${pub}/SHA256SUMS.gpg, which does not exist`);

    // signed by a key that is not in the keyring
    gpg(other, "--yes", "--detach-sign", "--output", "SHA256SUMS.gpg", "SHA256SUMS");
    const wrong = run(["pull-tar", "--devices", url, name, "--verify=signature"], { env });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("DOWNLOAD INVALID: verifying");
    expect(wrong.stderr).toContain("no good signature from the keyring");
    expect(existsSync(`${POOL}/${name}`)).toBe(false);

    // signed by the right key
    gpg(home, "--yes", "--detach-sign", "--output", "SHA256SUMS.gpg", "SHA256SUMS");
    const good = run(["pull-tar", "--devices", url, name], { env }); // signature is the default
    expect(good.stderr).toContain(`Signature of file://${pub}/SHA256SUMS is good (key `);
    expect(good.code).toBe(0);
    expect(compareManifests(manifest(srcPath), manifest(`${POOL}/${name}`))).toEqual([]);
    expect(run(["remove", name]).code).toBe(0);

    // SHA256SUMS changed after signing
    const sums = readFileSync(`${pub}/SHA256SUMS`);
    writeFileSync(`${pub}/SHA256SUMS`, Buffer.concat([sums, Buffer.from(`${"1".repeat(64)} *other\n`)]));
    const tampered = run(["pull-tar", "--devices", url, name], { env });
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain("BAD signature");
    writeFileSync(`${pub}/SHA256SUMS`, sums);

    // no keyring at all
    const nokey = run(["pull-tar", "--devices", url, name], { env: { SPAWNCTL_IMPORT_KEYRING: `${base}/nonexistent.gpg` } });
    expect(nokey.stderr).toContain("does not exist");
    expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl.") || n.startsWith(name))).toEqual([]);
  });

  test("over HTTP from a server on 127.0.0.1: pull-tar and pull-raw, 404s", async () => {
    publish();
    const rawFile = `${pub}/disk.raw.zst`;
    writeFileSync(rawFile, Bun.zstdCompressSync(Buffer.alloc(8 << 20, 3)));
    writeFileSync(`${pub}/SHA256SUMS`, Bun.spawnSync(["sha256sum", archiveName(), `${imgName("pulled")}.nspawn`, "disk.raw.zst"], { cwd: pub }).stdout);
    const requests: string[] = [];
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const path = decodeURIComponent(new URL(req.url).pathname);
        requests.push(path);
        const f = `${pub}${path}`;
        return existsSync(f) && statSync(f).isFile() ? new Response(Bun.file(f)) : new Response("not here", { status: 404 });
      },
    });
    try {
      const url = `http://127.0.0.1:${server.port}/${archiveName()}`;
      const name = imgName("http");
      track(`${POOL}/${name}`, `${POOL}/${name}.nspawn`);
      const r = await runAsync(["pull-tar", "--devices", url, name, "--verify=checksum"]);
      expect(r.stderr).toContain(`SHA-256 checksum of ${url} is valid.`);
      expect(r.code).toBe(0);
      expect(requests).toContain("/SHA256SUMS");
      expect(requests).toContain(`/${archiveName()}`);
      expect(compareManifests(manifest(srcPath), manifest(`${POOL}/${name}`))).toEqual([]);
      expect(readFileSync(`${POOL}/${name}.nspawn`, "utf8")).toBe("[Exec]\nBoot=yes\n");

      const raw = imgName("httpraw");
      track(`${POOL}/${raw}.raw`);
      const rr = await runAsync(["pull-raw", `http://127.0.0.1:${server.port}/disk.raw.zst`, raw, "--verify=checksum"]);
      expect(rr.code).toBe(0);
      expect(createHash("sha256").update(readFileSync(`${POOL}/${raw}.raw`)).digest("hex")).toBe(createHash("sha256").update(Buffer.alloc(8 << 20, 3)).digest("hex"));

      const miss = await runAsync(["pull-tar", "--devices", `http://127.0.0.1:${server.port}/nothing.tar`, imgName("miss"), "--verify=no"]);
      expect(miss.code).toBe(1);
      expect(miss.stderr).toContain(`downloading http://127.0.0.1:${server.port}/nothing.tar: HTTP 404`);
      expect(run(["remove", name, raw]).code).toBe(0);
    } finally {
      server.stop(true);
    }
    expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl."))).toEqual([]);
  });
});

describe("interrupted work leaves nothing behind", () => {
  test("SIGTERM during a slow download", async () => {
    let sent = 0;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch() {
        // a tar that trickles in, 64 KiB every 50 ms
        const stream = new ReadableStream({
          async pull(ctl) {
            if (sent++ > 400) return ctl.close();
            await Bun.sleep(50);
            ctl.enqueue(new Uint8Array(65536));
          },
        });
        return new Response(stream);
      },
    });
    try {
      const name = imgName("slow");
      let pid = 0;
      const done = runAsync(["pull-tar", "--devices", `http://127.0.0.1:${server.port}/slow.tar`, name, "--verify=no"], { onStart: (p) => (pid = p) });
      // wait for the download to land in the pool under its temporary name
      for (let i = 0; i < 250 && !readdirSync(POOL).some((n) => n.startsWith(`.#spawnctl.${pid}.`)); i++) await Bun.sleep(20);
      expect(readdirSync(POOL).some((n) => n.startsWith(`.#spawnctl.${pid}.`))).toBe(true);
      process.kill(pid, "SIGTERM");
      const r = await done;
      expect(r.stderr).toContain(`pulling http://127.0.0.1:${server.port}/slow.tar as image '${name}': cancelled by SIGTERM`);
      expect(r.code).toBe(143);
      expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl.") || n.startsWith(name))).toEqual([]);
    } finally {
      server.stop(true);
    }
  });

  test("SIGINT during a big import-tar", async () => {
    // 2400 files of 256 KiB: a 600 MiB archive that takes a while to extract
    const tar = `${base}/big.tar`;
    const fd = openSync(tar, "w");
    const w = new TarWriter((c) => void writeSync(fd, c));
    const data = new Uint8Array(256 << 10).fill(0x5a);
    w.addDir("data");
    for (let i = 0; i < 2400; i++) w.addFile(`data/f${i}`, data);
    w.finish();
    closeSync(fd);
    const name = imgName("big");
    track(`${POOL}/${name}`);
    let pid = 0;
    const done = runAsync(["import-tar", tar, name], { onStart: (p) => (pid = p) });
    for (let i = 0; i < 500 && !readdirSync(POOL).some((n) => n.startsWith(`.#spawnctl.${pid}.`)); i++) await Bun.sleep(2);
    expect(readdirSync(POOL).some((n) => n.startsWith(`.#spawnctl.${pid}.`))).toBe(true);
    process.kill(pid, "SIGINT");
    const r = await done;
    expect(r.stderr).toContain(`importing ${tar} as image '${name}': cancelled by SIGINT`);
    expect(r.code).toBe(130);
    expect(readdirSync(POOL).filter((n) => n.startsWith(".#spawnctl.") || n.startsWith(name))).toEqual([]);
    removePath(tar);
  });
});

