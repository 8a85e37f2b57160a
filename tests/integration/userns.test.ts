// User namespaces: -U, the range rules, map and chown ownership, binds with
// idmap options, devices, two containers at once, and nothing left behind.
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { chownSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { SPAWNCTL, makeBusyboxTree, removeTree, rootTest as test, run } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({ files: { "etc/hostname": "bb\n" } }, (b, t) => {
  base = b;
  tree = t;
});

const sh = (t: string, script: string, ...opts: string[]) => run(["run", "-q", "-P", "-D", t, ...opts, "/bin/sh", "-c", script]);
const uidMap = (out: string) => out.match(/^\s*0\s+(\d+)\s+(\d+)\s*$/m);

describe("-U", () => {
  test("root inside, a 65536 range from the allowed set, stable for a name", () => {
    const a = sh(tree, "id -u; cat /proc/self/uid_map", "-U", "-M", "usernstest");
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    expect(a.stdout.split("\n")[0]).toBe("0");
    const m = uidMap(a.stdout)!;
    const b = Number(m[1]);
    expect(Number(m[2])).toBe(65536);
    expect(b % 65536).toBe(0);
    expect(b).toBeGreaterThanOrEqual(524288);
    expect(b).toBeLessThanOrEqual(1878982656);
    const again = sh(tree, "cat /proc/self/uid_map", "-U", "-M", "usernstest");
    expect(uidMap(again.stdout)![1]).toBe(m[1]);
    // a different name, most likely a different range
    const other = sh(tree, "cat /proc/self/uid_map", "-U", "-M", "usernstest-other");
    expect(other.code).toBe(0);
  });

  test("map: the tree is unchanged on the host, root's inside, writable", () => {
    const owner = statSync(`${tree}/etc/hostname`);
    const r = sh(tree, "stat -c '%u:%g' /etc/hostname; echo changed > /etc/hostname && cat /etc/hostname; touch /root/new", "-U");
    expect(r.stdout).toBe("0:0\nchanged\n");
    expect(statSync(`${tree}/etc/hostname`).uid).toBe(owner.uid);
    // a file made inside belongs to the host's 0 on disk: the mapping undoes the shift
    expect(statSync(`${tree}/root/new`).uid).toBe(0);
    // and the tester's home stays 1000, seen as 1000 inside
    expect(sh(tree, "stat -c %u /home/tester", "-U").stdout).toBe("1000\n");
  });

  test("the host's processes are not root's: the container's root is the shifted uid", () => {
    const r = sh(tree, "cat /proc/self/status | grep ^Uid; ls -ln /proc/1/ns/user >/dev/null && echo ok", "-U");
    expect(r.stdout).toContain("ok");
    // the uid of the container's init as the host sees it: read while it runs
  });

  test("-x over a mapped tree", () => {
    const r = sh(tree, "stat -c %u /etc/passwd; echo x > /etc/x && echo wrote", "-U", "-x");
    expect(r.stdout).toBe("0\nwrote\n");
    expect(() => statSync(`${tree}/etc/x`)).toThrow();
  });

  test("chown shifts the tree, the seed's undo shifts it back", () => {
    const t = makeBusyboxTree(`${base}/chown`);
    try {
      const r = sh(t, "stat -c '%u:%g' /etc/passwd /home/tester; cat /proc/self/uid_map", "--private-users=pick", "--private-users-ownership=chown", "-M", "usernschown");
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n").slice(0, 2)).toEqual(["0:0", "1000:1000"]);
      const shift = Number(uidMap(r.stdout)![1]);
      expect(statSync(`${t}/etc/passwd`).uid).toBe(shift);
      expect(statSync(`${t}/home/tester`).uid).toBe(shift + 1000);
      // a second start finds the root owned by the range and does nothing
      const again = sh(t, "cat /proc/self/uid_map", "-U", "-M", "usernschown");
      expect(Number(uidMap(again.stdout)![1])).toBe(shift);
      // the wiki's way back
      const back = sh(t, "true", "--private-users=0", "--private-users-chown");
      expect(back.code).toBe(0);
      expect(statSync(`${t}/etc/passwd`).uid).toBe(0);
      expect(statSync(`${t}/home/tester`).uid).toBe(1000);
    } finally {
      removeTree(t);
    }
  });

  test("a file system without idmapped mounts: map names it, auto falls back to chown", () => {
    // ramfs cannot be idmapped: the shim's first try fails after writing the
    // maps, and the rest of the start goes on from there
    const mnt = `${base}/ramfs`;
    mkdirSync(mnt, { recursive: true });
    expect(Bun.spawnSync(["mount", "-t", "ramfs", "spawnctl-test-ramfs", mnt]).exitCode).toBe(0);
    try {
      Bun.spawnSync(["cp", "-a", `${tree}/.`, `${mnt}/`]);
      const map = sh(mnt, "true", "--private-users=pick", "--private-users-ownership=map");
      expect(map.code).toBe(1);
      expect(map.stderr).toContain(`--private-users-ownership=map: the file system of ${mnt} does not support idmapped mounts`);
      expect(statSync(`${mnt}/etc/passwd`).uid).toBe(0);
      const auto = sh(mnt, "stat -c %u /etc/passwd; cat /proc/self/uid_map", "-U", "-M", "usernsramfs");
      expect(auto.code).toBe(0);
      const shift = Number(uidMap(auto.stdout)![1]);
      expect(auto.stdout.split("\n")[0]).toBe("0");
      expect(statSync(`${mnt}/etc/passwd`).uid).toBe(shift);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });

  test("a child that fails after the go-aheads were sent ahead of it still reports its own error", () => {
    // the shim answers barriers 1 and 3 (and the driver 2) before the child
    // asks; a child that fails in between leaves them unread, which the
    // kernel reports (ECONNRESET) before the child's error message
    const t = makeBusyboxTree(`${base}/noproc`);
    try {
      Bun.spawnSync(["rmdir", `${t}/proc`]);
      for (let i = 0; i < 10; i++) {
        for (const extra of [[], [`--bind=${t}/etc:/mnt`]]) {
          const r = run(["run", "-q", "-P", "--read-only", "-U", ...extra, "-D", t, "/bin/true"]);
          expect([r.code, r.stderr.trim()]).toEqual([1, `mounting proc on ${t}/proc: mount: Read-only file system`]);
        }
      }
    } finally {
      removeTree(t);
    }
  });

  test("--private-users=yes takes the range from the tree's owner; identity maps 0 to 0", () => {
    const t = makeBusyboxTree(`${base}/yes`);
    try {
      run(["run", "-q", "-P", "-D", t, "--private-users=1966080", "--private-users-chown", "true"]);
      expect(statSync(t).uid).toBe(1966080);
      expect(uidMap(sh(t, "cat /proc/self/uid_map", "--private-users=yes").stdout)![1]).toBe("1966080");
      run(["run", "-q", "-P", "-D", t, "--private-users=0", "--private-users-chown", "true"]);
      const id = sh(t, "cat /proc/self/uid_map", "--private-users=identity");
      expect(uidMap(id.stdout)![1]).toBe("0");
    } finally {
      removeTree(t);
    }
  });

  test("two containers at once get different ranges", async () => {
    // both try the range the tree's owner suggests first: only one gets it
    const t = makeBusyboxTree(`${base}/two`);
    try {
      expect(run(["run", "-q", "-P", "-D", t, "--private-users=2031616", "--private-users-chown", "true"]).code).toBe(0);
      const first = Bun.spawn([SPAWNCTL, "run", "-q", "-P", "-x", "-U", "-M", "usernstwo-a", "-D", t, "/bin/sh", "-c", "cat /proc/self/uid_map; sleep 3"], { stdout: "pipe", stderr: "pipe" });
      try {
        await Bun.sleep(800);
        const second = sh(t, "cat /proc/self/uid_map", "-x", "-U", "-M", "usernstwo-b");
        await first.exited;
        const a = uidMap(await new Response(first.stdout).text())![1];
        const b = uidMap(second.stdout)![1];
        expect(a).toBe("2031616");
        expect(b).not.toBe(a);
      } finally {
        first.kill(9);
        await first.exited;
      }
    } finally {
      removeTree(t);
    }
  });
});

describe("binds, devices and capabilities under -U", () => {
  test("a plain bind shows the host's root as nobody; idmap as root; rootidmap maps the owner to root", () => {
    const src = `${base}/share`;
    mkdirSync(src, { recursive: true });
    writeFileSync(`${src}/f`, "x");
    const own = `${base}/owned`;
    mkdirSync(own, { recursive: true });
    chownSync(own, 4242, 4242);
    const r = sh(tree, "stat -c %u /plain/f /mapped/f /owned; touch /plain/n 2>/dev/null && echo plain-writable; touch /mapped/n && echo mapped-writable; touch /owned/n && echo owned-writable", "-U", `--bind=${src}:/plain`, `--bind=${src}:/mapped:idmap`, `--bind=${own}:/owned:rootidmap`);
    expect(r.stdout).toBe("65534\n0\n0\nmapped-writable\nowned-writable\n");
    // written through the mappings: the host's owners
    expect(statSync(`${src}/n`).uid).toBe(0);
    expect(statSync(`${own}/n`).uid).toBe(4242);
  });

  test("/dev nodes and the tty group work; /dev/net/tun opens with a private network", () => {
    const r = sh(tree, "ls -ln /dev/null /dev/net/tun | awk '{print $3\":\"$4}'; echo hi > /dev/null && echo null-ok; cat /dev/net/tun 2>&1 | grep -q 'bad state' && echo tun-ok; stat -c %g /dev/pts/ptmx", "-U", "--private-network");
    expect(r.stdout).toBe("0:0\n0:0\nnull-ok\ntun-ok\n0\n");
  });

  test("NET_BIND_SERVICE only with a private network", () => {
    const capEff = (out: string) => BigInt(`0x${/^CapBnd:\s*(\S+)/m.exec(out)![1]}`);
    expect(capEff(sh(tree, "cat /proc/self/status", "-U").stdout) & (1n << 10n)).toBe(0n);
    expect(capEff(sh(tree, "cat /proc/self/status", "-U", "--private-network").stdout) & (1n << 10n)).toBe(1n << 10n);
  });

  test("a console with a pty works (devpts in the user namespace)", () => {
    const r = run(["run", "-q", "--console=read-only", "-D", tree, "-U", "/bin/sh", "-c", "tty; ls -l /dev/console | grep -o 'pts/.*'"]);
    expect(r.stdout).toContain("/dev/pts/0");
  });
});
