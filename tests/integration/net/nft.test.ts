// NAT with nftables against the real kernel, in namespaces the tests create:
// "host" plays the machine spawnctl runs on, "outside" the rest of the
// network, "ctr" a container. Traffic is real TCP (peer.ts); the server
// answers with the address it sees the client as. Needs root.
import { afterAll, expect } from "bun:test";
import { Nft, type Layout } from "../../../src/net/nft.ts";
import { Rtnl } from "../../../src/net/rtnl.ts";
import { leftoverNetns, netTest, withNetns, type Netns } from "./netns.ts";

afterAll(() => {
  expect(leftoverNetns()).toEqual([]);
});

/**
 * host ↔ outside over "uplink"/"eth0" (192.0.2.1 / 192.0.2.2), and host ↔
 * ctr over a veth (10.80.0.1 / 10.80.0.2), the container routing via the
 * host, the host forwarding between the two.
 */
function wire(host: Netns, outside: Netns, ctr: Netns): void {
  const h = Rtnl.open(host.path);
  const o = Rtnl.open(outside.path);
  const c = Rtnl.open(ctr.path);
  try {
    h.setUp("lo");
    h.createVeth({ name: "uplink", peer: { name: "eth0", netns: outside.path } });
    h.createVeth({ name: "ve-ctr", peer: { name: "host0", netns: ctr.path } });
    h.addAddress("uplink", "192.0.2.1/24");
    h.addAddress("ve-ctr", "10.80.0.1/28");
    o.addAddress("eth0", "192.0.2.2/24");
    c.addAddress("host0", "10.80.0.2/28");
    for (const [r, l] of [[h, "uplink"], [h, "ve-ctr"], [o, "eth0"], [c, "host0"]] as const) r.setUp(l);
    for (const l of ["uplink", "ve-ctr"]) h.setIPv4Conf(l, { forwarding: true });
    c.addRoute({ dst: "default", gateway: "10.80.0.1" });
  } finally {
    for (const r of [h, o, c]) r.close();
  }
}

function withNft<T>(ns: Netns, fn: (n: Nft) => T | Promise<T>): Promise<T> {
  const n = Nft.open(ns.path);
  return Promise.resolve(fn(n)).finally(() => n.close());
}

netTest("masquerade: the outside sees the host's address instead of the container's, until the machine's rules go", async () => {
  await withNetns(["host", "outside", "ctr"], async (host, outside, ctr) => {
    wire(host, outside, ctr);
    // a route back, so that the unmasqueraded case works and shows the container's address
    const o = Rtnl.open(outside.path);
    o.addRoute({ dst: "10.80.0.0/28", gateway: "192.0.2.1" });
    o.close();
    const server = await outside.serve(7000);
    try {
      expect(ctr.connect("192.0.2.2", 7000)).toBe("10.80.0.2");
      await withNft(host, (n) => {
        expect(n.ensureTable()).toBe("inet");
        n.addMasquerade({ machine: "web", source: "10.80.0.0/28" });
        n.addMasquerade({ machine: "other", source: "10.79.0.0/28" });
        expect(ctr.connect("192.0.2.2", 7000)).toBe("192.0.2.1");

        const rules = n.rules();
        expect(rules.filter((r) => r.machine).map((r) => [r.family, r.chain, r.machine, r.comment])).toEqual([
          ["inet", "postrouting", "web", "spawnctl machine=web masquerade 10.80.0.0/28"],
          ["inet", "postrouting", "other", "spawnctl machine=other masquerade 10.79.0.0/28"],
        ]);
        expect(rules.every((r) => r.handle > 0n)).toBe(true);

        expect(n.deleteMachineRules("web")).toBe(1);
        expect(ctr.connect("192.0.2.2", 7000)).toBe("10.80.0.2");
        expect(n.rules().filter((r) => r.machine).map((r) => r.machine)).toEqual(["other"]);
        n.deleteTable();
        expect(n.tables()).toEqual([]);
        expect(n.rules()).toEqual([]);
      });
    } finally {
      server.kill();
    }
  });
});

for (const layout of ["inet", "split"] as Layout[]) {
  netTest(`port forwarding (${layout} layout): from outside, from the host's own address, and from its 127.0.0.1`, async () => {
    await withNetns(["host", "outside", "ctr"], async (host, outside, ctr) => {
      wire(host, outside, ctr);
      const server = await ctr.serve(80);
      try {
        await withNft(host, (n) => {
          expect(n.ensureTable({ layout })).toBe(layout);
          n.addPortForward({ machine: "web", protocol: "tcp", hostPort: 8080, address: "10.80.0.2", port: 80, localhost: true });
          n.addPortForward({ machine: "web", protocol: "tcp", hostPort: 8081, address: "10.80.0.2", port: 80 });
          // the kernel routes 127.0.0.0/8 sources out of ve-ctr (and takes the replies) only with route_localnet
          const h = Rtnl.open(host.path);
          h.setIPv4Conf("ve-ctr", { routeLocalnet: true });
          h.close();

          expect(outside.connect("192.0.2.1", 8080)).toBe("192.0.2.2"); // DNAT only: the container sees the real client
          expect(host.connect("192.0.2.1", 8080)).toBe("192.0.2.1");
          expect(host.connect("127.0.0.1", 8080)).toBe("10.80.0.1"); // masqueraded, or the container would answer 127.0.0.1
          expect(outside.connect("192.0.2.1", 8081)).toBe("192.0.2.2");
          expect(host.connect("127.0.0.1", 8081)).toBeUndefined(); // not published on localhost: refused

          const mine = n.rules().filter((r) => r.machine === "web");
          expect(mine.map((r) => r.chain).sort()).toEqual(["output", "output", "postrouting", "prerouting", "prerouting"]);
          expect(new Set(mine.map((r) => r.family))).toEqual(new Set([layout === "inet" ? "inet" : "ip"]));
          n.deleteMachineRules("web");
          expect(outside.connect("192.0.2.1", 8080)).toBeUndefined();
          n.deleteTable();
        });
      } finally {
        server.kill();
      }
    });
  });
}

netTest("the guard chain closes what route_localnet opens: a container reaching the host's 127.0.0.1 services", async () => {
  await withNetns(["host", "outside", "ctr"], async (host, outside, ctr) => {
    wire(host, outside, ctr);
    const h = Rtnl.open(host.path);
    h.setIPv4Conf("ve-ctr", { routeLocalnet: true });
    h.close();
    // a hostile container: root in its own namespace can route 127.0.0.1 to the host and accept the answers
    const c = Rtnl.open(ctr.path);
    c.addRoute({ dst: "127.0.0.1/32", gateway: "10.80.0.1" });
    c.setIPv4Conf("host0", { routeLocalnet: true });
    c.close();
    const server = await host.serve(9999, "127.0.0.1");
    try {
      expect(ctr.connect("127.0.0.1", 9999)).toBe("10.80.0.2"); // the hole, without spawnctl's table
      await withNft(host, (n) => {
        n.ensureTable();
        expect(ctr.connect("127.0.0.1", 9999)).toBeUndefined();
        expect(host.connect("127.0.0.1", 9999)).toBe("127.0.0.1"); // the host's own loopback traffic is untouched
        n.deleteTable();
      });
    } finally {
      server.kill();
    }
  });
});

netTest("ensureTable is idempotent, also from a second handle, and errors say what failed", async () => {
  await withNetns(["host"], async (host) => {
    await withNft(host, async (n) => {
      expect(n.layout()).toBeUndefined();
      expect(() => n.addMasquerade({ machine: "web", source: "10.80.0.0/28" })).toThrow(/does not exist \(ensureTable creates it\)/);
      expect(n.ensureTable()).toBe("inet");
      const count = n.rules().length;
      await withNft(host, (other) => expect(other.ensureTable({ layout: "split" })).toBe("inet"));
      expect(n.rules().length).toBe(count);
      expect(n.deleteMachineRules("nobody")).toBe(0);
      const [guard] = n.rules();
      n.deleteRules([guard!]);
      expect(() => n.deleteRules([guard!])).toThrow(/^removing 1 nftables rule: NFT_MSG_DELRULE: No such file or directory/);
      n.deleteTable();
      n.deleteTable();
    });
  });
});
