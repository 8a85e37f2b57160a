// The C supervisor executable (the shim's source built with -DNSH_SUPERVISOR),
// embedded in the binary. It is handed to a child as fd 3 and run as
// /proc/self/fd/3, so it never needs a file on disk (or an exec-able /tmp).
import { closeSync, readFileSync, readSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import supervisorFile from "../../build/nsh-supervisor" with { type: "file" };
import { memfdWith, pipe } from "../sys/ffi.ts";

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
  const [r, w] = pipe();
  const p = Bun.spawn(["/proc/self/fd/3", "--dhcp-only", "--dhcp", spec, "--dhcp-hostname", hostname], {
    stdio: ["ignore", w, "inherit", fd] as never,
    env: {},
  });
  p.unref();
  closeSync(w);
  closeSync(fd);
  // it says "r" once it listens: the container may ask right away
  const buf = Buffer.alloc(1);
  let n = 0;
  try {
    n = readSync(r, buf, 0, 1, null);
  } finally {
    closeSync(r);
  }
  if (n !== 1) throw new SpawnctlError(`starting the DHCP responder on ${spec.split(",")[0]} failed`);
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
