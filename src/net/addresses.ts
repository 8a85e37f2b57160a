// The addresses a network namespace has, read from a process in it through
// /proc (no netlink socket in the namespace needed).
import { readFileSync } from "node:fs";

/** IPv4/IPv6 addresses in the network namespace of process `pid`, but loopback's and link-local ones. */
export function namespaceAddresses(pid: number): string[] {
  try {
    // /proc/PID/net/* shows the namespace of PID; fib_trie lists the local IPv4 addresses
    const trie = readFileSync(`/proc/${pid}/net/fib_trie`, "utf8");
    const out = new Set<string>();
    const lines = trie.split("\n");
    for (let i = 1; i < lines.length; i++) {
      if (/\/32 host LOCAL/.test(lines[i]!)) {
        const m = /\|--\s+(\S+)/.exec(lines[i - 1]!);
        if (m && !m[1]!.startsWith("127.")) out.add(m[1]!);
      }
    }
    const v6 = readFileSync(`/proc/${pid}/net/if_inet6`, "utf8");
    for (const l of v6.split("\n")) {
      const f = l.trim().split(/\s+/);
      if (f.length < 6 || f[5] === "lo") continue;
      // link-local addresses say nothing a user can reach the machine at
      if (f[0]!.startsWith("fe80")) continue;
      out.add(f[0]!.match(/.{4}/g)!.join(":").replace(/(^|:)0{1,3}/g, "$1").replace(/(:0)+:/, "::"));
    }
    return [...out];
  } catch {
    return [];
  }
}
