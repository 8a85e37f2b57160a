// Throwaway network namespaces for the netlink tests. Everything the tests
// create lives in these namespaces; the host's own links are never touched.
// A namespace is pinned by a bind mount (as `ip netns add` does, but with
// util-linux's unshare, which every Debian system has) and entered for
// commands with nsenter.
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { IS_ROOT, needs } from "../../helpers.ts";

export const DIR = "/run/spawnctl-test-netns";
const PEER = `${import.meta.dir}/peer.ts`;

function which(cmd: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).exitCode === 0;
}

export const HAVE_TOOLS = which("unshare") && which("nsenter") && which("umount") && which("busybox");

/** A test that needs root plus unshare, nsenter and busybox; fails instead of skipping when CI=true. */
export const netTest = needs("root, unshare/nsenter (util-linux) and busybox (ping, nc)", IS_ROOT && HAVE_TOOLS);

let counter = 0;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class Netns {
  readonly path: string;
  private constructor(readonly name: string) {
    this.path = `${DIR}/${name}`;
  }

  /** A new, empty network namespace (only lo, down). */
  static create(tag: string): Netns {
    mkdirSync(DIR, { recursive: true });
    const ns = new Netns(`${tag}-${process.pid}-${++counter}`);
    writeFileSync(ns.path, "");
    const p = Bun.spawnSync(["unshare", `--net=${ns.path}`, "true"], { stderr: "pipe" });
    if (p.exitCode !== 0) {
      rmSync(ns.path, { force: true });
      throw new Error(`unshare --net=${ns.path}: ${p.stderr.toString().trim()}`);
    }
    return ns;
  }

  /** Unpin the namespace; the kernel frees it, and the links in it, once nothing uses it. */
  remove(): void {
    Bun.spawnSync(["umount", "-l", this.path], { stderr: "ignore" });
    rmSync(this.path, { force: true });
  }

  run(argv: string[], timeoutMs = 10_000): Run {
    const p = Bun.spawnSync(["nsenter", `--net=${this.path}`, "--", ...argv], { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
    return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  }

  ping(address: string): Run {
    return this.run(["busybox", "ping", "-c", "1", "-W", "2", address]);
  }

  /** A TCP server answering each connection with the client's address; stop it with kill(). */
  async serve(port: number, host = "0.0.0.0"): Promise<{ kill(): void }> {
    const p = Bun.spawn(["nsenter", `--net=${this.path}`, "--", process.execPath, PEER, "serve", String(port), host], { stdout: "pipe", stderr: "inherit" });
    const reader = p.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    if (!new TextDecoder().decode(value).includes("ready")) {
      p.kill();
      throw new Error(`the test server on port ${port} in ${this.name} did not start`);
    }
    return { kill: () => p.kill() };
  }

  /** Connect and return what the server said (its view of our address), or undefined on failure. */
  connect(host: string, port: number): string | undefined {
    const r = this.run([process.execPath, PEER, "connect", host, String(port)]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }
}

/** Run fn with fresh namespaces and remove them afterwards, whatever happens. */
export async function withNetns<T>(tags: string[], fn: (...ns: Netns[]) => T | Promise<T>): Promise<T> {
  const created: Netns[] = [];
  try {
    for (const t of tags) created.push(Netns.create(t));
    return await fn(...created);
  } finally {
    for (const ns of created) ns.remove();
  }
}

/** Namespaces this process left behind (should be none). */
export function leftoverNetns(): string[] {
  if (!existsSync(DIR)) return [];
  const mine = readdirSync(DIR).filter((f) => f.includes(`-${process.pid}-`));
  try {
    rmdirSync(DIR); // only when empty: another test run may be using it
  } catch {
    /* not empty */
  }
  return mine;
}
