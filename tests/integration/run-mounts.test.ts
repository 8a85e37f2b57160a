// Mounts: binds, tmpfs, overlays, inaccessible paths, read-only, volatile,
// ephemeral, template, resolv.conf, timezone, journal, and hostile trees.
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { makeBusyboxTree, rootTest as test, run } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
}, {
  setup: (b) => {
    mkdirSync(`${b}/host/sub`, { recursive: true });
    writeFileSync(`${b}/host/file`, "host-file\n");
  },
});

const sh = (script: string, ...opts: string[]) => run(["run", "-q", "-P", "-D", tree, ...opts, "/bin/sh", "-c", script]);

describe("the container's mounts", () => {
  test("API file systems as nspawn sets them up", () => {
    const r = sh("grep -E ' (/proc|/proc/sys|/sys|/dev|/dev/pts|/dev/shm|/dev/mqueue|/run|/tmp|/sys/fs/cgroup) ' /proc/self/mounts | cut -d' ' -f2,3,4 | cut -d, -f1");
    const lines = r.stdout.trim().split("\n");
    expect(lines).toContain("/proc proc rw");
    expect(lines).toContain("/proc/sys proc ro");
    expect(lines).toContain("/sys sysfs ro");
    expect(lines).toContain("/dev tmpfs rw");
    expect(lines).toContain("/dev/pts devpts rw");
    expect(lines).toContain("/run tmpfs rw");
    expect(lines).toContain("/tmp tmpfs rw");
    expect(lines).toContain("/sys/fs/cgroup tmpfs ro");
  });

  test("/dev holds the nspawn set of nodes and links, /dev/console is a pty", () => {
    const r = run(["run", "-q", "--console=read-only", "-D", tree, "/bin/sh", "-c", "ls /dev | tr '\\n' ' '; echo; for l in console ptmx fd stdin; do readlink /dev/$l; done; stat -c '%t:%T' /dev/null; tty"]);
    const out = r.stdout.replace(/\r/g, "");
    for (const n of ["null", "zero", "full", "random", "urandom", "tty", "shm", "pts", "mqueue", "char", "fd", "stdin", "stdout", "stderr", "console", "ptmx"]) expect(out.split("\n")[0]!.split(" ")).toContain(n);
    expect(out).toContain("pts/0\npts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n1:3\n/dev/pts/0");
  });

  test("kernel knobs are masked and /proc/sys, /sys are read-only", () => {
    const r = sh("stat -c '%a %s' /proc/kallsyms; cat /proc/kallsyms | head -c1 | wc -c; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro-proc-sys; touch /sys/x 2>/dev/null || echo ro-sys");
    expect(r.stdout).toBe("0 0\n0\nro-proc-sys\nro-sys\n");
  });

  test("a boot ID of its own", () => {
    const host = readFileSync("/proc/sys/kernel/random/boot_id", "utf8");
    const inside = sh("cat /proc/sys/kernel/random/boot_id").stdout;
    expect(inside).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(inside).not.toBe(host);
  });

  test("the cgroup hierarchy inside is rooted at the container's own cgroup", () => {
    const r = sh("cat /proc/self/cgroup; ls /sys/fs/cgroup");
    for (const line of r.stdout.split("\n").filter((l) => /^\d+:/.test(l))) expect(line).toMatch(/:\/$/);
  });

  test("--bind, --bind-ro, norbind, +SRC and an empty source", () => {
    mkdirSync(`${base}/host/sub/mnt`, { recursive: true });
    Bun.spawnSync(["mount", "-t", "tmpfs", "tmpfs", `${base}/host/sub/mnt`]);
    writeFileSync(`${base}/host/sub/mnt/inner`, "x");
    try {
      const r = sh(
        "cat /a/file; echo w > /a/new && echo rw-ok; echo w > /b/new2 2>/dev/null || echo ro-ok; test -e /a/sub/mnt/inner && echo rbind; test -e /c/sub/mnt/inner || echo norbind; cat /d/passwd | head -1; echo > /e/scratch && echo empty-src; cat /f",
        `--bind=${base}/host:/a`, `--bind-ro=${base}/host:/b`, `--bind=${base}/host:/c:norbind`, "--bind=+/etc:/d", "--bind=:/e", `--bind-ro=${base}/host/file:/f`,
      );
      expect(r.stdout).toBe("host-file\nrw-ok\nro-ok\nrbind\nnorbind\nroot:x:0:0:root:/root:/bin/sh\nempty-src\nhost-file\n");
      expect(readFileSync(`${base}/host/new`, "utf8")).toBe("w\n");
      expect(readdirSync("/var/tmp").filter((d) => d.startsWith("spawnctl-bind-"))).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", `${base}/host/sub/mnt`]);
    }
  });

  test("a missing bind source is an error naming it", () => {
    const r = sh("true", `--bind=${base}/nothere:/x`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Failed to stat ${base}/nothere: No such file or directory`);
  });

  test("--tmpfs with options and --inaccessible", () => {
    mkdirSync(`${tree}/srv/data`, { recursive: true });
    const r = sh("stat -c %a /scratch; grep ' /scratch ' /proc/self/mounts | cut -d' ' -f3; stat -c '%a %s' /etc/passwd; stat -c %a /srv; ls -A /srv | wc -l; su tester -c 'cat /etc/passwd' 2>/dev/null || echo denied",
      "--tmpfs=/scratch:mode=0700,size=1m", "--inaccessible=/etc/passwd", "--inaccessible=/srv");
    expect(r.stdout).toBe("700\ntmpfs\n0 0\n0\n0\ndenied\n");
  });

  test("--overlay writes to the upper layer; --overlay-ro stays read-only", () => {
    for (const d of ["l1", "l2", "up"]) mkdirSync(`${base}/ov/${d}`, { recursive: true });
    writeFileSync(`${base}/ov/l1/one`, "1");
    writeFileSync(`${base}/ov/l2/two`, "2");
    writeFileSync(`${base}/ov/l1/both`, "from-l1");
    writeFileSync(`${base}/ov/l2/both`, "from-l2");
    const r = sh("cat /o/one /o/two; echo; cat /o/both; echo; echo new > /o/created; echo x > /r/y 2>/dev/null || echo ro; cat /r/both",
      `--overlay=${base}/ov/l1:${base}/ov/l2:${base}/ov/up:/o`, `--overlay-ro=${base}/ov/l1:${base}/ov/l2:/r`);
    expect(r.stdout).toBe("12\nfrom-l2\nro\nfrom-l2");
    expect(readFileSync(`${base}/ov/up/created`, "utf8")).toBe("new\n");
    expect(existsSync(`${base}/ov/l1/created`)).toBe(false);
    expect(readdirSync(`${base}/ov`).filter((f) => f.startsWith(".#"))).toEqual([]);
  });

  test("--read-only", () => {
    const r = sh("touch /newfile 2>/dev/null || echo ro; touch /tmp/ok && echo tmp-rw", "--read-only");
    expect(r.stdout).toBe("ro\ntmp-rw\n");
    expect(existsSync(`${tree}/newfile`)).toBe(false);
  });

  test("--volatile=yes, state and overlay leave the tree untouched", () => {
    const y = sh("grep ' / ' /proc/self/mounts | cut -d' ' -f3; ls /usr/bin/busybox; touch /etc/x; touch /usr/y 2>/dev/null || echo usr-ro", "--volatile=yes");
    expect(y.stdout).toBe("tmpfs\n/usr/bin/busybox\nusr-ro\n");
    const s = sh("grep ' /var ' /proc/self/mounts | cut -d' ' -f3; touch /var/v && echo var-rw; touch /etc/x 2>/dev/null || echo root-ro", "--volatile=state");
    expect(s.stdout).toBe("tmpfs\nvar-rw\nroot-ro\n");
    const o = sh("touch /etc/overlaid && echo written", "--volatile=overlay");
    expect(o.stdout).toBe("written\n");
    for (const f of ["etc/x", "var/v", "etc/overlaid"]) expect(existsSync(`${tree}/${f}`)).toBe(false);
  });

  test("-x: an overlay, not a copy; nothing remains afterwards; the name gets a suffix", () => {
    const listing = readdirSync(base).sort();
    const r = sh("hostname; echo > /etc/ephemeral && echo written", "-x");
    expect(r.stdout).toMatch(/^bb-[0-9a-f]{16}\nwritten\n$/);
    expect(existsSync(`${tree}/etc/ephemeral`)).toBe(false);
    expect(readdirSync(base).sort()).toEqual(listing);
  });

  test("--template populates a missing directory once, keeping owners, modes, links and hardlinks", () => {
    const dst = `${base}/from-template`;
    Bun.spawnSync(["sh", "-c", `chmod 4755 ${tree}/usr/bin/busybox && ln ${tree}/etc/passwd ${tree}/etc/passwd.hard`]);
    try {
      const r = run(["run", "--console=read-only", `--template=${tree}`, "-D", dst, "/bin/sh", "-c", "echo > /initialized"]);
      expect(r.stderr).toContain(`Populated ${dst} from template ${tree}.`);
      expect(existsSync(`${dst}/initialized`)).toBe(true);
      expect(lstatSync(`${dst}/usr/bin/busybox`).mode & 0o7777).toBe(0o4755);
      expect(lstatSync(`${dst}/home/tester`).uid).toBe(1000);
      expect(readlinkSync(`${dst}/bin`)).toBe("usr/bin");
      expect(lstatSync(`${dst}/etc/passwd`).ino).toBe(lstatSync(`${dst}/etc/passwd.hard`).ino);
      const again = run(["run", "-P", `--template=${tree}`, "-D", dst, "/bin/sh", "-c", "test -e /initialized && echo kept"]);
      expect(again.stdout).toBe("kept\n");
      expect(again.stderr).not.toContain("Populated");
    } finally {
      rmSync(dst, { recursive: true, force: true });
      rmSync(`${tree}/etc/passwd.hard`);
    }
  });
});

describe("resolv.conf, timezone, journal", () => {
  test("--resolv-conf modes", () => {
    const host = readFileSync("/etc/resolv.conf", "utf8");
    rmSync(`${tree}/etc/resolv.conf`, { force: true });
    expect(sh("cat /etc/resolv.conf", "--resolv-conf=copy-host").stdout).toBe(host);
    expect(sh("grep -c ' /etc/resolv.conf ' /proc/self/mounts; cat /etc/resolv.conf", "--resolv-conf=bind-host").stdout).toBe(`1\n${host}`);
    writeFileSync(`${tree}/etc/resolv.conf`, "nameserver 192.0.2.1\n");
    expect(sh("cat /etc/resolv.conf", "--resolv-conf=off").stdout).toBe("nameserver 192.0.2.1\n");
    expect(sh("test -e /etc/resolv.conf || echo gone", "--resolv-conf=delete").stdout).toBe("gone\n");
    // with a private network, auto leaves the file alone
    writeFileSync(`${tree}/etc/resolv.conf`, "nameserver 192.0.2.1\n");
    expect(sh("cat /etc/resolv.conf", "--private-network").stdout).toBe("nameserver 192.0.2.1\n");
  });

  test("--timezone modes", () => {
    const host = readFileSync("/etc/localtime");
    rmSync(`${tree}/etc/localtime`, { force: true });
    expect(sh("cat /etc/localtime | wc -c", "--timezone=copy").stdout.trim()).toBe(String(host.length));
    expect(sh("test -e /etc/localtime || echo gone", "--timezone=delete").stdout).toBe("gone\n");
    expect(sh("test -e /etc/localtime || echo absent", "--timezone=off").stdout).toBe("absent\n");
    expect(sh("grep -c ' /etc/localtime ' /proc/self/mounts", "--timezone=bind").stdout).toBe("1\n");
  });

  test("--link-journal=host binds a host directory named by the machine ID; try-guest links to the tree", () => {
    const id = "0123456789abcdef0123456789abcdef";
    writeFileSync(`${tree}/etc/machine-id`, `${id}\n`);
    const hostDir = `/var/log/journal/${id}`;
    const hadJournal = existsSync("/var/log/journal");
    try {
      const r = sh(`grep -c ' /var/log/journal/${id} ' /proc/self/mounts; echo $container_uuid`, "--link-journal=host");
      expect(r.stdout).toBe("1\n01234567-89ab-cdef-0123-456789abcdef\n");
      expect(existsSync(hostDir)).toBe(true);
      rmSync(hostDir, { recursive: true });
      mkdirSync("/var/log/journal", { recursive: true });
      sh("true", "--link-journal=try-guest");
      expect(readlinkSync(hostDir)).toBe(`${tree}/var/log/journal/${id}`);
      expect(existsSync(`${tree}/var/log/journal/${id}`)).toBe(true);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
      if (!hadJournal) rmSync("/var/log/journal", { recursive: true, force: true });
      rmSync(`${tree}/etc/machine-id`);
      rmSync(`${tree}/var/log/journal`, { recursive: true, force: true });
    }
  });
});

describe("hostile trees: symlinks never lead to host paths", () => {
  test("/run, /dev, /proc, /etc/resolv.conf and a bind target pointing at host paths", () => {
    const evil = makeBusyboxTree(`${base}/evil`);
    const victim = `${base}/victim`;
    mkdirSync(`${victim}/etc`, { recursive: true });
    writeFileSync(`${victim}/etc/resolv.conf`, "untouched\n");
    for (const d of ["run", "dev", "proc", "tmp"]) rmSync(`${evil}/${d}`, { recursive: true, force: true });
    symlinkSync(`${victim}/run`, `${evil}/run`);
    symlinkSync(`../../../../../../../..${victim}/dev`, `${evil}/dev`);
    symlinkSync(`${victim}/proc`, `${evil}/proc`);
    symlinkSync("/host-tmp", `${evil}/tmp`);
    symlinkSync(`${victim}/etc/resolv.conf`, `${evil}/etc/resolv.conf`);
    symlinkSync(`${victim}/etc`, `${evil}/mnt-target`);
    const r = run(["run", "-q", "-P", "-D", evil, "--resolv-conf=copy-host", `--bind=${base}/host:/mnt-target/inside`, "/bin/sh", "-c", "grep -c ^Pid: /proc/self/status; ls /dev/null; cat /mnt-target/inside/file"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1\n/dev/null\nhost-file\n");
    // nothing was created or written outside the tree
    expect(readdirSync(victim)).toEqual(["etc"]);
    expect(readdirSync(`${victim}/etc`)).toEqual(["resolv.conf"]);
    expect(readFileSync(`${victim}/etc/resolv.conf`, "utf8")).toBe("untouched\n");
    // the links were followed inside the tree instead
    expect(existsSync(`${evil}${victim}/run`)).toBe(true);
    expect(existsSync(`${evil}${victim}/etc/resolv.conf`)).toBe(true);
    expect(existsSync(`${evil}/host-tmp`)).toBe(true);
  });

  test("a link loop is a clean error naming the path", () => {
    const loop = makeBusyboxTree(`${base}/loop`);
    rmSync(`${loop}/tmp`, { recursive: true });
    symlinkSync("/tmp", `${loop}/tmp`);
    const r = run(["run", "-q", "-P", "-D", loop, "/bin/true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`mounting tmpfs on ${loop}/tmp: mount: Too many levels of symbolic links\n`);
  });
});
