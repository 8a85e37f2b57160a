// /etc/spawnctl/spawnctl.toml: read with smol-toml, checked with zod; every
// error names the file (and the line, for TOML syntax) and the setting.
import { expect, test } from "bun:test";
import { parseConfig, parsePool } from "../../src/settings/config.ts";

const F = "/etc/spawnctl/spawnctl.toml";

test("an empty file is every default", () => {
  expect(parseConfig("", F)).toEqual({ images: {}, bootstrap: {}, network: {}, start: {}, oci: {} });
});

test("every setting", () => {
  const c = parseConfig(`
[images]
path = ["/srv/machines", "/var/lib/machines"]

[bootstrap]
mirror = "http://deb.example/debian"
ubuntu-mirror = "file:///srv/ubuntu"
arch-mirror = "http://arch.example/$repo/os/$arch"
cache-dir = "/srv/cache"

[network]
veth-pool = "172.30.0.0/16"

[start]
options = ["--quiet", "--boot", "--private-network"]
`, F);
  expect(c.images.path).toEqual(["/srv/machines", "/var/lib/machines"]);
  expect(c.bootstrap).toEqual({ mirror: "http://deb.example/debian", "ubuntu-mirror": "file:///srv/ubuntu", "arch-mirror": "http://arch.example/$repo/os/$arch", "cache-dir": "/srv/cache" });
  expect(c.network["veth-pool"]).toBe("172.30.0.0/16");
  expect(c.start.options).toEqual(["--quiet", "--boot", "--private-network"]);
});

test("TOML syntax errors name file:line:column", () => {
  expect(() => parseConfig("[images]\npath = [\n", F)).toThrow(/^\/etc\/spawnctl\/spawnctl\.toml:\d+:\d+: /);
});

test("unknown keys, wrong types and bad values name the file and the setting", () => {
  expect(() => parseConfig("[images]\npaths = []\n", F)).toThrow(/spawnctl\.toml: .*images/);
  expect(() => parseConfig("[imagez]\n", F)).toThrow(/spawnctl\.toml: /);
  expect(() => parseConfig('[images]\npath = "/x"\n', F)).toThrow(/images\.path: /);
  expect(() => parseConfig('[images]\npath = ["relative"]\n', F)).toThrow(/images\.path\.0: an absolute path/);
  expect(() => parseConfig('[bootstrap]\nmirror = "ftp://x"\n', F)).toThrow(/bootstrap\.mirror: an http/);
  expect(() => parseConfig('[network]\nveth-pool = "10.0.0.1/8"\n', F)).toThrow(/network\.veth-pool: an IPv4 prefix/);
  expect(() => parseConfig('[start]\noptions = ["web"]\n', F)).toThrow(/start\.options\.0: an option/);
});

test("address pools", () => {
  expect(parsePool("10.0.0.0/8")).toEqual({ base: "10.0.0.0", prefix: 8 });
  expect(parsePool("192.168.0.0/16")).toEqual({ base: "192.168.0.0", prefix: 16 });
  for (const bad of ["10.0.0.0/7", "10.0.0.0/25", "10.0.0.1/8", "300.0.0.0/8", "10.0.0.0", "x"]) expect(parsePool(bad)).toBeUndefined();
});
