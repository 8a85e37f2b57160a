// spawnctl bootstrap debian against a local file:// mirror built here from
// real bookworm .debs and signed with a throw-away key: the whole pipeline
// without the network, tampering refused, a bundle round trip, and nothing
// left behind by a failure.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { IS_ROOT, leftovers, needs, removeTree, run, tempDir } from "../helpers.ts";
import { defaultMirror } from "../../src/bootstrap/mirror.ts";
import { readDeb } from "../../src/archive/deb.ts";
import { readTar } from "../../src/archive/tar.ts";

const haveGpg = Bun.spawnSync(["sh", "-c", "command -v gpg"]).exitCode === 0;
const test = needs("root, gpg and a Debian mirror for the fixture", IS_ROOT && haveGpg && !!defaultMirror("bookworm"));
const CACHE = "/var/cache/spawnctl-test";
let base = "";
let mirror = "";
let keyring = "";
let gnupg = "";
const before = IS_ROOT ? leftovers() : [];

function gpg(args: string[]): void {
  const p = Bun.spawnSync(["gpg", "--batch", "--homedir", gnupg, ...args], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`gpg ${args.join(" ")}: ${p.stderr}`);
}

/** A signed mirror for `suite` from the .debs in `debs`. */
function buildMirror(root: string, debs: string[], signKey: string): void {
  mkdirSync(`${root}/pool/main`, { recursive: true });
  const stanzas: string[] = [];
  for (const d of debs) {
    const name = d.split("/").pop()!;
    copyFileSync(d, `${root}/pool/main/${name}`);
    const bytes = readFileSync(d);
    const control = new TextDecoder().decode(readDeb(bytes, { name }).control.get("control")!).trimEnd();
    stanzas.push(`${control}\nFilename: pool/main/${name}\nSize: ${bytes.length}\nSHA256: ${createHash("sha256").update(bytes).digest("hex")}\n`);
  }
  const packages = Buffer.from(stanzas.join("\n"));
  const dir = `${root}/dists/bookworm/main/binary-amd64`;
  mkdirSync(dir, { recursive: true });
  const gz = gzipSync(packages);
  writeFileSync(`${dir}/Packages.gz`, gz);
  const line = (b: Uint8Array, p: string) => ` ${createHash("sha256").update(b).digest("hex")} ${b.length} ${p}`;
  const release = [
    "Origin: spawnctl-test", "Suite: stable", "Codename: bookworm", "Architectures: amd64", "Components: main",
    `Date: ${new Date().toUTCString()}`, "SHA256:", line(packages, "main/binary-amd64/Packages"), line(gz, "main/binary-amd64/Packages.gz"), "",
  ].join("\n");
  writeFileSync(`${root}/dists/bookworm/Release`, release);
  gpg(["--yes", "--local-user", signKey, "--clearsign", "--output", `${root}/dists/bookworm/InRelease`, `${root}/dists/bookworm/Release`]);
}

beforeAll(() => {
  if (!(IS_ROOT && haveGpg && defaultMirror("bookworm"))) return;
  base = tempDir();
  // the fixture's .debs: bookworm's Essential set, fetched once (this is the only network use)
  const bundle = `${CACHE}/bookworm-essential.bundle`;
  if (!existsSync(bundle)) {
    mkdirSync(CACHE, { recursive: true });
    const r = run(["bootstrap", "debian", "bookworm", "--variant=essential", "--download-only", `--bundle=${bundle}`], { timeout: 300_000 });
    if (r.code !== 0) throw new Error(`fetching the fixture .debs: ${r.stderr}`);
  }
  const debs = `${base}/debs`;
  mkdirSync(debs);
  for (const e of readTar(readFileSync(bundle))) if (e.type === "file" && e.path.endsWith(".deb")) writeFileSync(`${debs}/${e.path.split("/").pop()}`, e.data);
  gnupg = `${base}/gnupg`;
  mkdirSync(gnupg, { mode: 0o700 });
  gpg(["--passphrase", "", "--quick-gen-key", "spawnctl test archive <test@invalid>", "rsa3072", "sign", "1d"]);
  gpg(["--passphrase", "", "--quick-gen-key", "someone else <other@invalid>", "ed25519", "sign", "1d"]);
  keyring = `${base}/archive.gpg`;
  gpg(["--output", keyring, "--export", "spawnctl test archive"]);
  mirror = `${base}/mirror`;
  buildMirror(mirror, readdirSync(debs).map((f) => `${debs}/${f}`), "spawnctl test archive");
}, 600_000);

afterAll(() => {
  if (!base) return;
  Bun.spawnSync(["gpgconf", "--homedir", gnupg, "--kill", "all"]);
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

const boot = (dest: string, ...opts: string[]) =>
  run(["bootstrap", "debian", "bookworm", dest, `--mirror=file://${mirror}`, `--keyring=${keyring}`, "--variant=essential", `--cache-dir=${base}/cache`, ...opts], { timeout: 300_000 });

describe("bootstrap from a local mirror", () => {
  test("a verified essential system that dpkg considers complete, with root password and hostname", () => {
    const dest = `${base}/root1`;
    const r = boot(dest, "--hostname=fixture", "--root-password=secret");
    expect(r.stderr).toContain("Bootstrapped debian bookworm");
    expect(r.code).toBe(0);
    expect(readFileSync(`${dest}/etc/hostname`, "utf8")).toBe("fixture\n");
    expect(readFileSync(`${dest}/etc/machine-id`, "utf8")).toBe("");
    // the essential set has no shadow file: the hash goes into /etc/passwd
    const accounts = existsSync(`${dest}/etc/shadow`) ? `${dest}/etc/shadow` : `${dest}/etc/passwd`;
    expect(readFileSync(accounts, "utf8")).toMatch(/^root:\$6\$[^:]+:/m);
    expect(existsSync(`${dest}/usr/sbin/policy-rc.d`)).toBe(false);
    const audit = run(["run", "-q", "-P", "--settings=no", "-D", dest, "/bin/sh", "-c", "dpkg --audit; echo audit=$?; dpkg -l | grep -c ^ii"]);
    expect(audit.stdout).toMatch(/^audit=0\n\d+\n$/);
    expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
  });

  test("a tampered package is refused by its checksum, naming it, and nothing is left", () => {
    const t = `${base}/mirror-tampered`;
    Bun.spawnSync(["cp", "-a", mirror, t]);
    const victim = readdirSync(`${t}/pool/main`).find((f) => f.startsWith("dash_"))!;
    const bytes = readFileSync(`${t}/pool/main/${victim}`);
    bytes[bytes.length - 10]! ^= 0xff;
    writeFileSync(`${t}/pool/main/${victim}`, bytes);
    const r = run(["bootstrap", "debian", "bookworm", `${base}/root2`, `--mirror=file://${t}`, `--keyring=${keyring}`, "--variant=essential", `--cache-dir=${base}/cache2`], { timeout: 300_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(victim);
    expect(r.stderr).toMatch(/SHA-256|sha256/i);
    expect(existsSync(`${base}/root2`)).toBe(false);
    expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
  });

  test("a Release signed by a key outside the keyring, or altered after signing, is refused", () => {
    const t = `${base}/mirror-wrongkey`;
    Bun.spawnSync(["cp", "-a", mirror, t]);
    gpg(["--yes", "--local-user", "someone else", "--clearsign", "--output", `${t}/dists/bookworm/InRelease`, `${t}/dists/bookworm/Release`]);
    const r = run(["bootstrap", "debian", "bookworm", `${base}/root3`, `--mirror=file://${t}`, `--keyring=${keyring}`], { timeout: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/signature/i);
    const u = `${base}/mirror-altered`;
    Bun.spawnSync(["cp", "-a", mirror, u]);
    const inrel = readFileSync(`${u}/dists/bookworm/InRelease`, "utf8").replace("Origin: spawnctl-test", "Origin: spawnctl-evil");
    writeFileSync(`${u}/dists/bookworm/InRelease`, inrel);
    const a = run(["bootstrap", "debian", "bookworm", `${base}/root3`, `--mirror=file://${u}`, `--keyring=${keyring}`], { timeout: 60_000 });
    expect(a.code).toBe(1);
    expect(existsSync(`${base}/root3`)).toBe(false);
  });

  test("--no-verify is loud", () => {
    const r = run(["bootstrap", "debian", "bookworm", "--download-only", `--bundle=${base}/nv.bundle`, `--mirror=file://${mirror}`, "--no-verify", "--variant=essential", `--cache-dir=${base}/cache`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("WARNING: --no-verify");
  });

  test("a bundle made with --download-only installs with no network at all", () => {
    const bundle = `${base}/offline.bundle`;
    const d = boot("", "--download-only", `--bundle=${bundle}`);
    expect(d.code).toBe(0);
    expect(existsSync(bundle)).toBe(true);
    // no network namespace access: a fresh, empty netns
    const p = Bun.spawnSync(["unshare", "-n", `${import.meta.dir}/../../dist/spawnctl`, "bootstrap", "debian", `--from-bundle=${bundle}`, `--keyring=${keyring}`, `${base}/offline`, `--cache-dir=${base}/cache-offline`], { stderr: "pipe", timeout: 300_000 });
    expect(p.stderr.toString()).toContain("Bootstrapped debian bookworm");
    expect(p.exitCode).toBe(0);
    expect(existsSync(`${base}/offline/usr/bin/dpkg`)).toBe(true);
  });

  test("DEST must be empty; errors name the option", () => {
    mkdirSync(`${base}/full`);
    writeFileSync(`${base}/full/x`, "");
    expect(boot(`${base}/full`).stderr).toContain("exists and is not empty");
    expect(run(["bootstrap", "debian", "bookworm", `${base}/x`, "--variant=huge"]).stderr).toContain("Unknown --variant=huge");
    expect(run(["bootstrap", "debian", "bookworm", `${base}/x`, "--merged-usr=perhaps"]).stderr).toContain("Failed to parse --merged-usr= argument perhaps");
    expect(run(["bootstrap", "plan9", "x"]).stderr).toContain("Unknown distribution 'plan9'");
  });
});

// Each refusal: exit 1, the message, and nothing fetched or written: no DEST,
// no temporary tree beside it, no package cache.
function refused(r: { code: number; stderr: string }, dest: string, cache: string, message: string): void {
  expect(r.stderr).toContain(message);
  expect(r.stderr).not.toContain("Downloading");
  expect(r.code).toBe(1);
  expect(existsSync(dest)).toBe(false);
  expect(existsSync(cache)).toBe(false);
  expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
}

describe("checks before anything is fetched or written", () => {
  // the fixture's bundle (bookworm, amd64, essential, signed by Debian), read only
  const bundle = `${CACHE}/bookworm-essential.bundle`;
  const fromBundle = (suiteAndDest: string[], ...opts: string[]) =>
    run(["bootstrap", "debian", ...suiteAndDest, `--from-bundle=${bundle}`, `--cache-dir=${base}/cache-refused`, ...opts], { netns: true, timeout: 120_000 });

  test("a bundle that holds another suite, architecture, variant or distribution is refused, naming both", () => {
    const dest = `${base}/mismatch`;
    const cache = `${base}/cache-refused`;
    const holds = `--from-bundle=${bundle} holds bookworm (amd64, essential), not`;
    refused(fromBundle(["trixie", dest]), dest, cache, `${holds} trixie.`);
    refused(fromBundle(["bookworm", dest], "--arch=arm64"), dest, cache, `${holds} bookworm (arm64).`);
    refused(fromBundle([dest], "--variant=minbase"), dest, cache, `${holds} bookworm (minbase).`);
    refused(fromBundle(["bookworm", dest], "--components=main,contrib"), dest, cache, `--from-bundle=${bundle} holds bookworm main (amd64, essential), not bookworm main,contrib.`);
    const u = run(["bootstrap", "ubuntu", "noble", dest, `--from-bundle=${bundle}`, `--cache-dir=${cache}`], { netns: true, timeout: 120_000 });
    refused(u, dest, cache, `--from-bundle=${bundle} holds debian bookworm (amd64, essential), not ubuntu noble.`);
  });

  test("--include must be in the bundle, --exclude known to it, and the set they make must be in it", () => {
    const dest = `${base}/mismatch`;
    const cache = `${base}/cache-refused`;
    refused(fromBundle(["bookworm", dest], "--include=nosuchpackage"), dest, cache, `--include=nosuchpackage: ${bundle} has no package nosuchpackage.`);
    // in bookworm's index, but not in this bundle
    refused(fromBundle(["bookworm", dest], "--include=systemd"), dest, cache, `--include=systemd: ${bundle} has no package systemd.`);
    refused(fromBundle(["bookworm", dest], "--exclude=nosuchpackage"), dest, cache, `--exclude=nosuchpackage: no package nosuchpackage in the bookworm main (amd64) index of ${bundle}.`);
    // without mawk, awk is gawk, which the bundle does not have
    refused(fromBundle(["bookworm", dest], "--exclude=mawk"), dest, cache, `--from-bundle=${bundle} has no package gawk`);
    expect(fromBundle(["bookworm", dest], `--mirror=file://${mirror}`).stderr).toContain("--mirror= and --from-bundle= may not be combined");
  });

  test("a non-empty DEST is refused before the bundle is even opened; an empty one is kept as it was", () => {
    const full = `${base}/full-bundle`;
    const cache = `${base}/cache-refused`;
    mkdirSync(full);
    writeFileSync(`${full}/keep`, "mine");
    const r = fromBundle(["bookworm", full]);
    expect(r.stderr).toBe(`${full} exists and is not empty.\n`);
    expect(r.code).toBe(1);
    expect(readdirSync(full)).toEqual(["keep"]);
    expect(existsSync(cache)).toBe(false);
    // an empty DEST stays as it is after a refusal
    const empty = `${base}/empty-bundle`;
    mkdirSync(empty);
    const t = fromBundle(["trixie", empty]);
    expect(t.stderr).toContain("not trixie.");
    expect(t.code).toBe(1);
    expect(readdirSync(empty)).toEqual([]);
    expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
  });

  test("from a mirror: an unknown suite names the dists path, unknown packages, architectures and components name the index", () => {
    const dest = `${base}/mismatch`;
    const cache = `${base}/cache-refused`;
    const mirrorRun = (suite: string, ...opts: string[]) =>
      run(["bootstrap", "debian", suite, dest, `--mirror=file://${mirror}`, `--keyring=${keyring}`, `--cache-dir=${cache}`, ...opts], { timeout: 120_000 });
    refused(mirrorRun("trixie"), dest, cache, `Unknown suite trixie: the mirror has no ${mirror}/dists/trixie/InRelease.`);
    refused(mirrorRun("bookworm", "--variant=essential", "--include=bash,nosuchpackage"), dest, cache, "--include=nosuchpackage: no package nosuchpackage in bookworm main (amd64).");
    refused(mirrorRun("bookworm", "--variant=essential", "--exclude=nosuchpackage"), dest, cache, "--exclude=nosuchpackage: no package nosuchpackage in bookworm main (amd64).");
    refused(mirrorRun("bookworm", "--arch=arm64"), dest, cache, `--arch=arm64: the mirror's ${mirror}/dists/bookworm/InRelease lists no architecture arm64 (it lists amd64).`);
    refused(mirrorRun("bookworm", "--components=main,contrib"), dest, cache, `--components=main,contrib: the mirror's ${mirror}/dists/bookworm/InRelease lists no component contrib (it lists main).`);
    // and the same without a DEST for --download-only: no bundle file is written
    const d = run(["bootstrap", "debian", "trixie", "--download-only", `--bundle=${base}/never.bundle`, `--mirror=file://${mirror}`, `--keyring=${keyring}`, `--cache-dir=${cache}`]);
    refused(d, dest, cache, "Unknown suite trixie");
    expect(existsSync(`${base}/never.bundle`)).toBe(false);
  });
});
