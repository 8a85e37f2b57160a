// Reading files inside an untrusted tree: symlinks stay inside it.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { chaseInRoot, parsePasswd, readInRoot, resolveUser, parseOsRelease } from "../../src/util/tree.ts";
import { tmpdir } from "node:os";

const root = mkdtempSync(`${tmpdir()}/spawnctl-tree-`);
afterAll(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(`${root}/etc`);
mkdirSync(`${root}/usr/lib`, { recursive: true });
writeFileSync(`${root}/usr/lib/os-release`, 'ID=test\nPRETTY_NAME="Test \\"OS\\""\n');
symlinkSync("../usr/lib/os-release", `${root}/etc/os-release`);
symlinkSync("/etc/hostname", `${root}/etc/abs-link`); // would be the host's file if followed naively
symlinkSync("../../../../../etc/hostname", `${root}/etc/dotdot-link`);
symlinkSync("loop2", `${root}/etc/loop1`);
symlinkSync("loop1", `${root}/etc/loop2`);
writeFileSync(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/ash\n");
writeFileSync(`${root}/etc/group`, "root:x:0:\nwheel:x:10:alice\nalice:x:1001:\n");

test("relative links resolve inside the tree", () => {
  expect(chaseInRoot(root, "/etc/os-release")).toBe(`${root}/usr/lib/os-release`);
  expect(parseOsRelease(readInRoot(root, "/etc/os-release")!).PRETTY_NAME).toBe('Test "OS"');
});

test("absolute links and .. never leave the tree", () => {
  expect(chaseInRoot(root, "/etc/abs-link")).toBeUndefined(); // <root>/etc/hostname does not exist
  writeFileSync(`${root}/etc/hostname`, "inside\n");
  expect(readInRoot(root, "/etc/abs-link")).toBe("inside\n");
  expect(readInRoot(root, "/etc/dotdot-link")).toBe("inside\n");
  expect(chaseInRoot(root, "/../../etc/passwd")).toBe(`${root}/etc/passwd`);
});

test("link loops end", () => {
  expect(chaseInRoot(root, "/etc/loop1")).toBeUndefined();
});

test("users and groups from the tree's files", () => {
  expect(parsePasswd("a:x:1:2:g:/h:/s\nbad\n")).toEqual([{ name: "a", uid: 1, gid: 2, gecos: "g", home: "/h", shell: "/s", line: 1 }]);
  expect(resolveUser(root, "alice")).toEqual({ name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/ash", groups: [10] });
  expect(resolveUser(root, "1001")?.name).toBe("alice");
  expect(resolveUser(root, "4242")).toMatchObject({ uid: 4242, gid: 4242 });
  expect(resolveUser(root, "nobody-here")).toBeUndefined();
});
