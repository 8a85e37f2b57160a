// e2e: the seed's X11 section and --bind-user with Debian guests.
//  - X: an Xvfb on the host whose clients need its cookie (-auth); xdpyinfo
//    (x11-utils) in a Debian bookworm guest reaches it with --x11, under -U,
//    with --as-pid2 as another user, from a booted machine through
//    systemd-run -M as the seed does, and by the seed's own manual recipe
//    (xauth nextract | sed 's/^..../ffff/' | xauth nmerge, --bind, -E).
//  - --bind-user: a booted Debian machine under start's defaults (-U, its own
//    network) with BindUser= in its .nspawn file: the host user logs in with
//    machinectl shell USER@NAME and su, and what it writes is the host user's.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, run, tempDir, type Result } from "../helpers.ts";
import { CACHE, ensureDebianTree, haveMirror } from "./debian.ts";
import { FAMILY_LOCAL, serializeXauthority } from "../../src/container/x11.ts";

const ok = IS_ROOT && haveMirror() && existsSync("/usr/bin/Xvfb") && existsSync("/usr/bin/xauth");
const test = needs("root, a Debian mirror, Xvfb and xauth (Debian's xvfb package)", ok);
/** a Debian tree with x11-utils, made once by spawnctl bootstrap */
const X11_TREE = `${CACHE}/debian-bookworm-x11-v1`;
const XNAME = "sctest-x11";
const UNAME = "sctest-bu-deb";
const USER = "sctestdeb";
const UID = 4251;
const DISPLAY_NO = String(60 + (process.pid % 30));
const DISPLAY = `:${DISPLAY_NO}`;
const mine = (l: string) => l.includes(XNAME) || l.includes(UNAME) || l.startsWith("sysctl:");
const before = ok ? leftovers().filter(mine) : [];
let tmp = "";
let xvfb: ReturnType<typeof Bun.spawn> | undefined;
let xenv: Record<string, string> = {};

beforeAll(async () => {
  if (!ok) return;
  tmp = tempDir();
  if (!existsSync(`${X11_TREE}/usr/bin/xdpyinfo`)) {
    mkdirSync(CACHE, { recursive: true });
    const b = Bun.spawnSync([SPAWNCTL, "bootstrap", "debian", "bookworm", X11_TREE, "--include=systemd-sysv,dbus,x11-utils", "--root-password="], { stdout: "inherit", stderr: "inherit" });
    if (b.exitCode !== 0) throw new Error(`spawnctl bootstrap failed (${b.exitCode})`);
  }
  // the X server's cookie, in the host user's Xauthority (under this host's name, as xauth writes it)
  const host = readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
  const cookie = crypto.getRandomValues(new Uint8Array(16));
  writeFileSync(`${tmp}/Xauthority`, serializeXauthority([{ family: FAMILY_LOCAL, address: new TextEncoder().encode(host), number: DISPLAY_NO, name: "MIT-MAGIC-COOKIE-1", data: cookie }]), { mode: 0o600 });
  xenv = { DISPLAY, XAUTHORITY: `${tmp}/Xauthority` };
  xvfb = Bun.spawn(["Xvfb", DISPLAY, "-auth", `${tmp}/Xauthority`, "-nolisten", "tcp"], { stdout: "ignore", stderr: "ignore" });
  const end = Date.now() + 10_000;
  while (!existsSync(`/tmp/.X11-unix/X${DISPLAY_NO}`) && Date.now() < end) await Bun.sleep(50);
  mkdirSync("/var/lib/machines", { recursive: true });
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  rmSync(`/var/lib/machines/${XNAME}`, { force: true });
  symlinkSync(X11_TREE, `/var/lib/machines/${XNAME}`);
  writeFileSync(`/etc/systemd/nspawn/${XNAME}.nspawn`, "[Exec]\nEphemeral=yes\nNotifyReady=yes\n[Files]\nX11=yes\n");
  rmSync(`/var/lib/machines/${UNAME}`, { force: true });
  symlinkSync(ensureDebianTree(), `/var/lib/machines/${UNAME}`);
  writeFileSync(`/etc/systemd/nspawn/${UNAME}.nspawn`, `[Exec]\nEphemeral=yes\nNotifyReady=yes\n[Files]\nBindUser=${USER}\n`);
  // the host user, in a private mount namespace's copies of the account files
  const add = (f: string, line: string) => writeFileSync(`${tmp}/${f}`, readFileSync(`/etc/${f}`, "utf8") + line);
  add("passwd", `${USER}:x:${UID}:${UID}:Debian Test:${tmp}/home:/bin/bash\n`);
  add("group", `${USER}:x:${UID}:\n`);
  add("shadow", `${USER}:!:19000:0:99999:7:::\n`);
  mkdirSync(`${tmp}/home`, { mode: 0o700 });
  writeFileSync(`${tmp}/home/hello`, "from the host\n");
  chownSync(`${tmp}/home`, UID, UID);
  chownSync(`${tmp}/home/hello`, UID, UID);
}, 900_000);

afterAll(async () => {
  if (!ok) return;
  for (const n of [XNAME, UNAME]) {
    run(["terminate", n]);
    rmSync(`/var/lib/machines/${n}`, { force: true });
    rmSync(`/etc/systemd/nspawn/${n}.nspawn`, { force: true });
    rmSync(`/var/log/spawnctl/${n}.console`, { force: true });
  }
  if (xvfb) {
    xvfb.kill();
    await xvfb.exited;
  }
  rmSync(tmp, { recursive: true, force: true });
  const end = Date.now() + 10_000;
  let left = leftovers().filter(mine).filter((l) => !before.includes(l));
  while (left.length && Date.now() < end) {
    Bun.sleepSync(200);
    left = leftovers().filter(mine).filter((l) => !before.includes(l));
  }
  expect(left).toEqual([]);
});

/** a shell script as root, in a network namespace of its own */
function sh(script: string, env: Record<string, string> = {}): Result {
  const p = Bun.spawnSync(["unshare", "--net", "sh", "-c", script], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env }, timeout: 180_000 });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("X11 apps in a Debian guest", () => {
  test("--x11 under -U: xdpyinfo reaches the host's X server with the cookie; without the cookie the server refuses", () => {
    const r = run(["run", "-q", "-P", "-x", "-U", "-D", X11_TREE, "--x11", "xdpyinfo"], { env: xenv, netns: true });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`name of display:    ${DISPLAY}`);
    // the socket alone is not enough: the server wants its cookie
    const bare = run(["run", "-q", "-P", "-x", "-U", "-D", X11_TREE, "--bind-ro=/tmp/.X11-unix", `-E`, `DISPLAY=${DISPLAY}`, "xdpyinfo"], { env: xenv, netns: true });
    expect(bare.code).not.toBe(0);
    expect(bare.stderr).toContain("unable to open display");
  });

  test("--x11 with --as-pid2 as another user: the Xauthority is that user's", () => {
    const r = run(["run", "-q", "-P", "-x", "-D", X11_TREE, "--x11", "--as-pid2", "-u", "nobody", "sh", "-c", "stat -c '%U %a' $XAUTHORITY; xdpyinfo -display $DISPLAY | head -1"], { env: xenv, netns: true });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`nobody 600\nname of display:    ${DISPLAY}\n`);
  });

  test("the seed's recipe by hand: xauth nextract | sed | xauth nmerge, --bind, -E, --as-pid2", () => {
    const xa = `${tmp}/container_xauth`;
    const r = sh(
      `xauth nextract - "$DISPLAY" | sed -e 's/^..../ffff/' | xauth -f ${xa} nmerge - && ` +
      `${SPAWNCTL} run -q -P -x -D ${X11_TREE} --bind=/tmp/.X11-unix --bind=${xa} -E DISPLAY="$DISPLAY" -E XAUTHORITY=${xa} --as-pid2 /usr/bin/xdpyinfo`,
      xenv,
    );
    // (xauth says it makes a new file)
    expect(r.stderr.replace(/^xauth: +file .* does not exist\n/m, "")).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`name of display:    ${DISPLAY}`);
  });

  test("a booted machine with X11=yes: systemd-run -M NAME --setenv=DISPLAY=... runs an X client, as the seed does", () => {
    const links = tempDir();
    symlinkSync(SPAWNCTL, `${links}/systemd-run`);
    try {
      const r = sh(
        `${SPAWNCTL} start ${XNAME} && ${links}/systemd-run -M ${XNAME} -P --setenv=DISPLAY=${DISPLAY} --setenv=XAUTHORITY=/run/host/xauthority /usr/bin/xdpyinfo; ` +
        `rc=$?; ${SPAWNCTL} poweroff ${XNAME}; exit $rc`,
        xenv,
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`name of display:    ${DISPLAY}`);
    } finally {
      rmSync(links, { recursive: true, force: true });
    }
  });
});

describe("--bind-user with a booted Debian machine", () => {
  test("BindUser= under start's defaults: shell USER@NAME and su reach the host user's home, with its ownership", () => {
    const binds = ["passwd", "group", "shadow"].map((f) => `mount --bind ${tmp}/${f} /etc/${f}`).join(" && ");
    const p = Bun.spawnSync(["unshare", "--mount", "--propagation=private", "--net", "sh", "-c",
      `${binds} && ${SPAWNCTL} start ${UNAME} && ` +
      `${SPAWNCTL} shell ${USER}@${UNAME} /bin/sh -c 'id; pwd; cat hello; echo from-guest > made' && ` +
      `${SPAWNCTL} shell ${UNAME} /bin/su - ${USER} -c 'getent passwd ${USER}; ls -ln made'; rc=$?; ${SPAWNCTL} poweroff ${UNAME}; exit $rc`,
    ], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 180_000 });
    const out = p.stdout.toString().replace(/\r/g, "");
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    expect(out).toContain(`uid=60514(${USER}) gid=60514(${USER}) groups=60514(${USER})`);
    expect(out).toContain(`/run/host/home/${USER}\nfrom the host\n`);
    expect(out).toContain(`${USER}:x:60514:60514:Debian Test:/run/host/home/${USER}:/bin/bash`);
    expect(out).toMatch(/-rw-r--r-- 1 60514 60514 \d+ .* made/);
    const st = statSync(`${tmp}/home/made`);
    expect([st.uid, st.gid]).toEqual([UID, UID]);
  });
});
