// The foreground supervisor of `spawnctl run`: lock the tree, build and start
// the plan, relay the console, pass on SIGTERM/SIGINT, and when the container
// ends work out the exit status (poweroff, reboot, exit code, signal), clean
// up in reverse order and, on reboot, start again.
import { closeSync, existsSync, openSync, rmSync, constants } from "node:fs";
import { type Settings, needsNetworkSetup } from "../settings/types.ts";
import { signalName } from "../settings/parse.ts";
import { shim, pipe, closeQuietly, cstr, isatty, strerror } from "../sys/ffi.ts";
import { formatPlan } from "../sys/plan.ts";
import { SpawnctlError } from "../util/errors.ts";
import { info, print, trace, warn } from "../util/log.ts";
import { lockTree, type Lock } from "../util/lock.ts";
import { containerDir, createMachineCgroup, type MachineCgroup } from "../cgroup/cgroup.ts";
import { markRun } from "../cgroup/gc.ts";
import { applyProperties, parseProperty } from "../cgroup/properties.ts";
import { buildPlan, type RunContext } from "./build-plan.ts";
import { lockMachine, machineStopping, processStart, removeState, writeState } from "./registry.ts";
import { syncHosts } from "./hosts.ts";
import { startRelay, type Relay } from "./console.ts";
import { hookState, runHooks } from "./bundle-plan.ts";
import { hostFacts, type HostFacts } from "./host.ts";
import { checkTree, prepareContext, runCleanup, type Cleanup, type TreeSource } from "./prepare.ts";
import { attachInit } from "./init-bin.ts";
import { spawnPlan, type ParentSteps } from "./spawn.ts";
import { populateFromTemplate } from "./template.ts";


/** How a run ended. */
export type Outcome =
  | { kind: "exited"; code: number }
  | { kind: "signaled"; signal: number }
  | { kind: "poweroff" }
  | { kind: "reboot" };

export function classify(status: number): Outcome {
  const sig = status & 0x7f;
  if (sig === 0) return { kind: "exited", code: (status >> 8) & 0xff };
  // reboot(2) in a pid namespace kills its init with SIGHUP (restart) or SIGINT (power off/halt)
  if (sig === 1) return { kind: "reboot" };
  if (sig === 2) return { kind: "poweroff" };
  return { kind: "signaled", signal: sig };
}

/** Wait for a pid through a waiter thread in the shim; resolves with the wait status. */
export async function waitExit(pid: number): Promise<number> {
  // a non-blocking pipe read through Bun.file is polled by the event loop;
  // fs streams would start a thread pool for it, which costs milliseconds
  const [r, w] = pipe(true);
  const rc = shim().nsh_wait_async(pid, w) as number;
  if (rc < 0) {
    closeSync(r);
    closeSync(w);
    throw new SpawnctlError(`waiting for the container: ${-rc}`);
  }
  const chunks: Uint8Array[] = [];
  const reader = Bun.file(r).stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  closeQuietly(r);
  const b = Buffer.concat(chunks);
  return b.length >= 4 ? b.readInt32LE(0) : 9;
}

interface OneRun {
  outcome: Outcome;
  escaped: boolean;
}

async function runOnce(s: Settings, facts: HostFacts, tree: string, source?: TreeSource): Promise<OneRun> {
  const cleanup: Cleanup = [];
  let relay: Relay | undefined;
  let cg: MachineCgroup | undefined;
  const handlers: Array<[string, () => void]> = [];
  // Signals are taken from the start: one arriving between exec and the end
  // of set-up must not kill the supervisor and orphan the container.
  let leader: number | undefined;
  let terms = 0;
  const sendTerm = () => {
    if (leader === undefined) return;
    if (terms === 1 && s.killSignal > 0) {
      info(`Trying to halt container. Send SIGTERM again to trigger immediate termination.`);
      try {
        process.kill(leader, s.killSignal);
      } catch {
        /* gone */
      }
      return;
    }
    try {
      process.kill(leader, 9);
    } catch {
      /* gone */
    }
  };
  const onTerm = () => {
    terms++;
    sendTerm();
  };
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(sig, onTerm);
    handlers.push([sig, onTerm]);
  }
  // (the machine's recorded root: the image file of a disk image)
  const root = source?.path ?? s.directory;
  try {
    if (source) {
      // a disk image is mounted for each start (a reboot mounts it anew)
      ({ tree, settings: s } = source.open(s, cleanup));
      if (!s.printPlan) checkTree(s, source.path);
    }
    trace("prepare");
    const ctx = prepareContext(s, facts, tree, cleanup);
    trace("plan");
    const plan = buildPlan(s, ctx);
    trace("planned");
    if (s.printPlan) {
      print(formatPlan(plan));
      return { outcome: { kind: "exited", code: 0 }, escaped: false };
    }
    if (s.asPid2) {
      const initFd = attachInit(plan);
      cleanup.push(() => closeQuietly(initFd));
    }
    cg = createMachineCgroup(facts.cgroup, s.machine, s.keepUnit);
    if (s.properties.length > 0) applyProperties(s.properties.map(parseProperty), facts.cgroup, s.machine);
    trace("cgroup created");
    const cgRef = cg;
    cleanup.push(() => cgRef.destroy());
    // the network's steps run where the plan puts them (build-plan.ts
    // parentOps); its code is loaded only then: it is not on the common start path
    const network = needsNetworkSetup(s) ? new RunNetwork(s, cleanup) : undefined;
    if (cgRef.unified) {
      const fd = openSync(containerDir(facts.cgroup, cgRef.unified, s.keepUnit), constants.O_RDONLY | constants.O_DIRECTORY);
      cleanup.push(() => closeQuietly(fd));
      plan.cgroupFd = fd;
    }
    const hooks = s.bundle?.hooks;
    const steps = hooks ? { ...network?.steps, "oci-prestart": (pid: number) => runHooks("prestart", hooks.prestart, hookState(s, "created", pid)) } : network?.steps;
    if (hooks && hooks.poststop.length > 0) {
      // after the container is gone, as the last of the clean-up (which runs last-in-first-out)
      cleanup.push(() => runHooks("poststop", hooks.poststop, hookState(s, "stopped")));
    }
    const child = spawnPlan(plan, steps);
    // the child has its own copy of an image's mounts: the host's go
    source?.spawned();
    cleanup.push(() => {
      // the pid namespace dies with its init; anything that joined it later too
      cgRef.kill(9);
    });
    trace("spawned");
    // (the notify socket of --notify-ready: nobody above a foreground run to tell)
    for (const fd of child.fds.values()) cleanup.push(() => closeQuietly(fd));
    // registered, as nspawn registers with machined: list, show, shell,
    // copy-to, poweroff and the rest find a foreground container too
    if (s.register) {
      register(s, root, ctx, child.pid, cgRef, network?.hostLinks() ?? []);
      cleanup.push(() => {
        removeState(s.machine);
        if (network) syncHosts();
      });
      // its name on the host (hosts = true), once it has an address
      if (network) syncHosts();
      trace("registered");
    }
    if (hooks && hooks.poststart.length > 0) {
      // a failing poststart hook is worth a warning, not the container (the spec's rule)
      try {
        runHooks("poststart", hooks.poststart, hookState(s, "running", child.pid));
      } catch (e) {
        warn((e as Error).message);
      }
    }
    const exited = waitExit(child.pid);
    let escaped = false;
    if (child.consoleFd !== undefined) {
      const master = child.consoleFd;
      cleanup.push(() => closeQuietly(master));
      const mode = s.console === "autopipe" ? "interactive" : s.console;
      relay = startRelay(master, {
        mode,
        fixedSize: !!s.bundle?.consoleSize,
        onEscape: () => {
          escaped = true;
          try {
            process.kill(child.pid, 9);
          } catch {
            /* gone */
          }
        },
      });
    }
    leader = child.pid;
    if (terms > 0) sendTerm();
    const status = await exited;
    trace("exited");
    if (relay) await relay.drain(200);
    trace("drained");
    return { outcome: classify(status), escaped };
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    relay?.stop();
    runCleanup(cleanup);
    trace("cleaned up");
  }
}

/** The registry's record of a foreground container (its supervisor is this process; no console socket). */
function register(s: Settings, root: string, ctx: RunContext, leader: number, cg: MachineCgroup, netifs: string[]): void {
  writeState({
    name: s.machine,
    class: "container",
    service: "systemd-nspawn",
    leader,
    leaderStart: processStart(leader) ?? "",
    supervisor: process.pid,
    supervisorStart: processStart(process.pid) ?? "",
    root,
    uuid: ctx.uuid,
    since: Math.round((performance.timeOrigin + performance.now()) * 1000),
    cgroups: cg.paths,
    unifiedCgroup: cg.unified,
    killSignal: s.killSignal,
    capability: s.capability.toString(16),
    ...(ctx.userns ? { uidShift: ctx.userns.shift, uidRange: ctx.userns.range } : {}),
    privateNetwork: s.privateNetwork,
    netifs,
    boot: s.boot,
    ...(s.keepUnit ? { payload: true } : {}),
  });
}

/** The network of a foreground run: see runOnce. */
class RunNetwork {
  private plan?: import("../net/plan.ts").NetPlan;
  /** the container's netns, held until the clean-up: moved interfaces go back before it dies */
  private netnsFd?: number;
  private dhcpSock?: number;

  constructor(
    private readonly s: Settings,
    private readonly cleanup: Cleanup,
  ) {}

  /**
   * The links while the child mounts, a socket for DHCP on the host's end
   * with them; the host's side (addresses, NAT, port forwards, the DHCP
   * responder on that socket) once the payload may run.
   */
  readonly steps: ParentSteps = {
    "net-links": (pid) => this.links(pid),
    // the responder starts with the host's side: a client's first request
    // waits in the socket meanwhile
    "net-ready": () => {},
    "net-host": () => this.host(),
  };

  /** the host's ends of the links (for the registry) */
  hostLinks(): string[] {
    return this.plan?.veth ? [this.plan.veth.host] : [];
  }

  /** the rest of the network code: not needed until the payload runs, unless a crashed run left something */
  private full(): typeof import("../net/machine.ts") {
    return require("../net/machine.ts") as typeof import("../net/machine.ts");
  }

  private links(pid: number): void {
    trace("net: links");
    const net = require("../net/plan.ts") as typeof import("../net/plan.ts");
    const machine = this.s.machine;
    // whatever a crashed run left
    if (existsSync(`${net.NET_DIR}/${machine}.json`)) this.full().teardownNetwork(machine);
    this.cleanup.push(() => {
      try {
        this.full().teardownNetwork(machine, this.netnsFd);
      } finally {
        closeQuietly(this.netnsFd);
      }
    });
    const plan = (this.plan = net.planNetwork(this.s));
    // held from now on: the links stay while the host side is configured,
    // even when the payload is done by then
    this.netnsFd = openSync(`/proc/${pid}/ns/net`, "r");
    net.applyLinks(plan, pid);
    const iface = net.dhcpInterface(plan);
    if (iface) {
      const fd = shim().nsh_udp_on_device(cstr(iface), 67) as number;
      if (fd < 0) throw new SpawnctlError(`listening for DHCP on ${iface}: ${strerror(-fd)}`, { errno: -fd });
      this.dhcpSock = fd;
      this.cleanup.push(() => {
        closeQuietly(this.dhcpSock);
        this.dhcpSock = undefined;
      });
    }
    trace("net: links made");
  }

  private host(): void {
    const { plan } = this;
    if (!plan) return;
    trace("net: host side");
    const net = this.full();
    net.allocateAddresses(plan);
    const { userspacePorts, address } = net.configureHost(plan);
    if (userspacePorts.length) {
      // no nftables: ours for as long as this process runs (the clean-up's
      // teardownNetwork ends it)
      const { startForwarder } = require("../net/forward.ts") as typeof import("../net/forward.ts");
      plan.forwarder = startForwarder(userspacePorts, address!, process.pid);
      (require("../net/plan.ts") as typeof import("../net/plan.ts")).writePlan(plan);
    }
    const spec = net.dhcpSpec(plan);
    if (spec && this.dhcpSock !== undefined) {
      const { startDhcpResponder } = require("./supervisor-bin.ts") as typeof import("./supervisor-bin.ts");
      const dhcp = startDhcpResponder(spec, this.s.hostname, this.dhcpSock);
      this.cleanup.push(() => dhcp.kill());
      // the responder has its own copy
      closeQuietly(this.dhcpSock);
      this.dhcpSock = undefined;
    }
    trace("net: host side done");
  }
}

/**
 * Run a container in the foreground until it ends; returns spawnctl's exit
 * status. `source` makes the tree for each start when it is not a directory (-i).
 */
export async function runContainer(s: Settings, source?: TreeSource): Promise<number> {
  trace("runContainer");
  const facts = hostFacts();
  trace("facts");
  const cleanup: Cleanup = [];
  try {
    if (s.template) populateFromTemplate(s.template, s.directory);
    // (an image's tree is checked once it is mounted)
    if (!source) checkTree(s);
    if (!s.printPlan) {
      // the name first (a second container of that name is refused, as
      // machined refuses it), then the tree
      if (s.register) {
        const name = lockMachine(s.machine);
        cleanup.push(() => name.release());
      }
      // (a machine of this tree that was just powered off may still be letting go of it)
      const lock: Lock = lockTree(source?.path ?? s.directory, s.readOnly || s.ephemeral || s.volatile !== "no", { waitWhile: machineStopping });
      cleanup.push(() => lock.release());
      cleanup.push(markRun(s.machine, lock.held().map((h) => h.path)));
    }
    const tree = s.directory;
    if (!s.printPlan) {
      info(`Spawning container ${s.machine} on ${source?.path ?? tree}.`);
      if (s.console === "interactive" || (s.console === "autopipe" && isatty(0))) info("Press ^] three times within 1s to kill container.");
    }
    for (;;) {
      const { outcome, escaped } = await runOnce(s, facts, tree, source);
      if (s.printPlan) return 0;
      if (escaped) {
        info(`Container ${s.machine} terminated by signal KILL.`);
        return 1;
      }
      switch (outcome.kind) {
        case "exited":
          if (outcome.code === 0) info(`Container ${s.machine} exited successfully.`);
          else info(`Container ${s.machine} failed with error code ${outcome.code}.`);
          // 133 is reserved for "reboot" towards a service manager
          return outcome.code === 133 ? 1 : outcome.code;
        case "poweroff":
          info(`Container ${s.machine} has been shut down.`);
          return 0;
        case "signaled":
          info(`Container ${s.machine} terminated by signal ${signalName(outcome.signal).replace(/^SIG/, "")}.`);
          return 1;
        case "reboot":
          if (s.keepUnit) {
            info(`Container ${s.machine} is being rebooted.`);
            return 133;
          }
          info(`Container ${s.machine} is being rebooted.`);
          continue;
      }
    }
  } finally {
    runCleanup(cleanup);
  }
}
