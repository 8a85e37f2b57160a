// Network, HTTP and decompression failures become sentences naming the URL
// or file and the cause, not the runtime's own texts.
import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { httpReason, networkReason } from "../../../src/util/neterr.ts";
import { decompress, diagnose } from "../../../src/archive/decompress.ts";

const err = (props: Record<string, unknown>, name = "TypeError") => Object.assign(new Error(String(props.message ?? "")), { name }, props);

describe("network errors", () => {
  const url = "http://nohost.invalid:8080/debian/dists/bookworm/InRelease";
  test("host not found", () => {
    const r = networkReason(err({ code: "ENOTFOUND", syscall: "getaddrinfo", hostname: "nohost.invalid", message: "getaddrinfo ENOTFOUND nohost.invalid" }), url)!;
    expect(r).toStartWith("host not found: nohost.invalid");
    expect(r).not.toContain("getaddrinfo");
  });
  test("connection refused names host and port", () => {
    const r = networkReason(err({ code: "ECONNREFUSED", message: "ECONNREFUSED: Unable to connect. Is the computer able to access the url?" }), url)!;
    expect(r).toStartWith("connection refused by nohost.invalid port 8080");
    expect(r).not.toContain("Is the computer");
  });
  test("timeout, TLS, reset", () => {
    expect(networkReason(err({ message: "The operation timed out." }, "TimeoutError"), url)).toStartWith("timed out waiting for nohost.invalid port 8080");
    expect(networkReason(err({ code: "EPROTO", message: "EPROTO: The TLS handshake failed. Does the server speak TLS on this port?" }), "https://h.invalid/x")).toStartWith("TLS failure talking to h.invalid port 443: The TLS handshake failed");
    expect(networkReason(err({ code: "CERT_HAS_EXPIRED", message: "certificate has expired" }), "https://h.invalid/x")).toContain("TLS failure");
    expect(networkReason(err({ code: "ECONNRESET", message: "socket hang up" }), url)).toContain("was closed before the transfer ended");
  });
  test("anything else is left alone", () => {
    expect(networkReason(new Error("something else"), url)).toBeUndefined();
    expect(networkReason("text", url)).toBeUndefined();
  });
  test("HTTP statuses", () => {
    expect(httpReason(404, "Not Found")).toBe("HTTP 404 Not Found (no such file on the server)");
    expect(httpReason(503, "Service Unavailable")).toContain("try again later");
    expect(httpReason(418, "")).toBe("HTTP 418");
  });
});

describe("decompression errors name the file and the cause", () => {
  const text = new TextEncoder().encode("spawnctl ".repeat(50000) + Array.from({ length: 5000 }, (_, i) => i * 7919).join(","));
  test("a truncated zstd stream: ends early, at the file's length", () => {
    const z = Bun.zstdCompressSync(text);
    const cut = z.subarray(0, Math.floor(z.length / 2));
    expect(() => decompress(cut, "/srv/x.tar.zst")).toThrow(`decompressing /srv/x.tar.zst (zstd): the zstd stream ends early at byte ${cut.length} (the file is truncated or incomplete)`);
  });
  test("a truncated gzip stream", () => {
    const g = gzipSync(text);
    const cut = g.subarray(0, Math.floor(g.length / 2));
    expect(() => decompress(cut, "x.tar.gz")).toThrow(`decompressing x.tar.gz (gzip): the gzip stream ends early at byte ${cut.length}`);
  });
  test("a corrupt gzip stream: corrupt, with where it shows", () => {
    const g = Buffer.from(gzipSync(text));
    for (let i = 200; i < 260; i++) g[i] ^= 0x5a;
    let m = "";
    try {
      decompress(g, "x.tar.gz");
    } catch (e) {
      m = (e as Error).message;
    }
    expect(m).toMatch(/^decompressing x\.tar\.gz \(gzip\): corrupt gzip data \(noticed at byte (\d+) of \d+\): /);
    const at = Number(/noticed at byte (\d+)/.exec(m)![1]);
    expect(at).toBeGreaterThanOrEqual(200);
    expect(m).not.toContain("Zlib returned an error");
  });
  test("intact data is no failure", () => {
    expect(diagnose("gzip", gzipSync(text))).toBeUndefined();
  });
});
