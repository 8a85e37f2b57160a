import { describe, expect, test } from "bun:test";
import { AF_INET, AF_INET6, broadcastOf, formatAddress, formatPrefix, networkOf, parseAddress, parsePrefix, prefixMask } from "../../../src/net/ip.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("addresses", () => {
  test.each([
    ["10.0.0.1", AF_INET, "0a000001"],
    ["255.255.255.255", AF_INET, "ffffffff"],
    ["::", AF_INET6, "00".repeat(16)],
    ["::1", AF_INET6, `${"00".repeat(15)}01`],
    ["fd00::1", AF_INET6, `fd00${"00".repeat(13)}01`],
    ["2001:db8:0:0:1:0:0:1", AF_INET6, "20010db8000000000001000000000001"],
    ["::ffff:10.0.0.1", AF_INET6, `${"00".repeat(10)}ffff0a000001`],
    ["FE80::A:b", AF_INET6, `fe80${"00".repeat(10)}000a000b`],
  ])("%s", (s, family, bytes) => {
    const a = parseAddress(s);
    expect(a.family).toBe(family as typeof AF_INET);
    expect(hex(a.bytes)).toBe(bytes);
  });

  test.each(["10.0.0", "10.0.0.256", "10.0.0.01", "1.2.3.4.5", "::1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "gg::1", "fd00::1/64", "", "localhost"])("rejects %s", (s) => {
    expect(() => parseAddress(s)).toThrow(/is not an IP address/);
  });

  test("IPv6 prints in RFC 5952 form", () => {
    for (const [inp, out] of [
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["fd00:0:0:0:0:0:0:1", "fd00::1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
      ["fe80::", "fe80::"],
    ]) {
      expect(formatAddress(parseAddress(inp!).bytes)).toBe(out!);
    }
    expect(formatAddress(parseAddress("192.168.1.20").bytes)).toBe("192.168.1.20");
  });
});

describe("prefixes", () => {
  test("parse, with a bare address as a host prefix", () => {
    expect(parsePrefix("10.0.0.1/28").prefixLen).toBe(28);
    expect(parsePrefix("10.0.0.1").prefixLen).toBe(32);
    expect(parsePrefix("fd00::/64").prefixLen).toBe(64);
    expect(parsePrefix("fd00::1").prefixLen).toBe(128);
    for (const bad of ["10.0.0.1/33", "fd00::/129", "10.0.0.1/", "10.0.0.1/a"]) expect(() => parsePrefix(bad)).toThrow(/not an IP prefix/);
  });

  test("masks, networks and broadcast addresses", () => {
    expect(hex(prefixMask(4, 28))).toBe("fffffff0");
    expect(hex(prefixMask(4, 0))).toBe("00000000");
    expect(hex(prefixMask(2, 12))).toBe("fff0");
    expect(hex(networkOf(parsePrefix("10.1.2.19/28")))).toBe("0a010210");
    expect(hex(broadcastOf(parsePrefix("10.1.2.19/28")))).toBe("0a01021f");
    expect(formatPrefix(parsePrefix("fd00:1::5/64"))).toBe("fd00:1::5/64");
  });
});
