// --x11: the Xauthority format read and written without xauth, entries for
// one display made to match any host name (FamilyWild), displays checked.
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { FAMILY_LOCAL, FAMILY_WILD, entriesForDisplay, parseDisplay, parseXauthority, planX11, serializeXauthority, type XauthEntry } from "../../src/container/x11.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const E = (family: number, address: string, number: string, cookie: number): XauthEntry => ({
  family, address: enc(address), number, name: "MIT-MAGIC-COOKIE-1", data: new Uint8Array(16).fill(cookie),
});

test("entries survive a round trip byte for byte", () => {
  const entries = [E(FAMILY_LOCAL, "host1", "0", 1), E(0, "\x7f\0\0\x01", "10", 2)];
  const buf = serializeXauthority(entries);
  // each: family, then four counted fields (2-byte length + bytes)
  expect(buf.length).toBe((2 + 2 + 5 + 2 + 1 + 2 + 18 + 2 + 16) + (2 + 2 + 4 + 2 + 2 + 2 + 18 + 2 + 16));
  const back = parseXauthority(buf);
  expect(back).toEqual(entries);
  expect(serializeXauthority(back)).toEqual(buf);
});

test("a truncated file is an error naming the file and the offset", () => {
  const buf = serializeXauthority([E(FAMILY_LOCAL, "h", "0", 1)]);
  expect(() => parseXauthority(buf.subarray(0, buf.length - 3), "/root/.Xauthority")).toThrow("/root/.Xauthority: truncated entry at byte");
  expect(() => parseXauthority(Uint8Array.of(1), "x")).toThrow("x: truncated entry at byte 0");
});

test("the display's entries for this host (and wild ones) are taken, as FamilyWild; others' are not", () => {
  const all = [E(FAMILY_LOCAL, "myhost", "0", 1), E(FAMILY_LOCAL, "other", "0", 2), E(FAMILY_LOCAL, "myhost", "1", 3), E(FAMILY_WILD, "", "0", 4)];
  const got = entriesForDisplay(all, parseDisplay(":0"), "myhost");
  expect(got.map((e) => [e.family, e.data[0]])).toEqual([[FAMILY_WILD, 1], [FAMILY_WILD, 4]]);
  // after a rename of the host, a local entry of the display is still its cookie
  expect(entriesForDisplay([E(FAMILY_LOCAL, "oldname", "0", 9)], parseDisplay(":0.0"), "newname").map((e) => e.data[0])).toEqual([9]);
  expect(entriesForDisplay(all, parseDisplay(":7"), "myhost")).toEqual([]);
});

test("displays: local ones are taken, TCP ones and nonsense are refused with a reason", () => {
  expect(parseDisplay(":0")).toEqual({ name: ":0", number: "0" });
  expect(parseDisplay("unix:12.1")).toEqual({ name: "unix:12.1", number: "12" });
  expect(() => parseDisplay("localhost:10.0")).toThrow("is a TCP display");
  expect(() => parseDisplay("nonsense")).toThrow("is not an X display");
});

test("planX11 reads $XAUTHORITY, else ~/.Xauthority; no DISPLAY is an error", () => {
  const d = mkdtempSync("/tmp/sctest-x11-");
  try {
    writeFileSync(`${d}/.Xauthority`, serializeXauthority([E(FAMILY_LOCAL, "h", "3", 5)]));
    const p = planX11("", { DISPLAY: ":3", HOME: d }, "h");
    expect(p.display.number).toBe("3");
    expect(parseXauthority(p.xauthority!)).toEqual([{ ...E(FAMILY_WILD, "h", "3", 5) }]);
    expect(p.source).toBe(`${d}/.Xauthority`);
    // the option's display wins over DISPLAY; a display without a cookie gets none
    expect(planX11(":4", { DISPLAY: ":3", HOME: d }, "h").xauthority).toBeUndefined();
    expect(planX11("", { DISPLAY: ":3", XAUTHORITY: `${d}/none` }, "h").xauthority).toBeUndefined();
    expect(() => planX11("", {}, "h")).toThrow("DISPLAY is not set");
  } finally {
    rmSync(d, { recursive: true });
  }
});

test("what xauth itself writes is read, and what we write xauth reads", () => {
  if (!existsSync("/usr/bin/xauth")) return;
  const d = mkdtempSync("/tmp/sctest-x11-");
  try {
    const f = `${d}/xa`;
    const add = Bun.spawnSync(["xauth", "-f", f, "add", "somehost/unix:5", "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff"]);
    expect(add.exitCode).toBe(0);
    const got = parseXauthority(new Uint8Array(require("node:fs").readFileSync(f)));
    expect(got).toEqual([{ family: FAMILY_LOCAL, address: enc("somehost"), number: "5", name: "MIT-MAGIC-COOKIE-1", data: Uint8Array.from(Buffer.from("00112233445566778899aabbccddeeff", "hex")) }]);
    writeFileSync(`${d}/wild`, serializeXauthority(entriesForDisplay(got, parseDisplay(":5"), "somehost")));
    const list = Bun.spawnSync(["xauth", "-f", `${d}/wild`, "nlist"]).stdout.toString();
    // as the seed's sed makes it: the family field is ffff
    expect(list.trim()).toBe(`ffff 0008 ${Buffer.from("somehost").toString("hex")} 0001 35 0012 ${Buffer.from("MIT-MAGIC-COOKIE-1").toString("hex")} 0010 00112233445566778899aabbccddeeff`);
  } finally {
    rmSync(d, { recursive: true });
  }
});
