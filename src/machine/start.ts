// `spawnctl start NAME`: boot an image in the background, as
// systemd-nspawn@NAME.service would, under a small C supervisor (the shim's
// source built as an executable, run from a memfd). This process does all the
// planning, hands the supervisor the plan, drives the child through its
// set-up, gives the supervisor the console, records the machine and exits.
// When the container ends the supervisor execs `spawnctl __machine-exited`,
// which cleans up and, after a reboot, starts the machine again.
import { CONFIG_PATH, config } from "../settings/config.ts";
import { closeSync, constants, mkdirSync, openSync, readSync, writeFileSync, rmSync } from "node:fs";
import { ptr } from "bun:ffi";
import { CTL, FD_TAG, MSG, MSG_SIZE } from "../sys/abi.ts";
import { COMPILED, closeQuietly, libc, sealedMemfd, seqpacketPair, shim, strerror } from "../sys/ffi.ts";
import { encodePlan } from "../sys/plan.ts";
import { SpawnctlError } from "../util/errors.ts";
import { info, trace, warn } from "../util/log.ts";
import { lockTree, releaseInherited } from "../util/lock.ts";
import { parseCommandLine } from "../settings/cli.ts";
import { resolveSettings } from "../settings/merge.ts";
import { type Settings, needsNetworkSetup } from "../settings/types.ts";
import { mergeEnv } from "../container/host-env.ts";
import { containerDir, createMachineCgroup, openMachineCgroup } from "../cgroup/cgroup.ts";
import { applyProperties, parseProperty } from "../cgroup/properties.ts";
import { buildPlan } from "../container/build-plan.ts";
import { hostFacts } from "../container/host.ts";
import { checkTree, prepareContext, runCleanup, type Cleanup } from "../container/prepare.ts";
import { peersFile, syncHosts } from "../container/hosts.ts";
import { ChildDriver, cloneFailure } from "../container/spawn.ts";
import { classify } from "../container/supervisor.ts";
import { findImagePath } from "../settings/merge.ts";
import { diskSource } from "../image/disk/mount.ts";
import { applyImageConfig } from "../oci/config-run.ts";
import { SIGRTMIN } from "../settings/parse.ts";
import { loadProperties } from "../image/properties-store.ts";
import { supervisorFd } from "../container/supervisor-bin.ts";
import { collectStale } from "./gc.ts";
import { markRun } from "../cgroup/gc.ts";
import { allocateAddresses, configureHost, dhcpSpec, teardownNetwork } from "../net/machine.ts";
import { applyLinks, planNetwork, writePlan } from "../net/plan.ts";
import {
  machineStopping,
  type MachineState, consoleLog, consoleSocket, lockMachine, processStart, readState, readyPath, removeState, runningFor, writeState,
} from "../container/registry.ts";
import { self } from "../util/self.ts";

/** What systemd-nspawn@.service passes. */
export const SERVICE_DEFAULTS = ["--quiet", "--keep-unit", "--boot", "--link-journal=try-guest", "--network-veth", "-U", "--settings=override"];

export function machineSettings(name: string, extra: string[] = []): { settings: Settings; poweroffSignal: number } {
  const found = findImagePath(name, mergeEnv());
  if (!found) throw new SpawnctlError(`No image for machine '${name}'.`);
  // [start] options of spawnctl.toml replace the service's defaults
  const configured = config().start.options;
  let cl;
  try {
    cl = parseCommandLine([...(configured ?? SERVICE_DEFAULTS), ...extra, "-M", name, found.raw ? "-i" : "-D", found.path]);
  } catch (e) {
    if (configured && e instanceof Error) throw new SpawnctlError(`[start] options of ${process.env.SPAWNCTL_CONFIG || CONFIG_PATH}: ${e.message}`);
    throw e;
  }
  const env = { ...mergeEnv(), isTty: false };
  const { settings, file } = resolveSettings(cl, env);
  // an OCI image: its config's command where the defaults' --boot finds no init
  applyImageConfig(settings, { bootOptional: true });
  // the console goes to the supervisor, which needs a pty for it
  if (settings.console === "pipe") settings.console = "read-only";
  // an explicit KillSignal= is also what poweroff sends (busybox init powers off on SIGUSR2)
  const explicit = cl.groups.has("killSignal") || file?.groups.has("killSignal");
  return { settings, poweroffSignal: explicit ? settings.killSignal : SIGRTMIN + 4 };
}

function recvReply(ctl: number): { pid: number; sync: number } {
  const msg = new Uint8Array(MSG_SIZE);
  const fdOut = new Int32Array(1);
  const n = shim().nsh_recv(ctl, ptr(msg), ptr(fdOut)) as number;
  if (n <= 0) throw new SpawnctlError("the machine supervisor ended before starting the container");
  const pid = new DataView(msg.buffer).getInt32(0, true);
  if (pid < 0) throw cloneFailure(-pid);
  if (fdOut[0]! < 0) throw new SpawnctlError("the machine supervisor sent no sync socket");
  return { pid, sync: fdOut[0]! };
}

/** Start one machine; returns its state. Everything done is undone on failure. */
export function startMachine(name: string, extra: string[] = []): MachineState {
  const steps = machineSteps(name, extra);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** How many machines `start` has in flight at once (see startMachines). */
export const START_WINDOW = 3;

type Flight = { name: string; steps: Generator<void, MachineState, void> };

/**
 * Start machines as `start NAME...` does, in order. First every machine's
 * cgroup is made (cgroup directories made while other containers join theirs
 * wait for the kernel's cgroup lock), then up to `window` of them are in
 * flight: their steps (machineSteps) take turns, so one is prepared while
 * the supervisor of another starts and the child of a third does its mounts.
 * The first failure stops it: the machines before the failed one are
 * finished and keep running, the ones after it are undone, and the failure
 * is thrown (or, with onError, reported and the rest started). A machine
 * that runs already is left alone and counts as started, as machinectl's
 * start of an active unit does.
 */
export function startMachines(names: string[], onError?: (name: string, e: unknown) => void, window = START_WINDOW): void {
  collectStale();
  // a name given twice is started once (and one that runs is left alone, machineSteps)
  names = [...new Set(names)];
  const waiting: Flight[] = names.map((name) => ({ name, steps: machineSteps(name) }));
  const flying: Flight[] = [];
  // one step of m; false when it failed (and was dropped from `list`)
  const step = (list: Flight[], k: number): boolean | "done" => {
    const m = list[k]!;
    try {
      return m.steps.next().done ? "done" : true;
    } catch (e) {
      list.splice(k, 1);
      if (onError) {
        onError(m.name, e);
        return false;
      }
      // the ones after it are undone, the ones before it finished
      const before = list === flying ? flying.slice(0, k) : [...flying, ...waiting.slice(0, k)];
      const after = list === flying ? [...flying.slice(k), ...waiting] : waiting.slice(k);
      for (const n of after) abortSteps(n.steps);
      for (const o of before) {
        try {
          for (let r = o.steps.next(); !r.done; r = o.steps.next());
        } catch (e2) {
          // undone as well; the first failure is the one thrown
          warn(`Failed to start machine ${o.name}: ${e2 instanceof Error ? e2.message : e2}`);
        }
      }
      // among several, say which one
      if (names.length > 1 && e instanceof SpawnctlError) throw new SpawnctlError(`Failed to start machine ${m.name}: ${e.message}`, { errno: e.errno, exitCode: e.exitCode, cause: e });
      throw e;
    }
  };
  // every machine up to its cgroup
  for (let k = 0; k < waiting.length; k++) {
    const r = step(waiting, k);
    if (r === false) k--;
    // already running: nothing more to do for it
    else if (r === "done") waiting.splice(k--, 1);
  }
  for (;;) {
    while (flying.length < window && waiting.length > 0) flying.push(waiting.shift()!);
    if (flying.length === 0) return;
    // one step of each, oldest first
    for (let k = 0; k < flying.length; k++) {
      const r = step(flying, k);
      if (r === false) k--;
      else if (r === "done") flying.splice(k--, 1);
    }
  }
}

function abortSteps(steps: Generator<void, MachineState, void>): void {
  try {
    steps.throw(new SpawnctlError("aborted"));
  } catch {
    /* undone */
  }
}

/**
 * Starting one machine, in steps: it yields where it would otherwise wait
 * (for its supervisor to start, for its child's mounts), so that
 * startMachines can work on another machine meanwhile. Everything done is
 * undone when it fails or is thrown into.
 */
export function* machineSteps(name: string, extra: string[] = []): Generator<void, MachineState, void> {
  if (!COMPILED) throw new SpawnctlError("Starting machines in the background needs the built binary (dist/spawnctl).");
  // machinectl's start of a machine that runs is a no-op that succeeds (the
  // unit is active already): the machine NAME, or the one started from the
  // image NAME (an ephemeral one runs as NAME-<suffix>)
  const already = runningFor(name);
  if (already) return already;
  const cleanup: Cleanup = [];
  try {
    let machineLock;
    try {
      machineLock = lockMachine(name);
    } catch (e) {
      // another start of it finished while this one waited for the name
      const now = runningFor(name);
      if (now) return now;
      throw e;
    }
    cleanup.push(() => machineLock.release());
    trace(`machine ${name}: locked`);
    const { settings: given, poweroffSignal } = machineSettings(name, extra);
    let s = given;
    const facts = hostFacts();
    // a disk image: mounted below, once the machine's name and image are locked
    const source = s.image ? diskSource(s) : undefined;
    if (!source) checkTree(s);
    const root = source?.path ?? s.directory;
    // (a machine of this tree that was just powered off may still be letting go of it)
    const treeLock = lockTree(root, s.readOnly || s.ephemeral || s.volatile !== "no", { waitWhile: machineStopping });
    cleanup.push(() => treeLock.release());
    // until the state file names them, a mark does: a start SIGKILLed from
    // here on leaves nothing the next run, start or list cannot collect
    let unmark = markRun(name, treeLock.held().map((h) => h.path));
    const dropMark = () => {
      unmark();
      unmark = () => {};
    };
    cleanup.push(dropMark);
    trace("machine: settings, facts, tree lock");
    const cg = createMachineCgroup(facts.cgroup, s.machine, s.keepUnit);
    trace("machine: cgroup");
    cleanup.push(() => cg.destroy());
    // startMachines makes every machine's cgroup before it starts any
    yield;
    const props = [...loadProperties(name), ...s.properties].map(parseProperty);
    if (props.length) applyProperties(props, facts.cgroup, s.machine);
    if (source) {
      s = source.open(s, cleanup).settings;
      checkTree(s, source.path);
    }
    const ctx = prepareContext(s, facts, s.directory, cleanup);
    trace("machine: context");
    const plan = buildPlan(s, ctx);
    trace("machine: plan");
    const netplan = needsNetworkSetup(s) ? (teardownNetwork(s.machine), planNetwork(s)) : undefined;
    if (netplan) {
      cleanup.push(() => teardownNetwork(s.machine));
      // the supervisor is told what to answer DHCP with when it is started
      allocateAddresses(netplan);
    }
    const dhcp = netplan ? dhcpSpec(netplan) : undefined;
    trace("machine: network planned");

    // the fds the supervisor inherits, by position: 3 itself, 4 control socket,
    // 5 the plan, 6 spawnctl (to exec for clean-up), 7 the cgroup2 directory,
    // then the lock fds
    const [ctl, theirs] = seqpacketPair();
    cleanup.push(() => closeQuietly(ctl));
    const devnull = openSync("/dev/null", "r");
    const cgfd = cg.unified ? openSync(containerDir(facts.cgroup, cg.unified, s.keepUnit), constants.O_RDONLY | constants.O_DIRECTORY) : devnull;
    plan.cgroupFd = cg.unified ? 7 : undefined;
    const planFd = sealedMemfd("spawnctl-plan", encodePlan(plan));
    const selfFd = supervisorFd();
    // spawnctl, or the dynamic loader it was started through (src/util/self.ts)
    const me = self();
    const exeFd = openSync(me.argv[0]!, "r");
    mkdirSync("/var/log/spawnctl", { recursive: true, mode: 0o750 });
    const logFd = openSync(consoleLog(name), "a", 0o600);
    const locks = [{ fd: machineLock.fd, path: `/run/spawnctl/machines/${name}.lock` }, ...treeLock.held(), ...(ctx.rangeLock?.held() ?? [])];
    const stdio = [devnull, devnull, logFd, selfFd, theirs, planFd, exeFd, cgfd, ...locks.map((l) => l.fd)];
    const inherited = locks.map((l, i) => ({ fd: 8 + i, path: l.path }));
    const cgroupProcs = facts.cgroup.v1.map((h) => `${h.mountpoint}/tasks`);
    if (facts.cgroup.unified) cgroupProcs.push(`${facts.cgroup.unified}/cgroup.procs`);
    const sup = Bun.spawn(
      ["/proc/self/fd/3", "--name", s.machine, "--log", consoleLog(name), "--socket", consoleSocket(name), "--ctl", "4",
        "--plan", "5", "--exe", "6", ...me.argv.slice(1).flatMap((a) => ["--exe-arg", a]), "--self", "3", "--kill-signal", String(s.killSignal),
        ...(dhcp ? ["--dhcp", dhcp, "--dhcp-hostname", s.hostname] : []),
        ...cgroupProcs.flatMap((p) => ["--cgroup-procs", p])],
      // (the configuration and hosts file this start used: its clean-up and a restart use them too)
      { stdio: stdio as never, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...inheritedEnv(["SPAWNCTL_CONFIG", "SPAWNCTL_HOSTS_FILE"]) } },
    );
    sup.unref();
    trace("machine: supervisor spawned");
    for (const fd of [theirs, planFd, selfFd, exeFd, logFd, devnull]) closeQuietly(fd);
    if (cgfd !== devnull) closeQuietly(cgfd);
    cleanup.push(() => {
      try {
        process.kill(sup.pid, 9);
      } catch {
        /* gone */
      }
    });
    // the supervisor starts and clones the child meanwhile
    yield;
    const { pid, sync } = recvReply(ctl);
    trace("machine: child cloned");
    let dhcpAsked = false;
    // the network's steps run where the plan puts them (build-plan.ts parentOps)
    const driver = ChildDriver.attach(plan, pid, sync, {
      "net-links": (p) => {
        trace("machine: network");
        applyLinks(netplan!, p);
        const { userspacePorts, address } = configureHost(netplan!);
        if (userspacePorts.length) {
          // no nftables: for as long as the supervisor lives (the machine's
          // clean-up, teardownNetwork, ends it sooner)
          const { startForwarder } = require("../net/forward.ts") as typeof import("../net/forward.ts");
          netplan!.forwarder = startForwarder(userspacePorts, address!, sup.pid);
          writePlan(netplan!);
        }
        trace("machine: network applied");
        // the supervisor keeps the container's netns (to give moved interfaces
        // back) and starts answering DHCP before the container goes on
        const nsfd = openSync(`/proc/${p}/ns/net`, "r");
        shim().nsh_send(ctl, CTL.NETNS, nsfd);
        closeQuietly(nsfd);
        if (dhcp) {
          shim().nsh_send(ctl, CTL.LINKS, -1);
          dhcpAsked = true;
        }
      },
      "net-ready": () => {
        // the supervisor listens for DHCP before the payload runs
        if (!dhcpAsked) return;
        dhcpAsked = false;
        const reply = Buffer.alloc(1);
        if (readSync(ctl, reply, 0, 1, null) !== 1 || reply[0] !== CTL.LINKS_OK) {
          throw new SpawnctlError(`the supervisor of ${s.machine} could not answer DHCP on ${dhcp!.split(",")[0]}`);
        }
      },
      // done with the links: the supervisor answers DHCP from the addresses allocated ahead
      "net-host": () => {},
    }, false);
    // stretch by stretch of the parent's side, then to the child's exec:
    // meanwhile the child's mounts go on while the other machines are served
    cleanup.push(() => driver.abort());
    while (!driver.step()) yield;
    const child = driver.result!;
    trace("machine: child exec'd");
    // the child has its own copy of an image's mounts: the host's go
    source?.spawned();
    if (child.consoleFd !== undefined) {
      shim().nsh_send(ctl, CTL.CONSOLE, child.consoleFd);
      closeQuietly(child.consoleFd);
    }
    const st: MachineState = {
      name: s.machine,
      class: "container",
      service: "spawnctl",
      leader: pid,
      leaderStart: processStart(pid) ?? "",
      supervisor: sup.pid,
      supervisorStart: processStart(sup.pid) ?? "",
      root,
      image: name,
      uuid: ctx.uuid,
      since: Math.round((performance.timeOrigin + performance.now()) * 1000),
      cgroups: cg.paths,
      unifiedCgroup: cg.unified,
      killSignal: s.killSignal,
      poweroffSignal,
      capability: s.capability.toString(16),
      ...(ctx.userns ? { uidShift: ctx.userns.shift, uidRange: ctx.userns.range } : {}),
      privateNetwork: s.privateNetwork,
      netifs: netplan?.veth ? [netplan.veth.host] : [],
      console: { socket: consoleSocket(name), log: consoleLog(name) },
      locks: inherited,
      boot: s.boot,
      startArgs: extra,
      ...(s.keepUnit ? { payload: true } : {}),
    };
    writeState(st);
    trace("machine: state written");
    cleanup.push(() => removeState(name));
    const go = shim().nsh_send(ctl, CTL.GO, -1) as number;
    if (go < 0) throw new SpawnctlError(`handing machine ${name} to its supervisor: ${strerror(-go)}`);
    closeQuietly(ctl);
    // from here on the supervisor owns the locks, the cgroup and the state
    dropMark();
    machineLock.release = () => {};
    closeSync(machineLock.fd);
    for (const l of [...treeLock.held(), ...(ctx.rangeLock?.held() ?? [])]) closeQuietly(l.fd);
    // its name on the host (hosts = true in spawnctl.toml)
    if (netplan) syncHosts();
    // --notify-ready: started means READY=1 on the machine's notify socket
    // (now that its supervisor drains the console, which a booting guest fills)
    const notify = child.fds.get(FD_TAG.NOTIFY);
    // nothing here is ours to undo any more, whatever happens next
    cleanup.length = 0;
    if (notify !== undefined) {
      try {
        yield* awaitReady(st, notify);
      } finally {
        closeQuietly(notify);
      }
    }
    return st;
  } catch (e) {
    runCleanup(cleanup);
    throw e;
  }
}

/** The variables of ours that are set, to pass on to a machine's supervisor. */
function inheritedEnv(names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) if (process.env[n]) out[n] = process.env[n]!;
  return out;
}

/** How long `start` waits for a --notify-ready machine's READY=1 (systemd's default TimeoutStartSec=). */
export const READY_TIMEOUT_MS = 90_000;

/**
 * Wait for READY=1 on the machine's notify socket, yielding between looks
 * so that other machines' starts go on. A machine that ends first is an
 * error; one that says nothing in READY_TIMEOUT_MS is a warning (it runs).
 */
function* awaitReady(st: MachineState, fd: number, timeoutMs = READY_TIMEOUT_MS): Generator<void, void, void> {
  const buf = new Uint8Array(4096);
  const deadline = Date.now() + timeoutMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    // (the deadline holds for a guest that floods the socket too)
    if (Date.now() > deadline) {
      warn(`Machine ${st.name} has not reported READY=1 in ${timeoutMs / 1000}s (--notify-ready); it runs on.`);
      return;
    }
    const n = Number(libc().recv(fd, ptr(buf), buf.length, 0x40 /* MSG_DONTWAIT */));
    if (n > 0) {
      const text = new TextDecoder().decode(buf.subarray(0, n));
      if (text.split("\n").includes("READY=1")) {
        trace(`machine ${st.name}: READY=1`);
        // for analyze; the supervisor's clean-up removes it with the state
        try {
          writeFileSync(readyPath(st.name), `${Math.round((performance.timeOrigin + performance.now()) * 1000)}\n`);
        } catch {
          /* the machine is being cleaned up already */
        }
        return;
      }
      continue;
    }
    if (processStart(st.leader) !== st.leaderStart) throw new SpawnctlError(`Machine ${st.name} ended before it reported READY=1 (--notify-ready).`);
    yield;
    Atomics.wait(nap, 0, 0, 10);
  }
}

/**
 * Run in the supervisor's process (exec'd by it) once the container has
 * ended: remove the cgroup and the state, release the inherited locks and, if
 * the container rebooted, start it again.
 */
export async function machineExited(name: string, status: number, netnsFd = -1): Promise<number> {
  const st = readState(name);
  const outcome = classify(status);
  const facts = hostFacts();
  const cg = openMachineCgroup(facts.cgroup, name);
  try {
    cg.destroy();
  } catch (e) {
    warn(`machine ${name}: ${e instanceof Error ? e.message : e}`);
  }
  try {
    teardownNetwork(name, netnsFd);
  } catch (e) {
    warn(`machine ${name}: ${e instanceof Error ? e.message : e}`);
  }
  // the state goes last but for the locks: `terminate` waits for it
  removeState(name);
  rmSync(peersFile(name), { force: true });
  syncHosts();
  if (st?.locks) releaseInherited(st.locks);
  const what = outcome.kind === "exited" ? `exited with status ${outcome.code}` : outcome.kind === "signaled" ? `was killed by signal ${outcome.signal}` : outcome.kind === "poweroff" ? "has been shut down" : "is being rebooted";
  info(`Container ${name} ${what}.`);
  if (outcome.kind === "reboot" || (outcome.kind === "exited" && outcome.code === 133)) {
    const image = st?.image ?? name;
    startMachine(image, st?.startArgs ?? []);
  }
  return 0;
}
