// `spawnctl bootstrap arch` against a toy Arch repository built here with
// Debian's makepkg, repo-add and gpg (fixture.ts): no Arch mirror is
// reachable from this machine, so nothing here uses one. Needs root (the
// second stage is a container) and the tools; CI=true turns a skip into a
// failure.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { copyFileSync, existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, removeTree, run, tempDir, type Result } from "../../helpers.ts";
import { hasTool, tool } from "../../unit/archive/fixtures.ts";
import { INSTALL_HINT, TOOLS, buildFixture, ensureTools, makeCacheDir, pathOf, sign, type Fixture } from "./fixture.ts";

const ready = IS_ROOT && ensureTools() && hasTool("pacman") && existsSync(SPAWNCTL);
const archTest = needs(`root, ${SPAWNCTL} and ${[...TOOLS, "pacman", "busybox"].join(", ")} (${INSTALL_HINT})`, ready);

let fx: Fixture;
let work: string;
const before = leftovers();

beforeAll(() => {
  if (!ready) return;
  fx = buildFixture({ withPacman: true });
  work = tempDir("spawnctl-arch-work-");
}, 300_000);

afterAll(() => {
  if (fx) removeTree(fx.dir);
  if (work) removeTree(work);
});

let n = 0;
/** A fresh DEST (absent) and download cache in the work directory. */
function fresh(): { dest: string; cache: string } {
  n++;
  return { dest: `${work}/tree${n}`, cache: `${work}/cache${n}` };
}

function bootstrap(args: string[]): Result {
  return run(["bootstrap", "arch", ...args], { timeout: 180_000 });
}

function ok(r: Result): void {
  if (r.code !== 0) throw new Error(`spawnctl bootstrap arch failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
}

/** Nothing of DEST: neither the tree nor the temporary one beside it. */
function expectNothingLeft(dest: string): void {
  expect(existsSync(dest)).toBe(false);
  const parent = dest.slice(0, dest.lastIndexOf("/"));
  const name = dest.slice(dest.lastIndexOf("/") + 1);
  expect(readdirSync(parent).filter((e) => e.startsWith(`.#${name}.`))).toEqual([]);
}

/** The host's pacman reading the tree's local database. */
function hostPacman(tree: string, args: string[]): string {
  return new TextDecoder().decode(tool(["pacman", "--root", tree, "--dbpath", `${tree}/var/lib/pacman`, "--config", "/dev/null", ...args]));
}

/** A copy of the mirror to tamper with. */
function mirrorCopy(): string {
  const dir = `${work}/mirror${++n}`;
  tool(["cp", "-a", fx.mirrorDir, dir]);
  return dir;
}

const mode = (p: string) => lstatSync(p).mode & 0o7777;

describe("bootstrap arch from a file:// mirror", () => {
  archTest("builds the tree, runs post_install in the container, registers the packages", () => {
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    ok(r);
    expect(r.stderr).toContain("Bootstrapped Arch Linux (3 packages)");

    // the scriptlets ran inside a container: PID namespace of its own, the tree's busybox as PID 1's program
    expect(readFileSync(`${dest}/var/lib/toy-marker/pre`, "utf8")).toBe("pre 2.0-3\n");
    expect(readFileSync(`${dest}/var/lib/toy-marker/installed`, "utf8")).toMatch(/^post 2\.0-3 pid=\d+ ns=\/usr\/bin\/busybox/);
    expect(Number(/pid=(\d+)/.exec(readFileSync(`${dest}/var/lib/toy-marker/installed`, "utf8"))![1])).toBeLessThan(100);

    // the local database, as the host's pacman reads it
    expect(readFileSync(`${dest}/var/lib/pacman/local/ALPM_DB_VERSION`, "utf8")).toBe("9\n");
    expect(hostPacman(dest, ["-Q"]).trim().split("\n")).toEqual(["base 3-1", "toy-base 1.0-1", "toy-marker 2.0-3"]);
    expect(hostPacman(dest, ["-Qe"]).trim()).toBe("base 3-1"); // only the target is explicit
    for (const line of hostPacman(dest, ["-Qkk"]).trim().split("\n")) expect(line).toMatch(/ 0 altered files$/);
    const info = hostPacman(dest, ["-Qi", "toy-marker"]);
    expect(info).toMatch(/Validated By\s+: SHA-256 Sum\s+Signature/); // its signature came from a .sig file
    expect(info).toMatch(/Install Reason\s+: Installed as a dependency/);
    expect(hostPacman(dest, ["-Qi", "toy-base"])).toMatch(/Validated By\s+: Signature/); // from %PGPSIG%

    // pacstrap's skeleton; the directory symlinks of toy-base kept
    expect(mode(`${dest}/tmp`)).toBe(0o1777);
    expect(mode(`${dest}/proc`)).toBe(0o555);
    expect(mode(`${dest}/sys`)).toBe(0o555);
    for (const d of ["dev", "run", "etc/pacman.d", "var/log", "var/lib/pacman", "var/cache/pacman/pkg"]) expect(mode(`${dest}/${d}`)).toBe(0o755);
    expect(lstatSync(`${dest}/bin`).isSymbolicLink()).toBe(true);
    expect(mode(`${dest}/etc/shadow`)).toBe(0o600);

    // clean-up: no package cache, logs or spawnctl files; an empty machine-id
    expect(readdirSync(`${dest}/var/cache/pacman/pkg`)).toEqual([]);
    expect(readdirSync(`${dest}/var/log`)).toEqual([]);
    expect(existsSync(`${dest}/var/lib/pacman/spawnctl-stage2.sh`)).toBe(false);
    expect(readFileSync(`${dest}/etc/machine-id`, "utf8")).toBe("");
    // the downloads stay in the cache for the next run
    expect(readdirSync(cache).sort()).toContain(fx.files.get("toy-base")!);

    const inside = run(["run", "-q", "--pipe", "-D", dest, "/bin/sh", "-c", "toy-marker; . /etc/os-release; echo \"$ID pid=$$\""]);
    expect(inside.stdout).toBe("toy-marker says hello\ntoyarch pid=1\n");
    expect(inside.code).toBe(0);
    removeTree(dest);
  });

  archTest("the local database is what pacman -U itself writes", () => {
    const { dest, cache } = fresh();
    ok(bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`, "toy-base", "toy-marker", "base"]));
    const ref = `${work}/pacman-root`;
    tool(["mkdir", "-p", `${ref}/var/lib/pacman`]);
    writeFileSync(`${work}/pacman.conf`, "[options]\nSigLevel = Never\nLocalFileSigLevel = Never\nArchitecture = auto\n");
    tool(["pacman", "--config", `${work}/pacman.conf`, "--root", ref, "--dbpath", `${ref}/var/lib/pacman`, "--noscriptlet", "--noconfirm", "-U", ...["toy-base", "toy-marker", "base"].map((p) => pathOf(fx, p))]);
    const norm = (t: string) => t.replace(/%INSTALLDATE%\n\d+\n/, "").replace(/%VALIDATION%\n(?:\w+\n)+/, "");
    for (const d of ["base-3-1", "toy-base-1.0-1", "toy-marker-2.0-3"]) {
      const ours = `${dest}/var/lib/pacman/local/${d}`;
      const theirs = `${ref}/var/lib/pacman/local/${d}`;
      expect(readdirSync(ours).sort()).toEqual(readdirSync(theirs).sort());
      expect(norm(readFileSync(`${ours}/desc`, "utf8"))).toBe(norm(readFileSync(`${theirs}/desc`, "utf8")));
      expect(readFileSync(`${ours}/files`, "utf8")).toBe(readFileSync(`${theirs}/files`, "utf8"));
      expect(Bun.gunzipSync(readFileSync(`${ours}/mtree`))).toEqual(Bun.gunzipSync(readFileSync(`${theirs}/mtree`)));
    }
    expect(readFileSync(`${dest}/var/lib/pacman/local/toy-base-1.0-1/files`, "utf8")).toMatch(/%BACKUP%\netc\/passwd\t[0-9a-f]{32}\n/);
    removeTree(ref);
    removeTree(dest);
  });

  archTest("offline from a pacman cache directory (databases in DIR/sync)", () => {
    const { dest } = fresh();
    const cache = makeCacheDir(fx, `${work}/offline-cache`);
    const r = bootstrap([dest, `--cache-dir=${cache}`, `--keyring=${fx.pubkey}`, "-q"]);
    ok(r);
    expect(r.stderr).toBe("");
    expect(readFileSync(`${dest}/var/lib/toy-marker/installed`, "utf8")).toStartWith("post 2.0-3");
    expect(hostPacman(dest, ["-Q"]).trim().split("\n").length).toBe(3);
    removeTree(dest);
    // the databases may also be directly in DIR; a missing one is named
    tool(["sh", "-c", `mv ${cache}/sync/* ${cache}/ && rmdir ${cache}/sync`]);
    ok(bootstrap([dest, `--cache-dir=${cache}`, `--keyring=${fx.pubkey}`, "-q"]));
    removeTree(dest);
    const missing = bootstrap([dest, `--cache-dir=${cache}`, `--keyring=${fx.pubkey}`, "--repos=core,extra,multilib"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`has no database of the repository multilib: looked for ${cache}/multilib.db and ${cache}/sync/multilib.db`);
    expectNothingLeft(dest);
    removeTree(cache);
  });

  archTest("--root-password and --hostname", () => {
    const { dest, cache } = fresh();
    ok(bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`, "--root-password=s3cret", "--hostname=toyhost", "-q"]));
    expect(readFileSync(`${dest}/etc/shadow`, "utf8")).toMatch(/^root:\$6\$[^:]+:/m);
    expect(readFileSync(`${dest}/etc/hostname`, "utf8")).toBe("toyhost\n");
    expect(readFileSync(`${dest}/etc/hosts`, "utf8")).toContain("127.0.1.1\ttoyhost");
    removeTree(dest);
  });

  archTest("an http:// mirror with $repo/$arch in the URL; the target's mirrorlist names it", async () => {
    const root = realpathSync(fx.mirrorDir);
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const path = decodeURIComponent(new URL(req.url).pathname);
        if (path.includes("..")) return new Response("no", { status: 403 });
        const f = Bun.file(`${root}${path}`);
        return f.size > 0 && existsSync(`${root}${path}`) ? new Response(f) : new Response("not found", { status: 404 });
      },
    });
    try {
      const { dest, cache } = fresh();
      const mirror = `http://127.0.0.1:${server.port}/$repo/os/$arch`;
      // spawnSync would block this process's event loop, and with it the server
      const p = Bun.spawn([SPAWNCTL, "bootstrap", "arch", dest, `--mirror=${mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`, "-q"], { stdout: "pipe", stderr: "pipe" });
      const code = await p.exited;
      const stderr = await new Response(p.stderr).text();
      if (code !== 0) throw new Error(`exit ${code}: ${stderr}`);
      expect(readFileSync(`${dest}/etc/pacman.d/mirrorlist`, "utf8")).toContain(`Server = ${mirror}\n`);
      expect(existsSync(`${cache}/${fx.files.get("toy-marker")}.sig`)).toBe(true);
      removeTree(dest);
    } finally {
      server.stop(true);
    }
  });
});

describe("verification failures leave nothing behind", () => {
  archTest("a tampered package is refused by its SHA-256, naming it", () => {
    const m = mirrorCopy();
    const file = `${m}/extra/os/x86_64/${fx.files.get("toy-marker")}`;
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0x01;
    writeFileSync(file, bytes);
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=file://${m}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(fx.files.get("toy-marker")!);
    expect(r.stderr).toContain("SHA-256 mismatch");
    expectNothingLeft(dest);
    // nothing half-downloaded in the cache either
    expect(readdirSync(cache).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  archTest("a tampered package listed with its new checksum fails the signature check, naming it", () => {
    const m = mirrorCopy();
    const rd = `${m}/core/os/x86_64`;
    const file = `${rd}/${fx.files.get("toy-base")}`;
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] ^= 0x80;
    writeFileSync(file, bytes);
    // repo-add takes the new SHA-256, and the old signature into %PGPSIG%
    tool(["repo-add", "-q", `${rd}/core.db.tar.gz`, file]);
    sign(fx.gnupg, `${rd}/core.db.tar.gz`, `${rd}/core.db.sig`);
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=file://${m}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the signature of ${fx.files.get("toy-base")} (toy-base 1.0-1 from core) (%PGPSIG% in the core database): BAD signature`);
    expectNothingLeft(dest);
  });

  archTest("a package signed by a key not in the keyring is refused; --no-verify warns and installs it", () => {
    const m = mirrorCopy();
    const file = `${m}/extra/os/x86_64/${fx.files.get("toy-marker")}`;
    sign(fx.otherGnupg, file);
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=file://${m}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`verifying the signature of ${fx.files.get("toy-marker")} (toy-marker 2.0-3 from extra)`);
    expect(r.stderr).toContain("no good signature from the keyring");
    expect(r.stderr).toContain("unknown key");
    expectNothingLeft(dest);

    const nv = bootstrap([dest, `--mirror=file://${m}`, "--no-verify", `--cache-dir=${cache}`]);
    ok(nv);
    expect(nv.stderr).toContain("WARNING: --no-verify: package signatures are NOT checked");
    expect(hostPacman(dest, ["-Qi", "toy-marker"])).toMatch(/Validated By\s+: SHA-256 Sum\n/);
    removeTree(dest);
  });

  archTest("a non-empty DEST is refused before any database or package is fetched", () => {
    const { dest, cache } = fresh();
    tool(["mkdir", "-p", dest]);
    writeFileSync(`${dest}/keep`, "");
    const r = bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    expect(r.stderr).toBe(`${dest} exists and is not empty.\n`);
    expect(r.code).toBe(1);
    expect(readdirSync(dest)).toEqual(["keep"]);
    expect(existsSync(cache)).toBe(false);
  });

  archTest("a database signed by a key not in the keyring is refused", () => {
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${fx.otherPubkey}`, `--cache-dir=${cache}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("verifying the core database signature");
    expectNothingLeft(dest);
  });

  archTest("a key on the keyring's revoked list (pacman-key's NAME-revoked beside NAME.gpg) is refused", () => {
    const dir = `${work}/keyring${++n}`;
    tool(["mkdir", "-p", dir]);
    copyFileSync(fx.pubkey, `${dir}/toy.gpg`);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(new TextDecoder().decode(tool(["gpg", "--homedir", fx.gnupg, "--batch", "--with-colons", "--list-keys"])))![1]!;
    writeFileSync(`${dir}/toy-revoked`, `${fpr}\n`);
    const { dest, cache } = fresh();
    const r = bootstrap([dest, `--mirror=${fx.mirror}`, `--keyring=${dir}/toy.gpg`, `--cache-dir=${cache}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`which ${dir}/toy-revoked lists as revoked`);
    expectNothingLeft(dest);
  });

  archTest("^C during the second stage stops the container and removes the tree", async () => {
    const { dest, cache } = fresh();
    const p = Bun.spawn([SPAWNCTL, "bootstrap", "arch", dest, "base", "toy-slow", `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`], { stdout: "pipe", stderr: "pipe" });
    const parent = dest.slice(0, dest.lastIndexOf("/"));
    const name = dest.slice(dest.lastIndexOf("/") + 1);
    const started = () => readdirSync(parent).some((e) => e.startsWith(`.#${name}.`) && existsSync(`${parent}/${e}/var/lib/toy-slow-started`));
    const t0 = Date.now();
    while (!started() && Date.now() - t0 < 60_000) await Bun.sleep(50);
    expect(started()).toBe(true);
    p.kill("SIGINT");
    const code = await p.exited;
    expect(code).not.toBe(0);
    expect(await new Response(p.stderr).text()).toContain("Interrupted.");
    expect(Date.now() - t0).toBeLessThan(50_000); // not after toy-slow's 60 s sleep
    expectNothingLeft(dest);
  });
});

describe("with pacman in the tree", () => {
  archTest("the tree's pacman registers the packages, runs scriptlets and hooks, marks dependencies", () => {
    const { dest, cache } = fresh();
    const r = bootstrap([dest, "base", "toy-pacman", `--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, `--cache-dir=${cache}`]);
    ok(r);
    expect(r.stderr).toContain("with the tree's pacman in a container");
    expect(readFileSync(`${dest}/var/lib/toy-marker/installed`, "utf8")).toStartWith("post 2.0-3");
    expect(readFileSync(`${dest}/var/lib/toy-pacman-installed`, "utf8")).toBe("pacman post 6.0.2-1\n");
    expect(readFileSync(`${dest}/var/lib/toy-hook-ran`, "utf8")).toBe("hook ran\n"); // a libalpm hook
    expect(hostPacman(dest, ["-Q"]).trim().split("\n")).toEqual(["base 3-1", "toy-base 1.0-1", "toy-marker 2.0-3", "toy-pacman 6.0.2-1"]);
    expect(hostPacman(dest, ["-Qe"]).trim().split("\n")).toEqual(["base 3-1", "toy-pacman 6.0.2-1"]);
    for (const line of hostPacman(dest, ["-Qkk"]).trim().split("\n")) expect(line).toMatch(/ 0 altered files$/);
    expect(hostPacman(dest, ["-Qi", "toy-base"])).toMatch(/Validated By\s+: Signature/);
    // pacman-key --init, --populate ran in the container; gpg-agent's socket is gone
    expect(readFileSync(`${dest}/etc/pacman.d/gnupg/calls`, "utf8")).toBe("--init\n--populate\n");
    expect(existsSync(`${dest}/etc/pacman.d/gnupg/S.gpg-agent`)).toBe(false);
    // the temporary pacman.conf, script, log and the packages' mount point are gone; pacman's cache is empty
    expect(existsSync(`${dest}/etc/pacman.d/spawnctl-bootstrap.conf`)).toBe(false);
    expect(existsSync(`${dest}/var/cache/pacman/spawnctl-pkg`)).toBe(false);
    expect(readdirSync(`${dest}/var/cache/pacman/pkg`)).toEqual([]);
    expect(readdirSync(`${dest}/var/log`)).toEqual([]);
    // the packages in the cache were bound read-only, not changed
    expect(statSync(`${cache}/${fx.files.get("toy-pacman")}`).size).toBe(statSync(pathOf(fx, "toy-pacman")).size);
    const inside = run(["run", "-q", "--pipe", "-D", dest, "/usr/bin/pacman", "-Q", "toy-marker"]);
    expect(inside.stdout).toBe("toy-marker 2.0-3\n");
    removeTree(dest);
  });
});

describe("suite", () => {
  // Only what names this suite's directories: other suites may be running
  // containers at the same time; tests/run.ts checks everything at the end.
  archTest("leaves no mounts or processes behind", () => {
    const ours = leftovers().filter((l) => !before.includes(l) && (l.includes(work) || l.includes(fx.dir)));
    expect(ours).toEqual([]);
  });
});
