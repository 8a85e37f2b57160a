// Port forwards without nf_tables: a small userspace TCP/UDP forwarder, run
// as `spawnctl __forward` next to a machine whose kernel has no nf_tables
// (or with SPAWNCTL_NFTABLES=off). It listens on the host's port on every
// address (so the host's own addresses and 127.0.0.1 work, as with the
// nftables rules) and connects to the container's address for each TCP
// connection, or keeps one upstream socket per UDP client. It ends with the
// process it watches (the machine's supervisor, or `spawnctl run`) and when
// the machine's network is torn down.
import { createServer, connect, type Server, type Socket } from "node:net";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { closeSync, readSync } from "node:fs";
import type { PortForward } from "../settings/parse.ts";
import { pipe } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { self } from "../util/self.ts";

/** How long a UDP client's upstream socket lives without traffic. */
const UDP_IDLE_MS = 60_000;

export interface Forwarding {
  close(): void;
}

function tcp(hostPort: number, address: string, port: number, listenOn: string): Promise<Server> {
  // half-open connections stay: a client that has sent its request and shut
  // its side still gets the answer (pipe() passes each end on)
  const server = createServer({ allowHalfOpen: true }, (client: Socket) => {
    const upstream = connect({ host: address, port, allowHalfOpen: true });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(hostPort, listenOn, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function udp(hostPort: number, address: string, port: number, listenOn: string): Promise<UdpSocket> {
  const sock = createSocket("udp4");
  const sessions = new Map<string, { up: UdpSocket; timer?: ReturnType<typeof setTimeout> }>();
  sock.on("message", (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let s = sessions.get(key);
    if (!s) {
      const up = createSocket("udp4");
      up.on("message", (reply) => sock.send(reply, from.port, from.address));
      up.on("error", () => {
        up.close();
        sessions.delete(key);
      });
      s = { up };
      sessions.set(key, s);
    }
    const session = s;
    clearTimeout(session.timer);
    session.timer = setTimeout(() => {
      session.up.close();
      sessions.delete(key);
    }, UDP_IDLE_MS);
    session.up.send(msg, port, address);
  });
  sock.on("close", () => {
    for (const s of sessions.values()) {
      clearTimeout(s.timer);
      s.up.close();
    }
    sessions.clear();
  });
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(hostPort, listenOn, () => {
      sock.off("error", reject);
      resolve(sock);
    });
  });
}

/**
 * Forward each port to `address` (the container's); resolves once every
 * listener is bound (an error names the port that could not be).
 */
export async function forwardPorts(ports: PortForward[], address: string, listenOn = "0.0.0.0"): Promise<Forwarding> {
  const open: Array<Server | UdpSocket> = [];
  const close = () => {
    for (const o of open) o.close();
    open.length = 0;
  };
  try {
    for (const p of ports) {
      try {
        open.push(p.protocol === "tcp" ? await tcp(p.hostPort, address, p.containerPort, listenOn) : await udp(p.hostPort, address, p.containerPort, listenOn));
      } catch (e) {
        throw new SpawnctlError(`forwarding ${p.protocol} port ${p.hostPort} to ${address}:${p.containerPort}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    close();
    throw e;
  }
  return { close };
}

/** `spawnctl __forward WATCH_PID ADDRESS PROTO:HOSTPORT:PORT...`: says "ready" (or why not) on stdout, then forwards until WATCH_PID is gone. */
export async function forwardMain(argv: string[]): Promise<number> {
  const [watch, address, ...specs] = argv;
  const ports = specs.map((s): PortForward => {
    const [protocol, hostPort, containerPort] = s.split(":");
    return { protocol: protocol === "udp" ? "udp" : "tcp", hostPort: Number(hostPort), containerPort: Number(containerPort) };
  });
  let f: Forwarding;
  try {
    f = await forwardPorts(ports, address!);
  } catch (e) {
    process.stdout.write(`${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write("ready\n");
  const stop = () => {
    f.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setInterval(() => {
    try {
      process.kill(Number(watch), 0);
    } catch {
      stop();
    }
  }, 500);
  return new Promise<number>(() => {});
}

/**
 * Start `spawnctl __forward` for a machine at `address`, watching `watchPid`;
 * returns its pid once it listens, or throws why it could not.
 */
export function startForwarder(ports: PortForward[], address: string, watchPid: number): number {
  const [r, w] = pipe();
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn([...self().argv, "__forward", String(watchPid), address, ...ports.map((x) => `${x.protocol}:${x.hostPort}:${x.containerPort}`)], {
      stdio: ["ignore", w, "inherit"] as never,
      env: {},
    });
  } finally {
    closeSync(w);
  }
  p.unref();
  // one line: "ready", or the error
  let line = "";
  try {
    const buf = Buffer.alloc(512);
    for (;;) {
      const n = readSync(r, buf, 0, buf.length, null);
      if (n <= 0) break;
      line += buf.subarray(0, n).toString();
      if (line.includes("\n")) break;
    }
  } finally {
    closeSync(r);
  }
  line = line.trim();
  if (line !== "ready") {
    try {
      p.kill(9);
    } catch {
      /* gone */
    }
    throw new SpawnctlError(line || "the userspace port forwarder did not start");
  }
  return p.pid;
}
