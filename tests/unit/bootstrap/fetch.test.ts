// Downloads: file:// and a local HTTP server (no network), checksum and size
// checks, the cache, concurrency, cancellation, and index/Release fetching
// from a fake mirror directory.
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fetchAll } from "../../../src/archive/download.ts";
import { fetchIndex, fetchRelease } from "../../../src/bootstrap/fetch.ts";
import { parseKeyring } from "../../../src/archive/pgp.ts";
import type { Release } from "../../../src/bootstrap/release.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";
import { T0 } from "./pgp-fixtures.ts";

const FIXTURES = `${import.meta.dir}/fixtures`;
const tmp = mkdtempSync("/tmp/spawnctl-fetch-test-");
afterAll(() => {
  server.stop(true);
  rmSync(tmp, { recursive: true, force: true });
});

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

// A local server: /files/NAME serves FILES[NAME] after DELAY ms, counting
// requests and the most that were in flight at once.
const FILES: Record<string, Uint8Array> = {};
let requests: string[] = [];
let inFlight = 0;
let maxInFlight = 0;
let delay = 0;
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const name = new URL(req.url).pathname.replace(/^\/files\//, "");
    requests.push(name);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (delay) await Bun.sleep(delay);
      const body = FILES[name];
      return body ? new Response(Buffer.from(body)) : new Response("gone", { status: 404, statusText: "Not Found" });
    } finally {
      inFlight--;
    }
  },
});
const url = (name: string) => `http://127.0.0.1:${server.port}/files/${name}`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(`${tmp}/case-`);
  requests = [];
  maxInFlight = 0;
  delay = 0;
});

const leftovers = (d: string) => readdirSync(d, { recursive: true }).map(String).filter((f) => f.endsWith(".tmp"));

describe("fetchAll", () => {
  test("downloads to dest over http and file://, checking size and SHA-256", async () => {
    const data = bytes(100_000, 1);
    FILES["a.deb"] = data;
    writeFileSync(`${dir}/src.deb`, data);
    const [a, b] = await fetchAll([
      { url: url("a.deb"), size: data.length, sha256: sha256(data), dest: `${dir}/out/a.deb` },
      { url: `file://${dir}/src.deb`, size: data.length, sha256: sha256(data).toUpperCase(), dest: `${dir}/out/b.deb` },
    ]);
    expect(a).toEqual({ url: url("a.deb"), path: `${dir}/out/a.deb`, size: data.length, sha256: sha256(data), cached: false });
    expect(b!.path).toBe(`${dir}/out/b.deb`);
    expect(new Uint8Array(readFileSync(`${dir}/out/a.deb`))).toEqual(data);
    expect(new Uint8Array(readFileSync(`${dir}/out/b.deb`))).toEqual(data);
    expect(leftovers(dir)).toEqual([]);
  });

  test("without dest or cacheDir the data stays in memory", async () => {
    FILES["m"] = bytes(5000, 2);
    const [m] = await fetchAll([{ url: url("m") }]);
    expect(m!.data).toEqual(FILES["m"]!);
    expect(m!.sha256).toBe(sha256(FILES["m"]!));
    expect(m!.path).toBeUndefined();
  });

  test("a SHA-256 mismatch is an error naming the URL, expected and actual hash; nothing is left", async () => {
    FILES["bad.deb"] = bytes(1000, 3);
    const wrong = "0".repeat(64);
    const err = await fetchAll([{ url: url("bad.deb"), size: 1000, sha256: wrong, dest: `${dir}/bad.deb` }]).catch((e) => e);
    expect(err).toBeInstanceOf(SpawnctlError);
    expect(err.message).toBe(`downloading ${url("bad.deb")}: SHA-256 mismatch: expected ${wrong}, got ${sha256(FILES["bad.deb"]!)}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a size mismatch is an error, too long or too short", async () => {
    FILES["s"] = bytes(1000, 4);
    await expect(fetchAll([{ url: url("s"), size: 999, dest: `${dir}/s` }])).rejects.toThrow(`downloading ${url("s")}: size mismatch: expected 999 bytes, got more`);
    await expect(fetchAll([{ url: url("s"), size: 1001 }])).rejects.toThrow("size mismatch: expected 1001 bytes, got 1000");
    await Bun.sleep(10);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("HTTP errors, missing files and unknown schemes name the URL; not-found carries ENOENT", async () => {
    const e404 = await fetchAll([{ url: url("nope") }]).catch((e) => e);
    expect(e404.message).toBe(`downloading ${url("nope")}: HTTP 404 Not Found (no such file on the server)`);
    expect(e404.errno).toBe(2);
    const eFile = await fetchAll([{ url: `file://${dir}/nope` }]).catch((e) => e);
    expect(eFile.message).toBe(`downloading file://${dir}/nope: No such file or directory`);
    expect(eFile.errno).toBe(2);
    await expect(fetchAll([{ url: "ftp://example.invalid/x" }])).rejects.toThrow('downloading ftp://example.invalid/x: unsupported URL scheme "ftp" (use http, https or file)');
  });

  test("a cached file with the right hash is reused without a request; a wrong one is replaced", async () => {
    const data = bytes(2000, 5);
    FILES["c.deb"] = data;
    mkdirSync(`${dir}/cache`);
    writeFileSync(`${dir}/cache/c.deb`, data);
    const [hit] = await fetchAll([{ url: url("c.deb"), size: 2000, sha256: sha256(data), dest: `${dir}/out/c.deb` }], { cacheDir: `${dir}/cache` });
    expect(hit!.cached).toBe(true);
    expect(requests).toEqual([]);
    expect(new Uint8Array(readFileSync(`${dir}/out/c.deb`))).toEqual(data);

    writeFileSync(`${dir}/cache/c.deb`, "stale");
    const [miss] = await fetchAll([{ url: url("c.deb"), size: 2000, sha256: sha256(data) }], { cacheDir: `${dir}/cache` });
    expect(miss).toMatchObject({ cached: false, path: `${dir}/cache/c.deb` });
    expect(new Uint8Array(readFileSync(`${dir}/cache/c.deb`))).toEqual(data);
    expect(requests).toEqual(["c.deb"]);
  });

  test("runs at most `concurrency` downloads at once and reports progress to the total", async () => {
    delay = 20;
    const items = Array.from({ length: 12 }, (_, i) => {
      FILES[`p${i}`] = bytes(1000 + i, i);
      return { url: url(`p${i}`), size: 1000 + i, sha256: sha256(FILES[`p${i}`]!), dest: `${dir}/p${i}` };
    });
    const seen: Array<[number, number]> = [];
    const results = await fetchAll(items, { concurrency: 3, onProgress: (d, t) => seen.push([d, t]) });
    expect(results.map((r) => r.path)).toEqual(items.map((i) => i.dest));
    expect(maxInFlight).toBe(3);
    const total = items.reduce((n, i) => n + i.size, 0);
    expect(seen[seen.length - 1]).toEqual([total, total]);
  });

  test("the first failure cancels the rest and is what is thrown; no partial files remain", async () => {
    delay = 30;
    FILES["ok"] = bytes(50_000, 7);
    const items = [{ url: url("missing"), dest: `${dir}/x` }, ...Array.from({ length: 4 }, (_, i) => ({ url: url("ok"), dest: `${dir}/ok${i}` }))];
    await expect(fetchAll(items, { concurrency: 5 })).rejects.toThrow(`downloading ${url("missing")}: HTTP 404 Not Found (no such file on the server)`);
    await Bun.sleep(100);
    expect(leftovers(dir)).toEqual([]);
  });

  test("an abort signal cancels the downloads", async () => {
    delay = 200;
    FILES["slow"] = bytes(10, 8);
    const controller = new AbortController();
    const pending = fetchAll([{ url: url("slow"), dest: `${dir}/slow` }], { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toThrow("downloading 1 file(s): cancelled");
    await Bun.sleep(250);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("fetchIndex", () => {
  const PACKAGES = "Package: a\nVersion: 1\n\n";
  const gz = gzipSync(PACKAGES);
  const entry = (b: Uint8Array | string) => ({ size: typeof b === "string" ? Buffer.byteLength(b) : b.length, sha256: sha256(b) });

  function mirror(files: Record<string, Uint8Array | string>): string {
    for (const [path, data] of Object.entries(files)) {
      mkdirSync(`${dir}/mirror/dists/test/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
      writeFileSync(`${dir}/mirror/dists/test/${path}`, data);
    }
    return `file://${dir}/mirror/`;
  }
  function release(files: Record<string, Uint8Array | string>, acquireByHash: boolean): Release {
    return { architectures: ["amd64"], components: ["main"], acquireByHash, noSupportForArchitectureAll: true, files: new Map(Object.entries(files).map(([p, b]) => [p, entry(b)])) };
  }

  test("Packages.gz by hash when the archive offers it", async () => {
    const m = mirror({ [`main/binary-amd64/by-hash/SHA256/${sha256(gz)}`]: gz });
    const r = release({ "main/binary-amd64/Packages": PACKAGES, "main/binary-amd64/Packages.gz": gz, "main/binary-amd64/Packages.xz": "xz" }, true);
    const got = await fetchIndex(m, "test", "main", "amd64", r);
    expect(got.text).toBe(PACKAGES);
    expect(got.url).toBe(`file://${dir}/mirror/dists/test/main/binary-amd64/by-hash/SHA256/${sha256(gz)}`);
  });

  test("falls back to the plain path, then to the next compression", async () => {
    const m = mirror({ "main/binary-amd64/Packages.xz": "XZ!" });
    const r = release({ "main/binary-amd64/Packages.gz": gz, "main/binary-amd64/Packages.xz": "XZ!" }, true);
    const seen: string[] = [];
    const got = await fetchIndex(m, "test", "main", "amd64", r, {
      decompress: (b, name) => {
        seen.push(name);
        return new TextEncoder().encode(new TextDecoder().decode(b) === "XZ!" ? PACKAGES : "?");
      },
    });
    expect(got.text).toBe(PACKAGES);
    expect(got.url).toEndWith("/dists/test/main/binary-amd64/Packages.xz");
    expect(seen).toEqual(["Packages.xz"]);
  });

  test("Packages.xz through the default decoder (decompress.ts); a corrupt one is an error naming the URL", async () => {
    const xz = new Uint8Array(readFileSync(`${FIXTURES}/Packages-small.xz`)); // `xz` of PACKAGES
    const m = mirror({ "main/binary-amd64/Packages.xz": xz });
    const got = await fetchIndex(m, "test", "main", "amd64", release({ "main/binary-amd64/Packages": PACKAGES, "main/binary-amd64/Packages.xz": xz }, false));
    expect(got.text).toBe(PACKAGES);
    const broken = xz.slice();
    broken[30] ^= 0xff;
    const m2 = mirror({ "main/binary-amd64/Packages.xz": broken });
    await expect(fetchIndex(m2, "test", "main", "amd64", release({ "main/binary-amd64/Packages.xz": broken }, false))).rejects.toThrow(`fetching file://${dir}/mirror/dists/test/main/binary-amd64/Packages.xz: decompressing Packages.xz`);
  });

  test("a decompressed index that is not the listed Packages is an error", async () => {
    const other = gzipSync("Package: evil\nVersion: 1\n\n");
    const m = mirror({ "main/binary-amd64/Packages.gz": other });
    const r = release({ "main/binary-amd64/Packages": PACKAGES, "main/binary-amd64/Packages.gz": other }, false);
    await expect(fetchIndex(m, "test", "main", "amd64", r)).rejects.toThrow("is not the main/binary-amd64/Packages the Release file lists");
  });

  test("a corrupt download is an error, not a reason to fall back", async () => {
    const m = mirror({ [`main/binary-amd64/by-hash/SHA256/${sha256(gz)}`]: "corrupt", "main/binary-amd64/Packages.gz": gz });
    const r = release({ "main/binary-amd64/Packages.gz": gz }, true);
    await expect(fetchIndex(m, "test", "main", "amd64", r)).rejects.toThrow("size mismatch");
  });

  test("a component without an index in the Release file", async () => {
    await expect(fetchIndex("file:///nonexistent", "test", "contrib", "amd64", release({}, false))).rejects.toThrow("fetching the test contrib index for amd64: the Release file lists no contrib/binary-amd64/Packages");
  });
});

describe("fetchRelease", () => {
  // checked in, not the host's: see pgp.test.ts
  const DEBIAN_KEYRING = `${FIXTURES}/debian-archive-keyring.gpg`;
  test("InRelease, verified against the keyring", async () => {
    mkdirSync(`${dir}/mirror/dists/bookworm`, { recursive: true });
    writeFileSync(`${dir}/mirror/dists/bookworm/InRelease`, readFileSync(`${FIXTURES}/bookworm-InRelease`));
    const keyring = parseKeyring(new Uint8Array(readFileSync(DEBIAN_KEYRING)));
    const r = await fetchRelease(`file://${dir}/mirror`, "bookworm", keyring);
    expect(r.release.codename).toBe("bookworm");
    expect(r.goodSigners.length).toBe(3);
    expect(r.url).toBe(`file://${dir}/mirror/dists/bookworm/InRelease`);
  });

  test("Release and Release.gpg when there is no InRelease; expiry is checked", async () => {
    mkdirSync(`${dir}/mirror/dists/test`, { recursive: true });
    writeFileSync(`${dir}/mirror/dists/test/Release`, readFileSync(`${FIXTURES}/pgp/Release`));
    writeFileSync(`${dir}/mirror/dists/test/Release.gpg`, readFileSync(`${FIXTURES}/pgp/Release.gpg`));
    const keyring = parseKeyring(new Uint8Array(readFileSync(`${FIXTURES}/pgp/ed.gpg`)), "ed.gpg");
    const r = await fetchRelease(`file://${dir}/mirror`, "test", keyring, { now: new Date((T0 + 7200) * 1000) });
    expect(r.release.suite).toBe("testing");
    expect(r.url).toBe(`file://${dir}/mirror/dists/test/Release`);
    writeFileSync(`${dir}/mirror/dists/test/Release`, readFileSync(`${FIXTURES}/pgp/Release`, "utf8").replace("testing", "unstable"));
    await expect(fetchRelease(`file://${dir}/mirror`, "test", keyring)).rejects.toThrow(`verifying file://${dir}/mirror/dists/test/Release.gpg: BAD signature`);
  });

  test("a Release past its Valid-Until is refused unless allowed", async () => {
    mkdirSync(`${dir}/mirror/dists/test`, { recursive: true });
    writeFileSync(`${dir}/mirror/dists/test/Release`, readFileSync(`${FIXTURES}/pgp/Release`));
    writeFileSync(`${dir}/mirror/dists/test/Release.gpg`, readFileSync(`${FIXTURES}/pgp/Release.gpg`));
    const keyring = parseKeyring(new Uint8Array(readFileSync(`${FIXTURES}/pgp/ed.gpg`)), "ed.gpg");
    const now = new Date((T0 + 2 * 86400) * 1000);
    await expect(fetchRelease(`file://${dir}/mirror`, "test", keyring, { now })).rejects.toThrow("Release file for test is expired (invalid since 1d 0h 0min)");
    expect((await fetchRelease(`file://${dir}/mirror`, "test", keyring, { now, allowExpired: true })).release.codename).toBe("test");
  });
});
