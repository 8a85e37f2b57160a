// The C supervisor executable (the shim's source built with -DNSH_SUPERVISOR),
// embedded in the binary. It is handed to a child as fd 3 and run as
// /proc/self/fd/3, so it never needs a file on disk (or an exec-able /tmp).
import { closeSync, readFileSync } from "node:fs";
import supervisorFile from "../../build/nsh-supervisor" with { type: "file" };
import { sealedMemfd } from "../sys/ffi.ts";

/** An fd holding the supervisor executable, to pass as the child's fd 3. */
export function supervisorFd(): number {
  return sealedMemfd("nsh-supervisor", readFileSync(supervisorFile));
}

/**
 * The DHCP responder of a foreground `spawnctl run` with a veth or zone: the
 * supervisor binary in --dhcp-only mode, serving `sock` (a UDP socket bound
 * to port 67 on the link: requests the container sent before the responder
 * ran wait in it). It dies with us (PDEATHSIG); kill() ends it sooner.
 */
export interface DhcpResponder {
  kill(): void;
}

export function startDhcpResponder(spec: string, hostname: string, sock: number): DhcpResponder {
  const fd = supervisorFd();
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(["/proc/self/fd/3", "--dhcp-only", "--dhcp", spec, "--dhcp-hostname", hostname, "--parent", String(process.pid)], {
      stdio: [sock, "ignore", "inherit", fd] as never,
      env: {},
    });
  } finally {
    closeSync(fd);
  }
  p.unref();
  return {
    kill() {
      try {
        p.kill(9);
      } catch {
        /* gone */
      }
    },
  };
}
