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
