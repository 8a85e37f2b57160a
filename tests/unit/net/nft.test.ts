// nftables messages compared byte for byte with what nft 1.0.6 (libnftnl
// 1.2.4, Debian 12) sends for the same rule, and the rule building and error
// mapping that need no kernel.
//
// The expected batches were captured with
//   strace -e trace=sendmsg -e write=3 -xx nft add ...
// in a scratch network namespace. nft sends BEGIN, the message and END with
// sequence numbers 0, 1, 2 and no NLM_F_ACK; spawnctl also asks for an ACK
// per message, which is the only difference and is left out here.
import { describe, expect, test } from "bun:test";
import { NLM_F, NetlinkError, encodeMessage, type Request } from "../../../src/net/netlink.ts";
import { batch, machineOfComment, masqueradeRules, missingFeature, newRuleMessage, portForwardRules, ruleComment, tableBatch, type RuleSpec } from "../../../src/net/nft.ts";

/** A batch as nft puts it on the wire. */
function wire(msgs: Request[]): string {
  return batch(msgs)
    .map((m, seq) => Buffer.from(encodeMessage({ ...m, flags: (m.flags ?? 0) | NLM_F.REQUEST }, seq)).toString("hex"))
    .join("");
}

const BEGIN = "140000001000010000000000000000000000000a";
const END = "140000001100010002000000000000000000000a";

describe("batches match nft byte for byte", () => {
  test("add chain inet spawnctl postrouting { type nat hook postrouting priority 100; policy accept; }", () => {
    const chain = tableBatch("inet").find((p) => p.msg.attrs!.some((a) => "data" in a && Buffer.from(a.data).toString() === "postrouting\0"))!;
    expect(wire([chain.msg])).toBe(
      `${BEGIN}58000000030a01040100000000000000010000000d000100737061776e63746c0000000010000300706f7374726f7574696e6700080007006e61740008000500000000011400048008000100000000040800020000000064${END}`,
    );
  });

  test('add rule inet spawnctl postrouting ip saddr 10.9.0.0/28 ip daddr != 10.9.0.0/28 masquerade comment "..."', () => {
    const [rule] = masqueradeRules({ machine: "web", source: "10.9.0.0/28" }, "inet");
    expect(rule!.comment).toBe("spawnctl machine=web masquerade 10.9.0.0/28");
    expect(wire([newRuleMessage(rule!)])).toBe(
      `${BEGIN}18020000060a010c0100000000000000010000000d000100737061776e63746c0000000010000200706f7374726f7574696e6700b001048024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010002000000340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100fffffff00c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000000c000380080001000a090000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000100800040000000004440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100fffffff00c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000010c000380080001000a09000014000180090001006d617371000000000400028032000700002c737061776e63746c206d616368696e653d776562206d6173717565726164652031302e392e302e302f3238000000${END}`,
    );
  });

  test('add rule inet spawnctl prerouting meta nfproto ipv4 tcp dport 8080 fib daddr type local dnat ip to 10.9.0.2:80 comment "c"', () => {
    const [pre] = portForwardRules({ machine: "web", protocol: "tcp", hostPort: 8080, address: "10.9.0.2", port: 80 }, "inet");
    expect(pre!.chain).toBe("prerouting");
    expect(wire([newRuleMessage({ ...pre!, comment: "c" })])).toBe(
      `${BEGIN}24020000060a010c0100000000000000010000000d000100737061776e63746c000000000f000200707265726f7574696e670000e801048024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000200000024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100636d700020000280080001000000000108000200000000000c000380060001001f9000002800018008000100666962001c0002800800030000000002080002000000000308000100000000012c00018008000100636d700020000280080001000000000108000200000000000c00038008000100020000002c0001800e000100696d6d6564696174650000001800028008000100000000010c000280080001000a0900022c0001800e000100696d6d6564696174650000001800028008000100000000020c000280060001000050000038000180080001006e6174002c000280080001000000000108000200000000020800030000000001080005000000000208000700000000020800070000026300${END}`,
    );
  });

  test('add rule inet spawnctl guard ip daddr 127.0.0.0/8 meta iiftype != loopback ct state ! established,related drop comment "g"', () => {
    const guard = tableBatch("inet").at(-1)!.msg;
    const comment = guard.attrs!.at(-1)!;
    const msg = { ...guard, attrs: [...guard.attrs!.slice(0, -1), { ...comment, data: Uint8Array.of(0, 2, 0x67, 0) }] };
    expect(wire([msg])).toBe(
      `${BEGIN}fc010000060a010c0100000000000000010000000d000100737061776e63746c000000000a0002006775617264000000c401048024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010002000000340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000001008000400000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001007f00000024000180090001006d6574610000000014000280080002000000000808000100000000012c00018008000100636d700020000280080001000000000108000200000000010c00038006000100040300002000018007000100637400001400028008000200000000000800010000000001440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100060000000c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000000c0003800800010000000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100000000000800070000026700${END}`,
    );
  });
});

const names = (r: RuleSpec) => r.exprs.map((e) => e.name).join(" ");

describe("rules", () => {
  test("an inet table needs meta nfproto before address matches; ip/ip6 tables do not", () => {
    const [inet] = masqueradeRules({ machine: "m", source: "fd00:1::/64" }, "inet");
    expect(inet!.family).toBe("inet");
    expect(names(inet!)).toBe("meta cmp payload cmp payload cmp masq"); // /64 is byte-aligned: no bitwise
    const [split] = masqueradeRules({ machine: "m", source: "fd00:1::/64" }, "split");
    expect(split!.family).toBe("ip6");
    expect(names(split!)).toBe("payload cmp payload cmp masq");
  });

  test("a port forward is a DNAT in prerouting and output; output skips 127.0.0.0/8 unless localhost is asked for", () => {
    const spec = { machine: "web", protocol: "udp" as const, hostPort: 53, address: "10.0.0.2", port: 5353 };
    const plain = portForwardRules(spec, "split");
    expect(plain.map((r) => [r.family, r.chain])).toEqual([
      ["ip", "prerouting"],
      ["ip", "output"],
    ]);
    expect(names(plain[1]!)).toBe("meta cmp payload cmp fib cmp payload cmp immediate immediate nat");
    const local = portForwardRules({ ...spec, localhost: true }, "split");
    expect(local.map((r) => r.chain)).toEqual(["prerouting", "output", "postrouting"]);
    expect(names(local[1]!)).toBe("meta cmp payload cmp fib cmp immediate immediate nat");
    expect(names(local[2]!)).toBe("payload cmp payload cmp meta cmp payload cmp masq");
    for (const r of local) expect(machineOfComment(r.comment)).toBe("web");
  });

  test("bad port forwards are refused with a sentence", () => {
    const spec = { machine: "web", protocol: "tcp" as const, hostPort: 80, address: "10.0.0.2", port: 80 };
    expect(() => portForwardRules({ ...spec, hostPort: 0 }, "inet")).toThrow(/0 is not a port number/);
    expect(() => portForwardRules({ ...spec, port: 70000 }, "inet")).toThrow(/70000 is not a port number/);
    expect(() => portForwardRules({ ...spec, address: "fd00::2", localhost: true }, "inet")).toThrow(/IPv4 only/);
    expect(() => portForwardRules({ ...spec, address: "10.0.0.300" }, "inet")).toThrow(/forwarding tcp port 80 to 10.0.0.300:80 for machine web: "10.0.0.300" is not an IP address/);
    expect(() => masqueradeRules({ machine: "web", source: "0.0.0.0/0" }, "inet")).toThrow(/\/0 prefix/);
  });

  test("comments name the machine and are found again", () => {
    expect(ruleComment("web", "masquerade 10.0.0.0/28")).toBe("spawnctl machine=web masquerade 10.0.0.0/28");
    expect(machineOfComment("spawnctl machine=db-2 port tcp:1->x:2")).toBe("db-2");
    expect(machineOfComment("spawnctl guard: ...")).toBeUndefined();
    expect(machineOfComment("someone else's rule")).toBeUndefined();
    expect(() => ruleComment("a b", "x")).toThrow(/spaces/);
  });

  test("the split layout has an ip and an ip6 table, and the guard only where IPv4 is", () => {
    const parts = tableBatch("split");
    expect(parts.filter((p) => p.msg.type === 0xa00).map((p) => p.family)).toEqual(["ip", "ip6"]);
    expect(parts.filter((p) => p.chainType === "filter").map((p) => p.family)).toEqual(["ip"]);
    expect(parts.at(-1)!.family).toBe("ip");
  });
});

describe("missing kernel features are named", () => {
  test("no nf_tables at all: the batch itself is refused", () => {
    expect(missingFeature(new NetlinkError("NFNL_MSG_BATCH_BEGIN", 95))).toMatch(/CONFIG_NF_TABLES\)/);
  });

  test("no NAT chain type for a family", () => {
    expect(missingFeature(new NetlinkError("NFT_MSG_NEWCHAIN", 2), { chainType: "nat", family: "inet" })).toMatch(/no nftables NAT for family inet/);
    expect(missingFeature(new NetlinkError("NFT_MSG_NEWCHAIN", 2), { chainType: "filter", family: "inet" })).toBeUndefined();
  });

  test("an expression the kernel does not have", () => {
    expect(missingFeature(new NetlinkError("NFT_MSG_NEWRULE", 2), { exprs: ["meta", "cmp", "fib", "nat"] })).toBe(
      "the kernel lacks an nftables expression this rule uses (fib: CONFIG_NFT_FIB_INET, nat: CONFIG_NFT_NAT)",
    );
  });

  test("other errors are left alone", () => {
    expect(missingFeature(new NetlinkError("NFT_MSG_NEWRULE", 1))).toBeUndefined();
    expect(missingFeature(new Error("x"))).toBeUndefined();
  });
});
