// spawnctl on a rescue system or a hardened server: each condition is made in
// a private mount namespace (unshare -m), so the host never sees it, and
// spawnctl either works there or says what it needs.
import { describe, expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { busyboxFixture } from "../fixture.ts";
import { SPAWNCTL, makeBusyboxTree, rootTest as test, run } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
});

/** `script` in a private mount namespace, with only the environment given. */
function inNamespace(script: string, env: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, cwd?: string) {
  const p = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "/bin/sh", "-euc", script], {
    env: { S: SPAWNCTL, T: tree, B: base, ...env },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
    cwd,
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

// a machine name of its own: other test files run busybox trees named bb too
const echo = (word: string) => `"$S" run -q -M sctest-rescue-run -D "$T" --pipe /bin/echo ${word}`;

describe("rescue conditions", () => {
  test("/tmp mounted noexec and TMPDIR unset", () => {
    const r = inNamespace(`mount -t tmpfs -o noexec tmpfs /tmp; ${echo("ran")}`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ran\n");
    expect(r.code).toBe(0);
  });

  test("/ read-only with a tmpfs /run and /var/lib/machines: --read-only and -x of a tree on it work, a writable run says what it needs", () => {
    const r = inNamespace(`
      mount -o remount,bind,ro /
      mount -t tmpfs tmpfs /run
      mount -t tmpfs tmpfs /var/lib/machines
      if touch "$B/probe" 2>/dev/null; then echo "the tree's file system is writable" >&2; exit 90; fi
      "$S" run -q -M sctest-rescue-run --read-only -D "$T" --pipe /bin/echo read-only
      "$S" run -q -M sctest-rescue-run -x -D "$T" --pipe /bin/echo ephemeral
      "$S" list-images >/dev/null
      if ${echo("writable")}; then exit 91; fi
    `);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("read-only\nephemeral\n");
    expect(r.stderr).toContain("Read-only file system");
    expect(r.stderr).toContain("Remount that file system read-write");
    expect(r.stderr).not.toContain("    at ");
  });

  test("/ read-only: start needs a writable /var/log/spawnctl and says so; with a tmpfs there a machine starts and is cleaned up", () => {
    const r = inNamespace(`
      mount -o remount,bind,ro /
      mount -t tmpfs tmpfs /run
      mount -t tmpfs tmpfs /var/lib/machines
      mkdir /var/lib/machines/sctest-ro && cp -a "$T/." /var/lib/machines/sctest-ro/
      if unshare --net "$S" start sctest-ro; then exit 92; fi
      mount -t tmpfs tmpfs /var/log/spawnctl
      unshare --net "$S" start sctest-ro
      "$S" list --no-legend
      "$S" terminate sctest-ro
      i=0; while "$S" list --no-legend | grep -q sctest-ro; do i=$((i+1)); [ $i -lt 100 ] || exit 93; sleep 0.1; done
      ls /run/spawnctl/machines
    `);
    expect(r.stderr).toBe("Failed to open /var/log/spawnctl/sctest-ro.console: Read-only file system. Remount that file system read-write, or choose a path on a writable one.\n");
    expect(r.stdout).toMatch(/^sctest-ro +container +spawnctl +busybox +1 +-\n$/);
    expect(r.code).toBe(0);
  });

  test("/dev/shm missing", () => {
    // a /dev of its own with the usual nodes and no shm
    const r = inNamespace(`
      mount -t tmpfs -o mode=755 tmpfs /dev
      mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
      mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
      test ! -e /dev/shm
      ${echo("no-shm")}
    `);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("no-shm\n");
  });

  test("no /etc/machine-id", () => {
    // /etc as an overlay whose upper layer hides machine-id (a whiteout)
    mkdirSync(`${base}/etc-upper`, { recursive: true });
    mkdirSync(`${base}/etc-work`, { recursive: true });
    const r = inNamespace(`
      mknod "$B/etc-upper/machine-id" c 0 0
      mount -t overlay overlay -o lowerdir=/etc,upperdir="$B/etc-upper",workdir="$B/etc-work" /etc
      test ! -e /etc/machine-id
      ${echo("no-machine-id")}
    `);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("no-machine-id\n");
  });

  test("no liblzma (nor xz): a multi-block .tar.xz is decoded by the binary's own decoder in Workers", () => {
    const src = `${base}/xz-src`;
    mkdirSync(`${src}/data`, { recursive: true });
    writeFileSync(`${src}/data/blob`, Buffer.alloc(3 << 20).map((_, i) => (i * 7919) % 251));
    const r = inNamespace(`
      tar -C "$B/xz-src" -cf - . | xz -T2 --block-size=256KiB > "$B/multi.tar.xz"
      for l in /lib/*/liblzma.so.5 /usr/lib/*/liblzma.so.5; do [ -e "$l" ] && mount --bind /dev/null "$l"; done
      mkdir -p "$B/xz-pool"
      PATH=/nonexistent SPAWNCTL_IMAGE_PATH="$B/xz-pool" "$S" import-tar "$B/multi.tar.xz" xz-smoke
    `);
    expect(r.stderr).toContain("Imported image 'xz-smoke'");
    expect(r.code).toBe(0);
    expect(Buffer.compare(readFileSync(`${base}/xz-pool/xz-smoke/data/blob`), readFileSync(`${src}/data/blob`))).toBe(0);
  });

  test("PATH empty and HOME unset", () => {
    const envs: Array<Record<string, string>> = [{ PATH: "" }, {}];
    for (const env of envs) {
      const r = inNamespace(echo("bare"), env);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("bare\n");
    }
  });

  test("invoked by a relative path, through links, from another directory, as systemd-nspawn", () => {
    mkdirSync(`${base}/bin`, { recursive: true });
    mkdirSync(`${base}/elsewhere`, { recursive: true });
    symlinkSync(SPAWNCTL, `${base}/spawnctl-target`);
    symlinkSync("../spawnctl-target", `${base}/bin/sc`);
    symlinkSync("../spawnctl-target", `${base}/bin/systemd-nspawn`);
    const r = inNamespace(`
      ../bin/sc run -q -M sctest-rescue-run -D "$T" --pipe /bin/echo relative-link
      cd /; "$B/bin/sc" --version | head -n 1 | grep -q spawnctl
      cd "$B/elsewhere"; ../bin/systemd-nspawn -q -M sctest-rescue-run -D ../bb --pipe /bin/echo as-nspawn
    `, { PATH: "/usr/bin:/bin" }, `${base}/elsewhere`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("relative-link\nas-nspawn\n");
  });

  const loader = process.arch === "arm64" ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2";

  test("started through the dynamic loader", () => {
    const r = inNamespace(`"${loader}" ${echo("via-loader")}`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("via-loader\n");
  });

  test("a machine started through the dynamic loader is cleaned up by its supervisor, which runs spawnctl through the loader too", async () => {
    // process.execPath is the loader then; the supervisor's __machine-exited
    // must not run the loader on its own (it would not find spawnctl)
    const name = "sctest-rescue";
    const pool = `${base}/pool`;
    const env = { SPAWNCTL_IMAGE_PATH: pool };
    makeBusyboxTree(`${pool}/${name}`, { init: "#!/bin/sh\ntrap 'exit 0' 38\nwhile true; do sleep 0.05; done\n" });
    const states = () => (existsSync("/run/spawnctl/machines") ? readdirSync("/run/spawnctl/machines").filter((f) => f.startsWith(`${name}.`) && !f.endsWith(".lock")) : []);
    try {
      const p = Bun.spawnSync(["unshare", "--net", loader, SPAWNCTL, "start", name], { env: { ...process.env, ...env }, stderr: "pipe", timeout: 60_000 });
      expect(p.stderr.toString()).toBe("");
      expect(p.exitCode).toBe(0);
      expect(run(["list", "--no-legend"], { env }).stdout).toContain(name);
      expect(states().length).toBeGreaterThan(0);
      expect(run(["poweroff", name], { env }).code).toBe(0);
      const end = Date.now() + 15_000;
      while (states().length && Date.now() < end) await Bun.sleep(50);
      expect(states()).toEqual([]);
      expect(run(["list", "--no-legend"], { env }).stdout).not.toContain(name);
    } finally {
      run(["terminate", name], { env });
      rmSync(`/var/log/spawnctl/${name}.console`, { force: true });
    }
  });
});
