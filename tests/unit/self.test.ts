// How spawnctl finds its own executable when a dynamic loader started it
// (src/util/self.ts): the loader's options are kept, --argv0 dropped, the
// program and a relative library path made absolute.
import { expect, test } from "bun:test";
import { isLoader, parseLoaderCmdline } from "../../src/util/self.ts";

test("loaders are recognised by name", () => {
  for (const l of ["/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1", "/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "ld-musl-x86_64.so.1", "/usr/lib/x86_64-linux-musl/libc.so", "/lib/libc.musl-x86_64.so.1"]) expect(isLoader(l)).toBe(true);
  for (const l of ["/usr/local/bin/spawnctl", "/opt/ld-musl/spawnctl", "/usr/bin/ld", "/usr/lib/libcurl.so.4"]) expect(isLoader(l)).toBe(false);
});

test("the program after the loader's options, relative paths made absolute", () => {
  expect(parseLoaderCmdline(["/lib/ld-musl-x86_64.so.1", "--library-path", "lib", "./spawnctl", "run", "--help"], "/opt/s")).toEqual({
    options: ["--library-path", "/opt/s/lib"],
    program: "/opt/s/./spawnctl",
  });
  expect(parseLoaderCmdline(["ld.so", "--argv0", "machinectl", "--preload", "/x.so", "/usr/bin/spawnctl", "list"], "/")).toEqual({
    options: ["--preload", "/x.so"],
    program: "/usr/bin/spawnctl",
  });
  expect(parseLoaderCmdline(["ld.so", "--library-path=/a:/b", "--", "/s"], "/")).toEqual({ options: ["--library-path=/a:/b"], program: "/s" });
  expect(parseLoaderCmdline(["ld.so", "--list"], "/")).toBeUndefined();
});
