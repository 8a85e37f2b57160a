// --bind-user=: the host user's resolution and checks, its container id, the
// id maps with the user carved out, and the guest's account files.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { accountCopies, bindUserOps, guestHasNssSystemd, idMap, planBindUsers, BIND_USER_MIN, type HostAccounts } from "../../src/container/bind-user.ts";

const HOST: HostAccounts = {
  passwd: "root:x:0:0:root:/root:/bin/bash\nalice:x:4242:4242:Alice Liddell,,,:/home/alice:/bin/zsh\nbob:x:4243:100:Bob:/home/bob:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\ncarol:x:70000:70000::/home/carol:/bin/sh\n",
  group: "root:x:0:\nusers:x:100:\nalice:x:4242:\ncarol:x:70000:\nnogroup:x:65534:\n",
  shadow: "alice:$y$j9T$salt$hash:19000:0:99999:7:::\n",
};
const RANGE = { shift: 65536 * 10, range: 65536 };
let guest = "";

beforeAll(() => {
  guest = mkdtempSync("/tmp/sctest-bu-");
  mkdirSync(`${guest}/etc`);
  mkdirSync(`${guest}/bin`);
  writeFileSync(`${guest}/bin/sh`, "");
  writeFileSync(`${guest}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\nsys60514:x:60514:60514::/:/bin/sh\n");
  writeFileSync(`${guest}/etc/group`, "root:x:0:\nshadow:x:42:\n");
  writeFileSync(`${guest}/etc/shadow`, "root:*:19000:0:99999:7:::");
  writeFileSync(`${guest}/etc/nsswitch.conf`, "passwd:         files\ngroup:          files\n");
});
afterAll(() => rmSync(guest, { recursive: true, force: true }));

test("a user gets the first container id free in both the guest's passwd and group; the shell falls back to /bin/sh", () => {
  const [a] = planBindUsers(["alice"], guest, RANGE, HOST);
  // 60514 is taken by a guest user: the next one
  expect(a).toMatchObject({ name: "alice", hostUid: 4242, hostGid: 4242, id: BIND_USER_MIN + 1, hostHome: "/home/alice", home: "/run/host/home/alice", realName: "Alice Liddell", shell: "/bin/sh", hashedPassword: "$y$j9T$salt$hash", disposition: "regular" });
});

test("refusals name the user and the reason", () => {
  expect(() => planBindUsers(["nosuch"], guest, RANGE, HOST)).toThrow("Failed to resolve user 'nosuch'");
  expect(() => planBindUsers(["root"], guest, RANGE, HOST)).toThrow("Mapping 'root' user not supported");
  expect(() => planBindUsers(["nobody"], guest, RANGE, HOST)).toThrow("Mapping 'nobody' user not supported");
  expect(() => planBindUsers(["bob"], guest, RANGE, HOST)).toThrow("without private groups");
  expect(() => planBindUsers(["carol"], guest, { shift: 65536, range: 65536 }, HOST)).toThrow("already in container UID range");
  expect(() => planBindUsers(["alice"], guest, { shift: RANGE.shift, range: 60000 }, HOST)).toThrow("covers 60514");
  writeFileSync(`${guest}/etc/passwd.bak`, "");
  const g2 = mkdtempSync("/tmp/sctest-bu-");
  mkdirSync(`${g2}/etc`);
  writeFileSync(`${g2}/etc/passwd`, "alice:x:1000:1000::/home/alice:/bin/sh\n");
  expect(() => planBindUsers(["alice"], g2, RANGE, HOST)).toThrow("the user 'alice' already exists in the container");
  writeFileSync(`${g2}/etc/passwd`, "");
  writeFileSync(`${g2}/etc/group`, "alice:x:1000:\n");
  expect(() => planBindUsers(["alice"], g2, RANGE, HOST)).toThrow("the group 'alice' already exists in the container");
  rmSync(g2, { recursive: true });
});

test("the id maps carve the container id out of the range and map it to the host's id", () => {
  const bound = planBindUsers(["alice", "carol"], guest, RANGE, HOST);
  expect(bound.map((b) => b.id)).toEqual([60515, 60516]);
  expect(idMap(RANGE.shift, RANGE.range, bound, "uid")).toBe(
    `0 ${RANGE.shift} 60515\n60517 ${RANGE.shift + 60517} ${65536 - 60517}\n60515 4242 1\n60516 70000 1\n`,
  );
  expect(idMap(RANGE.shift, RANGE.range, bound, "gid")).toBe(
    `0 ${RANGE.shift} 60515\n60517 ${RANGE.shift + 60517} ${65536 - 60517}\n60515 4242 1\n60516 70000 1\n`,
  );
  // every container id 0…65535 is mapped exactly once
  const lines = idMap(RANGE.shift, RANGE.range, bound, "uid").trim().split("\n").map((l) => l.split(" ").map(Number));
  expect(lines.reduce((n, l) => n + l[2]!, 0)).toBe(65536);
});

test("guests without nss-systemd get their account files with the users' lines; the shadow copy keeps the guest's shadow group", () => {
  const bound = planBindUsers(["alice"], guest, RANGE, HOST);
  expect(guestHasNssSystemd(guest)).toBe(false);
  const copies = accountCopies(bound, guest);
  expect(copies.map((c) => c.path)).toEqual(["/etc/passwd", "/etc/group", "/etc/shadow"]);
  expect(copies[0]!.data).toBe("root:x:0:0:root:/root:/bin/sh\nsys60514:x:60514:60514::/:/bin/sh\nalice:x:60515:60515:Alice Liddell:/run/host/home/alice:/bin/sh\n");
  expect(copies[1]!.data).toBe("root:x:0:\nshadow:x:42:\nalice:x:60515:\n");
  // (the guest's file had no final newline)
  expect(copies[2]).toEqual({ path: "/etc/shadow", data: "root:*:19000:0:99999:7:::\nalice:$y$j9T$salt$hash:19000:0:99999:7:::\n", mode: 0o640, gid: 42 });
  const ops = bindUserOps(bound, copies);
  const writes = ops.filter((o) => o.kind === "write").map((o) => (o as { path: string }).path);
  expect(writes).toEqual([
    "/run/host/userdb/alice.group", "/run/host/userdb/alice.user-privileged", "/run/host/userdb/alice.user",
    "/run/host/userdb/.etc/passwd", "/run/host/userdb/.etc/group", "/run/host/userdb/.etc/shadow",
  ]);
  const user = ops.find((o) => o.kind === "write" && o.path === "/run/host/userdb/alice.user") as { data: string };
  expect(JSON.parse(user.data)).toEqual({ userName: "alice", uid: 60515, gid: 60515, disposition: "regular", homeDirectory: "/run/host/home/alice", service: "io.systemd.NSpawn" });
  // the hash only in the privileged part, readable by root alone
  expect(user.data).not.toContain("$y$");
  const priv = ops.find((o) => o.kind === "write" && o.path.endsWith(".user-privileged")) as { data: string; mode: number };
  expect(priv.mode).toBe(0o600);
  expect(ops.filter((o) => o.kind === "symlink").map((o) => (o as { path: string }).path)).toEqual([
    "/run/host/userdb/60515.group", "/run/host/userdb/60515.user-privileged", "/run/host/userdb/60515.user",
  ]);
  expect(ops.filter((o) => o.kind === "mount").map((o) => (o as { dst: string }).dst)).toEqual(["/etc/passwd", "/etc/group", "/etc/shadow"]);
});

test("guests with nss-systemd get the userdb records only; a link where a file belongs is left alone", () => {
  writeFileSync(`${guest}/etc/nsswitch.conf`, "passwd:         files systemd\ngroup:          files systemd\n");
  const bound = planBindUsers(["alice"], guest, RANGE, HOST);
  expect(guestHasNssSystemd(guest)).toBe(true);
  expect(accountCopies(bound, guest)).toEqual([]);
  writeFileSync(`${guest}/etc/nsswitch.conf`, "passwd: files # systemd\n");
  expect(guestHasNssSystemd(guest)).toBe(false);
  rmSync(`${guest}/etc/shadow`);
  symlinkSync("/etc/passwd", `${guest}/etc/shadow`);
  expect(accountCopies(bound, guest).map((c) => c.path)).toEqual(["/etc/passwd", "/etc/group"]);
});
