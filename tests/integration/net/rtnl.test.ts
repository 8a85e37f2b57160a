// rtnetlink against the real kernel, inside namespaces the tests create (see
// netns.ts): one plays the host, others the containers. Needs root.
import { afterAll, expect, test } from "bun:test";
import { NETLINK_ROUTE, NLMSG_NOOP, NetlinkSocket } from "../../../src/net/netlink.ts";
import { Rtnl, type Rtnl as RtnlT } from "../../../src/net/rtnl.ts";
import { interfaceNameForMachine, macForMachine } from "../../../src/net/names.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";
import { leftoverNetns, netTest, withNetns, type Netns } from "./netns.ts";

/** Rtnl handles for some namespaces, closed afterwards. */
async function withRtnl<T>(nss: Netns[], fn: (...r: RtnlT[]) => T | Promise<T>): Promise<T> {
  const handles = nss.map((ns) => Rtnl.open(ns.path));
  try {
    return await fn(...handles);
  } finally {
    for (const h of handles) h.close();
  }
}

/** A link with no peer to stand in for a physical NIC: dummy, or ifb on kernels built without dummy. */
function standaloneLink(r: RtnlT, name: string): string {
  try {
    r.createLink(name, "dummy");
    return "dummy";
  } catch (e) {
    if (!(e instanceof SpawnctlError) || !/no dummy support/.test(e.message)) throw e;
    r.createLink(name, "ifb");
    return "ifb";
  }
}

function thrown(fn: () => unknown): SpawnctlError {
  try {
    fn();
  } catch (e) {
    return e as SpawnctlError;
  }
  throw new Error("expected an error");
}

afterAll(() => {
  expect(leftoverNetns()).toEqual([]);
});

netTest("a veth pair with the peer created inside another namespace, addresses and ping both ways", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      const hostMac = macForMachine("web", "host");
      const ctrMac = macForMachine("web", "container");
      h.createVeth({ name: "ve-web", mac: hostMac, peer: { name: "host0", mac: ctrMac, netns: ctr.path } });
      expect(h.link("host0")).toBeUndefined();
      const here = h.link("ve-web")!;
      const there = c.link("host0")!;
      expect([here.kind, here.mac, there.kind, there.mac]).toEqual(["veth", hostMac, "veth", ctrMac]);

      h.addAddress("ve-web", "10.91.0.1/28");
      h.addAddress("ve-web", "fd91::1/64", { noDad: true });
      c.addAddress("host0", "10.91.0.2/28");
      c.addAddress("host0", "fd91::2/64", { noDad: true });
      h.setUp("ve-web");
      c.setUp("host0");
      expect(h.link(here.index)!.up).toBe(true);

      const v4 = h.addresses({ link: "ve-web", family: 4 });
      expect(v4).toEqual([{ family: 4, index: here.index, address: "10.91.0.1", prefixLen: 28, scope: "global", broadcast: "10.91.0.15", label: "ve-web" }]);
      expect(h.addresses({ link: "ve-web", family: 6 }).map((a) => a.address)).toContain("fd91::1");

      expect(ctr.ping("10.91.0.1").code).toBe(0);
      expect(host.ping("10.91.0.2").code).toBe(0);
      expect(ctr.ping("fd91::1").code).toBe(0);

      h.deleteAddress("ve-web", "10.91.0.1/28");
      expect(h.addresses({ link: "ve-web", family: 4 })).toEqual([]);
      h.deleteLink("ve-web");
      expect(c.link("host0")).toBeUndefined(); // the peer goes with it
    }),
  );
});

netTest("a bridge with two veths carries traffic between two containers; nomaster releases a port", async () => {
  await withNetns(["host", "a", "b"], (host, a, b) =>
    withRtnl([host, a, b], (h, ra, rb) => {
      h.createBridge("vz-test");
      h.createVeth({ name: "vb-a", peer: { name: "host0", netns: a.path } });
      h.createVeth({ name: "vb-b", peer: { name: "host0", netns: b.path } });
      const br = h.index("vz-test");
      for (const port of ["vb-a", "vb-b"]) {
        h.setMaster(port, "vz-test");
        h.setUp(port);
      }
      h.setUp("vz-test");
      expect(h.link("vb-a")!.master).toBe(br);
      expect(h.link("vz-test")!.kind).toBe("bridge");
      ra.addAddress("host0", "10.92.0.1/24");
      rb.addAddress("host0", "10.92.0.2/24");
      ra.setUp("host0");
      rb.setUp("host0");
      expect(a.ping("10.92.0.2").code).toBe(0);

      h.setMaster("vb-b", null);
      expect(h.link("vb-b")!.master).toBeUndefined();
      expect(a.ping("10.92.0.2").code).not.toBe(0);
    }),
  );
});

netTest("macvlan (bridge mode) on a parent in one namespace, created directly in two others, talks between them", async () => {
  await withNetns(["host", "a", "b"], (host, a, b) =>
    withRtnl([host, a, b], (h, ra, rb) => {
      const kind = standaloneLink(h, "eth-test");
      h.setUp("eth-test");
      const long = interfaceNameForMachine("mv-", "eth-test-with-a-long-name");
      h.createMacvlan({ parent: "eth-test", name: "mv-eth-test", netns: a.path, mac: macForMachine("a", "macvlan") });
      h.createMacvlan({ parent: "eth-test", name: long.name, altname: long.altname, netns: b.path });
      expect(h.links().map((l) => l.name).sort()).toEqual(["eth-test", "lo"]);
      const mva = ra.link("mv-eth-test")!;
      expect([mva.kind, mva.mac]).toEqual(["macvlan", macForMachine("a", "macvlan")]);
      const mvb = rb.link(long.altname!)!; // found by its altname, set inside b
      expect([mvb.name, mvb.altnames]).toEqual([long.name, [long.altname!]]);

      ra.addAddress("mv-eth-test", "10.93.0.1/24");
      rb.addAddress(mvb.index, "10.93.0.2/24");
      ra.setUp("mv-eth-test");
      rb.setUp(mvb.index);
      expect(a.ping("10.93.0.2").code, `macvlans on ${kind}`).toBe(0);
    }),
  );
});

netTest("ipvlan is created in L2 mode where the kernel has it, and named as missing where it does not", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      standaloneLink(h, "eth-test");
      let error: SpawnctlError | undefined;
      try {
        h.createIpvlan({ parent: "eth-test", name: "iv-eth-test", netns: ctr.path });
      } catch (e) {
        error = e as SpawnctlError;
      }
      if (!error) {
        expect(c.link("iv-eth-test")!.kind).toBe("ipvlan");
        return;
      }
      // kernels built without CONFIG_IPVLAN answer EOPNOTSUPP, "Unknown device type"
      expect(error.message).toBe("creating ipvlan iv-eth-test on eth-test: the kernel has no ipvlan support (CONFIG_IPVLAN)");
      expect(error.errno).toBe(95);
      expect(c.link("iv-eth-test")).toBeUndefined();
    }),
  );
});

netTest("a link moves into a namespace and back keeping its name, or renamed on the way", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      standaloneLink(h, "eth-move");
      h.addAltname("eth-move", "eth-move-altname-that-is-long");
      h.moveLink("eth-move", ctr.path);
      expect(h.link("eth-move")).toBeUndefined();
      const moved = c.link("eth-move")!;
      expect(moved.name).toBe("eth-move");
      c.moveLink("eth-move", host.path);
      expect(h.link("eth-move")!.name).toBe("eth-move");

      h.moveLink("eth-move", ctr.path, "eth0");
      expect(c.link("eth0")).toBeDefined();
      c.moveLink("eth0", host.path, "eth-move");
      expect(h.link("eth-move")).toBeDefined();

      const clash = thrown(() => {
        c.createLink("eth-move", "bridge");
        h.moveLink("eth-move", ctr.path);
      });
      expect(clash.message).toMatch(/^moving link eth-move to network namespace .* RTM_SETLINK: File exists/);
      expect(h.link("eth-move")).toBeDefined();
    }),
  );
});

netTest("altnames: added, found by every lookup, listed, removed", async () => {
  await withNetns(["host"], (host) =>
    withRtnl([host], (h) => {
      h.createVeth({ name: "ve-alt", peer: { name: "ve-alt-peer" } });
      const long = "ve-an-altname-longer-than-fifteen-bytes";
      h.addAltname("ve-alt", long);
      h.addAltname("ve-alt", "short-alt");
      expect(h.link("ve-alt")!.altnames).toEqual([long, "short-alt"]);
      expect(h.link(long)!.name).toBe("ve-alt");
      expect(h.link("short-alt")!.name).toBe("ve-alt");
      h.setUp(long); // any method takes an altname
      expect(h.link("ve-alt")!.up).toBe(true);
      h.deleteAltname("ve-alt", long);
      expect(h.link(long)).toBeUndefined();
      expect(h.link("ve-alt")!.altnames).toEqual(["short-alt"]);
      expect(thrown(() => h.addAltname("ve-alt", "x".repeat(128))).message).toMatch(/longer than 127 bytes/);
      expect(thrown(() => h.addAltname("ve-alt", "short-alt")).message).toMatch(/^adding altname short-alt to link ve-alt: RTM_NEWLINKPROP: File exists/);
    }),
  );
});

netTest("a veth with a shortened name gets the long one as altname, and creation is all or nothing", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      const n = interfaceNameForMachine("ve-", "a-machine-with-a-long-name");
      h.createVeth({ name: n.name, altname: n.altname, peer: { name: "host0", netns: ctr.path } });
      expect(h.link(n.altname!)!.name).toBe(n.name);
      // the altname is taken now: a second veth fails as a whole and leaves nothing
      const e = thrown(() => h.createVeth({ name: "ve-second", altname: n.altname, peer: { name: "host1", netns: ctr.path } }));
      expect(e.message).toMatch(/^adding altname ve-a-machine-with-a-long-name to link ve-second: RTM_NEWLINKPROP: File exists/);
      expect(h.link("ve-second")).toBeUndefined();
      expect(c.link("host1")).toBeUndefined();
    }),
  );
});

netTest("routes: on-link, default via a gateway, IPv6, listed and deleted", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      h.createVeth({ name: "ve-rt", peer: { name: "host0", netns: ctr.path } });
      c.setUp("host0");
      c.addAddress("host0", "10.94.0.2/28");
      c.addAddress("host0", "fd94::2/64", { noDad: true });
      const ifindex = c.index("host0");
      c.addRoute({ dst: "default", gateway: "10.94.0.1" });
      c.addRoute({ dst: "10.95.0.0/24", dev: "host0" });
      c.addRoute({ dst: "10.96.0.0/24", gateway: "192.0.2.1", dev: "host0", onlink: true, metric: 7 });
      c.addRoute({ dst: "default", gateway: "fd94::1", dev: "host0" });
      const routes = c.routes();
      const find = (family: number, dst: string) => routes.find((r) => r.family === family && r.dst === dst);
      expect(find(4, "default")).toMatchObject({ gateway: "10.94.0.1", dev: ifindex, scope: "global", table: 254 });
      expect(find(4, "10.95.0.0/24")).toMatchObject({ gateway: undefined, dev: ifindex, scope: "link" });
      expect(find(4, "10.96.0.0/24")).toMatchObject({ gateway: "192.0.2.1", metric: 7 });
      expect(find(4, "10.94.0.0/28")).toMatchObject({ prefsrc: "10.94.0.2", protocol: 2 }); // the kernel's own
      expect(find(6, "default")).toMatchObject({ gateway: "fd94::1", dev: ifindex });
      expect(c.routes({ family: 6 }).every((r) => r.family === 6)).toBe(true);

      c.deleteRoute({ dst: "default", gateway: "10.94.0.1" });
      c.deleteRoute({ dst: "10.95.0.0/24", dev: "host0" });
      expect(c.routes({ family: 4 }).map((r) => r.dst).sort()).toEqual(["10.94.0.0/28", "10.96.0.0/24"]);
      expect(thrown(() => c.deleteRoute({ dst: "10.95.0.0/24" })).message).toBe("removing route 10.95.0.0/24: RTM_DELROUTE: No such process");
      expect(thrown(() => c.addRoute({ dst: "10.97.0.0/24", gateway: "10.99.0.1" })).message).toMatch(/^adding route 10.97.0.0\/24 via 10.99.0.1: RTM_NEWROUTE: Network is unreachable/);
    }),
  );
});

netTest("link settings: MTU, MAC, rename, up/down, IPv4 conf; errors name the link and the request", async () => {
  await withNetns(["host"], (host) =>
    withRtnl([host], (h) => {
      h.createVeth({ name: "ve-set", peer: { name: "ve-set-peer" } });
      h.setMtu("ve-set", 1400);
      h.setMac("ve-set", "02:12:34:56:78:9a");
      h.rename("ve-set", "ve-renamed");
      const l = h.link("ve-renamed")!;
      expect([l.mtu, l.mac, l.up]).toEqual([1400, "02:12:34:56:78:9a", false]);
      h.setUp(l.index);
      expect(h.link(l.index)!.up).toBe(true);
      h.setUp(l.index, false);
      expect(h.link(l.index)!.up).toBe(false);

      expect(h.ipv4Conf("ve-renamed")).toEqual({ forwarding: false, routeLocalnet: false });
      h.setIPv4Conf("ve-renamed", { forwarding: true, routeLocalnet: true });
      expect(h.ipv4Conf("ve-renamed")).toEqual({ forwarding: true, routeLocalnet: true });
      // the same value the sysctl shows inside that namespace
      expect(host.run(["cat", "/proc/sys/net/ipv4/conf/ve-renamed/route_localnet"]).stdout.trim()).toBe("1");

      expect(thrown(() => h.setUp("nonexistent")).message).toBe("bringing link nonexistent up: looking up link nonexistent: RTM_GETLINK: No such device");
      expect(thrown(() => h.createVeth({ name: "ve-renamed", peer: { name: "x" } })).message).toBe("creating veth ve-renamed/x: RTM_NEWLINK: File exists");
      expect(thrown(() => h.createLink("bad", "no-such-kind")).message).toBe("creating no-such-kind bad: the kernel has no no-such-kind support");
      expect(thrown(() => h.setMtu("ve-renamed", 10)).message).toMatch(/^setting the MTU of ve-renamed to 10: RTM_SETLINK: Invalid argument \(kernel: .+\)$/);
      expect(thrown(() => h.createVeth({ name: "a-name-that-is-too-long", peer: { name: "x" } })).message).toMatch(/not a valid interface name/);
      h.deleteLink("ve-renamed");
      h.deleteLink("ve-renamed", { missingOk: true });
      expect(thrown(() => h.deleteLink("ve-renamed")).message).toBe("removing link ve-renamed: RTM_DELLINK: No such device");
      expect(thrown(() => Rtnl.open("/nonexistent/netns")).message).toBe("opening rtnetlink in network namespace /nonexistent/netns: open /nonexistent/netns: No such file or directory");
    }),
  );
});

netTest("a dump spread over many datagrams is read to NLMSG_DONE", async () => {
  await withNetns(["host"], (host) =>
    withRtnl([host], (h) => {
      for (let i = 0; i < 150; i++) h.createVeth({ name: `va${i}`, peer: { name: `vb${i}` } });
      const names = new Set(h.links().map((l) => l.name));
      expect(names.size).toBe(301);
      expect(names.has("va149") && names.has("vb0") && names.has("lo")).toBe(true);
    }),
  );
});

test("a kernel that never answers makes the request fail after the timeout instead of hanging", () => {
  // control messages below NLMSG_MIN_TYPE get no reply unless they ask for an ACK
  const sock = NetlinkSocket.open(NETLINK_ROUTE, { timeoutMs: 200, typeName: () => "NLMSG_NOOP" });
  try {
    const t0 = Date.now();
    expect(() => sock.dump({ type: NLMSG_NOOP })).toThrow("NLMSG_NOOP: Resource temporarily unavailable (kernel: no answer within 0.2 s)");
    expect(Date.now() - t0).toBeLessThan(2000);
  } finally {
    sock.close();
  }
});

netTest("measure: a veth with its peer created in the namespace vs created here and moved (median of 50, paired)", async () => {
  await withNetns(["host", "ctr"], (host, ctr) =>
    withRtnl([host, ctr], (h, c) => {
      const direct: number[] = [];
      const moved: number[] = [];
      for (let i = 0; i < 50; i++) {
        // alternate which goes first, so drift affects both alike
        const runs = i % 2 ? ["moved", "direct"] : ["direct", "moved"];
        for (const how of runs) {
          const t0 = Bun.nanoseconds();
          if (how === "direct") {
            h.createVeth({ name: "ve-bench", peer: { name: "host0", netns: ctr.path } });
          } else {
            h.createVeth({ name: "ve-bench", peer: { name: "host0" } });
            h.moveLink("host0", ctr.path);
          }
          (how === "direct" ? direct : moved).push((Bun.nanoseconds() - t0) / 1e6);
          expect(c.link("host0")).toBeDefined();
          h.deleteLink("ve-bench");
        }
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
      console.log(`veth, peer created in the netns: median ${median(direct).toFixed(3)} ms; created here then moved: median ${median(moved).toFixed(3)} ms (n=50 each)`);
    }),
  );
});
