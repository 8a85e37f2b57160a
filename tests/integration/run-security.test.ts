// Capabilities, seccomp, no_new_privs, resource settings, private network.
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { readFileSync } from "node:fs";
import { IS_ROOT, rootTest as test, run } from "../helpers.ts";
import { DEFAULT_CAP_MASK, capBit } from "../../src/settings/caps.ts";
import { boundingSet } from "../../src/container/host.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
});

const sh = (script: string, ...opts: string[]) => run(["run", "-q", "-P", "-D", tree, ...opts, "/bin/sh", "-c", script]);
const hex = (m: bigint) => m.toString(16).padStart(16, "0");
const field = (out: string, name: string) => new RegExp(`^${name}:\\s*(\\S+)$`, "m").exec(out)?.[1];

describe("capabilities", () => {
  const host = IS_ROOT ? boundingSet() : 0n;
  test("the default bounding set is nspawn's 0xfdecafff (minus what the host lacks)", () => {
    const st = sh("cat /proc/self/status").stdout;
    expect(field(st, "CapBnd")).toBe(hex(DEFAULT_CAP_MASK & host));
    expect(field(st, "CapEff")).toBe(hex(DEFAULT_CAP_MASK & host));
  });
  test("--capability adds, --drop-capability removes", () => {
    const st = sh("cat /proc/self/status; chown 1000 /tmp && echo chowned || echo no-chown", "--capability=CAP_NET_ADMIN,CAP_SYS_TIME", "--drop-capability=CAP_CHOWN").stdout;
    const bnd = BigInt(`0x${field(st, "CapBnd")}`);
    expect(bnd & capBit("NET_ADMIN")).toBeTruthy();
    expect(bnd & capBit("CHOWN")).toBeFalsy();
    expect(st).toContain("no-chown");
  });
  test("--ambient-capability gives a non-root payload a capability", () => {
    const st = sh("cat /proc/self/status", "-u", "tester", "--ambient-capability=CAP_NET_BIND_SERVICE").stdout;
    expect(field(st, "CapAmb")).toBe(hex(capBit("NET_BIND_SERVICE")));
    expect(field(st, "CapEff")).toBe(hex(capBit("NET_BIND_SERVICE")));
  });
  test("--no-new-privileges", () => {
    expect(field(sh("cat /proc/self/status", "--no-new-privileges=yes").stdout, "NoNewPrivs")).toBe("1");
    expect(field(sh("cat /proc/self/status").stdout, "NoNewPrivs")).toBe("0");
  });
});

describe("seccomp", () => {
  test("the default filter is on: swapoff and kernel modules are refused", () => {
    const r = sh("grep ^Seccomp: /proc/self/status; swapoff /dev/null 2>&1; insmod /dev/null 2>&1 | head -1");
    expect(r.stdout).toContain("Seccomp:\t2");
    expect(r.stdout).toContain("Operation not permitted");
  });
  test("--system-call-filter=~LIST denies, LIST allows", () => {
    expect(sh("mkdir /tmp/x 2>&1 || true", "--system-call-filter=~mkdir mkdirat").stdout).toContain("Operation not permitted");
    expect(sh("mkdir /tmp/x && echo ok").stdout).toBe("ok\n");
    const r = sh("true", "--system-call-filter=~nosuchcall");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown system call or group nosuchcall");
  });
});

describe("resources and identity", () => {
  test("--rlimit, and NOFILE defaults to 1024 as for a kernel's init", () => {
    expect(sh("ulimit -n; ulimit -Hn", "--rlimit=NOFILE=100:200").stdout).toBe("100\n200\n");
    expect(sh("ulimit -n").stdout).toBe("1024\n");
    expect(sh("ulimit -c", "--rlimit=CORE=infinity").stdout).toBe("unlimited\n");
  });
  test("--oom-score-adjust, --cpu-affinity, --personality", () => {
    expect(sh("cat /proc/self/oom_score_adj", "--oom-score-adjust=500").stdout).toBe("500\n");
    expect(sh("grep Cpus_allowed_list /proc/self/status", "--cpu-affinity=0").stdout).toBe("Cpus_allowed_list:\t0\n");
    expect(sh("uname -m", "--personality=x86").stdout).toBe("i686\n");
  });
  test("IPC and UTS are private", () => {
    const host = readFileSync("/proc/sys/kernel/hostname", "utf8");
    expect(sh("hostname; hostname inside; cat /proc/sys/kernel/hostname", "--hostname=first").stdout).toBe("first\ninside\n");
    expect(readFileSync("/proc/sys/kernel/hostname", "utf8")).toBe(host);
  });
});

describe("--property: resource limits on the machine's cgroup", () => {
  test("MemoryMax, TasksMax, CPUQuota, CPUWeight land in the cgroup files the container sees", () => {
    const r = sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight",
      "--property=MemoryMax=64M", "--property=TasksMax=33", "--property=CPUQuota=50%", "--property=CPUWeight=200");
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["67108864", "33", "50000", "2048"]);
    const fork = sh("for i in $(seq 40); do sleep 1 & done 2>&1 | head -1; echo done", "--property=TasksMax=10");
    expect(fork.stdout).toContain("can't fork");
  });
});

describe("--private-network", () => {
  test("only a loopback device, CAP_NET_ADMIN, and /proc/sys/net writable", () => {
    const r = sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; grep CapBnd /proc/self/status; echo 1 > /proc/sys/net/ipv4/ip_forward && echo net-rw; ls /dev/net/tun", "--private-network");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("lo");
    expect(BigInt(`0x${lines[1]!.split("\t")[1]}`) & capBit("NET_ADMIN")).toBeTruthy();
    expect(lines).toContain("net-rw");
    expect(lines).toContain("/dev/net/tun");
    expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8")).not.toBe(undefined);
  });
  test("without it the host's network is shared and /proc/sys/net is read-only", () => {
    const r = sh("cat /proc/net/dev | wc -l; echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo net-ro");
    expect(Number(r.stdout.split("\n")[0])).toBeGreaterThan(3);
    expect(r.stdout).toContain("net-ro");
  });
});
