// What a person reads when something takes time or goes wrong: a bootstrap
// from a bundle says where it installs from and never "Downloading"; a
// mirror nobody listens on is "connection refused" naming the URL; a suite
// the mirror lacks lists the ones it has; a truncated .tar.zst names the file
// and where it ends; a mistyped option gets a suggestion after the program's
// name as invoked. All traffic goes to loopback.
import { afterAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { TarWriter } from "../../src/archive/tar.ts";
import { IS_ROOT, SPAWNCTL, needs, removeTree, run, tempDir } from "../helpers.ts";

const BUNDLE = "/var/cache/spawnctl-test/bookworm-essential.bundle";
const POOL = "/var/lib/machines";
const base = IS_ROOT ? tempDir("spawnctl-messages-") : "";
afterAll(() => {
  if (base) removeTree(base);
});

/** a loopback port nothing listens on: one the kernel gave a server that is stopped again */
function unusedPort(): number {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = s.port!;
  s.stop(true);
  return port;
}

const lastLine = (stderr: string) => stderr.trimEnd().split("\n").at(-1)!;

describe("progress and messages", () => {
  needs("root and the cached bookworm bundle", IS_ROOT && existsSync(BUNDLE))("a bootstrap from a bundle says so and downloads nothing", () => {
    const dest = `${base}/from-bundle`;
    try {
      const r = run(["bootstrap", "debian", `--from-bundle=${BUNDLE}`, dest, `--cache-dir=${base}/cache-bundle`], { netns: true, timeout: 300_000 });
      expect(r.stderr).toContain(`Installing from bundle ${BUNDLE}`);
      expect(r.stderr).not.toContain("Downloading");
      // not a terminal: no live line, only whole lines
      expect(r.stderr).not.toContain("\r");
      expect(r.stderr).not.toContain("\x1b[");
      expect(r.stderr).toContain("Bootstrapped debian bookworm");
      expect(r.code).toBe(0);
    } finally {
      removeTree(dest);
      removeTree(`${base}/cache-bundle`);
    }
  }, 300_000);

  needs("root", IS_ROOT)("-q: a failing bootstrap prints its error and nothing else", () => {
    const dest = `${base}/quiet-refused`;
    const port = unusedPort();
    const r = run(["bootstrap", "-q", "debian", "bookworm", dest, `--mirror=http://127.0.0.1:${port}`, `--cache-dir=${base}/cache-q`]);
    // only the error
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.code).toBe(1);
  });

  needs("root", IS_ROOT)("a mirror nobody listens on: connection refused, naming the URL", () => {
    const dest = `${base}/refused`;
    const port = unusedPort();
    const r = run(["bootstrap", "debian", "bookworm", dest, `--mirror=http://127.0.0.1:${port}/debian`, `--cache-dir=${base}/cache-refused`]);
    expect(lastLine(r.stderr)).toStartWith(`downloading http://127.0.0.1:${port}/debian/dists/bookworm/InRelease: connection refused by 127.0.0.1 port ${port}`);
    expect(r.stderr).not.toContain("ECONNREFUSED");
    expect(r.stderr).not.toContain("Is the computer");
    expect(r.code).toBe(1);
    expect(existsSync(dest)).toBe(false);
    const p = run(["pull-tar", "--verify=no", `http://127.0.0.1:${port}/x.tar.zst`, `sctest-msg-${process.pid}`]);
    expect(lastLine(p.stderr)).toStartWith(`downloading http://127.0.0.1:${port}/x.tar.zst: connection refused by 127.0.0.1 port ${port}`);
    expect(p.code).toBe(1);
  });

  needs("root", IS_ROOT)("a suite the mirror lacks: the suites it has", () => {
    const mirror = `${base}/mirror`;
    for (const s of ["bookworm", "trixie"]) mkdirSync(`${mirror}/dists/${s}`, { recursive: true });
    const r = run(["bootstrap", "debian", "nosuch", `${base}/nosuch`, `--mirror=file://${mirror}`, `--cache-dir=${base}/cache-nosuch`]);
    expect(lastLine(r.stderr)).toBe(`Unknown suite nosuch: the mirror has no ${mirror}/dists/nosuch/InRelease. Suites it has: bookworm, trixie.`);
    expect(r.code).toBe(1);
  });

  needs("root", IS_ROOT)("a truncated .tar.zst names the file and where it ends; nothing is left", () => {
    const name = `sctest-msg-trunc-${process.pid}`;
    const chunks: Uint8Array[] = [];
    const w = new TarWriter((c) => void chunks.push(c));
    for (let i = 0; i < 50; i++) w.addFile(`./f${i}`, new TextEncoder().encode(`${i} `.repeat(20000 + i * 97)), { mode: 0o644 });
    w.finish();
    const z = Bun.zstdCompressSync(Buffer.concat(chunks));
    const file = `${base}/cut.tar.zst`;
    const cut = Math.floor(z.length / 2);
    writeFileSync(file, z.subarray(0, cut));
    try {
      const r = run(["import-tar", file, name]);
      expect(lastLine(r.stderr)).toBe(`decompressing ${file} (zstd): the zstd stream ends early at byte ${cut} (the file is truncated or incomplete)`);
      expect(r.code).toBe(1);
      expect(readdirSync(POOL).filter((n) => n.includes(name))).toEqual([]);
    } finally {
      run(["remove", name]);
    }
  });

  needs("root", IS_ROOT)("a mistyped option: the program's name as invoked, and a suggestion", () => {
    const link = `${base}/systemd-nspawn`;
    symlinkSync(SPAWNCTL, link);
    const p = Bun.spawnSync([link, "--bnd=/x", "-D", "/", "true"], { stderr: "pipe", stdout: "pipe" });
    expect(p.stderr.toString()).toBe("systemd-nspawn: unrecognized option '--bnd'; did you mean '--bind'?\n");
    expect(p.exitCode).toBe(1);
    expect(run(["run", "--privte-network", "-D", "/", "true"]).stderr).toBe("spawnctl: unrecognized option '--privte-network'; did you mean '--private-network'?\n");
    expect(run(["list", "--no-legnd"]).stderr).toBe("spawnctl: unrecognized option '--no-legnd'; did you mean '--no-legend'?\n");
  });
});
