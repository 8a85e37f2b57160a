// The netlink wire format: attribute padding and nesting, message framing,
// parsing, and the kernel's error replies with extended acks.
import { describe, expect, test } from "bun:test";
import { Attrs, NLA_F_NESTED, NLM_F, NLMSG_DONE, NLMSG_ERROR, NetlinkError, decodeMessages, encodeAttrs, encodeMessage, nla, parseError } from "../../../src/net/netlink.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));

describe("attributes", () => {
  test("a string carries its NUL and is padded to 4 bytes; the length excludes the padding", () => {
    expect(hex(encodeAttrs([nla.str(3, "lo")]))).toBe("07000300" + "6c6f00" + "00");
  });

  test("integers are host order (little-endian), nf_tables' big-endian ones are explicit", () => {
    expect(hex(encodeAttrs([nla.u16(1, 0x1234)]))).toBe("06000100" + "3412" + "0000");
    expect(hex(encodeAttrs([nla.u32(2, 0x01020304)]))).toBe("08000200" + "04030201");
    expect(hex(encodeAttrs([nla.be32(2, 0x01020304)]))).toBe("08000200" + "01020304");
    expect(hex(encodeAttrs([nla.be64(3, 0x0102030405060708n)]))).toBe("0c000300" + "0102030405060708");
  });

  test("a nest's length includes its children's padding", () => {
    const b = encodeAttrs([nla.nest(18, [nla.str(1, "veth"), nla.u8(2, 7)])]);
    expect(hex(b)).toBe("18001200" + "09000100" + "7665746800" + "000000" + "05000200" + "07" + "000000");
  });

  test("NLA_F_NESTED travels in the type field and is masked off when parsing", () => {
    const b = encodeAttrs([nla.nest(52 | NLA_F_NESTED, [nla.str(53, "x")])]);
    expect(hex(b.subarray(0, 4))).toBe("0c003480");
    const a = Attrs.parse(b);
    expect(a.nested(52)?.str(53)).toBe("x");
  });

  test("an empty attribute is just the header", () => {
    expect(hex(encodeAttrs([nla.bytes(9, new Uint8Array(0))]))).toBe("04000900");
  });

  test("parsing reads every type accessor and keeps repeated attributes", () => {
    const a = Attrs.parse(encodeAttrs([nla.u8(1, 200), nla.u32(3, 70000), nla.str(6, "one"), nla.str(6, "two"), nla.be64(7, 9n), nla.u16(8, 1)]));
    expect([a.u8(1), a.u32(3), a.be64(7)]).toEqual([200, 70000, 9n]);
    expect(a.str(6)).toBe("one");
    expect(a.all(6).map((d) => Buffer.from(d).toString())).toEqual(["one\0", "two\0"]);
    expect(a.get(9)).toBeUndefined();
    expect(a.u32(8)).toBeUndefined(); // too short for a u32
  });

  test("a truncated attribute is an error, not a silent short read", () => {
    expect(() => Attrs.parse(bytes("08000100 0102"))).toThrow(/malformed netlink attribute at byte 0/);
    expect(() => Attrs.parse(bytes("02000100"))).toThrow(/length 2/);
  });
});

describe("messages", () => {
  test("nlmsghdr, family header and attributes, byte for byte", () => {
    // RTM_GETLINK for "lo": an ifinfomsg of zeros and IFLA_IFNAME
    const m = encodeMessage({ type: 18, flags: NLM_F.REQUEST | NLM_F.ACK, header: new Uint8Array(16), attrs: [nla.str(3, "lo")] }, 0x01020304, 0);
    expect(hex(m)).toBe("28000000" + "1200" + "0500" + "04030201" + "00000000" + "00".repeat(16) + "070003006c6f0000");
  });

  test("a header that is not a multiple of 4 is padded before the attributes", () => {
    const m = encodeMessage({ type: 1, header: bytes("aabbcc"), attrs: [nla.u8(1, 1)] }, 1);
    expect(hex(m.subarray(16))).toBe("aabbcc00" + "05000100" + "01000000");
    expect(m.length).toBe(28);
  });

  test("several messages in one datagram are split at their aligned lengths", () => {
    const a = encodeMessage({ type: 16, flags: 2, header: bytes("01") }, 7, 99);
    const b = encodeMessage({ type: NLMSG_DONE, flags: 2, header: bytes("00000000") }, 7, 99);
    const msgs = decodeMessages(new Uint8Array([...a, ...b]));
    expect(msgs.map((m) => [m.type, m.flags, m.seq, m.portId, m.payload.length])).toEqual([
      [16, 2, 7, 99, 4],
      [NLMSG_DONE, 2, 7, 99, 4],
    ]);
  });

  test("a message claiming more bytes than the datagram holds is an error", () => {
    const m = encodeMessage({ type: 16 }, 1);
    m[0] = 200;
    expect(() => decodeMessages(m)).toThrow(/malformed netlink message/);
  });
});

describe("error replies", () => {
  /** An NLMSG_ERROR as the kernel builds it: int error, the request (or just its header), then TLVs. */
  function errorReply(errno: number, opts: { capped?: boolean; tlvs?: Uint8Array } = {}): Uint8Array {
    const request = encodeMessage({ type: 16, flags: NLM_F.REQUEST | NLM_F.ACK, header: new Uint8Array(16), attrs: [nla.str(3, "ve-web")] }, 5);
    const err = new Uint8Array(4);
    new DataView(err.buffer).setInt32(0, -errno, true);
    const body = new Uint8Array([...err, ...(opts.capped ? request.subarray(0, 16) : request), ...(opts.tlvs ?? [])]);
    return encodeMessage({ type: NLMSG_ERROR, flags: (opts.capped ? NLM_F.CAPPED : 0) | (opts.tlvs ? NLM_F.ACK_TLVS : 0), header: body }, 5);
  }

  test("an acknowledgement is error 0", () => {
    const [m] = decodeMessages(errorReply(0, { capped: true }));
    expect(parseError(m!)).toEqual({ errno: 0 });
  });

  test("the extended ack message follows a capped request header", () => {
    const [m] = decodeMessages(errorReply(95, { capped: true, tlvs: encodeAttrs([nla.str(1, "Unknown device type")]) }));
    expect(parseError(m!)).toEqual({ errno: 95, kernelMessage: "Unknown device type" });
  });

  test("the extended ack message follows the whole request when the kernel did not cap it", () => {
    const [m] = decodeMessages(errorReply(17, { tlvs: encodeAttrs([nla.str(1, "exists")]) }));
    expect(parseError(m!)).toEqual({ errno: 17, kernelMessage: "exists" });
  });

  test("without a message, a missing attribute or an offset is named", () => {
    const [miss] = decodeMessages(errorReply(22, { capped: true, tlvs: encodeAttrs([nla.u32(5, 3)]) }));
    expect(parseError(miss!).kernelMessage).toBe("missing attribute 3");
    const [off] = decodeMessages(errorReply(22, { capped: true, tlvs: encodeAttrs([nla.u32(2, 36)]) }));
    expect(parseError(off!).kernelMessage).toBe("rejected the attribute at byte 36");
  });

  test("NLMSG_DONE carries an int error and its own TLVs", () => {
    const err = new Uint8Array(4);
    new DataView(err.buffer).setInt32(0, -4, true);
    const done = encodeMessage({ type: NLMSG_DONE, flags: NLM_F.MULTI | NLM_F.ACK_TLVS, header: new Uint8Array([...err, ...encodeAttrs([nla.str(1, "dump interrupted")])]) }, 9);
    expect(parseError(decodeMessages(done)[0]!)).toEqual({ errno: 4, kernelMessage: "dump interrupted" });
  });

  test("a NetlinkError reads as request: strerror (kernel: message)", () => {
    const e = new NetlinkError("RTM_NEWLINK", 17, { kernelMessage: "foo" });
    expect(e.message).toBe("RTM_NEWLINK: File exists (kernel: foo)");
    expect(e.errno).toBe(17);
    expect(e.syscall).toBe("RTM_NEWLINK");
    expect(new NetlinkError("NFT_MSG_NEWRULE", 2).message).toBe("NFT_MSG_NEWRULE: No such file or directory");
  });
});
