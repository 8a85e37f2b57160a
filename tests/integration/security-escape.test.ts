// Security, as an attacker inside a container would try it: what of the host
// side can a container process reach? The fds, /proc/PID/exe and memfds of
// every host-side process visible in the container's PID namespace (plain,
// -a, -b and -U runs, and while shell/login/copy-*/bind run); hostile trees (a
// symlink at every path spawnctl writes or mounts onto, absurd /etc/passwd,
// FIFOs and device nodes where a regular file is expected); kernel interfaces;
// hostile machinectl arguments.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, makeBusyboxTree, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";

let base = "";
let tree = "";
let secret = "";
const before = IS_ROOT ? leftovers() : [];

// lists every fd and the executable of every process in the container
const SCAN = `#!/bin/sh
out=\${1:-/scan.out}
for p in /proc/[0-9]*; do
  for f in $p/fd/*; do l=$(readlink $f 2>/dev/null) && echo "$p fd $l"; done
  echo "$p exe $(readlink $p/exe 2>&1)"
done > $out.tmp 2>&1
mv $out.tmp $out
`;

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir();
  tree = makeBusyboxTree(`${base}/bb`, { files: { "scan.sh": SCAN } });
  chmodSync(`${tree}/scan.sh`, 0o755);
  secret = `${base}/host-secret`;
  writeFileSync(secret, "host secret\n", { mode: 0o600 });
});

afterAll(() => {
  if (!IS_ROOT) return;
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

/** spawnctl with the caller's fd 7 open on a host file, as `exec 7<secret; spawnctl ...` */
function runWithFd(args: string[]): { code: number; stdout: string; stderr: string } {
  const fd = openSync(secret, "r");
  try {
    const p = Bun.spawnSync(["/bin/sh", "-c", `exec 7<&3 3<&-; exec "$@"`, "sh", SPAWNCTL, ...args], {
      stdio: ["ignore", "pipe", "pipe", fd] as never,
      timeout: 60_000,
    });
    return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  } finally {
    closeSync(fd);
  }
}

/** fd links a container process may hold: stdio, terminals, pipes, sockets, the scan's own output */
const ALLOWED_FD = /^(\/dev\/(pts\/\d+|null|console|tty\d*|ptmx)|pipe:\[\d+\]|socket:\[\d+\]|\/scan\.sh|\/scan\.out\.tmp|\/log\/[a-z.-]+|anon_inode:\[(eventpoll|signalfd|timerfd)\])$/;

function badLines(scan: string): string[] {
  const bad: string[] = [];
  for (const line of scan.trim().split("\n")) {
    const m = /^(\/proc\/\d+) (fd|exe) (.*)$/.exec(line);
    if (!m) continue;
    const [, , kind, target] = m;
    if (kind === "fd" && !ALLOWED_FD.test(target!)) bad.push(line);
    // the only executable not from the tree: --as-pid2's sealed stub init
    if (kind === "exe" && !target!.startsWith("/usr/bin/") && target !== "/memfd:spawnctl-init (deleted)" && !target!.includes("Permission denied")) bad.push(line);
  }
  return bad;
}

describe("escapes: what container processes hold", () => {
  const modes: Array<[string, string[], boolean]> = [
    ["plain", [], false],
    ["-a", ["-a"], false],
    ["-b", ["-b"], true],
    ["-U", ["-U"], false],
    ["-U -a", ["-U", "-a"], false],
    ["-U -b", ["-U", "-b"], true],
  ];
  for (const [name, opts, boot] of modes) {
    test(`${name}: no process in the container holds a host fd (the caller's, a lock, the cgroup, a memfd) or runs a host executable`, () => {
      rmSync(`${tree}/scan.out`, { force: true });
      if (boot) writeFileSync(`${tree}/etc/inittab`, "::sysinit:/scan.sh\n::sysinit:/bin/poweroff -f\n");
      try {
        const r = boot ? runWithFd(["run", "-q", "-P", "-D", tree, ...opts]) : runWithFd(["run", "-q", "-P", "-D", tree, ...opts, "/scan.sh"]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
      } finally {
        writeFileSync(`${tree}/etc/inittab`, "::sysinit:/bin/true\n::respawn:/bin/sleep 1000\n");
      }
      const scan = readFileSync(`${tree}/scan.out`, "utf8");
      // the scan saw PID 1 and itself
      expect(scan).toContain("/proc/1 exe");
      expect(badLines(scan)).toEqual([]);
      expect(scan).not.toContain(secret);
    });
  }

  test("the scan itself finds a host fd when there is one (the check can fail)", () => {
    const s = `/proc/1 fd ${secret}\n/proc/1 fd /sys/fs/cgroup/unified/spawnctl/x\n/proc/2 exe /work/main/dist/spawnctl\n/proc/3 fd /memfd:spawnctl-shim (deleted)\n`;
    expect(badLines(s).length).toBe(4);
  });

  test("-a: PID 1 is the sealed stub init: /proc/1/exe cannot be written, /proc/1/fd holds stdio only", () => {
    const r = runWithFd(["run", "-q", "-P", "-a", "-D", tree, "/bin/sh", "-c",
      "readlink /proc/1/exe; ls /proc/1/fd | tr '\\n' ' '; echo; (echo x >> /proc/1/exe) 2>&1; (echo x > /proc/1/exe) 2>&1; cat /proc/1/comm; grep ^NoNewPrivs /proc/1/status"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("/memfd:spawnctl-init (deleted)");
    expect(lines[1]!.trim()).toBe("0 1 2");
    expect(r.stdout).toContain("Text file busy");
    expect(r.stdout).toContain("(sd-stubinit)");
  });

  test("-U -a: the stub init is non-dumpable: a container process cannot read its memory", () => {
    const r = run(["run", "-q", "-P", "-U", "-a", "-D", tree, "/bin/sh", "-c", "grep -c . /proc/1/environ 2>&1; head -c 16 /proc/1/mem 2>&1 | wc -c"]);
    expect(r.code).toBe(0);
    // environ is empty (the init was exec'd with none), mem is refused or empty
    expect(r.stdout).not.toMatch(/PATH=|HOME=/);
  });

  test("the host-side spawnctl process holds no memfd, and the shim it mapped is sealed", async () => {
    const p = Bun.spawn([SPAWNCTL, "run", "-q", "-P", "-D", tree, "/bin/sleep", "3"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      // wait for the payload
      const end = Date.now() + 10_000;
      let maps = "";
      while (Date.now() < end) {
        maps = readFileSync(`/proc/${p.pid}/maps`, "utf8");
        if (maps.includes("memfd:spawnctl-shim")) break;
        await Bun.sleep(20);
      }
      const memfds = () => readdirSync(`/proc/${p.pid}/fd`).map((f) => {
        try {
          return readlinkSync(`/proc/${p.pid}/fd/${f}`);
        } catch {
          return "";
        }
      }).filter((l) => l.includes("memfd:"));
      // the shim's fd lives from its mapping to the return of dlopen: a look
      // in between sees it; once the container runs it is gone for good
      for (let i = 0; i < 100 && memfds().length > 0; i++) await Bun.sleep(10);
      expect(memfds()).toEqual([]);
      const shimMaps = maps.split("\n").filter((l) => l.includes("memfd:spawnctl-shim"));
      expect(shimMaps.length).toBeGreaterThan(0);
      const range = shimMaps[0]!.split(" ")[0]!;
      // the mapped file reopened for writing: the seals refuse every write
      const w = openSync(`/proc/${p.pid}/map_files/${range}`, "r+");
      try {
        expect(() => writeSync(w, "x", 0)).toThrow(/EPERM|Operation not permitted/);
      } finally {
        closeSync(w);
      }
    } finally {
      p.kill(9);
      await p.exited;
    }
  });
});

describe("escapes: while processes enter a running machine", () => {
  const NAME = "sctest-sec1";
  const IMAGE = `/var/lib/machines/${NAME}`;
  let logDir = "";
  // the machine's init: a scanner that, in a loop, records every fd and
  // executable of every process it does not expect (what shell, copy-to and
  // bind bring in would show here). A process of its own holds a planted
  // "spawnctl" fd, so the scanner must find at least that one.
  const INIT = `#!/bin/sh
sleep 1000 9</planted-spawnctl-canary &
while true; do
  for p in /proc/[0-9]*; do
    for f in $p/fd/*; do
      l=$(readlink $f 2>/dev/null) || continue
      case "$l" in /dev/*|pipe:*|socket:*|/log/*|anon_inode:*|/usr/sbin/init) ;; *) echo "$p fd $l" >> /log/found;; esac
    done
    e=$(readlink $p/exe 2>/dev/null) || continue
    case "$e" in /usr/bin/*) ;; *) echo "$p exe $e" >> /log/found;; esac
  done
done
`;
  beforeAll(() => {
    if (!IS_ROOT) return;
    logDir = `${base}/log-${NAME}`;
    mkdirSync(logDir, { recursive: true });
    removeTree(IMAGE);
    mkdirSync("/var/lib/machines", { recursive: true });
    makeBusyboxTree(IMAGE, { files: { "planted-spawnctl-canary": "x\n" }, init: INIT });
    mkdirSync(`${IMAGE}/log`);
  });
  afterAll(() => {
    if (!IS_ROOT) return;
    run(["terminate", NAME]);
    for (let i = 0; i < 100 && existsSync(`/run/spawnctl/machines/${NAME}.json`); i++) Bun.sleepSync(50);
    removeTree(IMAGE);
    rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  });

  test("shell, copy-to, copy-from and bind leave nothing of the host for a racing scanner to find", async () => {
    try {
      // in a network namespace of its own: a machine's veth, NAT and forwarding never touch the host's
      const r = run(["start", NAME], { netns: true });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const found = () => {
        const p = `/proc/${JSON.parse(readFileSync(`/run/spawnctl/machines/${NAME}.json`, "utf8")).leader}/root/log/found`;
        return existsSync(p) ? readFileSync(p, "utf8") : "";
      };
      // the scanner is running and able to find things
      const end = Date.now() + 10_000;
      while (!found().includes("planted-spawnctl-canary") && Date.now() < end) await Bun.sleep(50);
      expect(found()).toContain("planted-spawnctl-canary");
      const fd = openSync(secret, "r");
      try {
        for (let i = 0; i < 15; i++) {
          // with a host fd of the caller's open, as an admin's shell may have
          const p = Bun.spawnSync(["/bin/sh", "-c", `exec 7<&3 3<&-; exec "$@"`, "sh", SPAWNCTL, "shell", NAME, "/bin/sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"], {
            stdio: ["ignore", "pipe", "pipe", fd] as never,
          });
          expect(p.exitCode).toBe(0);
          // stdio, and the fd ls opened to list the directory
          expect(p.stdout.toString().trim()).toBe("0 1 2 3");
        }
      } finally {
        closeSync(fd);
      }
      writeFileSync(`${base}/to-copy`, "data\n");
      for (let i = 0; i < 5; i++) {
        expect(run(["copy-to", "--force", NAME, `${base}/to-copy`, "/tmp/copied"]).code).toBe(0);
        rmSync(`${base}/copied-back`, { force: true });
        expect(run(["copy-from", NAME, "/tmp/copied", `${base}/copied-back`]).code).toBe(0);
      }
      mkdirSync(`${base}/bind-src`, { recursive: true });
      expect(run(["bind", "--mkdir", NAME, `${base}/bind-src`, "/mnt/b"]).code).toBe(0);
      await Bun.sleep(300);
      const lines = found().trim().split("\n").filter((l) => l && !l.includes("planted-spawnctl-canary"));
      // nothing but what the scanner's own shell holds
      expect(lines.filter((l) => !/ fd \/proc\/\d+\/fd$/.test(l))).toEqual([]);
    } finally {
      run(["terminate", NAME]);
    }
  });
});

describe("hostile trees", () => {
  let canary = "";
  const canaryState = () => {
    const entries = readdirSync(canary).sort();
    return JSON.stringify({ entries, mtime: statSync(canary).mtimeMs });
  };
  const hostMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(canary)).length;
  beforeAll(() => {
    if (!IS_ROOT) return;
    canary = `${base}/canary`;
    mkdirSync(canary);
    writeFileSync(`${canary}/marker`, "host\n");
  });

  // a symlink to a host directory at every path spawnctl writes or mounts onto
  const targets: Array<[string, string[]]> = [
    ["/etc/resolv.conf", ["--resolv-conf=copy-host"]],
    ["/etc/resolv.conf", ["--resolv-conf=bind-host"]],
    ["/etc/localtime", ["--timezone=copy"]],
    ["/etc/localtime", ["--timezone=bind"]],
    ["/var/log/journal", ["--link-journal=try-guest"]],
    ["/var/log/journal", ["--link-journal=try-host"]],
    ["/run/host", []],
    ["/run", []],
    ["/tmp", []],
    ["/proc", []],
    ["/sys", []],
    ["/dev", []],
    ["/dev/pts", []],
    ["/dev/shm", []],
    ["/mnt", ["--bind=SRC:/mnt/x"]],
    ["/mnt", ["--tmpfs=/mnt/x"]],
    ["/mnt", ["--bind-ro=SRC:/mnt"]],
    ["/srv", ["--overlay=SRC:/srv"]],
    ["/etc", []],
    ["/root", ["-U"]],
  ];
  for (const [path, opts] of targets) {
    test(`a symlink at ${path} to a host directory (${opts.join(" ") || "defaults"}) changes nothing on the host`, () => {
      const t = makeBusyboxTree(`${base}/hostile`, { machineId: "0123456789abcdef0123456789abcdef" });
      try {
        rmSync(`${t}${path}`, { recursive: true, force: true });
        mkdirSync(`${t}${path.slice(0, path.lastIndexOf("/")) || "/"}`, { recursive: true });
        symlinkSync(canary, `${t}${path}`);
        const src = `${base}/bind-src`;
        mkdirSync(src, { recursive: true });
        const before = canaryState();
        const mounts = hostMounts();
        const r = run(["run", "-q", "-P", "-D", t, ...opts.map((o) => o.replace("SRC", src)), "/bin/sh", "-c", "echo x > /canary-probe 2>/dev/null; true"], { timeout: 30_000 });
        // either it ran, or it refused with a sentence; never a crash
        expect(r.stderr).not.toContain("internal error");
        expect(r.stderr).not.toMatch(/^\s+at /m);
        expect([0, 1]).toContain(r.code);
        expect(canaryState()).toBe(before);
        expect(readFileSync(`${canary}/marker`, "utf8")).toBe("host\n");
        expect(hostMounts()).toBe(mounts);
      } finally {
        rmSync("/var/log/journal/0123456789abcdef0123456789abcdef", { force: true, recursive: true });
        removeTree(`${base}/hostile`);
      }
    });
  }

  const files: Array<[string, string]> = [["/etc/passwd", "-u tester"], ["/etc/group", "-u tester"], ["/etc/os-release", ""], ["/etc/machine-id", "--link-journal=try-guest"], ["/etc/resolv.conf", "--resolv-conf=copy-host"], ["/etc/localtime", "--timezone=copy"], ["/etc/hostname", ""]];
  for (const [path, opt] of files) {
    for (const kind of ["fifo", "chardev"] as const) {
      test(`a ${kind} at ${path} (${opt || "defaults"}) is not read: no hang, no crash`, () => {
        const t = makeBusyboxTree(`${base}/hostile`);
        try {
          rmSync(`${t}${path}`, { force: true });
          const mk = kind === "fifo" ? ["mkfifo", `${t}${path}`] : ["mknod", `${t}${path}`, "c", "1", "5"]; // 1:5 is /dev/zero
          expect(Bun.spawnSync(mk).exitCode).toBe(0);
          const r = run(["run", "-q", "-P", "-D", t, ...(opt ? opt.split(" ") : []), "/bin/true"], { timeout: 20_000 });
          expect(r.code === 0 || r.code === 1).toBe(true);
          expect(r.stderr).not.toContain("internal error");
          expect(r.stderr).not.toMatch(/^\s+at /m);
        } finally {
          removeTree(`${base}/hostile`);
        }
      });
    }
  }

  const passwds: Array<[string, string, RegExp]> = [
    ["a uid above 4294967294", "evil:x:4294967296:0::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid uid/],
    ["uid -1", "evil:x:-1:0::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid uid/],
    ["uid 4294967295", "evil:x:4294967295:0::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid uid/],
    ["a 20-digit uid", "evil:x:99999999999999999999:0::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid uid/],
    ["a hex uid", "evil:x:0x0:0::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid uid/],
    ["an invalid gid", "evil:x:1001:4294967296::/:/bin/sh\n", /etc\/passwd:4: user evil has an invalid gid/],
  ];
  for (const [what, line, msg] of passwds) {
    test(`/etc/passwd with ${what}: an error naming file:line, never another user`, () => {
      const t = makeBusyboxTree(`${base}/hostile`);
      try {
        writeFileSync(`${t}/etc/passwd`, readFileSync(`${t}/etc/passwd`, "utf8") + line);
        const r = run(["run", "-q", "-P", "-D", t, "-u", "evil", "/bin/id", "-u"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(msg);
      } finally {
        removeTree(`${base}/hostile`);
      }
    });
  }
  test("a group with an invalid gid: an error naming /etc/group:line", () => {
    const t = makeBusyboxTree(`${base}/hostile`);
    try {
      writeFileSync(`${t}/etc/group`, readFileSync(`${t}/etc/group`, "utf8") + "evil:x:4294967296:tester\n");
      const r = run(["run", "-q", "-P", "-D", t, "-u", "tester", "/bin/id", "-u"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/etc\/group:6: group evil of user tester has an invalid gid/);
    } finally {
      removeTree(`${base}/hostile`);
    }
  });
  for (const u of ["4294967296", "4294967295", "99999999999999999999", "18446744073709551616"]) {
    test(`-u ${u}: refused, naming the option`, () => {
      const r = run(["run", "-q", "-P", "-D", tree, "-u", u, "/bin/id", "-u"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("--user=");
    });
  }
  test("a 2 MiB /etc/passwd line and binary junk: no crash", () => {
    const t = makeBusyboxTree(`${base}/hostile`);
    try {
      writeFileSync(`${t}/etc/passwd`, `${"x".repeat(2 << 20)}\n\0\xff\xfe:::\n${readFileSync(`${t}/etc/passwd`, "utf8")}`);
      const r = run(["run", "-q", "-P", "-D", t, "-u", "tester", "/bin/true"]);
      expect([0, 1]).toContain(r.code);
      expect(r.stderr).not.toContain("internal error");
    } finally {
      removeTree(`${base}/hostile`);
    }
  });
});

describe("kernel interfaces from inside (default capabilities)", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["/proc/sys is read-only", "echo x > /proc/sys/kernel/hostname", /Read-only file system/],
    ["core_pattern cannot be set", "echo '|/bin/sh' > /proc/sys/kernel/core_pattern", /Read-only file system/],
    ["/proc/sysrq-trigger is not there to write", "echo h > /proc/sysrq-trigger", /can't create|Read-only|Permission denied|nonexistent/],
    ["/sys is read-only", "echo 1 > /sys/kernel/mm/ksm/run", /Read-only file system/],
    ["a block device made with mknod cannot be opened", "mknod /tmp/sda b 8 0; head -c1 /tmp/sda", /Permission denied|Operation not permitted/],
    ["/proc/kcore cannot be read", "head -c 16 /proc/kcore", /No such file|Permission denied|Operation not permitted/],
    ["swap cannot be touched", "swapoff -a; swapoff /dev/null", /Operation not permitted|not permitted/],
    ["kernel modules cannot be loaded", "insmod /usr/bin/busybox", /Operation not permitted|not permitted/],
  ];
  for (const [what, script, expected] of cases) {
    test(what, () => {
      const r = run(["run", "-q", "-P", "-D", tree, "/bin/sh", "-c", `{ ${script}; } 2>&1; true`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(expected);
    });
  }
});

describe("hostile machinectl arguments", () => {
  const snap = () => ["/run/spawnctl/machines", "/var/lib/machines", "/etc/spawnctl/autostart", "/etc/systemd/nspawn", "/etc/spawnctl/properties"].map((d) => (existsSync(d) ? readdirSync(d).sort().join(",") : "-")).join("|");
  const sweep = (names: string[], verbs: string[], message: RegExp) => {
    const before = snap();
    const failures: string[] = [];
    for (const n of names) {
      for (const v of verbs) {
        const extra = v === "copy-to" || v === "bind" ? ["/tmp", "/tmp"] : v === "set-property" ? ["MemoryMax=1G"] : v === "clone" || v === "rename" ? ["ok-name"] : [];
        const r = run([v, "--", n, ...extra]);
        const ok = n === "" ? /Invalid (machine|image) name|Too few arguments|A shell on the host/ : message;
        if (r.code !== 1 || !ok.test(r.stderr) || r.stderr.includes("internal error") || /^\s+at /m.test(r.stderr)) {
          failures.push(`${v} ${JSON.stringify(n.slice(0, 20))}: ${r.code} ${r.stderr.slice(0, 200)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(snap()).toBe(before);
  };
  // machine names: systemd's hostname rules
  const machineNames = ["a/b", "/etc/passwd", "../../etc", "x".repeat(300), "-rf", ".hidden", "a\nb", "a b", "", "a..b", "\u0001", "ä", ".host"];
  const machineVerbs = ["start", "status", "show", "poweroff", "terminate", "kill", "login", "shell", "enable", "disable", "copy-to", "copy-from", "bind", "set-property"];
  test(`machine verbs refuse every hostile machine name (${machineNames.length} names × ${machineVerbs.length} verbs) before touching the file system`, () => {
    sweep(machineNames.filter((n) => n !== ".host"), machineVerbs.filter((v) => v !== "shell"), /Invalid machine name/);
    sweep(machineNames.filter((n) => n !== ".host" && n !== ""), ["shell"], /Invalid machine name/);
  });
  // image names: systemd's image_name_is_valid (hidden images and ".host" are names)
  const imageNames = ["a/b", "/etc/passwd", "../../etc", "x".repeat(300), "", ".", "..", ".#tmp", "a\nb", "\u0001"];
  const imageVerbs = ["remove", "clone", "rename", "read-only", "export-tar", "image-status", "show-image"];
  test(`image verbs refuse every hostile image name (${imageNames.length} names × ${imageVerbs.length} verbs)`, () => {
    sweep(imageNames, imageVerbs, /Invalid image name/);
  });
  test("USER@NAME of shell: the name part is checked", () => {
    const r = run(["shell", "root@../x"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Invalid machine name: ../x");
  });
});
