#!/usr/bin/env bun
// Builds dist/spawnctl:
//   1. shim/nsh_abi.h from src/sys/abi.ts (the one source of the wire format)
//   2. build/nsh.so from shim/nsh.c and shim/shift.c with the host C compiler
//   3. build/gen/*.ts: data computed ahead of time (the default seccomp programs)
//   4. bun build --compile, which embeds the shim and the generated data
//   5. build/man/*.1 and build/completion/*: the man pages and shell completion
//      scripts, made from the option and verb tables (src/cli/man.ts,
//      src/cli/completion.ts); `make install` copies them
//
//   bun build.ts            everything
//   bun build.ts shim       steps 1-3 only (what the tests need)
//   bun build.ts docs       steps 1-3 and 5
//
// `make release` (.ci/release.ts) uses buildShim and compile for each
// target: the same program in the Bun runtime of another CPU or C library.
import { mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, statSync, symlinkSync } from "node:fs";
import { renderHeader } from "./src/sys/abi.ts";

const root = import.meta.dir;
const cc = process.env.CC ?? "cc";

function run(cmd: string[], what: string, cwd = root): void {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`${what} failed: ${cmd.join(" ")} (exit ${p.exitCode})`);
}

function writeIfChanged(path: string, text: string): void {
  if (existsSync(path) && readFileSync(path, "utf8") === text) return;
  writeFileSync(path, text);
}

/**
 * What a build is for: the CPU and the C library of the host the binary runs
 * on. The Bun runtime of each comes from the npm registry (release.ts); the
 * C parts are built with Debian's compilers:
 *   nsh.so          the shim, dlopened into spawnctl: linked against glibc
 *                   (symbols pinned to 2.17, shim/compat.h) or musl
 *   nsh-supervisor  static against musl (Debian's musl-gcc, or its musl-dev
 *                   of the other CPU): runs on any host, needs no libc there
 *   nsh-init        static glibc: runs inside containers
 */
export interface Target {
  name: string;
  arch: "x64" | "arm64";
  musl: boolean;
}

export const HOST_TARGET: Target = { name: `linux-${hostArch()}`, arch: hostArch(), musl: false };

function hostArch(): "x64" | "arm64" {
  if (process.arch === "x64" || process.arch === "arm64") return process.arch;
  throw new Error(`spawnctl builds on x86-64 and arm64 hosts, not ${process.arch}`);
}

const GNU_TRIPLET = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" } as const;

/**
 * The compilers for a target: glibc (the host's cc, or Debian's cross gcc),
 * musl (a command line, or undefined where there is none), strip. musl for
 * the host's CPU is Debian's musl-gcc; for the other one, Debian's musl-dev
 * of that architecture unpacked under build/ (muslSysroot) and used by the
 * cross gcc through its specs file.
 */
function toolchain(t: Target, outDir: string, needMusl: boolean): { gnu: string; musl?: string[]; strip: string } {
  const native = t.arch === hostArch();
  const gnu = native ? cc : `${GNU_TRIPLET[t.arch]}-gcc`;
  const strip = native ? "strip" : `${GNU_TRIPLET[t.arch]}-strip`;
  let musl: string[] | undefined;
  if (native && hostArch() === "x64" && hasProgram("musl-gcc")) musl = ["musl-gcc"];
  else if (!native && needMusl) musl = [gnu, "-specs", muslSysroot(t)];
  return { gnu, musl: musl && [...musl, ...muslKernelHeaders(outDir, t)], strip };
}

/**
 * Debian's musl and musl-dev of another architecture, unpacked into
 * build/musl-ARCH (`apt-get download` with that architecture added for this
 * one command and its own package lists: the host's dpkg configuration is
 * not changed); returns a gcc specs file that points into it.
 */
function muslSysroot(t: Target): string {
  const debArch = { x64: "amd64", arm64: "arm64" }[t.arch];
  const triplet = { x64: "x86_64-linux-musl", arm64: "aarch64-linux-musl" }[t.arch];
  const dir = `${root}/build/musl-${t.arch}`;
  const specs = `${dir}/musl-gcc.specs`;
  if (existsSync(specs)) return specs;
  const debs = `${dir}/debs`;
  const lists = `${dir}/lists`;
  mkdirSync(`${lists}/partial`, { recursive: true });
  mkdirSync(`${dir}/root`, { recursive: true });
  // (the files go to build/, which apt's sandbox user may not write to)
  const apt = ["-o", `APT::Architectures::=${debArch}`, "-o", `Dir::State::Lists=${lists}`, "-o", "APT::Sandbox::User=root", "-q"];
  run(["apt-get", ...apt, "update"], `reading Debian's ${debArch} package lists`);
  mkdirSync(debs, { recursive: true });
  run(["apt-get", ...apt, "download", `musl:${debArch}`, `musl-dev:${debArch}`], `downloading Debian's musl for ${debArch}`, debs);
  for (const deb of readdirSync(debs).filter((f) => f.endsWith(".deb")).sort()) run(["dpkg-deb", "-x", `${debs}/${deb}`, `${dir}/root`], `unpacking ${deb}`);
  const sys = `${dir}/root`;
  const text = readFileSync(`${sys}/usr/lib/${triplet}/musl-gcc.specs`, "utf8")
    .replaceAll(`/usr/include/${triplet}`, `${sys}/usr/include/${triplet}`)
    // libc.so first: musl-dev's link to it is absolute, and a libc.a found
    // first would be linked into the shim, a second C library in the process
    .replaceAll(`-L/usr/lib/${triplet}`, `-L${sys}/lib/${triplet} -L${sys}/usr/lib/${triplet}`)
    .replaceAll(`/usr/lib/${triplet}/`, `${sys}/usr/lib/${triplet}/`);
  writeFileSync(specs, text);
  return specs;
}

function hasProgram(name: string): boolean {
  return (process.env.PATH ?? "/usr/bin:/bin").split(":").some((d) => d && existsSync(`${d}/${name}`));
}

/** musl-gcc sees only musl's headers: the kernel's (linux/, asm/, asm-generic/) come from a directory of links. */
function muslKernelHeaders(outDir: string, t: Target): string[] {
  const dir = `${outDir}/musl-include`;
  mkdirSync(dir, { recursive: true });
  // the host's, or those of Debian's cross toolchain (linux-libc-dev-ARCH-cross)
  const inc = t.arch === hostArch() ? "/usr/include" : `/usr/${GNU_TRIPLET[t.arch]}/include`;
  const links: Record<string, string> = {
    linux: `${inc}/linux`,
    "asm-generic": `${inc}/asm-generic`,
    asm: t.arch === hostArch() ? `${inc}/${GNU_TRIPLET[t.arch]}/asm` : `${inc}/asm`,
  };
  for (const [name, target] of Object.entries(links)) {
    if (!existsSync(target)) throw new Error(`${target} is missing (install linux-libc-dev)`);
    if (!existsSync(`${dir}/${name}`)) symlinkSync(target, `${dir}/${name}`);
  }
  return ["-idirafter", dir];
}

const CFLAGS = ["-std=gnu11", "-g0", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
  // nothing of the build machine in the objects: the same sources give the same bytes
  `-ffile-prefix-map=${root}=.`];

export async function buildShim(outDir = `${root}/build`, target: Target = HOST_TARGET): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  writeIfChanged(`${root}/shim/nsh_abi.h`, renderHeader());
  const tc = toolchain(target, outDir, target.musl || target.arch !== hostArch());
  const so = `${outDir}/nsh.so`;
  // build.ts is an input too: it chooses the compilers and flags
  const srcs = [`${root}/shim/nsh.c`, `${root}/shim/nsh_abi.h`, `${root}/shim/compat.h`, `${root}/build.ts`];
  const fresh = (out: string, inputs: string[]) => existsSync(out) && inputs.every((s) => statSync(s).mtimeMs <= statSync(out).mtimeMs);
  // shift.c (ownership shifting, user namespaces, idmapped mounts) and net.c
  // (the network steps `run -n` waits for) run in the spawnctl process only:
  // they go into the shared object, not the supervisor
  const soSrcs = [...srcs, `${root}/shim/shift.c`, `${root}/shim/net.c`];
  if (!fresh(so, soSrcs)) {
    let compiler: string[];
    if (!target.musl) compiler = [tc.gnu];
    else if (tc.musl) compiler = tc.musl;
    else throw new Error(`no musl compiler for ${target.name} (install musl-tools)`);
    run(
      [...compiler, ...CFLAGS, "-O2", "-fPIC", "-shared", "-fvisibility=default", "-o", so,
        `${root}/shim/nsh.c`, `${root}/shim/shift.c`, `${root}/shim/net.c`, ...(target.musl ? [] : ["-lpthread"])],
      `compiling the shim for ${target.name}`,
    );
    run([tc.strip, "--strip-unneeded", so], "stripping the shim");
  }
  // the machine supervisor: the same source as an executable, static, so that
  // it needs nothing of the host's C library
  const sup = `${outDir}/nsh-supervisor`;
  if (!fresh(sup, srcs)) {
    const compiler = tc.musl ?? [tc.gnu, "-DNSH_STATIC"];
    run(
      [...compiler, ...CFLAGS, "-Os", "-static", "-DNSH_SUPERVISOR", "-o", sup, `${root}/shim/nsh.c`],
      `compiling the supervisor for ${target.name}`,
    );
    run([tc.strip, sup], "stripping the supervisor");
  }
  // the stub init of --as-pid2: static, since it runs inside the container's
  // tree, where the host's libraries are not
  const init = `${outDir}/nsh-init`;
  if (!fresh(init, srcs)) {
    run(
      [tc.gnu, ...CFLAGS, "-Os", "-static", "-DNSH_STATIC", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-DNSH_INIT",
        "-o", init, `${root}/shim/nsh.c`, "-lpthread"],
      `compiling the stub init for ${target.name}`,
    );
    run([tc.strip, init], "stripping the stub init");
  }
  return so;
}

export async function generateData(outDir = `${root}/build/gen`): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const { precomputeDefaultPrograms, gatingMask } = await import("./src/container/seccomp/compile.ts");
  const programs = precomputeDefaultPrograms();
  const gating = gatingMask((1n << 64n) - 1n);
  const body = Object.entries(programs)
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(Buffer.from(v).toString("base64"))},`)
    .join("\n");
  writeIfChanged(
    `${outDir}/seccomp.ts`,
    `// Generated by build.ts: default seccomp programs, keyed by retained capability mask.\n` +
      `export const PRECOMPILED: Record<string, string> = {\n${body}\n};\n` +
      `/** the capabilities the default program depends on */\nexport const GATING_MASK = 0x${gating.toString(16)}n;\n`,
  );
}

/**
 * The archive keyrings spawnctl verifies bootstraps against, embedded in the
 * binary: Debian's and Arch's from Debian's keyring packages (the host's
 * installed files, else `apt-get download` and our own .deb reader), Ubuntu's
 * 2018 archive key from the file shipped in src/bootstrap/keyrings (Debian 12
 * has no Ubuntu keyring package; fingerprint F6EC B376 2474 EDA9 D21B 7022
 * 8719 20D1 991B C93C). A keyring that cannot be had is written empty: the
 * binary then asks for --keyring.
 */
export async function buildKeyrings(outDir = `${root}/build/keyrings`): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const wanted: Array<{ name: string; host: string; pkg?: string; member?: string; shipped?: string }> = [
    { name: "debian", host: "/usr/share/keyrings/debian-archive-keyring.gpg", pkg: "debian-archive-keyring", member: "usr/share/keyrings/debian-archive-keyring.gpg" },
    { name: "archlinux", host: "/usr/share/keyrings/archlinux.gpg", pkg: "archlinux-keyring", member: "usr/share/keyrings/archlinux.gpg" },
    { name: "ubuntu", host: "/usr/share/keyrings/ubuntu-archive-keyring.gpg", shipped: `${root}/src/bootstrap/keyrings/ubuntu-archive-2018.gpg` },
  ];
  for (const w of wanted) {
    const out = `${outDir}/${w.name}.gpg`;
    if (existsSync(out) && statSync(out).size > 0) continue;
    let bytes: Uint8Array | undefined;
    if (existsSync(w.host)) bytes = readFileSync(w.host);
    else if (w.shipped && existsSync(w.shipped)) bytes = readFileSync(w.shipped);
    else if (w.pkg) bytes = await keyringFromPackage(w.pkg, w.member!, `${root}/build/keyring-debs`);
    if (!bytes) console.error(`build.ts: no ${w.name} keyring (install ${w.pkg ?? "it"}); spawnctl bootstrap ${w.name} will need --keyring`);
    writeFileSync(out, bytes ?? new Uint8Array());
  }
}

async function keyringFromPackage(pkg: string, member: string, dir: string): Promise<Uint8Array | undefined> {
  mkdirSync(dir, { recursive: true });
  const p = Bun.spawnSync(["apt-get", "download", pkg], { cwd: dir, stdout: "ignore", stderr: "pipe" });
  if (p.exitCode !== 0) return undefined;
  const { readdirSync } = await import("node:fs");
  const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) return undefined;
  const { readDeb } = await import("./src/archive/deb.ts");
  for (const e of readDeb(readFileSync(`${dir}/${deb}`), { name: deb }).data()) {
    if (e.type === "file" && e.path.replace(/^\.\//, "") === member) return e.data.slice();
  }
  return undefined;
}

/**
 * The man pages and completion scripts. Made here rather than by a hidden verb
 * of the binary: they come from the same modules the binary is built from, the
 * man page generator stays out of the binary, and `make install` needs no run
 * of the binary it installs (a DESTDIR install for another machine works too).
 * Written every time, so that make sees them newer than the sources.
 */
export async function buildDocs(outDir = `${root}/build`): Promise<void> {
  const { manPages } = await import("./src/cli/man.ts");
  const { bashCompletion, zshCompletion, fishCompletion } = await import("./src/cli/completion.ts");
  mkdirSync(`${outDir}/man`, { recursive: true });
  mkdirSync(`${outDir}/completion`, { recursive: true });
  for (const [name, text] of Object.entries(manPages())) writeFileSync(`${outDir}/man/${name}`, text);
  writeFileSync(`${outDir}/completion/spawnctl.bash`, bashCompletion());
  writeFileSync(`${outDir}/completion/_spawnctl`, zshCompletion());
  writeFileSync(`${outDir}/completion/spawnctl.fish`, fishCompletion());
  // the Makefile's mark that these are up to date (its docs target)
  writeFileSync(`${outDir}/docs.stamp`, "");
}

/** The tier-up threshold scale the binary starts with; long computations reset it (src/util/jit.ts). */
const JIT_POLICY = 64;

async function main(): Promise<void> {
  const what = process.argv[2] ?? "all";
  await buildShim();
  await generateData();
  if (what === "docs") return buildDocs();
  await buildKeyrings();
  if (what === "shim") return;
  await buildDocs();
  mkdirSync(`${root}/dist`, { recursive: true });
  compile(root, `${root}/dist/spawnctl`);
}

/**
 * bun build --compile of the tree at `srcRoot` (this one, or a release's
 * staged copy with another target's build/): `runtime` is the Bun executable
 * to embed the program in (a release's npm package of another CPU or libc),
 * by default the one running this script.
 */
export function compile(srcRoot: string, outfile: string, runtime?: string): void {
  const args = [process.execPath, "build", "--compile", "--bytecode", "--minify", "--sourcemap=none",
    // code stays in the interpreter and baseline JIT longer: commands are short (src/util/jit.ts)
    `--compile-jit-policy=${JIT_POLICY}`,
    // the working directory is the admin's, not ours: a .env there must not set
    // our environment, a bunfig.toml there must not preload code into a root process
    "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
    // lets src/archive/xz.ts drop its source-tree branch (no build path in the binary)
    "--define", "SPAWNCTL_COMPILED=true",
    ...(runtime ? [`--compile-executable-path=${runtime}`] : []),
    // the xz decoder's worker is a second entry point so Workers exist in the binary
    `${srcRoot}/src/main.ts`, `${srcRoot}/src/archive/xz-worker.ts`, "--outfile", outfile];
  run(args, "bun build --compile");
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`build.ts: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
}
