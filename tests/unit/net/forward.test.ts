// The userspace port forwarder (where the kernel has no nf_tables): TCP and
// UDP through it to servers on the loopback, no root needed.
import { afterAll, describe, expect, test } from "bun:test";
import { connect, createServer } from "node:net";
import { createSocket } from "node:dgram";
import { forwardPorts } from "../../../src/net/forward.ts";

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const closers: Array<() => void> = [];
afterAll(() => {
  for (const c of closers) c();
});

describe("forwardPorts", () => {
  test("TCP: a request, a half-closed client, the whole answer back", async () => {
    const target = createServer({ allowHalfOpen: true }, (c) => {
      let got = "";
      c.on("data", (d) => (got += d));
      // answers only once the client has shut its side, as an HTTP/1.0 server may
      c.on("end", () => c.end(`echo:${got}`));
    });
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
    closers.push(() => target.close());
    const port = await freePort();
    const f = await forwardPorts([{ protocol: "tcp", hostPort: port, containerPort: (target.address() as { port: number }).port }], "127.0.0.1", "127.0.0.1");
    closers.push(() => f.close());
    const reply = await new Promise<string>((resolve, reject) => {
      let text = "";
      const c = connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => c.end("hello"));
      c.on("data", (d) => (text += d));
      c.on("end", () => resolve(text));
      c.on("error", reject);
    });
    expect(reply).toBe("echo:hello");
  });

  test("UDP: datagrams both ways, per client", async () => {
    const target = createSocket("udp4");
    target.on("message", (m, from) => target.send(Buffer.from(`echo:${m}`), from.port, from.address));
    await new Promise<void>((r) => target.bind(0, "127.0.0.1", () => r()));
    closers.push(() => target.close());
    const port = await freePort();
    const f = await forwardPorts([{ protocol: "udp", hostPort: port, containerPort: target.address().port }], "127.0.0.1", "127.0.0.1");
    closers.push(() => f.close());
    const ask = (text: string) =>
      new Promise<string>((resolve) => {
        const c = createSocket("udp4");
        c.on("message", (m) => {
          c.close();
          resolve(String(m));
        });
        c.send(text, port, "127.0.0.1");
      });
    expect(await Promise.all([ask("a"), ask("b")])).toEqual(["echo:a", "echo:b"]);
  });

  test("a port that is taken is an error naming it", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    closers.push(() => busy.close());
    const port = (busy.address() as { port: number }).port;
    await expect(forwardPorts([{ protocol: "tcp", hostPort: port, containerPort: 80 }], "127.0.0.1", "127.0.0.1")).rejects.toThrow(new RegExp(`^forwarding tcp port ${port} to 127.0.0.1:80: `));
  });
});
