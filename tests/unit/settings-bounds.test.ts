// The value parsers at the edge: numbers bounded to what the kernel takes
// (and parsed as systemd parses them), paths the kernel can take, values
// shown escaped and shortened in messages, and the option always named.
import { describe, expect, test } from "bun:test";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { applyNspawnFile } from "../../src/settings/nspawn-file.ts";
import {
  checkPath, displayValue, parseCpuSet, parsePermyriad, parseRlimit, parseSize, parseTimeSpan, parseUid, safeAtou64,
  sanitizeMessage, isValidUserName, parseBind, parseTmpfs, readCredentialFile, CREDENTIAL_SIZE_MAX,
} from "../../src/settings/parse.ts";
import { PROPERTY_NAMES, parseProperty, propertyTargets } from "../../src/cgroup/properties.ts";
import type { CgroupFacts } from "../../src/container/host.ts";

const U64_MAX = 18446744073709551615n;
const NINES = "9".repeat(3000);

function cliError(argv: string[]): string {
  try {
    parseCommandLine(argv, "/work");
  } catch (e) {
    expect((e as Error).name).toBe("SpawnctlError");
    return (e as Error).message;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
}

describe("sizes, as systemd's parse_size() with base 1024", () => {
  test("suffixes, fractions, several parts, blanks", () => {
    expect(parseSize("0")).toBe(0n);
    expect(parseSize("100")).toBe(100n);
    expect(parseSize("1K")).toBe(1024n);
    expect(parseSize("1.5G")).toBe(1610612736n);
    expect(parseSize("1G 512M")).toBe(1610612736n);
    expect(parseSize(" 64 M")).toBe(67108864n);
    expect(parseSize("10B")).toBe(10n);
    expect(parseSize("15E")).toBe(15n << 60n);
    expect(parseSize("18446744073709551615")).toBe(U64_MAX);
  });
  test("beyond 2^64-1, negative, or not a size", () => {
    for (const v of ["18446744073709551616", "16E", "15.99E", "17179869184G", NINES, "-1", "-0"]) expect(() => parseSize(v)).toThrow("Numerical result out of range");
    for (const v of ["", "x", "1X", "1k", "1G 1G", "512M 1G", "1 2", "0x10", "%", "1%"]) expect(() => parseSize(v)).toThrow("Invalid argument");
  });
});

describe("integers, as systemd's safe_atou64()", () => {
  test("decimal, hex, octal, binary; the whole string", () => {
    expect(safeAtou64("42")).toBe(42n);
    expect(safeAtou64(" +42")).toBe(42n);
    expect(safeAtou64("0x10")).toBe(16n);
    expect(safeAtou64("010")).toBe(8n);
    expect(safeAtou64("0b101")).toBe(5n);
    expect(safeAtou64("0o17")).toBe(15n);
    expect(safeAtou64("-0")).toBe(0n);
    expect(safeAtou64("18446744073709551615")).toBe(U64_MAX);
  });
  test("out of range or invalid", () => {
    for (const v of ["18446744073709551616", NINES, "-1"]) expect(() => safeAtou64(v)).toThrow("Numerical result out of range");
    for (const v of ["", "x", "1x", "0x", "09", "1 ", "1.0", "+-1"]) expect(() => safeAtou64(v)).toThrow("Invalid argument");
  });
});

describe("time spans, as systemd's parse_time()", () => {
  const S = 1_000_000n;
  test("units, fractions, several parts, infinity", () => {
    expect(parseTimeSpan("90", S)).toBe(90n * S);
    expect(parseTimeSpan("1min 30s", S)).toBe(90n * S);
    expect(parseTimeSpan("1.5h", S)).toBe(5400n * S);
    expect(parseTimeSpan("20ms", S)).toBe(20000n);
    expect(parseTimeSpan("7", 1n)).toBe(7n);
    expect(parseTimeSpan("infinity", S)).toBe(U64_MAX);
  });
  test("out of range or invalid", () => {
    for (const v of [NINES, `${NINES}us`, "-1", "584543y"]) expect(() => parseTimeSpan(v, S)).toThrow("Numerical result out of range");
    for (const v of ["", "x", "1K", "1.2.3", "3.", "infinity x"]) expect(() => parseTimeSpan(v, S)).toThrow("Invalid argument");
  });
});

describe("percentages, as systemd's parse_permyriad()", () => {
  test("% with two decimals, ‰ with one, ‱", () => {
    expect(parsePermyriad("50%")).toBe(5000);
    expect(parsePermyriad("12.34%")).toBe(1234);
    expect(parsePermyriad("0.5%")).toBe(50);
    expect(parsePermyriad("12.5\u2030")).toBe(125);
    expect(parsePermyriad("7\u2031")).toBe(7);
    expect(parsePermyriad("100%")).toBe(10000);
    expect(parsePermyriad("250%", false)).toBe(25000);
    expect(parsePermyriad("42")).toBeUndefined();
  });
  test("over 100% (bounded), beyond an int, malformed", () => {
    expect(() => parsePermyriad("101%")).toThrow("Numerical result out of range");
    expect(() => parsePermyriad("21474837%", false)).toThrow("Numerical result out of range");
    expect(() => parsePermyriad(`${NINES}%`, false)).toThrow("Numerical result out of range");
    for (const v of ["1.234%", "x%", "-1%", "%"]) expect(() => parsePermyriad(v)).toThrow("Invalid argument");
  });
});

describe("resource properties", () => {
  test("every name, with valid values", () => {
    expect(PROPERTY_NAMES).toContain("MemoryMax");
    expect(PROPERTY_NAMES).toContain("CPUShares");
    expect(parseProperty("MemoryMax=1G").value).toBe(1n << 30n);
    expect(parseProperty("MemoryMax=18446744073709551615").value).toBe(U64_MAX);
    expect(parseProperty("MemoryMax=infinity").value).toBe("max");
    expect(typeof parseProperty("MemoryHigh=50%").value).toBe("bigint");
    expect(parseProperty("TasksMax=4194304").value).toBe(4194304n);
    expect(parseProperty("CPUQuota=150%").value).toBe(15000);
    expect(parseProperty("CPUQuota=0.5%").value).toBe(50);
    expect(parseProperty("CPUWeight=10000").value).toBe(10000);
    expect(parseProperty("IOWeight=1").value).toBe(1);
    expect(parseProperty("CPUShares=2048").value).toBe(200);
    expect(parseProperty("BlockIOWeight=500").value).toBe(100);
    expect(parseProperty("AllowedCPUs=0").value).toBe("0");
  });
  test("an empty value resets, as in systemd", () => {
    expect(parseProperty("MemoryMax=").value).toBe("max");
    expect(parseProperty("MemoryLow=").value).toBe(0n);
    expect(parseProperty("TasksMax=").value).toBe("max");
    expect(parseProperty("CPUQuota=").value).toBe("max");
    expect(parseProperty("CPUWeight=").value).toBe(100);
    expect(parseProperty("AllowedCPUs=").value).toBe("");
  });
  test("out of range: an error naming the property and the value", () => {
    const cases: Array<[string, string]> = [
      [`MemoryMax=${NINES}`, "Failed to parse MemoryMax=999"],
      ["MemoryMax=18446744073709551616", "Failed to parse MemoryMax=18446744073709551616: Numerical result out of range"],
      ["MemoryMax=101%", "Failed to parse MemoryMax=101%: Numerical result out of range"],
      ["MemoryLimit=-5", "Failed to parse MemoryLimit=-5: Numerical result out of range"],
      ["TasksMax=4194305", "Failed to parse TasksMax=4194305: Numerical result out of range"],
      ["CPUQuota=0%", "Failed to parse CPUQuota=0%: CPU quota too small"],
      ["CPUQuota=50", "Failed to parse CPUQuota=50: Invalid argument"],
      ["CPUWeight=0", "Failed to parse CPUWeight=0: Numerical result out of range"],
      ["CPUWeight=10001", "Failed to parse CPUWeight=10001: Numerical result out of range"],
      ["CPUWeight=1e3", "Failed to parse CPUWeight=1e3: Invalid argument"],
      ["IOWeight=10001", "Failed to parse IOWeight=10001: Numerical result out of range"],
      ["CPUShares=1", "Failed to parse CPUShares=1: Numerical result out of range"],
      ["BlockIOWeight=1001", "Failed to parse BlockIOWeight=1001: Numerical result out of range"],
      ["AllowedCPUs=8192", "Failed to parse AllowedCPUs=8192: Numerical result out of range"],
      ["AllowedCPUs=3-1", "Failed to parse AllowedCPUs=3-1: Invalid argument"],
      ["constructor=1", "Unknown or unsupported property: constructor"],
      ["__proto__=1", "Unknown or unsupported property: __proto__"],
      ["MemoryMax", "Invalid property assignment: MemoryMax"],
    ];
    for (const [a, m] of cases) expect(() => parseProperty(a)).toThrow(m);
  });
  test("the value in the message is escaped and shortened", () => {
    let msg = "";
    try {
      parseProperty(`MemoryMax=\x1b[2J\n${"x".repeat(5000)}`);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toStartWith("Failed to parse MemoryMax=\\x1b[2J\\nxxx");
    expect(msg.length).toBeLessThan(300);
  });
  test("what goes to the cgroup files (v1 and v2 mappings as systemd's)", () => {
    const v1: CgroupFacts = { unified: undefined, v1: [{ mountpoint: "/cg/cpu", controllers: ["cpu"] }, { mountpoint: "/cg/blkio", controllers: ["blkio"] }] } as unknown as CgroupFacts;
    expect(propertyTargets(parseProperty("CPUQuota=50%"), v1, "m")).toEqual([{ file: "/cg/cpu/machine.slice/machine-m.scope/cpu.cfs_period_us", data: "100000" }, { file: "/cg/cpu/machine.slice/machine-m.scope/cpu.cfs_quota_us", data: "50000" }]);
    expect(propertyTargets(parseProperty("CPUQuota="), v1, "m")[1]).toEqual({ file: "/cg/cpu/machine.slice/machine-m.scope/cpu.cfs_quota_us", data: "-1" });
    expect(propertyTargets(parseProperty("CPUWeight=200"), v1, "m")).toEqual([{ file: "/cg/cpu/machine.slice/machine-m.scope/cpu.shares", data: "2048" }]);
    // IOWeight 100 (the default) is blkio.weight 500 (its default)
    expect(propertyTargets(parseProperty("IOWeight=100"), v1, "m")).toEqual([{ file: "/cg/blkio/machine.slice/machine-m.scope/blkio.weight", data: "500" }]);
    expect(propertyTargets(parseProperty("BlockIOWeight=1000"), v1, "m")).toEqual([{ file: "/cg/blkio/machine.slice/machine-m.scope/blkio.weight", data: "1000" }]);
  });
});

describe("command-line numbers and lengths", () => {
  test("--oom-score-adjust is -1000…1000, with systemd-nspawn's message", () => {
    expect(parseCommandLine(["--oom-score-adjust=-1000"]).settings.oomScoreAdjust).toBe(-1000);
    expect(cliError(["--oom-score-adjust=2000"])).toBe("Failed to parse --oom-score-adjust= parameter: 2000.");
    expect(cliError([`--oom-score-adjust=${NINES}`])).toStartWith("Failed to parse --oom-score-adjust= parameter: 999");
  });
  test("--rlimit: each resource as systemd reads it, bounded", () => {
    expect(parseRlimit("CPU=1min").soft).toBe(60n);
    expect(parseRlimit("CPU=1.5").soft).toBe(2n);
    expect(parseRlimit("RTTIME=1s").soft).toBe(1000000n);
    expect(parseRlimit("NICE=-20").soft).toBe(40n);
    expect(parseRlimit("NICE=+19").soft).toBe(1n);
    expect(parseRlimit("NOFILE=100:").hard).toBe(100n);
    expect(parseRlimit("LimitNOFILE=5")).toMatchObject({ name: "NOFILE", soft: 5n });
    expect(parseRlimit("STACK=8M:infinity")).toMatchObject({ soft: 8388608n, hard: U64_MAX });
    expect(() => parseRlimit("CORE=18446744073709551616")).toThrow("Numerical result out of range");
    // only the word means no limit, as in systemd
    expect(() => parseRlimit("CORE=18446744073709551615")).toThrow("Numerical result out of range");
    expect(() => parseRlimit(`NOFILE=${NINES}`)).toThrow("Numerical result out of range");
    expect(() => parseRlimit("NOFILE=infinity")).toThrow("Operation not permitted");
    expect(() => parseRlimit("NICE=41")).toThrow("Numerical result out of range");
    expect(() => parseRlimit("NICE=infinity")).toThrow("Invalid argument");
    expect(() => parseRlimit("NPROC=1K")).toThrow("Invalid argument");
    expect(() => parseRlimit("toString=1")).toThrow("Unknown resource limit: toString");
    expect(cliError(["--rlimit=NOFILE"])).toBe("--rlimit= expects an '=' assignment.");
  });
  test("--private-users: UIDs as systemd's parse_uid(), and the range within 2^32-1", () => {
    expect(parseCommandLine(["--private-users=0:4294967295"]).settings.privateUsers).toEqual({ mode: "fixed", base: 0, range: 4294967295 });
    expect(parseCommandLine(["--private-users=4294901759"]).settings.privateUsers).toEqual({ mode: "fixed", base: 4294901759, range: 65536 });
    expect(parseCommandLine(["--private-users=1"]).settings.privateUsers).toEqual({ mode: "fixed", base: 1, range: 65536 });
    expect(parseCommandLine(["--private-users=yes"]).settings.privateUsers).toEqual({ mode: "yes" });
    expect(cliError(["--private-users=4294901760"])).toContain("UID range cannot be empty or go beyond 4294967295.");
    expect(cliError(["--private-users=4294967295"])).toContain('Failed to parse UID "4294967295": No such device or address');
    expect(cliError(["--private-users=65535"])).toContain('Failed to parse UID "65535": No such device or address');
    expect(cliError(["--private-users=007"])).toContain('Failed to parse UID "007": Invalid argument');
    expect(cliError(["--private-users=0:0"])).toContain("UID range cannot be empty");
    expect(cliError(["--private-users=5:4294967296"])).toContain('Failed to parse UID range "4294967296": Numerical result out of range');
    for (const v of ["-1", "foo", "", NINES]) expect(cliError([`--private-users=${v}`])).toStartWith("Invalid --private-users= argument: Failed to parse UID");
    expect(parseUid("4294967294")).toBe(4294967294);
  });
  test("--cpu-affinity and --kill-signal", () => {
    expect(parseCpuSet("0-2,5 7")).toEqual([0, 1, 2, 5, 7]);
    expect(parseCpuSet(`0-8191,${"0-8191,".repeat(2000)}`).length).toBe(8192);
    expect(() => parseCpuSet("8192")).toThrow("Numerical result out of range");
    expect(cliError([`--cpu-affinity=0-${NINES}`])).toContain("Numerical result out of range");
    expect(cliError(["--kill-signal=65"])).toBe("Failed to parse --kill-signal= argument 65: Invalid argument");
    expect(cliError(["--kill-signal=toString"])).toBe("Failed to parse --kill-signal= argument toString: Invalid argument");
  });
  test("users, interfaces, slices, system calls, background", () => {
    expect(isValidUserName("tester")).toBe(true);
    expect(isValidUserName("1000")).toBe(true);
    for (const u of ["", "a:b", "a/b", "a b", "\x01x", ".", "..", "65535", "4294967295", "-5", "u".repeat(256)]) expect(isValidUserName(u)).toBe(false);
    for (const i of ["all", "default", "12", "a%d", "eth\x7f", "éth0", "x".repeat(16)]) expect(cliError([`--network-bridge=${i}`])).toContain("--network-bridge=");
    expect(parseCommandLine(["--network-bridge=br-0.x"]).settings.networkBridge).toBe("br-0.x");
    expect(cliError([`--slice=${"s".repeat(250)}.slice`])).toContain("--slice=");
    expect(cliError(["--system-call-filter=constructor"])).toBe("Failed to parse --system-call-filter= argument constructor: unknown system call or group constructor");
    expect(cliError(["--system-call-filter=~mount __proto__"])).toContain("unknown system call or group __proto__");
    expect(parseCommandLine(["--system-call-filter=~mount @swap"]).settings.syscallDeny).toEqual(["mount", "@swap"]);
    expect(cliError(["--background=\x1b[31m"])).toBe("Invalid --background= argument: \\x1b[31m.");
    expect(parseCommandLine(["--background=48;5;17"]).settings).toEqual({});
  });
  test("paths: control characters, PATH_MAX, NAME_MAX", () => {
    expect(() => checkPath(`/${"a".repeat(255)}`)).not.toThrow();
    expect(() => checkPath(`/${"a".repeat(256)}`)).toThrow("File name too long");
    expect(() => checkPath(`/${"a/".repeat(2048)}`)).toThrow("File name too long");
    expect(() => checkPath("/a\nb")).toThrow("Invalid argument");
    expect(cliError(["-D", "\x01garbage%%/../"])).toBe("Failed to parse --directory= argument \\x01garbage%%/../: Invalid argument");
    expect(cliError(["--template", "x".repeat(300)])).toContain("File name too long");
    // SRC alone is also the destination, as written: it must be absolute (systemd's bind_mount_parse())
    expect(() => parseBind("rel", false, "/base")).toThrow("Invalid argument");
    expect(() => parseBind("+rel", false)).toThrow("Invalid argument");
    expect(parseBind("rel:/d", false, "/base")).toMatchObject({ source: "/base/rel", destination: "/d" });
    expect(parseTmpfs("/t:mode=0700,mpol=bind:0-1")).toEqual({ destination: "/t", options: "mode=0700,mpol=bind:0-1" });
    expect(parseTmpfs("/t:")).toEqual({ destination: "/t", options: "mode=0755" });
    expect(() => parseTmpfs(`/t:size=${"9".repeat(5000)}`)).toThrow("Argument list too long");
  });
  test("environment and credentials: the kernel's one-string limit, systemd's credential size", () => {
    expect(cliError([`--setenv=A=${"v".repeat(131072)}`])).toContain("Argument list too long");
    expect(cliError(["--set-credential=a:1", "--set-credential=a:2"])).toBe("Invalid --set-credential= argument: Duplicate credential 'a', refusing.");
    expect(() => readCredentialFile("/dev/zero")).toThrow(`File too large (more than ${CREDENTIAL_SIZE_MAX} bytes)`);
    const old = process.env.CREDENTIALS_DIRECTORY;
    delete process.env.CREDENTIALS_DIRECTORY;
    try {
      expect(cliError(["--load-credential=a:relative"])).toContain("Credential not available (no credentials passed at all): a");
    } finally {
      if (old !== undefined) process.env.CREDENTIALS_DIRECTORY = old;
    }
  });
});

describe("messages name the option and show the value safely", () => {
  test("every parse failure names the option as given", () => {
    expect(cliError(["--uid=a:b"])).toBe("Failed to parse --uid= argument a:b: Invalid argument");
    expect(cliError(["-u", "a:b"])).toBe("Failed to parse --user= argument a:b: Invalid argument");
    expect(cliError(["--chdir=rel"])).toBe("Invalid --chdir= argument: Working directory rel is not an absolute path.");
    expect(cliError(["--drop-capability=nope"])).toBe("Invalid --drop-capability= argument: Failed to parse capability nope.");
    expect(cliError(["--property=MemoryMax=lots"])).toBe("Invalid --property= argument: Failed to parse MemoryMax=lots: Invalid argument (not a size: give bytes with an optional K, M, G, T, P or E suffix, a percentage of the RAM, or infinity).");
  });
  test("control characters are escaped, long values shortened, the whole message bounded", () => {
    expect(displayValue("a\x1b[2J\nb\u202ec")).toBe("a\\x1b[2J\\nb\\u202ec");
    expect(displayValue("x".repeat(100000))).toBe(`${"x".repeat(128)}...(100000 characters)`);
    const m = cliError([`--hostname=${"h".repeat(100000)}`]);
    expect(m).toBe(`Invalid --hostname= argument: Invalid hostname: ${"h".repeat(128)}...(100000 characters).`);
    expect(sanitizeMessage("a b ".repeat(5000)).length).toBeLessThanOrEqual(4096);
    expect(cliError([`--frob\x1b[2J`])).toBe("spawnctl: unrecognized option '--frob\\x1b[2J'");
  });
  test(".nspawn files: a warning naming file:line and key, or an error for CPUAffinity= and SystemCallFilter=", () => {
    const w: string[] = [];
    const f = applyNspawnFile("/x/m.nspawn", `[Exec]\nHostname=\x1b[2J${"h".repeat(1000)}\nLimitCORE=18446744073709551616\nCPUAffinity=\n`, true, "/", (m) => w.push(m));
    expect(f.settings.hostname).toBeUndefined();
    expect(f.settings.rlimits).toBeUndefined();
    expect(w).toEqual([
      `/x/m.nspawn:2: Failed to parse Hostname=\\x1b[2J${"h".repeat(121)}...(1004 characters), ignoring: Invalid hostname: \\x1b[2J${"h".repeat(121)}...(1004 characters)`,
      "/x/m.nspawn:3: Failed to parse LimitCORE=18446744073709551616, ignoring: Numerical result out of range",
    ]);
    expect(() => applyNspawnFile("/x/m.nspawn", "[Exec]\nCPUAffinity=x\n", true, "/", () => {})).toThrow("/x/m.nspawn:2: Failed to parse CPUAffinity=x: Invalid argument");
    expect(() => applyNspawnFile("/x/m.nspawn", "[Exec]\nSystemCallFilter=~mount nosuchcall\n", true, "/", () => {})).toThrow(
      "/x/m.nspawn:2: Failed to parse SystemCallFilter=~mount nosuchcall: unknown system call or group nosuchcall",
    );
    const e: string[] = [];
    applyNspawnFile("/x/m.nspawn", `[Exec]\nEnvironment=A=${"v".repeat(200000)}\nParameters=${"p".repeat(200000)}\n`, true, "/", (m) => e.push(m));
    expect(e.map((m) => m.replace(/=.*, ignoring/, "=…, ignoring"))).toEqual([
      "/x/m.nspawn:2: Failed to parse Environment=…, ignoring: Argument list too long",
      "/x/m.nspawn:3: Failed to parse Parameters=…, ignoring: Argument list too long",
    ]);
  });
});
