// Validation at the edge, swept over every option. Generated from the
// settings table (src/settings/table.ts): every command-line option that takes
// a value and every .nspawn key gets an empty, a garbage and an over-long
// value; every resource property gets hostile values through `run
// --property=`, `set-property` and `machinectl set-property`; the numeric
// options get values beyond what the kernel takes. Each case runs the built
// binary as root and must fail cleanly: exit status 1, a message that names
// the option (or the file:line and key), the value shown escaped and
// shortened, no "internal error", no stack trace, and nothing created on the
// host (the tree's directory, /run/spawnctl, /etc/spawnctl/properties,
// /var/lib/machines, the spawnctl cgroups and the mount table are compared
// before and after every case).
//
// The command-line cases run the real command (payload /bin/true): a bad
// value must stop it before anything starts. Each is also run with
// --print-plan, which must fail identically (the value is checked before the
// plan is made). The .nspawn cases run with --print-plan: systemd-nspawn warns
// about most bad lines and goes on ("[file:line] Failed to parse ...,
// ignoring"), which with a real run would start the container; the file is
// read and checked before the plan is made, so the warning is the same. The
// cases a file turns into an error (CPUAffinity=, SystemCallFilter=) are also
// run for real and must fail identically.
import { describe, expect } from "bun:test";
import { lstatSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { busyboxFixture } from "../fixture.ts";
import { type Result, SPAWNCTL, rootTest as test, run } from "../helpers.ts";
import { ROWS } from "../../src/settings/table.ts";
import { PROPERTY_NAMES } from "../../src/cgroup/properties.ts";
import { escapeUnit } from "../../src/cgroup/cgroup.ts";

// the tree gets a name of its own: the machine name, and so every cgroup,
// state file and lock a run could make, carries it
const NAME = `secopts${process.pid}`;
// a machine that does not exist, for set-property
const NO_SUCH = `nosuch${process.pid}`;
let base = "";
let tree = "";
busyboxFixture({}, (b) => {
  base = b;
}, {
  setup: (b, t) => {
    tree = `${b}/${NAME}`;
    renameSync(t, tree);
    symlinkSync(SPAWNCTL, `${b}/machinectl`);
  },
});

// --- the values ---------------------------------------------------------------

// control characters, a terminal escape, a newline (a forged second line),
// printf and shell metacharacters, a path that climbs
const GARBAGE = "\x01garbage%%/../\x1b[2J\n;$(id)`id`%s%n";
// the same on one line, for a .nspawn file
const GARBAGE_LINE = "\x01garbage%%/../\x1b[2J;$(id)`id`%s%n";
// a command-line argument can be at most 128 KiB (MAX_ARG_STRLEN); a file's value has no such limit
const LONG = "x".repeat(100_000);
const LONG_LINE = "x".repeat(200_000);

const CLI_VALUES: Array<[string, string]> = [["empty", ""], ["garbage", GARBAGE], ["long", LONG]];
const FILE_VALUES: Array<[string, string]> = [["empty", ""], ["garbage", GARBAGE_LINE], ["long", LONG_LINE]];

// --- what a case may leave: nothing -------------------------------------------

function list(dir: string, out: string[], depth: number, dirsOnly = false): void {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      out.push(`${p}/`);
      if (depth > 0) list(p, out, depth - 1, dirsOnly);
    } else if (!dirsOnly) {
      out.push(e.isFile() ? `${p} ${lstatSync(p).size}` : `${p} (${e.isSymbolicLink() ? "symlink" : "special"})`);
    }
  }
}

// Other spawnctl runs on this host (another test file, another user) may
// add and remove their own machines meanwhile. What a run of this file could
// make is named after its machine (NAME, or NAME-<random> with -x; NO_SUCH
// for set-property) or lives under its tree; entries plainly another
// machine's are left out, everything that cannot be told apart is compared.
function hostSnapshot(): string[] {
  // ours: named after this file's machines or tree, or after one of its hostile values
  const ours = (s: string) => [NAME, NO_SUCH, base, "garbage", "x".repeat(64), "9".repeat(64), "spawnctl-escape"].some((m) => s.includes(m));
  const out: string[] = [];
  list(base, out, 64);
  const run: string[] = [];
  list("/run/spawnctl", run, 4);
  // per-machine state and network files are named after their machine
  out.push(...run.filter((e) => !/^\/run\/spawnctl\/(machines|net)\/./.test(e) || ours(e)));
  // the tree's lock is named after its inode, the machine's after its name
  const lock = `inode-${(() => {
    try {
      const st = lstatSync(tree);
      return `${st.dev}:${st.ino}`;
    } catch {
      return "";
    }
  })()}`;
  const locks: string[] = [];
  list("/run/systemd/nspawn/locks", locks, 0);
  out.push(...locks.filter((e) => !/\/(inode|name)-[^/]*$/.test(e.split(" ")[0]!) || e.includes(`${lock} `) || ours(e)));
  list("/etc/spawnctl/properties", out, 1);
  const images: string[] = [];
  list("/var/lib/machines", images, 0);
  out.push(...images.filter(ours));
  // the machine's cgroup under machine.slice, in every hierarchy (v2 at the root, v1 per controller)
  const roots = ["/sys/fs/cgroup", ...(() => {
    try {
      return readdirSync("/sys/fs/cgroup").map((d) => `/sys/fs/cgroup/${d}`);
    } catch {
      return [];
    }
  })()];
  for (const r of roots) {
    const cg: string[] = [];
    list(`${r}/machine.slice`, cg, 8, true);
    out.push(...cg.filter((e) => e.slice(`${r}/machine.slice/`.length).startsWith(`machine-${escapeUnit(NAME)}`)));
  }
  for (const l of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l && ours(l)) out.push(`mount ${l}`);
  return out.sort();
}

function changes(before: string[], after: string[]): string[] {
  const b = new Set(before);
  const a = new Set(after);
  return [...after.filter((x) => !b.has(x)).map((x) => `+ ${x}`), ...before.filter((x) => !a.has(x)).map((x) => `- ${x}`)];
}

const forwardBefore = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();

/** Run spawnctl, and check that the host is as it was. */
function runClean(args: string[], opts: { argv0?: string } = {}): Result {
  const before = hostSnapshot();
  let r: Result;
  // in a network namespace of its own: should a case ever start a container
  // with a network, the host's links and forwarding stay untouched
  if (opts.argv0) {
    const p = Bun.spawnSync(["unshare", "--net", opts.argv0, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    r = { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  } else {
    r = run(args, { timeout: 10_000, netns: true });
  }
  expect(changes(before, hostSnapshot())).toEqual([]);
  expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe(forwardBefore);
  return r;
}

/** No crash, no stack, and the message is safe to print: no control characters but newlines, and short. */
function expectCleanMessage(r: Result): void {
  expect(r.stderr).not.toContain("internal error");
  expect(r.stderr).not.toMatch(/^\s+at /m);
  // biome-ignore lint: control characters are what we look for
  expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
  expect(r.stderr.length).toBeLessThan(8192);
}

function expectFailure(r: Result, names: string): void {
  expectCleanMessage(r);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toContain(names);
}

// --- the command line -----------------------------------------------------------

// Values an option legitimately takes. They must still not crash; they run
// with --print-plan, so that nothing starts.
const CLI_ACCEPTED: Record<string, string> = {
  // the kernel takes an environment string of up to 128 KiB; a NAME alone is
  // taken from spawnctl's own environment, and dropped when unset there
  // (systemd-nspawn's env_name_is_valid() takes it too)
  "--setenv long": "a 100000-character NAME is a valid variable name",
  // systemd-nspawn (v256's --background=): an empty value turns the tint off
  "--background empty": "resets the background tint",
  // systemd-nspawn: an empty --bind-user= empties the list of users
  "--bind-user empty": "resets the list of users to bind",
};

const cliOptions = ROWS.filter((r) => r.long && (r.arg === "required" || r.arg === "optional")).flatMap((r) => r.long!);

describe(`command line: ${cliOptions.length} options × ${CLI_VALUES.length} values`, () => {
  for (const name of cliOptions) {
    for (const [kind, value] of CLI_VALUES) {
      const id = `--${name} ${kind}`;
      if (CLI_ACCEPTED[id]) {
        test(`--${name}=<${kind}> is accepted (${CLI_ACCEPTED[id]}) and does not crash`, () => {
          const r = runClean(["run", "-q", "-P", "--print-plan", "-D", tree, `--${name}=${value}`, "/bin/true"]);
          expectCleanMessage(r);
          expect(r.code).toBe(0);
          expect(r.stderr).toBe("");
        });
        continue;
      }
      test(`--${name}=<${kind}> fails before anything starts, naming --${name}`, () => {
        const r = runClean(["run", "-q", "-P", "-D", tree, `--${name}=${value}`, "/bin/true"]);
        expectFailure(r, `--${name}`);
        // the plan is made after the check: --print-plan fails the same way
        const p = runClean(["run", "-q", "-P", "--print-plan", "-D", tree, `--${name}=${value}`, "/bin/true"]);
        expect({ code: p.code, stderr: p.stderr }).toEqual({ code: r.code, stderr: r.stderr });
      });
    }
  }
});

// --- .nspawn files ----------------------------------------------------------------

// Values a key legitimately takes (no warning, as in systemd-nspawn)
const FILE_ACCEPTED: Record<string, string> = {
  "Exec.Parameters empty": "an empty argument list (the command line's /bin/true is the payload anyway)",
  "Exec.Parameters garbage": "Parameters= is the payload's argv: any bytes but NUL make a word",
  "Exec.CPUAffinity empty": "resets the CPU set, as in systemd-nspawn",
  "Network.MACVLAN empty": "an empty list of interfaces, as in systemd-nspawn",
  "Network.IPVLAN empty": "an empty list of interfaces, as in systemd-nspawn",
  "Network.Interface empty": "an empty list of interfaces, as in systemd-nspawn",
  "Files.BindUser empty": "resets the list of users to bind, as in systemd-nspawn",
};
// Keys whose bad value fails the whole file instead of a warning:
// CPUAffinity= as systemd-nspawn ("Failed to parse file: Invalid argument");
// SystemCallFilter= because a deny list with a typo must not be dropped
const FILE_FATAL = new Set(["Exec.CPUAffinity", "Exec.SystemCallFilter"]);

const fileKeys = ROWS.flatMap((r) => r.file ?? []);

describe(`.nspawn files: ${fileKeys.length} keys × ${FILE_VALUES.length} values`, () => {
  for (const key of fileKeys) {
    const [section, k] = key.split(".") as [string, string];
    for (const [kind, value] of FILE_VALUES) {
      const id = `${key} ${kind}`;
      const fatal = FILE_FATAL.has(key) && value !== "";
      const what = FILE_ACCEPTED[id] ? `is accepted (${FILE_ACCEPTED[id]})` : fatal ? "fails, naming file:line and key" : "warns naming file:line and key, and is ignored";
      test(`[${section}] ${k}=<${kind}> ${what}`, () => {
        const file = `${base}/${NAME}.nspawn`;
        writeFileSync(file, `[${section}]\n${k}=${value}\n`);
        const args = ["run", "-q", "-P", "--print-plan", "--settings=trusted", "-D", tree, "/bin/true"];
        const r = runClean(args);
        expectCleanMessage(r);
        const about = r.stderr.split("\n").filter((l) => l.includes(`${file}:`));
        if (FILE_ACCEPTED[id]) {
          expect(r.code).toBe(0);
          expect(about).toEqual([]);
        } else if (fatal) {
          expect(r.code).toBe(1);
          expect(about.length).toBe(1);
          expect(about[0]).toStartWith(`${file}:2: Failed to parse ${k}=`);
          // and a real run fails the same way, before anything starts
          const real = runClean(args.filter((a) => a !== "--print-plan"));
          expect({ code: real.code, stderr: real.stderr }).toEqual({ code: r.code, stderr: r.stderr });
        } else {
          expect(r.code).toBe(0);
          expect(about.length).toBe(1);
          expect(about[0]).toStartWith(`${file}:2: Failed to parse ${k}=`);
          expect(about[0]).toContain(", ignoring: ");
        }
      });
    }
  }
});

// --- resource properties ------------------------------------------------------------

const NINES = "9".repeat(3000);
const PROPERTY_VALUES: Array<[string, string]> = [
  ["garbage", GARBAGE], ["long", LONG], ["3000 nines", NINES], ["2^64", "18446744073709551616"], ["negative", "-1"],
];

describe(`properties: ${PROPERTY_NAMES.length} names × ${PROPERTY_VALUES.length + 1} values, through run --property=, set-property and machinectl set-property`, () => {
  for (const p of PROPERTY_NAMES) {
    for (const [kind, value] of PROPERTY_VALUES) {
      test(`--property=${p}=<${kind}> fails, naming --property and ${p}`, () => {
        const r = runClean(["run", "-q", "-P", "-D", tree, `--property=${p}=${value}`, "/bin/true"]);
        expectFailure(r, `--property`);
        expect(r.stderr).toContain(`Failed to parse ${p}=`);
      });
      // systemctl set-property parses every assignment before it asks the
      // manager for the unit: a bad value is reported for a machine that
      // does not exist too, and nothing is written
      test(`set-property ${NO_SUCH} ${p}=<${kind}> fails on the value first`, () => {
        const r = runClean(["set-property", NO_SUCH, `${p}=${value}`]);
        expectFailure(r, `Failed to parse ${p}=`);
        expect(r.stderr).not.toContain("No machine");
      });
      test(`machinectl set-property ${NO_SUCH} ${p}=<${kind}> fails on the value first`, () => {
        const r = runClean(["set-property", NO_SUCH, `${p}=${value}`], { argv0: `${base}/machinectl` });
        expectFailure(r, `Failed to parse ${p}=`);
      });
    }
    // an empty value resets the property, as in systemd ("MemoryMax=" is no limit)
    test(`${p}= (empty) resets: accepted by --property (--print-plan); set-property then says the machine does not exist`, () => {
      const r = runClean(["run", "-q", "-P", "--print-plan", "-D", tree, `--property=${p}=`, "/bin/true"]);
      expectCleanMessage(r);
      expect(r.code).toBe(0);
      const s = runClean(["set-property", NO_SUCH, `${p}=`]);
      expectFailure(s, `No machine '${NO_SUCH}' known.`);
      const m = runClean(["set-property", NO_SUCH, `${p}=`], { argv0: `${base}/machinectl` });
      expectFailure(m, `No machine '${NO_SUCH}' known.`);
    });
  }

  test("set-property refuses a machine name that is no name, before it becomes a path", () => {
    for (const name of ["../../../tmp/spawnctl-escape", "", GARBAGE, LONG, "."]) {
      const r = runClean(["set-property", name, "MemoryMax=1G"]);
      expectFailure(r, "Invalid machine name");
    }
  });

  test("set-property with a good value for a machine that does not exist: no file is written", () => {
    const r = runClean(["set-property", NO_SUCH, "MemoryMax=1G", "TasksMax=100"]);
    expectFailure(r, `No machine '${NO_SUCH}' known.`);
  });
});

// --- numbers beyond what the kernel takes ------------------------------------------

const NR_OPEN = BigInt(readFileSync("/proc/sys/fs/nr_open", "utf8").trim());

// [option=value, what the message must contain]
const NUMERIC: Array<[string, string]> = [
  [`--property=MemoryMax=${NINES}`, "Failed to parse MemoryMax=999"],
  ["--property=MemoryMax=18446744073709551616", "Failed to parse MemoryMax=18446744073709551616: Numerical result out of range"],
  ["--property=MemoryHigh=16E", "Failed to parse MemoryHigh=16E: Numerical result out of range"],
  ["--property=MemoryLow=101%", "Failed to parse MemoryLow=101%: Numerical result out of range"],
  ["--property=MemorySwapMax=-1", "Failed to parse MemorySwapMax=-1: Numerical result out of range"],
  ["--property=CPUQuota=0%", "Failed to parse CPUQuota=0%: CPU quota too small"],
  ["--property=CPUQuota=2147483648%", "Failed to parse CPUQuota=2147483648%: Numerical result out of range"],
  ["--property=CPUQuota=50", "Failed to parse CPUQuota=50: Invalid argument"],
  ["--property=CPUWeight=0", "Failed to parse CPUWeight=0: Numerical result out of range"],
  ["--property=CPUWeight=10001", "Failed to parse CPUWeight=10001: Numerical result out of range"],
  ["--property=IOWeight=0", "Failed to parse IOWeight=0: Numerical result out of range"],
  ["--property=IOWeight=10001", "Failed to parse IOWeight=10001: Numerical result out of range"],
  ["--property=CPUShares=262145", "Failed to parse CPUShares=262145: Numerical result out of range"],
  ["--property=BlockIOWeight=1001", "Failed to parse BlockIOWeight=1001: Numerical result out of range"],
  ["--property=TasksMax=4194305", "Failed to parse TasksMax=4194305: Numerical result out of range"],
  ["--property=TasksMax=18446744073709551616", "Failed to parse TasksMax=18446744073709551616: Numerical result out of range"],
  ["--property=AllowedCPUs=8192", "Failed to parse AllowedCPUs=8192: Numerical result out of range"],
  [`--property=AllowedCPUs=0-${NINES}`, "Failed to parse AllowedCPUs=0-999"],
  ["--oom-score-adjust=2000", "Failed to parse --oom-score-adjust= parameter: 2000"],
  ["--oom-score-adjust=-1001", "Failed to parse --oom-score-adjust= parameter: -1001"],
  [`--oom-score-adjust=${NINES}`, "Failed to parse --oom-score-adjust= parameter: 999"],
  ["--rlimit=CORE=18446744073709551616", "Failed to parse --rlimit= argument CORE=18446744073709551616: Numerical result out of range"],
  ["--rlimit=CORE=18446744073709551615", "Failed to parse --rlimit= argument CORE=18446744073709551615: Numerical result out of range"],
  [`--rlimit=NOFILE=${NINES}`, "Failed to parse --rlimit= argument NOFILE=999"],
  // the kernel's maximum for a hard RLIMIT_NOFILE is fs.nr_open (setrlimit() says EPERM above it)
  [`--rlimit=NOFILE=${NR_OPEN + 1n}`, `Failed to parse --rlimit= argument NOFILE=${NR_OPEN + 1n}: Operation not permitted`],
  ["--rlimit=NOFILE=infinity", "Failed to parse --rlimit= argument NOFILE=infinity: Operation not permitted"],
  ["--rlimit=NOFILE=10:5", "Failed to parse --rlimit= argument NOFILE=10:5: Soft limit is above the hard limit"],
  ["--rlimit=NICE=41", "Failed to parse --rlimit= argument NICE=41: Numerical result out of range"],
  ["--rlimit=NICE=+20", "Failed to parse --rlimit= argument NICE=+20: Numerical result out of range"],
  ["--rlimit=CPU=1K", "Failed to parse --rlimit= argument CPU=1K: Invalid argument"],
  [`--rlimit=RTTIME=${NINES}us`, "Failed to parse --rlimit= argument RTTIME=999"],
  ["--cpu-affinity=8192", "Failed to parse --cpu-affinity= argument 8192: Numerical result out of range"],
  [`--cpu-affinity=0-${NINES}`, "Failed to parse --cpu-affinity= argument 0-999"],
  ["--cpu-affinity=8191", "Failed to parse --cpu-affinity= argument 8191: Invalid argument (no CPU of the set is online"],
  ["--kill-signal=0", "Failed to parse --kill-signal= argument 0: Invalid argument"],
  ["--kill-signal=65", "Failed to parse --kill-signal= argument 65: Invalid argument"],
  [`--kill-signal=${NINES}`, "Failed to parse --kill-signal= argument 999"],
  ["--kill-signal=SIGRTMIN+31", "Failed to parse --kill-signal= argument SIGRTMIN+31: Invalid argument"],
  ["--private-users=4294967295", 'Failed to parse UID "4294967295": No such device or address'],
  ["--private-users=4294967296", 'Failed to parse UID "4294967296": Numerical result out of range'],
  ["--private-users=65535", 'Failed to parse UID "65535": No such device or address'],
  ["--private-users=0:0", "UID range cannot be empty or go beyond 4294967295."],
  ["--private-users=0:4294967296", 'Failed to parse UID range "4294967296": Numerical result out of range'],
  ["--private-users=4294901760:65536", "UID range cannot be empty or go beyond 4294967295."],
  ["--private-users=4294967294:2", "UID range cannot be empty or go beyond 4294967295."],
  ["--private-users=01000", 'Failed to parse UID "01000": Invalid argument'],
  [`--private-users=${NINES}`, 'Failed to parse UID "999'],
  ["--port=0", "Failed to parse host port 0: Invalid argument"],
  ["--port=65536", "Failed to parse host port 65536: Invalid argument"],
  ["--port=tcp:80:65536", "Failed to parse host port tcp:80:65536: Invalid argument"],
  [`--port=${NINES}`, "Failed to parse host port 999"],
  ["--uuid=0123456789abcdef0123456789abcdef0", "Invalid UUID: 0123456789abcdef0123456789abcdef0"],
  ["--uuid=00000000-0000-0000-0000-000000000000", "Invalid UUID: 00000000-0000-0000-0000-000000000000"],
  ["--user=4294967295", "Failed to parse --user= argument 4294967295: Invalid argument"],
  [`--user=${"u".repeat(256)}`, "Failed to parse --user= argument uuu"],
  ["--network-zone=abcdefghijklm", "Failed to parse --network-zone= argument abcdefghijklm: Invalid argument"],
  ["--network-bridge=abcdefghijklmnop", "Failed to parse --network-bridge= argument abcdefghijklmnop: Invalid argument"],
  [`--chdir=/${"d".repeat(256)}`, "File name too long"],
  [`--bind=/${"d/".repeat(2100)}:/mnt`, "Failed to parse --bind= argument"],
  [`--tmpfs=/mnt:size=${"9".repeat(5000)}`, "Failed to parse --tmpfs= argument /mnt:size=999"],
  [`--slice=${"s".repeat(250)}.slice`, "Failed to parse --slice= argument sss"],
];

describe(`numbers and lengths beyond what the kernel takes: ${NUMERIC.length} cases`, () => {
  for (const [arg, message] of NUMERIC) {
    const option = arg.slice(0, arg.indexOf("="));
    test(`${arg.length > 72 ? `${arg.slice(0, 60)}…(${arg.length} characters)` : arg}`, () => {
      const r = runClean(["run", "-q", "-P", "-D", tree, arg, "/bin/true"]);
      expectFailure(r, option);
      expect(r.stderr).toContain(message);
    });
  }
});
