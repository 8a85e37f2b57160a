// --bind-user= (BindUser=), as nspawn: a host user's home at
// /run/host/home/USER, its uid and gid mapped to 60514…, a userdb record and,
// for a guest without nss-systemd (busybox), passwd/group/shadow lines in
// copies bound over the tree's files, which stay as they were.
//
// The host's accounts are made in a private mount namespace (copies of
// /etc/passwd, /etc/group and /etc/shadow with a test user, bound over the
// host's): the host's own files are never written.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, removeTree, rootTest as test, tempDir, type Result } from "../helpers.ts";

const USER = "sctestbu";
const UID = 4242;
const NAME = "sctest-binduser";
const IMAGE = `/var/lib/machines/${NAME}`;
let base = "";
let tree = "";
const before = IS_ROOT ? leftovers() : [];

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  const add = (f: string, line: string) => writeFileSync(`${base}/${f}`, readFileSync(`/etc/${f}`, "utf8") + line);
  add("passwd", `${USER}:x:${UID}:${UID}:Bound User,,,:${base}/home:/bin/sh\ntester:x:4243:4243::/tmp:/bin/sh\n`);
  add("group", `${USER}:x:${UID}:\ntester:x:4243:\n`);
  add("shadow", `${USER}:$y$j9T$testsalt$testhash:19000:0:99999:7:::\n`);
  mkdirSync(`${base}/home`, { mode: 0o700 });
  writeFileSync(`${base}/home/note`, "from the host\n");
  chownSync(`${base}/home`, UID, UID);
  chownSync(`${base}/home/note`, UID, UID);
  tree = makeBusyboxTree(`${base}/tree`);
  removeTree(IMAGE);
  makeBusyboxTree(IMAGE, { init: "#!/bin/sh\ntrap 'exit 0' 38\nwhile true; do sleep 1; done\n" });
});

afterAll(() => {
  if (!IS_ROOT) return;
  host(["terminate", NAME]);
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  removeTree(IMAGE);
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

/** spawnctl with the test's host accounts, in a network namespace of its own */
function host(args: string[], script = ""): Result {
  const binds = ["passwd", "group", "shadow"].map((f) => `mount --bind ${base}/${f} /etc/${f}`).join(" && ");
  const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const cmd = `${binds} && ${script || `exec ${SPAWNCTL} ${args.map(q).join(" ")}`}`;
  const p = Bun.spawnSync(["unshare", "--mount", "--propagation=private", "--net", "sh", "-c", cmd], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 120_000 });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

const treeFiles = () => ["passwd", "group"].map((f) => readFileSync(`${tree}/etc/${f}`, "utf8"));

describe("--bind-user", () => {
  test("the user, its home and its records are in the container; what it writes is the host user's; the tree is unchanged", () => {
    const files = treeFiles();
    const r = host(["run", "-q", "-P", "-U", "-D", tree, `--bind-user=${USER}`, "sh", "-c",
      `id ${USER}; grep ${USER} /etc/passwd /etc/group; cat /proc/self/uid_map; ls /run/host/userdb; cat /run/host/userdb/${USER}.user; ` +
      `cat /run/host/home/${USER}/note; su -s /bin/sh ${USER} -c 'id -u; echo written > /run/host/home/${USER}/made'; touch /etc/passwd 2>&1 || true`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`uid=60514(${USER}) gid=60514(${USER})`);
    expect(r.stdout).toContain(`/etc/passwd:${USER}:x:60514:60514:Bound User:/run/host/home/${USER}:/bin/sh`);
    expect(r.stdout).toContain(`/etc/group:${USER}:x:60514:`);
    expect(r.stdout).toMatch(/^\s+60514\s+4242\s+1$/m);
    expect(r.stdout).toContain(`60514.user\n60514.user-privileged\n${USER}.group\n${USER}.user\n${USER}.user-privileged`);
    expect(JSON.parse(r.stdout.split("\n").find((l) => l.startsWith("{"))!)).toMatchObject({ userName: USER, uid: 60514, homeDirectory: `/run/host/home/${USER}` });
    expect(r.stdout).toContain("from the host\n60514\n");
    // the account copies are read-only
    expect(r.stdout).toContain("Read-only file system");
    const made = statSync(`${base}/home/made`);
    expect([made.uid, made.gid]).toEqual([UID, UID]);
    expect(readFileSync(`${base}/home/made`, "utf8")).toBe("written\n");
    expect(treeFiles()).toEqual(files);
  });

  test("-u USER runs the command as the bound user, with its home as HOME", () => {
    const r = host(["run", "-q", "-P", "-U", "-D", tree, `--bind-user=${USER}`, `-u`, USER, "sh", "-c", "id -u; echo $HOME; pwd"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`60514\n/run/host/home/${USER}\n/\n`);
  });

  test("refusals: without -U, a user the guest has, an unknown user", () => {
    let r = host(["run", "-q", "-D", tree, `--bind-user=${USER}`, "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--bind-user= is only supported with --private-users=/-U.");
    r = host(["run", "-q", "-U", "-D", tree, "--bind-user=tester", "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Sorry, the user 'tester' already exists in the container.");
    r = host(["run", "-q", "-U", "-D", tree, "--bind-user=sctest-nosuch", "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Failed to resolve user 'sctest-nosuch'");
  });

  test("BindUser= in a machine's .nspawn file under start's defaults: shell USER@NAME logs in as the bound user", () => {
    mkdirSync("/etc/systemd/nspawn", { recursive: true });
    writeFileSync(`/etc/systemd/nspawn/${NAME}.nspawn`, `[Files]\nBindUser=${USER}\n`);
    const r = host([], `${SPAWNCTL} start ${NAME} && ${SPAWNCTL} shell ${USER}@${NAME} /bin/sh -c 'id; pwd; cat note' ; rc=$?; ${SPAWNCTL} poweroff ${NAME}; exit $rc`);
    expect(r.stderr).not.toContain("rror");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`uid=60514(${USER}) gid=60514(${USER})`);
    expect(r.stdout).toContain(`/run/host/home/${USER}\nfrom the host\n`);
  });
});
