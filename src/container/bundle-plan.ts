// The parts of an OCI bundle (--oci-bundle=, see src/oci/bundle.ts) that no
// option expresses, as plan ops: namespaced sysctls, the domain name, extra
// device nodes, masked and read-only paths, the umask; and its hooks, which
// run on the host.
import type { BundleHook, Settings } from "../settings/types.ts";
import { MOUNT_ATTR, MS, S_IF, makedev } from "../sys/consts.ts";
import type { Op } from "../sys/plan.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { RunContext } from "./build-plan.ts";

/** Sysctls, written once /proc is mounted and before /proc/sys turns read-only. */
export function bundleSysctlOps(s: Settings): Op[] {
  return (s.bundle?.sysctl ?? []).map(([k, v]): Op => ({
    kind: "write", path: `/proc/sys/${k.replace(/\./g, "/")}`, data: v, mode: 0, inRoot: true,
  }));
}

function parents(p: string): string[] {
  const parts = p.split("/").filter(Boolean);
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(`/${parts.slice(0, i).join("/")}`);
  return out;
}

/**
 * After the container's own mounts: the domain name (while the child still
 * has CAP_SYS_ADMIN), the bundle's device nodes, then its
 * masks (an empty node of the path's kind bound over it) and read-only
 * paths. A path the tree lacks is skipped, as runtimes do with the usual
 * lists (/proc/latency_stats exists on some kernels only).
 */
export function bundleSetupOps(s: Settings, ctx: Pick<RunContext, "userns">): Op[] {
  const b = s.bundle;
  if (!b) return [];
  const ops: Op[] = b.domainname ? [{ kind: "domainname", name: b.domainname }] : [];
  if (b.devices.length > 0 && ctx.userns) {
    throw new SpawnctlError("config.json: linux.devices: device nodes cannot be made in a user namespace (--private-users=).");
  }
  const made = new Set<string>();
  for (const d of b.devices) {
    for (const dir of parents(d.path)) {
      if (made.has(dir)) continue;
      made.add(dir);
      ops.push({ kind: "mkdir", path: dir, mode: 0o755, inRoot: true });
    }
    const type = d.type === "b" ? S_IF.BLK : d.type === "p" ? S_IF.FIFO : S_IF.CHR;
    ops.push(
      { kind: "mknod", path: d.path, mode: type | (d.mode & 0o7777), dev: d.type === "p" ? 0 : makedev(d.major, d.minor), inRoot: true },
      // mknod() takes the umask off the mode
      { kind: "chmod", path: d.path, mode: d.mode & 0o7777, inRoot: true },
    );
    if (d.uid !== 0 || d.gid !== 0) ops.push({ kind: "chown", path: d.path, uid: d.uid, gid: d.gid, inRoot: true });
  }
  for (const p of b.maskedPaths) {
    ops.push({
      kind: "mount", src: "/run/host/inaccessible", dst: p, srcInRoot: true, dstInRoot: true, flags: MS.BIND, inaccessible: true,
      optional: true, what: `masking ${p} (linux.maskedPaths)`,
    });
  }
  for (const p of b.readonlyPaths) {
    ops.push({
      kind: "mount", src: p, dst: p, srcInRoot: true, dstInRoot: true, flags: MS.BIND | MS.REC, optional: true,
      attrsAfter: MOUNT_ATTR.RDONLY, recursive: true, what: `binding ${p} read-only (linux.readonlyPaths)`,
    });
  }
  return ops;
}

/** Last before the payload: process.user.umask (the plan's own files were made with spawnctl's). */
export function bundleProcessOps(s: Settings): Op[] {
  return s.bundle?.umask !== undefined ? [{ kind: "umask", mask: s.bundle.umask }] : [];
}

/** Whether the parent must hold the payload back for the prestart hooks (at barrier 2). */
export function hasPrestartHooks(s: Settings): boolean {
  return (s.bundle?.hooks.prestart.length ?? 0) > 0;
}

/** The container's state as the runtime spec hands it to a hook on its stdin. */
export function hookState(s: Settings, status: "created" | "running" | "stopped", pid?: number): string {
  return JSON.stringify({ ociVersion: "1.0.2", id: s.machine, status, ...(pid ? { pid } : {}), bundle: s.ociBundle, annotations: {} });
}

/**
 * Run hooks on the host, in order, each with the state on its stdin and its
 * own environment only; a hook that fails or outlives its timeout is an
 * error (prestart, poststart) naming it.
 */
export function runHooks(kind: "prestart" | "poststart" | "poststop", hooks: BundleHook[], state: string): void {
  hooks.forEach((h, i) => {
    const where = `hooks.${kind}[${i}] (${h.path})`;
    let p;
    try {
      p = Bun.spawnSync([h.path, ...h.args.slice(1)], {
        env: Object.fromEntries(h.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
        stdin: Buffer.from(state),
        stdout: "inherit",
        stderr: "inherit",
        ...(h.timeout ? { timeout: h.timeout * 1000, killSignal: "SIGKILL" } : {}),
      });
    } catch (e) {
      throw new SpawnctlError(`${where}: ${fsMessage(e)}`);
    }
    if (p.signalCode) throw new SpawnctlError(`${where}: killed by ${p.signalCode}${h.timeout ? ` (timeout ${h.timeout}s)` : ""}.`);
    if (p.exitCode !== 0) throw new SpawnctlError(`${where}: exited with status ${p.exitCode}.`);
  });
}
