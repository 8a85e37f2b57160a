// The C supervisor executable (the shim's source built with -DNSH_SUPERVISOR),
// embedded in the binary. It is handed to a child as fd 3 and run as
// /proc/self/fd/3, so it never needs a file on disk (or an exec-able /tmp).
import { closeSync, readFileSync, readSync, writeSync } from "node:fs";
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
export interface DhcpResponder {
  /** the container's link exists now: bind to it, and return once it listens */
  go(): void;
  kill(): void;
}

/**
 * The DHCP responder of a foreground `spawnctl run` (the supervisor binary in
 * --dhcp-only mode). Started early, while the container is still being set
 * up, so that its start overlaps with ours; it binds to the link only after
 * go().
 */
export function startDhcpResponder(spec: string, hostname: string): DhcpResponder {
  const fd = supervisorFd();
  const [r, w] = pipe();
  const [goR, goW] = pipe();
  const p = Bun.spawn(["/proc/self/fd/3", "--dhcp-only", "--dhcp", spec, "--dhcp-hostname", hostname], {
    stdio: [goR, w, "inherit", fd] as never,
    env: {},
  });
  p.unref();
  closeSync(w);
  closeSync(goR);
  closeSync(fd);
  let open = true;
  const closePipes = () => {
    if (!open) return;
    open = false;
    closeSync(r);
    closeSync(goW);
  };
  return {
    go() {
      if (!open) throw new SpawnctlError("the DHCP responder was already started or stopped");
      // it says "r" once it listens: the container may ask right away
      const buf = Buffer.alloc(1);
      let n = 0;
      try {
        writeSync(goW, "g");
        n = readSync(r, buf, 0, 1, null);
      } catch {
        n = 0;
      } finally {
        closePipes();
      }
      if (n !== 1) throw new SpawnctlError(`starting the DHCP responder on ${spec.split(",")[0]} failed`);
    },
    kill() {
      try {
        p.kill(9);
      } catch {
        /* gone */
      }
      closePipes();
    },
  };
}
