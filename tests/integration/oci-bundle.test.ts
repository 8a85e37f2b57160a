// --oci-bundle=: the built binary runs an OCI runtime bundle whose root is
// the busybox tree, and the container is what config.json says.
import { describe, expect } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { busyboxFixture } from "../fixture.ts";
import { IS_ROOT, SPAWNCTL, needs, onTty, rootTest as test, run, tempDir } from "../helpers.ts";
import { capBit } from "../../src/settings/caps.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
  mkdirSync(`${b}/data`);
  writeFileSync(`${b}/data/hello`, "from the host\n");
  writeFileSync(`${t}/etc/secret`, "top secret\n");
  // mount points in the read-only root (as with nspawn, none can be made there)
  for (const d of ["scratch", "data", "hooks"]) mkdirSync(`${t}/${d}`);
});

let n = 0;
/** A bundle directory whose config.json is `spec` (root defaults to the busybox tree, read-only) */
function bundle(spec: Record<string, unknown>, proc: Record<string, unknown> = {}): string {
  const dir = `${base}/bundle${++n}`;
  mkdirSync(dir);
  const config = {
    ociVersion: "1.0.2",
    root: { path: tree, readonly: true },
    process: { terminal: false, user: { uid: 0, gid: 0 }, cwd: "/", args: ["/bin/true"], ...proc },
    linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }] },
    ...spec,
  };
  writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 1));
  return dir;
}

const sh = (script: string) => ["/bin/sh", "-c", script];
const field = (out: string, name: string) => new RegExp(`^${name}:\\s*(\\S+)$`, "m").exec(out)?.[1];
const hex = (m: bigint) => m.toString(16).padStart(16, "0");

describe("the process", () => {
  test("args, env, cwd, user and hostname are the bundle's", () => {
    const b = bundle({ hostname: "ocibox" }, {
      user: { uid: 1000, gid: 1000, additionalGids: [100, 5] },
      cwd: "/home/tester",
      env: ["PATH=/usr/bin", "GREETING=hi there"],
      args: sh('echo "uid=$(id -u) gid=$(id -g) groups=$(id -G | tr " " "\\n" | sort -n | tr "\\n" " ")"; pwd; hostname; echo "$GREETING"; echo "$PATH"; echo "$0 $1"'),
    });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("uid=1000 gid=1000 groups=5 100 1000 \n/home/tester\nocibox\nhi there\n/usr/bin\n/bin/sh \n");
  });

  test("domainname and process.user.umask", () => {
    const b = bundle({ domainname: "example.org" }, { user: { uid: 1000, gid: 1000, umask: 0o027 }, args: sh("cat /proc/sys/kernel/domainname; umask; touch /tmp/f; stat -c %a /tmp/f") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("example.org\n0027\n640\n");
  });

  test("terminal: true on a terminal is an interactive console of consoleSize", async () => {
    const b = bundle({}, { terminal: true, consoleSize: { height: 33, width: 77 }, args: sh("stty size; tty") });
    const out = await onTty(`${SPAWNCTL} run -q --oci-bundle=${b}`, []);
    expect(out).toBe("33 77\n/dev/pts/0\n");
  });

  test("the command line wins: a command, --hostname= and -u", () => {
    const b = bundle({ hostname: "ocibox" }, { user: { uid: 1000, gid: 1000 }, args: sh("echo bundle") });
    const r = run(["run", "-q", `--oci-bundle=${b}`, "--hostname=cli", "-u", "root", "/bin/sh", "-c", "hostname; id -u"]);
    expect(r.stdout).toBe("cli\n0\n");
    expect(r.code).toBe(0);
  });

  test("capabilities: the bounding set is the bundle's, ambient ones reach a non-root payload", () => {
    const b = bundle({}, {
      user: { uid: 1000, gid: 1000 },
      capabilities: { bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"], ambient: ["CAP_NET_BIND_SERVICE"], inheritable: ["CAP_NET_BIND_SERVICE"] },
      args: ["/bin/cat", "/proc/self/status"],
    });
    const st = run(["run", "-q", `--oci-bundle=${b}`]).stdout;
    expect(field(st, "CapBnd")).toBe(hex(capBit("CHOWN") | capBit("KILL") | capBit("NET_BIND_SERVICE")));
    expect(field(st, "CapAmb")).toBe(hex(capBit("NET_BIND_SERVICE")));
  });

  test("noNewPrivileges, rlimits and oomScoreAdj", () => {
    const b = bundle({}, {
      noNewPrivileges: true,
      rlimits: [{ type: "RLIMIT_NOFILE", soft: 123, hard: 456 }],
      oomScoreAdj: 234,
      args: sh("grep NoNewPrivs /proc/self/status; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj"),
    });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stdout).toBe("NoNewPrivs:\t1\n123\n456\n234\n");
  });

  test("linux.seccomp: a denied call fails with EPERM, others work", () => {
    const ns = [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }];
    const b = bundle({ linux: { namespaces: ns, seccomp: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }] } } },
      { args: sh("mkdir /tmp/d 2>&1; touch /tmp/f && echo touched; grep ^Seccomp: /proc/self/status") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stdout).toBe("mkdir: can't create directory '/tmp/d': Operation not permitted\ntouched\nSeccomp:\t2\n");
    // refused by default: only what the list allows (enough for a static busybox echo)
    const allow = ["execve", "brk", "arch_prctl", "set_tid_address", "getpid", "write", "exit_group", "rt_sigaction", "rt_sigprocmask", "ioctl", "getuid", "getgid", "geteuid", "getegid", "getppid", "prlimit64", "getrlimit", "uname", "readlink", "stat", "fstat", "newfstatat", "access", "getcwd", "mmap", "munmap", "mprotect", "close", "read", "fcntl", "dup2", "wait4", "exit"];
    const strict = bundle({ linux: { namespaces: ns, seccomp: { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: allow, action: "SCMP_ACT_ALLOW" }] } } },
      { args: sh("echo still here; mkdir /tmp/d 2>&1; cat /etc/os-release 2>&1 | head -1") });
    const s = run(["run", "-q", `--oci-bundle=${strict}`]);
    expect(s.stdout.split("\n")[0]).toBe("still here");
    expect(s.stdout).toContain("Operation not permitted");
    expect(s.stdout).not.toContain("BusyBox test tree");
  });

  test("the payload's exit status is the container's", () => {
    const r = run(["run", "-q", `--oci-bundle=${bundle({}, { args: sh("exit 7") })}`]);
    expect(r.code).toBe(7);
  });
});

describe("the file system", () => {
  test("root.readonly, a tmpfs and a read-only bind mount from mounts", () => {
    const b = bundle({
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m", "mode=1777"] },
        { destination: "/data", type: "bind", source: `${base}/data`, options: ["rbind", "ro"] },
      ],
    }, { args: sh("touch /x 2>&1; echo ok > /scratch/f && cat /scratch/f; cat /data/hello; touch /data/y 2>&1; grep -E ' /(scratch|data) ' /proc/mounts | cut -d' ' -f2,3") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stdout).toContain("touch: /x: Read-only file system");
    expect(r.stdout).toContain("ok\nfrom the host\n");
    expect(r.stdout).toContain("touch: /data/y: Read-only file system");
    expect(r.stdout).toContain("/scratch tmpfs");
    expect(r.stdout).toContain("/data ");
    expect(existsSync(`${tree}/x`)).toBe(false);
  });

  test("root.path relative to the bundle, and a writable root without root.readonly", () => {
    const b = bundle({ root: { path: "../bb" } }, { args: sh("touch /oci-writable && echo written") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stdout).toBe("written\n");
    expect(existsSync(`${tree}/oci-writable`)).toBe(true);
    rmSync(`${tree}/oci-writable`);
  });

  test("maskedPaths hide a file (a missing one is skipped); readonlyPaths are read-only", () => {
    const b = bundle({
      root: { path: tree },
      linux: {
        namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
        maskedPaths: ["/etc/secret", "/no/such/path", "/proc/kcore"],
        readonlyPaths: ["/home/tester", "/no/such/dir"],
      },
    }, { args: sh("cat /etc/secret 2>&1 | head -c 20; echo; touch /home/tester/f 2>&1; touch /etc/writable && echo etc-writable") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("top secret");
    expect(r.stdout).toContain("touch: /home/tester/f: Read-only file system");
    expect(r.stdout).toContain("etc-writable");
    rmSync(`${tree}/etc/writable`);
  });

  test("linux.devices: a node the bundle lists", () => {
    const b = bundle({
      linux: {
        namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
        devices: [{ type: "c", path: "/dev/extra/full", major: 1, minor: 7, fileMode: 0o620, uid: 1000, gid: 5 }],
      },
    }, { args: sh("stat -c '%F %t:%T %a %u:%g' /dev/extra/full; echo x > /dev/extra/full") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stdout).toBe("character special file 1:7 620 1000:5\n");
    expect(r.stderr).toContain("No space left on device");
  });
});

describe("namespaces", () => {
  test("a network namespace of its own, with a sysctl in it", () => {
    const b = bundle({
      linux: {
        namespaces: [{ type: "pid" }, { type: "network" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
        sysctl: { "net.ipv4.ip_forward": "1", "kernel.shmmni": "1234" },
      },
    }, { args: sh("ls /sys/class/net; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni") });
    const hostShm = readFileSync("/proc/sys/kernel/shmmni", "utf8");
    const r = run(["run", "-q", `--oci-bundle=${b}`], { netns: true });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("lo\n1\n1234\n");
    expect(readFileSync("/proc/sys/kernel/shmmni", "utf8")).toBe(hostShm);
  });

  test("a network namespace by path (linux.namespaces[].path → --network-namespace-path)", () => {
    const nsFile = `${base}/netns`;
    writeFileSync(nsFile, "");
    // a namespace of the test's own, kept by a bind mount on the file, with a link of its own
    const mk = Bun.spawnSync(["unshare", `--net=${nsFile}`, "ip", "link", "add", "ocitest0", "type", "veth", "peer", "name", "ocitest1"]);
    expect(mk.exitCode).toBe(0);
    try {
      const ino = statSync(nsFile).ino;
      const b = bundle({
        linux: { namespaces: [{ type: "pid" }, { type: "network", path: nsFile }, { type: "mount" }, { type: "ipc" }, { type: "uts" }] },
      }, { args: sh("ls /sys/class/net | sort | tr '\\n' ' '; stat -L -c %i /proc/self/ns/net") });
      const r = run(["run", "-q", `--oci-bundle=${b}`], { netns: true });
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(`lo ocitest0 ocitest1 ${ino}\n`);
    } finally {
      Bun.spawnSync(["umount", nsFile]);
    }
  });

  test("a user namespace with the bundle's mapping", () => {
    const b = bundle({
      root: { path: tree, readonly: true },
      linux: {
        namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }, { type: "user" }],
        uidMappings: [{ containerID: 0, hostID: 0x7e0000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 0x7e0000, size: 65536 }],
      },
    }, { args: ["/bin/cat", "/proc/self/uid_map"] });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split(/\s+/)).toEqual(["0", String(0x7e0000), "65536"]);
  });
});

describe("hooks, resources and the plan", () => {
  test("prestart runs before the payload, poststart while it runs, poststop after; each gets the state", () => {
    const hooks = `${base}/hooks`;
    mkdirSync(hooks, { recursive: true });
    const hook = (name: string) => {
      writeFileSync(`${hooks}/${name}.sh`, `#!/bin/sh\ncat > ${hooks}/${name}.json\necho "$PHASE" > ${hooks}/${name}.env\n`);
      chmodSync(`${hooks}/${name}.sh`, 0o755);
      return { path: `${hooks}/${name}.sh`, env: [`PHASE=${name}`], timeout: 10 };
    };
    const b = bundle({
      mounts: [{ destination: "/hooks", type: "bind", source: hooks, options: ["rbind"] }],
      hooks: { prestart: [hook("prestart")], poststart: [hook("poststart")], poststop: [hook("poststop")] },
    }, { args: sh("cat /hooks/prestart.env; sleep 1") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("prestart\n");
    const pre = JSON.parse(readFileSync(`${hooks}/prestart.json`, "utf8"));
    expect(pre).toMatchObject({ status: "created", bundle: b, id: `bundle${n}` });
    expect(pre.pid).toBeGreaterThan(1);
    expect(JSON.parse(readFileSync(`${hooks}/poststart.json`, "utf8"))).toMatchObject({ status: "running", pid: pre.pid });
    expect(JSON.parse(readFileSync(`${hooks}/poststop.json`, "utf8")).status).toBe("stopped");
    expect(readFileSync(`${hooks}/poststop.env`, "utf8")).toBe("poststop\n");
  });

  test("a failing prestart hook stops the start, naming it", () => {
    const b = bundle({ hooks: { prestart: [{ path: "/bin/false" }] } }, { args: sh("echo payload ran") });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("hooks.prestart[0] (/bin/false): exited with status 1");
  });

  test("linux.resources: memory, cpu and pids limits on the machine's cgroup", () => {
    const resources = { devices: [{ allow: false, access: "rwm" }], memory: { limit: 67108864 }, cpu: { shares: 512, quota: 25000, period: 100000 }, pids: { limit: 77 } };
    const b = bundle({ linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }], resources } }, {
      // cgroup v1 (this host's hybrid layout) or v2
      args: sh("cd /sys/fs/cgroup; if [ -d pids ]; then cat pids/pids.max memory/memory.limit_in_bytes cpu/cpu.shares cpu/cpu.cfs_quota_us; else cat pids.max memory.max cpu.weight cpu.max; fi"),
    });
    const r = run(["run", "-q", `--oci-bundle=${b}`]);
    expect(r.stderr).toBe("");
    expect(["77\n67108864\n512\n25000\n", "77\n67108864\n50\n25000 100000\n"]).toContain(r.stdout);
  });

  test("--print-plan shows the bundle's steps and changes nothing", () => {
    const b = bundle({ linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }], maskedPaths: ["/etc/secret"] } });
    const r = run(["run", `--oci-bundle=${b}`, "--print-plan"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dst="/etc/secret"');
    expect(r.stdout).toContain("linux.maskedPaths");
    expect(r.stdout).toContain(`src="${tree}"`);
  });

  test("a malformed config.json fails naming the field, and leaves nothing behind", () => {
    const b = bundle({ linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipcx" }] } });
    const r = run(["run", `--oci-bundle=${b}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${b}/config.json: linux.namespaces[2].type: unknown namespace type ipcx\n`);
    const missing = run(["run", `--oci-bundle=${base}/nonexistent`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("No such file or directory");
  });
});

const haveRunc = IS_ROOT && Bun.which("runc") !== null;
describe("runc's default bundle (runc spec)", () => {
  needs("runc (Debian package runc)", haveRunc)("runs as runc runs it", () => {
    const dir = tempDir("spawnctl-runc-");
    try {
      expect(Bun.spawnSync(["runc", "spec"], { cwd: dir }).exitCode).toBe(0);
      const spec = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
      spec.root.path = tree;
      spec.process.terminal = false;
      spec.process.args = sh("id; hostname; grep -E '^(CapBnd|CapEff|NoNewPrivs):' /proc/self/status; ls /sys/class/net; touch /x 2>&1; ulimit -n; cat /proc/kcore 2>&1 | head -c 0; echo end");
      writeFileSync(`${dir}/config.json`, JSON.stringify(spec));
      const ours = run(["run", "-q", `--oci-bundle=${dir}`], { netns: true });
      expect(ours.stderr).toBe("");
      const theirs = Bun.spawnSync(["unshare", "--net", "runc", "run", "--bundle", dir, `spawnctl-test-${process.pid}`], { stdout: "pipe", stderr: "pipe" });
      expect(theirs.exitCode).toBe(0);
      expect(ours.stdout).toBe(theirs.stdout.toString());
      expect(ours.stdout).toContain("touch: /x: Read-only file system");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const haveUmoci = IS_ROOT && Bun.which("umoci") !== null;
describe("a bundle made by umoci unpack", () => {
  needs("umoci (Debian package umoci)", haveUmoci)("runs with the image's command, hostname and capabilities", () => {
    const dir = tempDir("spawnctl-umoci-");
    try {
      const u = (...args: string[]) => {
        const p = Bun.spawnSync(["umoci", ...args], { cwd: dir, stderr: "pipe" });
        if (p.exitCode !== 0) throw new Error(`umoci ${args.join(" ")}: ${p.stderr.toString()}`);
      };
      u("init", "--layout", "img");
      u("new", "--image", "img:t");
      u("insert", "--image", "img:t", tree, "/");
      u("config", "--image", "img:t", "--config.cmd=/bin/sh", "--config.cmd=-c", "--config.cmd=echo hello from umoci; hostname; grep -E 'CapBnd|NoNewPrivs' /proc/self/status; ls /sys/class/net");
      u("unpack", "--image", "img:t", "bundle");
      const r = run(["run", "-q", `--oci-bundle=${dir}/bundle`], { netns: true });
      // process.terminal is true: the console is a pty, as with nspawn
      r.stdout = r.stdout.replace(/\r\n/g, "\n");
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const spec = JSON.parse(readFileSync(`${dir}/bundle/config.json`, "utf8"));
      const bounding = (spec.process.capabilities.bounding as string[]).reduce((m, c) => m | capBit(c), 0n);
      expect(r.stdout).toContain(`hello from umoci\n${spec.hostname}\n`);
      expect(field(r.stdout, "CapBnd")).toBe(hex(bounding));
      expect(field(r.stdout, "NoNewPrivs")).toBe(spec.process.noNewPrivileges ? "1" : "0");
      // umoci lists a network namespace: only a loopback
      expect(r.stdout.trim().endsWith("\nlo")).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
