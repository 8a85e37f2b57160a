// The C supervisor executable (the shim's source built with -DNSH_SUPERVISOR),
// embedded in the binary. It is handed to a child as fd 3 and run as
// /proc/self/fd/3, so it never needs a file on disk (or an exec-able /tmp).
import { readFileSync } from "node:fs";
import supervisorFile from "../../build/nsh-supervisor" with { type: "file" };
import { memfdWith } from "../sys/ffi.ts";

/** An fd holding the supervisor executable, to pass as the child's fd 3. */
export function supervisorFd(): number {
  return memfdWith("nsh-supervisor", readFileSync(supervisorFile));
}

/**
 * The DHCP responder of a foreground `spawnctl run` with a veth or zone: the
 * supervisor in --dhcp-only mode, which dies with us (PDEATHSIG).
 */
export function startDhcpResponder(spec: string, hostname: string): { kill(): void } {
  const fd = supervisorFd();
  const p = Bun.spawn(["/proc/self/fd/3", "--dhcp-only", "--dhcp", spec, "--dhcp-hostname", hostname], {
    stdio: ["ignore", "ignore", "inherit", fd] as never,
    env: {},
  });
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
