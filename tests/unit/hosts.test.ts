// The block of /etc/hosts spawnctl keeps for running machines (hosts = true).
import { expect, test } from "bun:test";
import { HOSTS_BEGIN, HOSTS_END, withMachineBlock } from "../../src/container/hosts.ts";

const ADMIN = "127.0.0.1 localhost\n# the admin's own\n10.9.9.9 db\n";

test("the block is added after the admin's lines, replaced in place, and removed with the last machine", () => {
  const one = withMachineBlock(ADMIN, [["web", "10.0.0.2"]]);
  expect(one).toBe(`${ADMIN}${HOSTS_BEGIN}\n10.0.0.2\tweb\n${HOSTS_END}\n`);
  const two = withMachineBlock(one, [["db2", "10.0.0.18"], ["web", "10.0.0.2"]]);
  expect(two).toBe(`${ADMIN}${HOSTS_BEGIN}\n10.0.0.18\tdb2\n10.0.0.2\tweb\n${HOSTS_END}\n`);
  expect(withMachineBlock(two, [])).toBe(ADMIN);
});

test("lines the admin added after the block stay, a file without a final newline gets one, an unterminated block is dropped to its end", () => {
  const after = `${ADMIN}${HOSTS_BEGIN}\n10.0.0.2\tweb\n${HOSTS_END}\n192.168.1.1 router\n`;
  expect(withMachineBlock(after, [])).toBe(`${ADMIN}192.168.1.1 router\n`);
  expect(withMachineBlock("127.0.0.1 localhost", [])).toBe("127.0.0.1 localhost\n");
  expect(withMachineBlock(`${ADMIN}${HOSTS_BEGIN}\n10.0.0.2\tweb\n`, [])).toBe(ADMIN);
  expect(withMachineBlock("", [])).toBe("");
});
