// The progress line: its formatting (sizes, durations, transfers with total,
// percent, rate and ETA; package counts), the width cut, the rate limiter,
// and what the Progress class writes live, off a terminal and with -q.
import { describe, expect, test } from "bun:test";
import { Progress, RateLimiter, fitWidth, formatCount, formatDuration, formatSize, formatTransfer } from "../../src/util/progress.ts";
import { dpkgCounts } from "../../src/bootstrap/debian.ts";

describe("formatting", () => {
  test("sizes are 1024-based with one decimal", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1024)).toBe("1.0 KiB");
    expect(formatSize(23.1 * 1024 * 1024)).toBe("23.1 MiB");
    expect(formatSize(48 * 1024 ** 3)).toBe("48.0 GiB");
  });
  test("durations", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(7.4)).toBe("0:07");
    expect(formatDuration(754)).toBe("12:34");
    expect(formatDuration(3723)).toBe("1:02:03");
  });
  test("a transfer with a total: bytes, total, percent, rate and ETA", () => {
    const MiB = 1024 * 1024;
    expect(formatTransfer({ label: "Exporting 'web'", done: 24 * MiB, total: 48 * MiB, elapsedMs: 2000 })).toBe("Exporting 'web': 24.0 MiB/48.0 MiB (50%), 12.0 MiB/s, ETA 0:02");
    // no rate in the first half second, no ETA when done, percent never above 100
    expect(formatTransfer({ label: "x", done: MiB, total: 2 * MiB, elapsedMs: 100 })).toBe("x: 1.0 MiB/2.0 MiB (50%)");
    expect(formatTransfer({ label: "x", done: 3 * MiB, total: 2 * MiB, elapsedMs: 1000 })).toBe("x: 3.0 MiB/2.0 MiB (100%), 3.0 MiB/s");
  });
  test("a transfer without a total: bytes and rate", () => {
    expect(formatTransfer({ label: "Copying", done: 5 * 1024 * 1024, elapsedMs: 1000 })).toBe("Copying: 5.0 MiB, 5.0 MiB/s");
  });
  test("package counts", () => {
    const MiB = 1024 * 1024;
    expect(formatCount("Downloading", 57, 120, "packages", { done: 23.1 * MiB, total: 48 * MiB })).toBe("Downloading 57/120 packages, 23.1 MiB/48.0 MiB");
    expect(formatCount("Unpacking", 40, 120)).toBe("Unpacking 40/120 packages");
    expect(formatCount("Extracting", 3, 120, "packages", undefined, "dash")).toBe("Extracting 3/120 packages: dash");
  });
  test("the line is cut to the terminal's width", () => {
    expect(fitWidth("short", 80)).toBe("short");
    const cut = fitWidth("x".repeat(200), 40);
    expect([...cut].length).toBe(39);
    expect(cut.endsWith("…")).toBe(true);
    // no width known: 80 columns
    expect([...fitWidth("y".repeat(200), undefined)].length).toBe(79);
  });
  test("dpkg's output gives the packages unpacked and configured", () => {
    const log = "Selecting previously unselected package base-files.\nPreparing to unpack .../base-files.deb ...\nUnpacking base-files (12.4) ...\nUnpacking dash (0.5.12-2) ...\nSetting up base-files (12.4) ...\n";
    expect(dpkgCounts(log)).toEqual({ unpacked: 2, configured: 1 });
    expect(dpkgCounts("")).toEqual({ unpacked: 0, configured: 0 });
  });
});

describe("rate limiting", () => {
  test("at most one redraw per interval; forced ones always", () => {
    let now = 0;
    const r = new RateLimiter(100, () => now);
    expect(r.ready()).toBe(true);
    now = 50;
    expect(r.ready()).toBe(false);
    expect(r.ready(true)).toBe(true);
    now = 120;
    expect(r.ready()).toBe(false); // the forced one restarted the interval at 50
    now = 150;
    expect(r.ready()).toBe(true);
  });
  test("a live Progress redraws in place, rate-limited, and clears its line", () => {
    let now = 0;
    const out: string[] = [];
    const p = new Progress({ live: true, write: (t) => out.push(t), clock: () => now, columns: () => 30 });
    p.update("one");
    p.update("two"); // within 100 ms: dropped
    now = 200;
    p.update("three ".repeat(10));
    p.clear();
    expect(out).toEqual(["\r\x1b[Kone", `\r\x1b[K${"three ".repeat(10).slice(0, 28)}…`, "\r\x1b[K"]);
  });
  test("off a terminal nothing is drawn", () => {
    const out: string[] = [];
    const p = new Progress({ live: false, write: (t) => out.push(t) });
    p.update("one", true);
    p.bytes("x", 1, 2, true);
    p.clear();
    expect(out).toEqual([]);
  });
});
