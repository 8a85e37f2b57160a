// Netlink wire format and a synchronous netlink socket.
//
// A message is a 16-byte nlmsghdr, a fixed family header (ifinfomsg,
// nfgenmsg, ...) and a list of attributes. An attribute is a 4-byte header
// {len: u16, type: u16} and its payload, padded to 4 bytes; `len` counts the
// header and the payload but not the padding. A nested attribute's payload is
// a list of attributes, and its `len` includes its children's padding.
// Integers are in host byte order unless a family says otherwise (nf_tables
// sends its integers big-endian). Bun runs on little-endian machines only.
//
// The socket is synchronous on purpose: every request is a few hundred bytes
// and the kernel answers in microseconds, so blocking the JS thread is cheaper
// than any event-loop round trip. SO_RCVTIMEO bounds the wait.
import { SpawnctlError } from "../util/errors.ts";
import * as sys from "./sys.ts";
import { concat } from "../util/bytes.ts";
export { concat };

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  // GET requests
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  // NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // flags on an NLMSG_ERROR reply
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NLMSGERR_ATTR_MSG = 1;
const NLMSGERR_ATTR_OFFS = 2;
const NLMSGERR_ATTR_MISS_TYPE = 5;

const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;

function align4(n: number): number {
  return (n + 3) & ~3;
}

// ---------------------------------------------------------------- attributes

/** An attribute to send: raw payload bytes or nested attributes. */
export type Attr = { type: number; data: Uint8Array } | { type: number; nested: Attr[] };

function bytesOf(size: number, write: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  write(new DataView(b.buffer));
  return b;
}

const utf8 = new TextEncoder();

/** Attribute constructors. Type numbers may carry NLA_F_NESTED where a family wants it. */
export const nla = {
  u8: (type: number, v: number): Attr => ({ type, data: Uint8Array.of(v) }),
  u16: (type: number, v: number): Attr => ({ type, data: bytesOf(2, (d) => d.setUint16(0, v, true)) }),
  u32: (type: number, v: number): Attr => ({ type, data: bytesOf(4, (d) => d.setUint32(0, v >>> 0, true)) }),
  be32: (type: number, v: number): Attr => ({ type, data: bytesOf(4, (d) => d.setUint32(0, v >>> 0, false)) }),
  be64: (type: number, v: bigint): Attr => ({ type, data: bytesOf(8, (d) => d.setBigUint64(0, v, false)) }),
  /** A NUL-terminated string, as the kernel's NLA_NUL_STRING and iproute2 expect. */
  str: (type: number, s: string): Attr => ({ type, data: utf8.encode(`${s}\0`) }),
  bytes: (type: number, data: Uint8Array): Attr => ({ type, data }),
  nest: (type: number, nested: Attr[]): Attr => ({ type, nested }),
};

function payloadSize(a: Attr): number {
  if ("data" in a) return a.data.length;
  let n = 0;
  for (const c of a.nested) n += align4(NLA_HDRLEN + payloadSize(c));
  return n;
}

function writeAttrs(attrs: Attr[], out: Uint8Array, view: DataView, offset: number): number {
  for (const a of attrs) {
    const len = NLA_HDRLEN + payloadSize(a);
    if (len > 0xffff) throw new SpawnctlError(`netlink attribute ${a.type & NLA_TYPE_MASK} is too long (${len} bytes)`);
    view.setUint16(offset, len, true);
    view.setUint16(offset + 2, a.type, true);
    if ("data" in a) out.set(a.data, offset + NLA_HDRLEN);
    else writeAttrs(a.nested, out, view, offset + NLA_HDRLEN);
    offset += align4(len); // padding bytes stay zero
  }
  return offset;
}

/** The wire bytes of an attribute list, each attribute padded to 4 bytes. */
export function encodeAttrs(attrs: Attr[]): Uint8Array {
  let size = 0;
  for (const a of attrs) size += align4(NLA_HDRLEN + payloadSize(a));
  const out = new Uint8Array(size);
  writeAttrs(attrs, out, new DataView(out.buffer), 0);
  return out;
}

/** Received attributes, looked up by type (flags masked off). */
export class Attrs {
  private constructor(private readonly list: { type: number; data: Uint8Array }[]) {}

  /** Parse an attribute stream; a truncated trailing attribute is an error. */
  static parse(buf: Uint8Array): Attrs {
    const list: { type: number; data: Uint8Array }[] = [];
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    while (off + NLA_HDRLEN <= buf.length) {
      const len = view.getUint16(off, true);
      if (len < NLA_HDRLEN || off + len > buf.length) throw new SpawnctlError(`malformed netlink attribute at byte ${off} (length ${len})`);
      list.push({ type: view.getUint16(off + 2, true) & NLA_TYPE_MASK, data: buf.subarray(off + NLA_HDRLEN, off + len) });
      off += align4(len);
    }
    return new Attrs(list);
  }

  get(type: number): Uint8Array | undefined {
    return this.list.find((a) => a.type === type)?.data;
  }
  all(type: number): Uint8Array[] {
    return this.list.filter((a) => a.type === type).map((a) => a.data);
  }
  private view(type: number, size: number): DataView | undefined {
    const d = this.get(type);
    return d && d.length >= size ? new DataView(d.buffer, d.byteOffset, d.byteLength) : undefined;
  }
  u8(type: number): number | undefined {
    return this.view(type, 1)?.getUint8(0);
  }
  u32(type: number): number | undefined {
    return this.view(type, 4)?.getUint32(0, true);
  }
  be64(type: number): bigint | undefined {
    return this.view(type, 8)?.getBigUint64(0, false);
  }
  /** A string attribute, without its terminating NUL. */
  str(type: number): string | undefined {
    const d = this.get(type);
    return d ? decodeString(d) : undefined;
  }
  nested(type: number): Attrs | undefined {
    const d = this.get(type);
    return d ? Attrs.parse(d) : undefined;
  }
}

const utf8Decoder = new TextDecoder();

export function decodeString(d: Uint8Array): string {
  const nul = d.indexOf(0);
  return utf8Decoder.decode(nul < 0 ? d : d.subarray(0, nul));
}

// ------------------------------------------------------------------ messages

/** A message to send. `header` is the family's fixed header (ifinfomsg, nfgenmsg, ...). */
export interface Request {
  type: number;
  flags?: number;
  header?: Uint8Array;
  attrs?: Attr[];
}

/** A received message; payload is everything after the nlmsghdr. */
export interface Message {
  type: number;
  flags: number;
  seq: number;
  portId: number;
  payload: Uint8Array;
}

/** nlmsghdr + header + attributes. The flags are sent as given (no NLM_F_REQUEST added). */
export function encodeMessage(req: Request, seq: number, portId = 0): Uint8Array {
  const header = req.header ?? new Uint8Array(0);
  const attrs = encodeAttrs(req.attrs ?? []);
  const len = NLMSG_HDRLEN + align4(header.length) + attrs.length;
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, req.type, true);
  v.setUint16(6, req.flags ?? 0, true);
  v.setUint32(8, seq >>> 0, true);
  v.setUint32(12, portId >>> 0, true);
  out.set(header, NLMSG_HDRLEN);
  out.set(attrs, NLMSG_HDRLEN + align4(header.length));
  return out;
}

/** Split one received datagram into its messages. */
export function decodeMessages(buf: Uint8Array): Message[] {
  const out: Message[] = [];
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = v.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new SpawnctlError(`malformed netlink message at byte ${off} (length ${len})`);
    out.push({
      type: v.getUint16(off + 4, true),
      flags: v.getUint16(off + 6, true),
      seq: v.getUint32(off + 8, true),
      portId: v.getUint32(off + 12, true),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

// -------------------------------------------------------------------- errors

/**
 * The kernel refused a request. The message reads "RTM_NEWLINK: File exists
 * (kernel: ...)"; callers wrap it with what they were doing. `request` is the
 * message type's name and `index` its position in a batch.
 */
export class NetlinkError extends SpawnctlError {
  readonly request: string;
  readonly kernelMessage?: string;
  readonly index: number;
  constructor(request: string, errno: number, opts: { kernelMessage?: string; index?: number } = {}) {
    super(`${request}: ${sys.strerror(errno)}${opts.kernelMessage ? ` (kernel: ${opts.kernelMessage})` : ""}`, { errno, syscall: request });
    this.name = "NetlinkError";
    this.request = request;
    this.kernelMessage = opts.kernelMessage;
    this.index = opts.index ?? 0;
  }
}

/** errno and extended-ack text of an NLMSG_ERROR (or NLMSG_DONE) payload. */
export function parseError(msg: Message): { errno: number; kernelMessage?: string } {
  const v = new DataView(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength);
  const raw = msg.payload.length >= 4 ? v.getInt32(0, true) : 0;
  const errno = raw < 0 ? -raw : 0;
  if (!(msg.flags & NLM_F.ACK_TLVS)) return { errno };
  // NLMSG_DONE: int error, then TLVs. NLMSG_ERROR: int error, the request's
  // nlmsghdr, the request's payload unless capped (NETLINK_CAP_ACK), then TLVs.
  let off = 4;
  if (msg.type === NLMSG_ERROR) {
    const origLen = msg.payload.length >= 20 ? v.getUint32(4, true) : NLMSG_HDRLEN;
    off += msg.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align4(origLen);
  }
  if (off > msg.payload.length) return { errno };
  const tlv = Attrs.parse(msg.payload.subarray(off));
  const text = tlv.str(NLMSGERR_ATTR_MSG);
  if (text) return { errno, kernelMessage: text };
  const missing = tlv.u32(NLMSGERR_ATTR_MISS_TYPE);
  if (missing !== undefined) return { errno, kernelMessage: `missing attribute ${missing}` };
  const offset = tlv.u32(NLMSGERR_ATTR_OFFS);
  if (offset !== undefined) return { errno, kernelMessage: `rejected the attribute at byte ${offset}` };
  return { errno };
}

// -------------------------------------------------------------------- socket

/** A network namespace: a path (/run/netns/x, /proc/PID/ns/net), an open fd, or a process. */
export type NetnsRef = string | { fd: number } | { pid: number };

/** Run fn with an fd for the namespace, opening and closing it if needed. */
export function withNetnsFd<T>(ns: NetnsRef, fn: (fd: number) => T): T {
  if (typeof ns === "object" && "fd" in ns) return fn(ns.fd);
  const path = typeof ns === "string" ? ns : `/proc/${ns.pid}/ns/net`;
  const fd = sys.openReadOnly(path);
  try {
    return fn(fd);
  } finally {
    sys.close(fd);
  }
}

export interface SocketOptions {
  /** Open the socket inside this network namespace; it stays there. */
  netns?: NetnsRef;
  /** Names message types in errors ("RTM_NEWLINK"). */
  typeName?: (type: number) => string;
  /** How long to wait for each answer from the kernel. */
  timeoutMs?: number;
}

const RECEIVE_BUFFER = 64 * 1024; // the kernel caps dump datagrams at 32 KiB
const DEFAULT_TIMEOUT_MS = 10_000;
const DUMP_RETRIES = 5;

export class NetlinkSocket {
  readonly protocol: number;
  /** the socket itself, for a request the shim makes on it */
  fd: number;
  private seq = 0;
  private readonly buf = new Uint8Array(RECEIVE_BUFFER);
  private readonly typeName: (type: number) => string;
  private readonly timeoutMs: number;

  private constructor(fd: number, protocol: number, opts: SocketOptions) {
    this.fd = fd;
    this.protocol = protocol;
    this.typeName = opts.typeName ?? ((t) => `netlink message ${t}`);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  static open(protocol: number, opts: SocketOptions = {}): NetlinkSocket {
    const create = () => sys.socket(sys.AF_NETLINK, sys.SOCK_RAW, protocol);
    const fd = opts.netns === undefined ? create() : withNetnsFd(opts.netns, (ns) => sys.inNetns(ns, create));
    try {
      sys.bindNetlink(fd);
      sys.setReceiveTimeout(fd, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      // Both are best effort (Linux 4.2 and 4.12): error replies then carry
      // only the request's header, plus the kernel's own explanation.
      sys.setsockoptInt(fd, sys.SOL_NETLINK, NETLINK_CAP_ACK, 1);
      sys.setsockoptInt(fd, sys.SOL_NETLINK, NETLINK_EXT_ACK, 1);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return new NetlinkSocket(fd, protocol, opts);
  }

  close(): void {
    if (this.fd >= 0) sys.close(this.fd);
    this.fd = -1;
  }

  /** Send one request and wait for the kernel's acknowledgement. */
  request(req: Request): void {
    this.requestAll([req]);
  }

  /**
   * Send several requests in one datagram (an nfnetlink batch) and wait until
   * each is acknowledged. Requests marked noAck (batch delimiters) are not
   * waited for, but an error naming them still fails the call. Throws the
   * first error, with `index` pointing into reqs.
   */
  requestAll(reqs: (Request & { noAck?: boolean })[]): void {
    const seqs = reqs.map(() => this.nextSeq());
    const datagram = concat(reqs.map((r, i) => encodeMessage({ ...r, flags: (r.flags ?? 0) | NLM_F.REQUEST | (r.noAck ? 0 : NLM_F.ACK) }, seqs[i]!)));
    const pending = new Set(seqs.filter((_, i) => !reqs[i]!.noAck));
    const indexOf = new Map(seqs.map((s, i) => [s, i]));
    this.send(datagram, reqs[0]!.type);
    while (pending.size) {
      for (const m of this.receiveBatch(reqs[0]!.type)) {
        const i = indexOf.get(m.seq);
        if (i === undefined || m.type !== NLMSG_ERROR) continue; // stale, or an echo we did not ask for
        const { errno, kernelMessage } = parseError(m);
        if (errno) throw new NetlinkError(this.typeName(reqs[i]!.type), errno, { kernelMessage, index: i });
        pending.delete(m.seq);
      }
    }
  }

  /** A GET for one object: the kernel's reply message. */
  get(req: Request): Message {
    const seq = this.nextSeq();
    this.send(encodeMessage({ ...req, flags: (req.flags ?? 0) | NLM_F.REQUEST | NLM_F.ACK }, seq), req.type);
    let reply: Message | undefined;
    for (;;) {
      for (const m of this.receiveBatch(req.type)) {
        if (m.seq !== seq) continue;
        if (m.type !== NLMSG_ERROR) {
          reply ??= m;
          continue;
        }
        const { errno, kernelMessage } = parseError(m);
        if (errno) throw new NetlinkError(this.typeName(req.type), errno, { kernelMessage });
        if (!reply) throw new NetlinkError(this.typeName(req.type), 61 /* ENODATA */, { kernelMessage: "acknowledged without a reply" });
        return reply;
      }
    }
  }

  /** A dump: every message up to NLMSG_DONE. Retried when the kernel reports the dump was interrupted by a change. */
  dump(req: Request): Message[] {
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeq();
      this.send(encodeMessage({ ...req, flags: (req.flags ?? 0) | NLM_F.REQUEST | NLM_F.DUMP }, seq), req.type);
      const out: Message[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.receiveBatch(req.type)) {
          if (m.seq !== seq) continue;
          if (m.flags & NLM_F.DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) {
            const { errno, kernelMessage } = parseError(m);
            if (errno) throw new NetlinkError(this.typeName(req.type), errno, { kernelMessage });
            done = true;
            break;
          }
          if (m.type !== NLMSG_NOOP) out.push(m);
        }
      }
      if (!interrupted) return out;
      // NLM_F_DUMP_INTR: the table changed while it was being dumped, so
      // the listing may have missed or repeated entries.
      if (attempt === DUMP_RETRIES) throw new NetlinkError(this.typeName(req.type), 4 /* EINTR */, { kernelMessage: "the dump kept changing while it was read" });
    }
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private send(datagram: Uint8Array, type: number): void {
    if (this.fd < 0) throw new SpawnctlError(`${this.typeName(type)}: the netlink socket is closed`);
    sys.sendToKernel(this.fd, datagram);
  }

  private receiveBatch(type: number): Message[] {
    const n = sys.receive(this.fd, this.buf);
    if (n === -sys.EAGAIN) throw new NetlinkError(this.typeName(type), sys.EAGAIN, { kernelMessage: `no answer within ${this.timeoutMs / 1000} s` });
    if (n > this.buf.length) throw new SpawnctlError(`${this.typeName(type)}: a ${n}-byte netlink reply did not fit the ${this.buf.length}-byte buffer`);
    // a copy: the buffer is reused for the next datagram, the messages may be kept
    return decodeMessages(this.buf.slice(0, n));
  }
}
