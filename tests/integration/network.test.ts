// Container networking end to end. The "host" of every test is a network
// namespace the test creates (spawnctl runs inside it through nsenter), so the
// machine's real interfaces are never touched; traffic goes only to loopback
// and to the test's own namespaces.
import { DHCP_LEASE } from "../../src/net/machine.ts";
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { SPAWNCTL } from "../helpers.ts";
import { Netns, netTest as test, withNetns, leftoverNetns } from "./net/netns.ts";
import { Rtnl } from "../../src/net/rtnl.ts";

let base = "";
let tree = "";

const DHCP_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew) ip addr add $ip/$mask dev $interface; [ -n "$router" ] && ip route add default via $router; echo "lease $ip/$mask router $router dns $dns time $lease" ;;
esac
`;

busyboxFixture({ files: { "etc/udhcpc/default.script": DHCP_SCRIPT, "www/index.html": "hello from the container\n" } }, (b, t) => {
  base = b;
  tree = t;
}, {
  setup: (_, t) => {
    Bun.spawnSync(["chmod", "755", `${t}/etc/udhcpc/default.script`]);
  },
  teardown: () => expect(leftoverNetns()).toEqual([]),
});

/** spawnctl run inside the test's "host" namespace */
function runIn(ns: Netns, args: string[], timeout = 30_000) {
  return ns.run([SPAWNCTL, "run", "-q", "-P", "--settings=no", "-D", tree, ...args], timeout);
}
function startIn(ns: Netns, args: string[], env: Record<string, string> = {}) {
  return Bun.spawn(["nsenter", `--net=${ns.path}`, "--", SPAWNCTL, "run", "-q", "-P", "--settings=no", "-D", tree, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
}
async function firstLine(p: ReturnType<typeof startIn>): Promise<string> {
  const r = p.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await r.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  r.releaseLock();
  return text.trim();
}
const links = (ns: Netns) => {
  const rt = Rtnl.open(ns.path);
  try {
    return rt.links().map((l) => l.name);
  } finally {
    rt.close();
  }
};

/** Link the test's host namespace to another one (a client, the outside): hostAddr and peerAddr on a /24, both ends up. */
function linkTo(host: Netns, other: Netns, hostAddr: string, peerAddr: string): void {
  const rt = Rtnl.open(host.path);
  rt.createVeth({ name: "up0", peer: { name: "up1", netns: other.path } });
  rt.addAddress("up0", `${hostAddr}/24`);
  rt.setUp("up0");
  rt.setUp("lo");
  rt.close();
  const ro = Rtnl.open(other.path);
  ro.addAddress("up1", `${peerAddr}/24`);
  ro.setUp("up1");
  ro.setUp("lo");
  ro.close();
}

/** The body of GET /index.html from to:port, through busybox nc in ns (busybox wget crashes in a bare netns here). */
function httpGet(ns: Netns, to: string, port: number): string {
  const r = ns.run(["sh", "-c", `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${to} ${port}`]);
  return r.stdout.split("\r\n\r\n")[1] ?? "";
}

describe("veth", () => {
  test("ve-NAME/host0 with a private pool address; the guest's udhcpc gets its lease, route and DNS", async () => {
    await withNetns(["host"], (host) => {
      // one DHCPDISCOVER only (-t 1), sent as the payload starts, while the
      // host side may still be being set up: it must not be lost
      const r = runIn(host, ["-n", "-M", "web", "/bin/sh", "-c",
        "ip link show host0 | grep -o 'link/ether [0-9a-f:]*'; udhcpc -i host0 -n -q -t 1 -T 3 2>/dev/null; ping -c1 -W2 $(ip route | awk '/default/{print $3}') | grep -c 'bytes from'; ip addr show lo | grep -c 'inet 127'"]);
      expect(r.stderr).toBe("");
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^link\/ether [0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      expect(lines[1]).toMatch(/^lease 10\.\d+\.\d+\.\d+\/28 router 10\.\d+\.\d+\.\d+/);
      // the lease time spawnctl decided (net/machine.ts DHCP_LEASE), not one of the shim's
      expect(lines[1]).toEndWith(` time ${DHCP_LEASE.lease}`);
      expect(lines[2]).toBe("1");
      expect(lines[3]).toBe("1");
      // everything gone afterwards: the link, the plan, the allocation
      expect(links(host).filter((l) => l.startsWith("ve-"))).toEqual([]);
      expect(existsSync("/run/spawnctl/net/web.json")).toBe(false);
    });
  });

  test("with -U too: the links come while the child mounts, the first DHCPDISCOVER is answered", async () => {
    await withNetns(["host"], (host) => {
      const r = runIn(host, ["-U", "-n", "-M", "webu", "/bin/sh", "-c", "id -u; udhcpc -i host0 -n -q -t 1 -T 3 2>/dev/null; ip route | grep -c default"]);
      expect(r.stderr).toBe("");
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).toBe("0");
      expect(lines[1]).toMatch(/^lease 10\.\d+\.\d+\.\d+\/28 router 10\.\d+\.\d+\.\d+/);
      expect(lines[2]).toBe("1");
      expect(links(host).filter((l) => l.startsWith("ve-"))).toEqual([]);
    });
  });

  test("a payload that is done before the host side is set up still ends cleanly", async () => {
    await withNetns(["host"], (host) => {
      for (let i = 0; i < 3; i++) {
        const r = runIn(host, ["-n", "-p", "8080:80", "-M", "quick", "/bin/true"]);
        expect([r.code, r.stderr]).toEqual([0, ""]);
      }
      expect(links(host).filter((l) => l.startsWith("ve-"))).toEqual([]);
      expect(existsSync("/run/spawnctl/net/quick.json")).toBe(false);
    });
  });

  test("the host side gets the same MAC every time and a name shortened with an altname", async () => {
    await withNetns(["host"], async (host) => {
      const p = startIn(host, ["-n", "-M", "a-rather-long-machine-name", "/bin/sh", "-c", "echo up; sleep 5"]);
      try {
        await firstLine(p);
        const rt = Rtnl.open(host.path);
        const ve = rt.links().find((l) => l.name.startsWith("ve-"))!;
        rt.close();
        expect(ve.name.length).toBeLessThanOrEqual(15);
        expect(ve.altnames).toContain("ve-a-rather-long-machine-name");
      } finally {
        p.kill("SIGTERM");
        await p.exited;
      }
    });
  });
});

describe("zones and bridges", () => {
  test("two containers in one zone reach each other; vz-ZONE goes with its last member", async () => {
    await withNetns(["host"], async (host) => {
      // -x: both containers share the tree
      const a = startIn(host, ["-x", "--network-zone=lab", "-M", "za", "/bin/sh", "-c", "udhcpc -i host0 -n -q >/dev/null 2>&1; ip addr show host0 | awk '/inet /{print $2}'; sleep 20"]);
      try {
        const addrA = (await firstLine(a)).split("/")[0]!;
        expect(addrA).toMatch(/^172\.\d+\.\d+\.\d+$/);
        expect(links(host)).toContain("vz-lab");
        const b = runIn(host, ["-x", "--network-zone=lab", "-M", "zb", "/bin/sh", "-c", `udhcpc -i host0 -n -q >/dev/null 2>&1; ping -c1 -W2 ${addrA} | grep -c 'bytes from'`]);
        expect(b.stdout.trim()).toBe("1");
        expect(links(host)).toContain("vz-lab");
      } finally {
        a.kill("SIGTERM");
        await a.exited;
      }
      expect(links(host).filter((l) => l.startsWith("vz-") || l.startsWith("ve-"))).toEqual([]);
    });
  });

  test("--network-bridge enslaves vb-NAME to an existing bridge", async () => {
    await withNetns(["host"], async (host) => {
      const rt = Rtnl.open(host.path);
      rt.createBridge("br-test");
      rt.addAddress("br-test", "192.0.2.1/24");
      rt.setUp("br-test");
      try {
        const r = runIn(host, ["--network-bridge=br-test", "-M", "bridged", "/bin/sh", "-c", "ip addr add 192.0.2.2/24 dev host0; ping -c1 -W2 192.0.2.1 | grep -c 'bytes from'"]);
        expect(r.stdout.trim()).toBe("1");
        expect(rt.links().map((l) => l.name).filter((n) => n.startsWith("vb-"))).toEqual([]);
      } finally {
        rt.deleteLink("br-test", { missingOk: true });
        rt.close();
      }
    });
  });
});

describe("macvlan, ipvlan, moved interfaces, extra veths, namespaces", () => {
  test("macvlan on a parent link appears in the container as mv-PARENT", async () => {
    await withNetns(["host"], (host) => {
      const rt = Rtnl.open(host.path);
      rt.createLink("uplink0", "ifb");
      rt.setUp("uplink0");
      rt.close();
      const r = runIn(host, ["--network-macvlan=uplink0", "-M", "mv", "/bin/sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
      expect(r.stdout).toBe("lo mv-uplink0 ");
    });
  });

  test("ipvlan names the missing kernel feature when there is none", async () => {
    await withNetns(["host"], (host) => {
      const rt = Rtnl.open(host.path);
      rt.createLink("uplink1", "ifb");
      rt.close();
      const r = runIn(host, ["--network-ipvlan=uplink1", "-M", "iv", "/bin/true"]);
      if (r.code !== 0) expect(r.stderr).toContain("ipvlan");
      expect(links(host).filter((l) => l.startsWith("iv-"))).toEqual([]);
    });
  });

  test("--network-interface moves a link in and gives it back with its name on exit, also renamed inside", async () => {
    await withNetns(["host"], (host) => {
      const rt = Rtnl.open(host.path);
      rt.createLink("moveme", "ifb");
      const index = rt.link("moveme")!.index;
      rt.close();
      const r = runIn(host, ["--network-interface=moveme:inside0", "-M", "mi", "/bin/sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
      expect(r.stdout).toBe("inside0 lo ");
      const rt2 = Rtnl.open(host.path);
      expect(rt2.link(index)?.name).toBe("moveme");
      rt2.close();
    });
  });

  test("--network-veth-extra and --network-namespace-path", async () => {
    await withNetns(["host", "other"], (host, other) => {
      const r = runIn(host, ["--network-veth-extra=vx-host:vx-inside", "-M", "vx", "/bin/sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
      expect(r.stdout).toBe("lo vx-inside ");
      expect(links(host)).not.toContain("vx-host");
      const rt = Rtnl.open(other.path);
      rt.createLink("marker0", "ifb");
      rt.close();
      const n = runIn(host, [`--network-namespace-path=${other.path}`, "-M", "nsp", "/bin/sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
      expect(n.stdout).toContain("marker0");
    });
  });
});

describe("NAT", () => {
  test("port forwards from the host's address and from its localhost reach a server in the container", async () => {
    await withNetns(["host", "client"], async (host, client) => {
      // the test host has an address on a link to a client namespace
      linkTo(host, client, "198.51.100.1", "198.51.100.2");
      const p = startIn(host, ["-n", "-p", "8080:80", "-M", "httpd", "/bin/sh", "-c", "udhcpc -i host0 -n -q >/dev/null 2>&1; echo up; exec httpd -f -p 80 -h /www"]);
      try {
        expect(await firstLine(p)).toBe("up");
        await Bun.sleep(200);
        expect(httpGet(client, "198.51.100.1", 8080)).toBe("hello from the container\n");
        expect(httpGet(host, "198.51.100.1", 8080)).toBe("hello from the container\n");
        expect(httpGet(host, "127.0.0.1", 8080)).toBe("hello from the container\n");
      } finally {
        p.kill("SIGTERM");
        await p.exited;
      }
      // the rules are gone with the machine
      const { Nft } = await import("../../src/net/nft.ts");
      const nft = Nft.open(host.path);
      expect(nft.rules().filter((r) => r.comment?.includes("machine=httpd"))).toEqual([]);
      nft.close();
    });
  });

  test("without nftables (SPAWNCTL_NFTABLES=off, as on a kernel without nf_tables): a warning, and the ports forwarded in userspace", async () => {
    await withNetns(["host", "client"], async (host, client) => {
      linkTo(host, client, "198.51.100.1", "198.51.100.2");
      const p = startIn(host, ["-n", "-p", "8080:80", "-M", "userfw", "/bin/sh", "-c", "udhcpc -i host0 -n -q >/dev/null 2>&1; echo up; exec httpd -f -p 80 -h /www"], { SPAWNCTL_NFTABLES: "off" });
      let forwarder = 0;
      try {
        expect(await firstLine(p)).toBe("up");
        await Bun.sleep(200);
        expect(httpGet(client, "198.51.100.1", 8080)).toBe("hello from the container\n");
        expect(httpGet(host, "127.0.0.1", 8080)).toBe("hello from the container\n");
        forwarder = JSON.parse(readFileSync("/run/spawnctl/net/userfw.json", "utf8")).forwarder;
        expect(readFileSync(`/proc/${forwarder}/cmdline`, "utf8")).toContain("__forward");
        // no rules of ours, no forwarding switched on
        expect(host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.trim()).toBe("0");
      } finally {
        p.kill("SIGTERM");
        await p.exited;
      }
      expect(await new Response(p.stderr).text()).toContain("machine userfw: no nftables (SPAWNCTL_NFTABLES=off): the container is not masqueraded, its ports are forwarded in userspace.");
      // the forwarder went with the machine
      for (let i = 0; i < 40 && existsSync(`/proc/${forwarder}`); i++) await Bun.sleep(50);
      expect(existsSync(`/proc/${forwarder}`)).toBe(false);
    });
  });

  test("containers reach the outside through masquerading: the outside sees the host's address", async () => {
    await withNetns(["host", "outside"], async (host, outside) => {
      linkTo(host, outside, "203.0.113.1", "203.0.113.2");
      const server = await outside.serve(7000);
      try {
        const r = runIn(host, ["-n", "-M", "masq", "/bin/sh", "-c", "udhcpc -i host0 -n -q >/dev/null 2>&1; echo hi | nc -w 3 203.0.113.2 7000"]);
        expect(r.stdout.trim()).toBe("203.0.113.1");
      } finally {
        server.kill();
      }
    });
  });
});

describe("crash recovery", () => {
  test("after a SIGKILLed run, the next start removes the stale link, rules and allocation", async () => {
    await withNetns(["host"], async (host) => {
      const p = startIn(host, ["-n", "-p", "8081:80", "-M", "crashy", "/bin/sh", "-c", "echo up; sleep 30"]);
      await firstLine(p);
      p.kill("SIGKILL");
      await p.exited;
      await Bun.sleep(200);
      expect(existsSync("/run/spawnctl/net/crashy.json")).toBe(true);
      const r = runIn(host, ["-n", "-p", "8081:80", "-M", "crashy", "/bin/true"]);
      expect(r.code).toBe(0);
      expect(existsSync("/run/spawnctl/net/crashy.json")).toBe(false);
      expect(links(host).filter((l) => l.startsWith("ve-"))).toEqual([]);
      expect(readdirSync("/run/spawnctl/net").filter((f) => f.includes("crashy"))).toEqual([]);
    });
  });
});
