// make test-release: `make release` twice, byte for byte; what each variant
// needs of its host; the .xz files as busybox unpacks them; and the x64 and
// arm64 binaries under qemu user emulation (the oldest CPU the x64 one
// supports, and a CPU it does not). Slow: two full releases.
// SKIP_BUILD=1 checks the release already in build/release-check/.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { readTar } from "../../src/archive/tar.ts";
import { checkBinary } from "../../.ci/check.ts";
import { readElf } from "../../.ci/elf.ts";
import { ROOT, busyboxPath, makeBusyboxTree, rootTest as test, tempDir } from "../helpers.ts";

const version = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).version as string;
const A = `${ROOT}/build/release-check/a`;
const B = `${ROOT}/build/release-check/b`;
const VARIANTS = ["linux-x64", "linux-arm64", "linux-x64-musl", "linux-arm64-musl"];
const art = (v: string, dir = A) => `${dir}/spawnctl-${version}-${v}`;
let work = "";
let tree = "";

function release(dir: string): void {
  const p = Bun.spawnSync([process.execPath, `${ROOT}/.ci/release.ts`], {
    cwd: ROOT,
    env: { ...process.env, RELEASE_DIR: dir },
    stdout: "inherit",
    stderr: "inherit",
    timeout: 1_500_000,
  });
  if (p.exitCode !== 0) throw new Error(`make release into ${dir} failed (exit ${p.exitCode})`);
}

function sh(cmd: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env }, cwd: opts.cwd, timeout: 300_000 });
  return { code: p.exitCode ?? -1, signal: p.signalCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

beforeAll(() => {
  if (process.env.SKIP_BUILD !== "1") {
    rmSync(`${ROOT}/build/release-check`, { recursive: true, force: true });
    release(A);
    release(B);
  }
  work = tempDir("spawnctl-release-");
  tree = makeBusyboxTree(`${work}/tree`);
}, 3_000_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("make release", () => {
  test("writes the four variants, each with its .xz, the man pages, the completions, notes and SHA256SUMS, which verify", () => {
    for (const v of VARIANTS) {
      expect(existsSync(art(v))).toBe(true);
      expect(existsSync(`${art(v)}.xz`)).toBe(true);
    }
    expect(readdirSync(`${A}/man`).sort()).toEqual(["spawnctl-bootstrap.1", "spawnctl-machines.1", "spawnctl-run.1", "spawnctl.1"]);
    expect(readdirSync(`${A}/completion`).sort()).toEqual(["_spawnctl", "spawnctl.bash", "spawnctl.fish"]);
    const sums = readFileSync(`${A}/SHA256SUMS`, "utf8");
    for (const v of VARIANTS) expect(sums).toContain(`  spawnctl-${version}-${v}.xz\n`);
    const c = sh(["sha256sum", "--strict", "-c", "SHA256SUMS"], { cwd: A });
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const notes = readFileSync(`${A}/RELEASE-NOTES.md`, "utf8");
    for (const pkg of ["@oven/bun-linux-x64@", "@oven/bun-linux-aarch64@", "@oven/bun-linux-x64-musl@", "@oven/bun-linux-aarch64-musl@"]) expect(notes).toContain(pkg);
    expect(notes).toMatch(/npm integrity `sha512-/);
  });

  test("two builds of the same tree are byte for byte the same", () => {
    const list = (d: string) => readdirSync(d, { recursive: true }).map(String).sort();
    expect(list(B)).toEqual(list(A));
    expect(readFileSync(`${B}/SHA256SUMS`, "utf8")).toBe(readFileSync(`${A}/SHA256SUMS`, "utf8"));
    for (const v of VARIANTS) expect(Buffer.compare(readFileSync(art(v, B)), readFileSync(art(v)))).toBe(0);
    // and nothing of the build machine is in them
    for (const v of VARIANTS) expect(readFileSync(art(v)).includes(Buffer.from(ROOT))).toBe(false);
  });

  test("busybox's unxz unpacks each .xz to its binary", () => {
    const bb = busyboxPath()!;
    for (const v of VARIANTS) {
      const out = `${work}/unxz-${v}`;
      const p = Bun.spawnSync(["/bin/sh", "-c", `"${bb}" unxz -c "$1" > "$2"`, "sh", `${art(v)}.xz`, out], { stderr: "pipe" });
      expect(p.stderr.toString()).toBe("");
      expect(Buffer.compare(readFileSync(out), readFileSync(art(v)))).toBe(0);
      rmSync(out);
    }
  });

  test("glibc variants need at most GLIBC_2.17, musl variants no glibc, and each embeds static helpers", () => {
    for (const v of VARIANTS) {
      const arch = v.includes("arm64") ? "arm64" : "x64";
      const musl = v.endsWith("-musl");
      const r = checkBinary(art(v), `${ROOT}/build/release/stage/${v}/build`, arch, musl);
      expect(r.problems).toEqual([]);
      const f = readElf(art(v));
      if (musl) {
        expect(r.glibc).toBeUndefined();
        expect(f.interp).toBe(arch === "x64" ? "/lib/ld-musl-x86_64.so.1" : "/lib/ld-musl-aarch64.so.1");
        expect(r.parts[0]!.facts.needed).toEqual(["libc.so"]);
      } else {
        expect(r.glibc).toBe("2.17");
        expect(f.interp).toBe(arch === "x64" ? "/lib64/ld-linux-x86-64.so.2" : "/lib/ld-linux-aarch64.so.1");
      }
    }
  });
});

/**
 * A signed file:// mirror with one Essential package, for both CPUs: what
 * `bootstrap --download-only` reads (InRelease checked against a throw-away
 * RSA key, Packages.xz, the .deb's SHA-256), all of it TypeScript in the
 * binary. (qemu-user has no openat2, so nothing that writes into a tree.)
 */
function makeMirror(dir: string): { mirror: string; keyring: string } {
  const gnupg = `${dir}/gnupg`;
  mkdirSync(gnupg, { recursive: true, mode: 0o700 });
  const gpg = (...args: string[]) => expect(sh(["gpg", "--batch", "--homedir", gnupg, ...args]).code).toBe(0);
  const pkg = `${dir}/pkg`;
  mkdirSync(`${pkg}/DEBIAN`, { recursive: true });
  mkdirSync(`${pkg}/usr/share/smoke`, { recursive: true });
  const control = "Package: smoke-base\nVersion: 1.0\nArchitecture: all\nEssential: yes\nPriority: required\nMaintainer: spawnctl test <test@invalid>\nDescription: smoke test package\n";
  writeFileSync(`${pkg}/DEBIAN/control`, control);
  writeFileSync(`${pkg}/usr/share/smoke/hello`, "hello\n");
  const mirror = `${dir}/mirror`;
  mkdirSync(`${mirror}/pool/main`, { recursive: true });
  const deb = `${mirror}/pool/main/smoke-base_1.0_all.deb`;
  expect(sh(["dpkg-deb", "-Zxz", "--build", pkg, deb]).code).toBe(0);
  const debBytes = readFileSync(deb);
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  const stanza = `${control}Filename: pool/main/smoke-base_1.0_all.deb\nSize: ${debBytes.length}\nSHA256: ${sha(debBytes)}\n`;
  const lines: string[] = [];
  for (const arch of ["amd64", "arm64"]) {
    const d = `${mirror}/dists/bookworm/main/binary-${arch}`;
    mkdirSync(d, { recursive: true });
    writeFileSync(`${d}/Packages`, stanza);
    expect(sh(["xz", "-f", `${d}/Packages`]).code).toBe(0);
    const xz = readFileSync(`${d}/Packages.xz`);
    lines.push(` ${sha(xz)} ${xz.length} main/binary-${arch}/Packages.xz`);
  }
  writeFileSync(`${mirror}/dists/bookworm/Release`, ["Origin: spawnctl-test", "Suite: stable", "Codename: bookworm", "Architectures: amd64 arm64", "Components: main", `Date: ${new Date().toUTCString()}`, "SHA256:", ...lines, ""].join("\n"));
  gpg("--passphrase", "", "--quick-gen-key", "spawnctl smoke archive <test@invalid>", "rsa3072", "sign", "1d");
  gpg("--yes", "--clearsign", "--output", `${mirror}/dists/bookworm/InRelease`, `${mirror}/dists/bookworm/Release`);
  const keyring = `${dir}/archive.gpg`;
  gpg("--output", keyring, "--export", "spawnctl smoke archive");
  Bun.spawnSync(["gpgconf", "--homedir", gnupg, "--kill", "all"]);
  return { mirror, keyring };
}

/** The smoke test: the commands the issue names, and a bootstrap index read and checked in TypeScript. */
function smoke(qemu: string[], bin: string, debArch: string): void {
  const q = (...args: string[]) => sh([...qemu, bin, ...args]);
  const v = q("--version");
  expect(v.stderr).toBe("");
  expect(v.stdout).toContain(`spawnctl ${version}`);
  const h = q("run", "--help");
  expect(h.code).toBe(0);
  expect(h.stdout).toContain("--directory");
  const plan = q("run", "--print-plan", "-D", tree, "/bin/true");
  expect(plan.code).toBe(0);
  expect(plan.stdout).toContain("exec");
  const { mirror, keyring } = makeMirror(`${work}/mirror-${debArch}`);
  const bundle = `${work}/smoke-${debArch}.bundle`;
  const b = q("bootstrap", "debian", "bookworm", `--arch=${debArch}`, "--variant=essential", "--download-only", `--bundle=${bundle}`, `--mirror=file://${mirror}`, `--keyring=${keyring}`, `--cache-dir=${work}/cache-${debArch}`);
  expect(b.stderr).toContain("Writing the bundle");
  expect(b.code).toBe(0);
  const names = [...readTar(readFileSync(bundle))].map((e) => e.path);
  expect(names).toContain("pool/main/smoke-base_1.0_all.deb");
  expect(names).toContain(`dists/bookworm/main/binary-${debArch}/Packages.xz`);
}

/** A C program that dlopens a shim and prints its ABI version: the musl shims in a musl process (spawnctl itself needs a musl libstdc++ Debian does not have). */
const DLOPEN_C = `#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }
	unsigned (*v)(void) = (unsigned (*)(void))dlsym(h, "nsh_abi_version");
	printf("abi %u\\n", v ? v() : 0);
	return 0;
}
`;

describe("the embedded shims load where they are meant to", () => {
  const abi = () => readFileSync(`${ROOT}/src/sys/abi.ts`, "utf8").match(/export const ABI_VERSION = (\d+);/)![1];
  const cases: Array<{ variant: string; cc: string[]; run: string[] }> = [
    { variant: "linux-x64-musl", cc: ["musl-gcc"], run: [] },
    { variant: "linux-arm64-musl", cc: ["aarch64-linux-gnu-gcc", "-specs", `${ROOT}/build/musl-arm64/musl-gcc.specs`], run: ["qemu-aarch64-static", `${ROOT}/build/musl-arm64/root/lib/ld-musl-aarch64.so.1`] },
    { variant: "linux-arm64", cc: ["aarch64-linux-gnu-gcc"], run: ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"] },
  ];
  for (const c of cases) {
    test(`${c.variant}: nsh.so in a process of its C library`, () => {
      const src = `${work}/dlopen.c`;
      const exe = `${work}/dlopen-${c.variant}`;
      writeFileSync(src, DLOPEN_C);
      const b = sh([...c.cc, "-o", exe, src]);
      expect(b.stderr).toBe("");
      const r = sh([...c.run, exe, `${ROOT}/build/release/stage/${c.variant}/build/nsh.so`]);
      expect(r.stdout).toBe(`abi ${abi()}\n`);
      expect(r.code).toBe(0);
    });
  }
});

describe("under qemu", () => {
  test("linux-x64 runs on the oldest CPU it supports (qemu-x86_64 -cpu Nehalem) and dies with SIGILL on an older one", () => {
    smoke(["qemu-x86_64-static", "-cpu", "Nehalem"], art("linux-x64"), "amd64");
    const old = sh(["qemu-x86_64-static", "-cpu", "core2duo", art("linux-x64"), "--version"]);
    expect(old.code === 132 || old.signal === "SIGILL" || /Illegal instruction/.test(old.stderr)).toBe(true);
  });

  test("linux-arm64 runs under qemu-aarch64-static (with the arm64 glibc of Debian's cross toolchain)", () => {
    smoke(["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"], art("linux-arm64"), "arm64");
  });
});
