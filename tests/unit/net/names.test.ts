// Interface names and MAC addresses derived from machine names, checked
// against what systemd-nspawn 252.39 really produced (Debian 12, run here with
// --register=no --keep-unit inside a scratch network namespace, on a host
// whose /etc/machine-id was 3d1219c7c4c5404aaa1f6d2a48adfda4).
import { describe, expect, test } from "bun:test";
import { siphash24 } from "../../../src/net/siphash.ts";
import { interfaceNameForMachine, macForMachine } from "../../../src/net/names.ts";

const MACHINE_ID = Uint8Array.from(Buffer.from("3d1219c7c4c5404aaa1f6d2a48adfda4", "hex"));

describe("siphash24", () => {
  // the reference vectors: key 00..0f, message 00..(n-1)
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);
  const msg = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);
  test.each([
    [0, 0x726fdb47dd0e0e31n],
    [1, 0x74f839c593dc67fdn],
    [2, 0x0d6c8009d9a94f5an],
    [3, 0x85676696d7fb7e2dn],
    [4, 0xcf2794e0277187b7n],
    [8, 0x93f5f5799a932462n],
    [15, 0xa129ca6149be45e5n],
  ])("%d bytes", (n, want) => {
    const h = siphash24(msg(n), key);
    expect(new DataView(h.buffer).getBigUint64(0, true)).toBe(want);
  });

  test("refuses a key that is not 16 bytes", () => {
    expect(() => siphash24(msg(1), msg(8))).toThrow(/16-byte key/);
  });
});

describe("interfaceNameForMachine", () => {
  test("prefix + name when it fits in 15 bytes, with no altname", () => {
    expect(interfaceNameForMachine("ve-", "web")).toEqual({ name: "ve-web" });
    expect(interfaceNameForMachine("vb-", "twelve-chars")).toEqual({ name: "vb-twelve-chars" });
  });

  test("longer names are shortened exactly as systemd-nspawn does, keeping the full name as altname", () => {
    // nspawn: "Network interface name 've-averyveryverylongmachinename' has been changed to 've-averyvermBQ8'"
    expect(interfaceNameForMachine("ve-", "averyveryverylongmachinename")).toEqual({ name: "ve-averyvermBQ8", altname: "ve-averyveryverylongmachinename" });
  });

  test("the shortened name is 15 bytes: 11 of the original and 4 of hash", () => {
    for (const prefix of ["ve-", "vb-", "vz-", "mv-", "iv-"] as const) {
      const r = interfaceNameForMachine(prefix, "thirteen-char");
      expect(r.name.length).toBe(15);
      expect(r.name.startsWith(`${prefix}thirteen`)).toBe(true);
      expect(r.name.slice(11)).toMatch(/^[A-Za-z0-9_-]{4}$/);
      expect(r.altname).toBe(`${prefix}thirteen-char`);
    }
    // the hash covers the prefix, so ve- and vb- of one machine differ in more than the prefix
    expect(interfaceNameForMachine("ve-", "thirteen-char").name.slice(11)).not.toBe(interfaceNameForMachine("vb-", "thirteen-char").name.slice(11));
  });

  test("names of 128 bytes or more get no altname (the kernel's limit is 127)", () => {
    expect(interfaceNameForMachine("ve-", "x".repeat(124)).altname).toBe(`ve-${"x".repeat(124)}`);
    expect(interfaceNameForMachine("ve-", "x".repeat(125)).altname).toBeUndefined();
  });
});

describe("macForMachine", () => {
  test("the veth MACs systemd-nspawn gave machine web", () => {
    expect(macForMachine("web", "host", { machineId: MACHINE_ID })).toBe("de:33:ab:0b:45:44");
    expect(macForMachine("web", "container", { machineId: MACHINE_ID })).toBe("fe:38:c6:95:1d:f9");
  });

  test("the extra veth pairs, where the pair's index is hashed in from the second one on", () => {
    expect(macForMachine("web", "veth-extra-host", { machineId: MACHINE_ID })).toBe("b6:79:e7:37:bd:1f");
    expect(macForMachine("web", "veth-extra-container", { machineId: MACHINE_ID })).toBe("6e:be:12:05:d1:6e");
    expect(macForMachine("web", "veth-extra-host", { machineId: MACHINE_ID, index: 1 })).toBe("fa:57:91:69:b7:da");
    expect(macForMachine("web", "veth-extra-container", { machineId: MACHINE_ID, index: 1 })).toBe("36:c4:4e:68:bf:31");
  });

  test("a machine with a long name", () => {
    expect(macForMachine("averyveryverylongmachinename", "host", { machineId: MACHINE_ID })).toBe("ea:1a:94:fd:cf:1c");
    expect(macForMachine("averyveryverylongmachinename", "container", { machineId: MACHINE_ID })).toBe("a2:7f:25:fa:d3:b5");
  });

  test("always unicast and locally administered, and different per host", () => {
    const other = new Uint8Array(16).fill(7);
    for (const name of ["a", "web", "db-1", "x".repeat(64)]) {
      for (const purpose of ["host", "container", "macvlan"] as const) {
        const first = Number.parseInt(macForMachine(name, purpose, { machineId: MACHINE_ID }).slice(0, 2), 16);
        expect(first & 1).toBe(0);
        expect(first & 2).toBe(2);
        expect(macForMachine(name, purpose, { machineId: other })).not.toBe(macForMachine(name, purpose, { machineId: MACHINE_ID }));
      }
    }
  });

  test("without a machine id given, the host's is used, and the result is stable", () => {
    expect(macForMachine("web", "host")).toBe(macForMachine("web", "host"));
  });
});
