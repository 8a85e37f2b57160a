// SIGKILL at every stage, and the next command collects what was left
// (src/machine/gc.ts): a foreground `spawnctl run` killed while it sets up,
// once its cgroup exists, while its payload runs, with a veth and a userspace
// port forwarder in a network namespace of the test's own, with a picked UID
// range; a machine's supervisor; a living run, machine and a cgroup with a
// process in it left alone; a dead run's mark (what it names is released,
// nothing else); an import-tar and a bootstrap killed midway.
// Every leftover is looked for by the machine's name; each test cleans up
// after itself even when an assertion fails.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostFacts } from "../../src/container/host.ts";
import { hierarchyRoots } from "../../src/cgroup/cgroup.ts";
import { markRun } from "../../src/cgroup/gc.ts";
import { TarWriter } from "../../src/archive/tar.ts";
import { IS_ROOT, SPAWNCTL, busyboxPath, leftovers, makeBusyboxTree, needs, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";
import { hasTool } from "../unit/archive/fixtures.ts";
import { INSTALL_HINT, TOOLS, buildFixture, ensureTools, type Fixture } from "./bootstrap-arch/fixture.ts";
import { machineCgroupRel, machineScope } from "../../src/cgroup/cgroup.ts";

const P = "sctest-gc";
const REGISTRY = "/run/spawnctl/machines";
const NET = "/run/spawnctl/net";
const LOCKS = "/run/systemd/nspawn/locks";
const RANGES = "/run/spawnctl/uid-range";
const before = IS_ROOT ? leftovers() : [];
let base = "";
let tree = "";
/** the cgroup hierarchies' roots (every v1 hierarchy and the unified one) */
let roots: string[] = [];

/** machines started from /var/lib/machines */
const M1 = `${P}-m1`;
const M2 = `${P}-m2`;
const IMAGES = [M1, M2].map((m) => `/var/lib/machines/${m}`);
let madePool = false;

beforeAll(() => {
  if (!IS_ROOT) return;
  base = tempDir(`${P}-`);
  tree = makeBusyboxTree(`${base}/bb`);
  roots = hierarchyRoots(hostFacts().cgroup);
  madePool = !existsSync("/var/lib/machines");
  mkdirSync("/var/lib/machines", { recursive: true, mode: 0o700 });
  for (const img of IMAGES) {
    removeTree(img);
    makeBusyboxTree(img, { inittab: "::respawn:/bin/sleep 1000\n" });
    Bun.spawnSync(["ln", "-sf", "busybox", `${img}/usr/bin/init`]);
  }
});

afterAll(() => {
  if (!IS_ROOT) return;
  for (const m of [M1, M2]) run(["terminate", m]);
  for (const m of [M1, M2]) rmSync(`/var/log/spawnctl/${m}.console`, { force: true });
  for (const img of IMAGES) removeTree(img);
  if (madePool) {
    try {
      rmdirSync("/var/lib/machines");
    } catch {
      /* someone else's images are there now */
    }
  }
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

async function waitFor(pred: () => boolean, ms = 10_000, what = "a condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

function ls(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function cgroupDirs(name: string): string[] {
  // today's layout, and the one of before (spawnctl/NAME), which the collector still clears
  return roots.flatMap((r) => [`${r}/${machineCgroupRel(name)}`, `${r}/spawnctl/${name}`]).filter((d) => existsSync(d));
}

/** every process in the machine's cgroups (sub-cgroups included) */
function procs(name: string): number[] {
  const out = new Set<number>();
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(`${d}/cgroup.procs`, "utf8").split("\n").filter(Boolean)) out.add(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    } catch {
      /* gone */
    }
  };
  for (const d of cgroupDirs(name)) walk(d);
  return [...out];
}

/** a tree's lock files: beside it, and the global one by inode */
function treeLockPaths(dir: string): string[] {
  const st = statSync(dir);
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  return [`${parent}/.#${dir.slice(dir.lastIndexOf("/") + 1)}.lck`, `${LOCKS}/inode-${st.dev}:${st.ino}`];
}

/** Everything of machine `name` on the host (and of its tree `dir`), as readable lines. */
function remains(name: string, dir?: string): string[] {
  return [
    ...cgroupDirs(name).map((d) => `cgroup ${d}`),
    ...ls(REGISTRY).filter((f) => f.startsWith(`${name}.`)).map((f) => `registry ${f}`),
    ...ls(NET).filter((f) => f === `${name}.json` || f === `alloc-${name}.json`).map((f) => `net ${f}`),
    ...(dir ? treeLockPaths(dir).filter((p) => existsSync(p)).map((p) => `lock ${p}`) : []),
  ];
}

/** Kill what is left in the machine's cgroup (the test's own container) and wait until it is gone. */
async function killRest(name: string): Promise<void> {
  for (let i = 0; i < 200 && procs(name).length > 0; i++) {
    for (const pid of procs(name)) {
      try {
        process.kill(pid, 9);
      } catch {
        /* gone */
      }
    }
    await Bun.sleep(10);
  }
}

/**
 * After a test, whatever happened: the container's processes killed, a
 * collecting `list` (in a network namespace of its own, should it tear down
 * a network), then by hand whatever the collector left.
 */
async function scrub(name: string, dir?: string): Promise<void> {
  await killRest(name);
  if (remains(name, dir).length) run(["list"], { netns: true });
  for (const r of roots) {
    const sub = (d: string) => {
      for (const e of ls(d)) if (existsSync(`${d}/${e}/cgroup.procs`)) sub(`${d}/${e}`);
      try {
        rmdirSync(d);
      } catch {
        /* gone */
      }
    };
    for (const [parent, dir] of [["machine.slice", machineScope(name)], ["spawnctl", name]] as const) {
      if (existsSync(`${r}/${parent}/${dir}`)) sub(`${r}/${parent}/${dir}`);
      try {
        rmdirSync(`${r}/${parent}`);
      } catch {
        /* in use */
      }
    }
  }
  for (const f of ls(REGISTRY)) if (f.startsWith(`${name}.`)) rmSync(`${REGISTRY}/${f}`, { force: true });
  for (const f of [`${name}.json`, `alloc-${name}.json`]) rmSync(`${NET}/${f}`, { force: true });
  if (dir && existsSync(dir)) for (const p of treeLockPaths(dir)) rmSync(p, { force: true });
}

function spawnRun(args: string[], o: { netns?: boolean; env?: Record<string, string> } = {}) {
  return Bun.spawn([...(o.netns ? ["unshare", "--net"] : []), SPAWNCTL, "run", "-q", "-P", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...o.env },
  });
}

async function firstLine(p: ReturnType<typeof spawnRun>): Promise<string> {
  const r = p.stdout.getReader();
  const { value } = await r.read();
  r.releaseLock();
  return new TextDecoder().decode(value ?? new Uint8Array());
}

async function restOf(p: ReturnType<typeof spawnRun>): Promise<string> {
  const r = p.stdout.getReader();
  let out = "";
  for (;;) {
    const { done, value } = await r.read();
    if (done) return out;
    out += new TextDecoder().decode(value);
  }
}

async function sigkill(p: { pid: number; exited: Promise<number> }): Promise<void> {
  process.kill(p.pid, 9);
  await p.exited;
}

/** spawnctl processes a test started: killed in its `finally`, should an assertion have failed before it did */
const started: Array<{ pid: number; exited: Promise<number> }> = [];
function track<T extends { pid: number; exited: Promise<number> }>(p: T): T {
  started.push(p);
  return p;
}
async function stopAll(): Promise<void> {
  for (const p of started.splice(0)) {
    try {
      process.kill(p.pid, 9);
    } catch {
      /* ended */
    }
    await p.exited;
  }
}

/**
 * After spawnctl's SIGKILL: its container must end too, at every stage: the
 * child arms its parent-death signal first thing (and exits at once if its
 * parent is gone already), and arms it again after every change of uid,
 * which clears it (in a user namespace, and for -u). Should one survive, the
 * collector must still leave it and its cgroup alone; the test ends it and
 * fails. Returns how many processes survived.
 */
async function containerEnd(name: string): Promise<number> {
  const end = Date.now() + 1500;
  while (procs(name).length > 0 && Date.now() < end) await Bun.sleep(10);
  const survivors = procs(name).sort();
  if (survivors.length > 0) {
    const dirs = cgroupDirs(name);
    expect(run(["list"], { netns: true }).code).toBe(0);
    expect(procs(name).sort()).toEqual(survivors);
    expect(cgroupDirs(name)).toEqual(dirs);
    await killRest(name);
  }
  await waitFor(() => procs(name).length === 0, 10_000, "the container's end");
  expect(survivors).toEqual([]);
  return survivors.length;
}

const mark = (name: string) => `${REGISTRY}/${name}.run`;
const PAYLOAD = ["/bin/sh", "-c", "echo up; exec sleep 100"];

describe("a SIGKILLed run is collected by the next command of another name", () => {
  test("its temporary directories (an empty --bind source, an --overlay upper layer, its work directory) go too", async () => {
    const name = `${P}-tmp`;
    const upperBase = `${base}/upper-base`;
    mkdirSync(`${upperBase}/upper`, { recursive: true });
    mkdirSync(`${base}/lower`, { recursive: true });
    const ours = (dir: string, prefix: string) => readdirSync(dir).filter((e) => e.startsWith(prefix));
    try {
      const p = track(spawnRun(["-D", tree, "-M", name, "--bind=:/scratch", `--overlay=${base}/lower::/ovl`, `--overlay=${base}/lower:${upperBase}/upper:/ovl2`, ...PAYLOAD]));
      expect(await firstLine(p)).toBe("up\n");
      const binds = ours("/var/tmp", `spawnctl-bind-${p.pid}-`);
      const overlays = ours("/var/tmp", `spawnctl-overlay-${p.pid}-`);
      const works = ours(upperBase, `.#spawnctl-work-${p.pid}-`);
      expect([binds.length, overlays.length, works.length]).toEqual([1, 1, 1]);
      await sigkill(p);
      expect(await containerEnd(name)).toBe(0);
      // still there: nobody came by yet
      expect(ours("/var/tmp", `spawnctl-bind-${p.pid}-`)).toEqual(binds);
      expect(run(["list"]).code).toBe(0);
      expect(ours("/var/tmp", `spawnctl-bind-${p.pid}-`)).toEqual([]);
      expect(ours("/var/tmp", `spawnctl-overlay-${p.pid}-`)).toEqual([]);
      // the work directory beside a given upper layer: by the next run that uses it
      expect(ours(upperBase, `.#spawnctl-work-${p.pid}-`)).toEqual(works);
      const r = run(["run", "-q", "-P", "-D", tree, "-M", name, `--overlay=${base}/lower:${upperBase}/upper:/ovl2`, "/bin/true"]);
      expect(r.code).toBe(0);
      expect(readdirSync(upperBase).filter((e) => e.startsWith(".#spawnctl-work-"))).toEqual([]);
      expect(remains(name, tree)).toEqual([]);
    } finally {
      await stopAll();
      await scrub(name, tree);
    }
  }, 30_000);

  test("killed while it sets up (its run mark just made): the next run collects it", async () => {
    const name = `${P}-r1`;
    const other = `${P}-other1`;
    try {
      const p = track(spawnRun(["-D", tree, "-M", name, ...PAYLOAD]));
      await waitFor(() => existsSync(mark(name)), 10_000, "the run mark");
      await sigkill(p);
      await containerEnd(name);
      // what the dead run left: its mark at least, and its tree's locks
      expect(remains(name, tree)).toContain(`registry ${name}.run`);
      const r = run(["run", "-q", "-P", "-D", tree, "-M", other, "/bin/true"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(remains(name, tree)).toEqual([]);
      expect(remains(other)).toEqual([]);
    } finally {
      await stopAll();
      await scrub(name, tree);
      await scrub(other);
    }
  }, 30_000);

  test("killed once its cgroup exists: the next list collects it", async () => {
    const name = `${P}-r2`;
    try {
      const p = track(spawnRun(["-D", tree, "-M", name, ...PAYLOAD]));
      await waitFor(() => existsSync(`${roots[0]}/${machineCgroupRel(name)}`), 10_000, "the cgroup");
      await sigkill(p);
      await containerEnd(name);
      expect(remains(name, tree)).toContain(`cgroup ${roots[0]}/${machineCgroupRel(name)}`);
      expect(run(["list"]).code).toBe(0);
      expect(remains(name, tree)).toEqual([]);
    } finally {
      await stopAll();
      await scrub(name, tree);
    }
  }, 30_000);

  test("killed while the payload runs: its cgroups in every hierarchy, mark and tree locks go with the next run", async () => {
    const name = `${P}-r3`;
    const other = `${P}-other3`;
    try {
      const p = track(spawnRun(["-D", tree, "-M", name, ...PAYLOAD]));
      expect(await firstLine(p)).toBe("up\n");
      expect(procs(name).length).toBe(1);
      await sigkill(p);
      // its parent-death signal was set long ago: it dies with spawnctl
      expect(await containerEnd(name)).toBe(0);
      expect(remains(name, tree).sort()).toEqual([
        ...roots.map((r) => `cgroup ${r}/${machineCgroupRel(name)}`),
        ...treeLockPaths(tree).map((l) => `lock ${l}`),
        // the run registered its container: its state and its name's lock stay too
        `registry ${name}.json`,
        `registry ${name}.lock`,
        `registry ${name}.run`,
      ].sort());
      const r = run(["run", "-q", "-P", "-D", tree, "-M", other, "/bin/true"]);
      expect(r.code).toBe(0);
      expect(remains(name, tree)).toEqual([]);
      expect(remains(other)).toEqual([]);
    } finally {
      await stopAll();
      await scrub(name, tree);
      await scrub(other);
    }
  }, 30_000);

  test("with -n and a userspace port forwarder in a network namespace of its own: its network plan and forwarder go too", async () => {
    const name = `${P}-n1`;
    let forwarder = 0;
    try {
      const p = track(spawnRun(["-n", "-p", "tcp:18080:80", "-D", tree, "-M", name, ...PAYLOAD], { netns: true, env: { SPAWNCTL_NFTABLES: "off" } }));
      expect(await firstLine(p)).toBe("up\n");
      // the host side is done while the payload starts
      await waitFor(() => {
        try {
          forwarder = JSON.parse(readFileSync(`${NET}/${name}.json`, "utf8")).forwarder ?? 0;
        } catch {
          /* being written */
        }
        return forwarder > 0;
      }, 10_000, "the port forwarder");
      expect(readFileSync(`/proc/${forwarder}/cmdline`, "utf8")).toContain("__forward");
      await sigkill(p);
      expect(await containerEnd(name)).toBe(0);
      expect(remains(name, tree)).toEqual(expect.arrayContaining([`net ${name}.json`, `net alloc-${name}.json`, `registry ${name}.run`]));
      // collected from another network namespace: nothing of the host's is touched
      const r = run(["list"], { netns: true });
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      expect(remains(name, tree)).toEqual([]);
      await waitFor(() => {
        try {
          return !readFileSync(`/proc/${forwarder}/cmdline`, "utf8").includes("__forward");
        } catch {
          return true;
        }
      }, 3000, "the forwarder's end");
    } finally {
      await stopAll();
      if (forwarder) {
        try {
          if (readFileSync(`/proc/${forwarder}/cmdline`, "utf8").includes("__forward")) process.kill(forwarder, 9);
        } catch {
          /* gone */
        }
      }
      await scrub(name, tree);
    }
  }, 30_000);

  test("with -U: its picked UID range's lock goes too once the container's processes are gone", async () => {
    const name = `${P}-u1`;
    const utree = `${base}/ubb`;
    let rangeLock = "";
    try {
      makeBusyboxTree(utree);
      const p = track(spawnRun(["-U", "-D", utree, "-M", name, "/bin/sh", "-c", "echo up; exec sleep 100"]));
      expect(await firstLine(p)).toBe("up\n");
      const pid = procs(name)[0]!;
      const shift = readFileSync(`/proc/${pid}/uid_map`, "utf8").trim().split(/\s+/)[1]!;
      rangeLock = `${RANGES}/${shift}`;
      expect(existsSync(rangeLock)).toBe(true);
      await sigkill(p);
      await containerEnd(name);
      // a lock nobody holds is swept once it is a second old (a younger one may be being taken)
      // (unless a collecting list in containerEnd took it already: nobody held it)
      await waitFor(() => !existsSync(rangeLock) || Date.now() - statSync(rangeLock).ctimeMs > 1100, 5000, "the range lock to age");
      expect(run(["list"]).code).toBe(0);
      expect(remains(name, utree)).toEqual([]);
      expect(existsSync(rangeLock)).toBe(false);
    } finally {
      await stopAll();
      await scrub(name, utree);
      if (rangeLock) rmSync(rangeLock, { force: true });
      removeTree(utree);
    }
  }, 30_000);
});

describe("a machine whose supervisor was SIGKILLed", () => {
  test("list no longer shows it, and its state, lock, console socket, cgroups and locks are gone; a running machine stays", async () => {
    try {
      for (const m of [M1, M2]) {
        const r = run(["start", m], { netns: true });
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
      }
      const st = JSON.parse(readFileSync(`${REGISTRY}/${M1}.json`, "utf8"));
      const held: string[] = st.locks.map((l: { path: string }) => l.path);
      expect(held).toContain(`${REGISTRY}/${M1}.lock`);
      expect(held).toEqual(expect.arrayContaining(treeLockPaths(IMAGES[0]!)));
      expect(existsSync(st.console.socket)).toBe(true);
      process.kill(st.supervisor, 9);
      // its container dies with it: the parent-death signal is armed again
      // after the uid change in its user namespace
      await waitFor(() => procs(M1).length === 0, 5_000, "the container's end with its supervisor");
      expect(remains(M1)).toEqual(expect.arrayContaining([`registry ${M1}.json`, `registry ${M1}.lock`]));
      const list = run(["list", "--no-legend"], { netns: true });
      expect(list.code).toBe(0);
      expect(list.stdout).not.toContain(M1);
      expect(list.stdout).toContain(M2);
      expect(remains(M1, IMAGES[0])).toEqual([]);
      for (const p of held) expect(existsSync(p)).toBe(false);
      expect(existsSync(st.console.socket)).toBe(false);
      // the other machine runs on, untouched
      const st2 = JSON.parse(readFileSync(`${REGISTRY}/${M2}.json`, "utf8"));
      expect(existsSync(`/proc/${st2.leader}`)).toBe(true);
      expect(remains(M2).sort()).toEqual([
        ...roots.map((r) => `cgroup ${r}/${machineCgroupRel(M2)}`),
        `net ${M2}.json`,
        ...ls(NET).filter((f) => f === `alloc-${M2}.json`).map((f) => `net ${f}`),
        `registry ${M2}.console.sock`,
        `registry ${M2}.json`,
        `registry ${M2}.lock`,
      ].sort());
    } finally {
      await stopAll();
      for (const m of [M1, M2]) run(["terminate", m]);
      await waitFor(() => !existsSync(`${REGISTRY}/${M2}.json`), 10_000, "the machine's end").catch(() => {});
      await scrub(M1, IMAGES[0]);
      await scrub(M2, IMAGES[1]);
    }
  }, 60_000);
});

describe("a SIGKILLed spawnctl start", () => {
  // killed after so many ms: before its cgroup, while the child mounts, while
  // the supervisor takes over, after it returned
  for (const delay of [5, 20, 40, 80, 200]) {
    test(`killed ${delay} ms in: the machine either runs whole (and stops cleanly) or leaves nothing after the next list`, async () => {
      try {
        const p = track(Bun.spawn(["unshare", "--net", SPAWNCTL, "start", M1], { stdout: "ignore", stderr: "pipe" }));
        await Bun.sleep(delay);
        try {
          process.kill(p.pid, 9); // unshare exec'd spawnctl: the same pid
        } catch {
          /* done already */
        }
        await p.exited;
        await Bun.sleep(300);
        expect(run(["list"]).code).toBe(0);
        const st = existsSync(`${REGISTRY}/${M1}.json`) ? JSON.parse(readFileSync(`${REGISTRY}/${M1}.json`, "utf8")) : undefined;
        if (st && existsSync(`/proc/${st.leader}`)) {
          // it ran to the end: a whole machine its supervisor owns
          expect(run(["status", M1]).code).toBe(0);
          expect(run(["terminate", M1]).code).toBe(0);
          await waitFor(() => !existsSync(`${REGISTRY}/${M1}.json`), 10_000, "the machine's end");
        } else {
          await waitFor(() => procs(M1).length === 0, 5_000, "the half-started container's end");
          expect(run(["list"]).code).toBe(0);
        }
        expect(remains(M1, IMAGES[0])).toEqual([]);
      } finally {
        await stopAll();
        run(["terminate", M1]);
        await scrub(M1, IMAGES[0]);
      }
    }, 30_000);
  }
});

describe("the collector leaves the living alone", () => {
  test("a running run, and a cgroup with a process in it (that goes only once the process has)", async () => {
    const live = `${P}-live`;
    const busy = `${P}-busy`;
    let sleeper: ReturnType<typeof Bun.spawn> | undefined;
    try {
      const p = track(spawnRun(["-D", tree, "-M", live, "/bin/sh", "-c", "echo up; sleep 1; echo done"]));
      expect(await firstLine(p)).toBe("up\n");
      // a machine's cgroup with no state and no lock, but a process in it (in
      // the layout of before, spawnctl/NAME, which the collector also knows)
      sleeper = Bun.spawn(["sleep", "100"], { stdio: ["ignore", "ignore", "ignore"] });
      for (const r of roots) mkdirSync(`${r}/spawnctl/${busy}`, { recursive: true });
      for (const h of ["pids", "memory", "unified"]) {
        const d = roots.find((r) => r.endsWith(`/${h}`));
        if (d) writeFileSync(`${d}/spawnctl/${busy}/cgroup.procs`, `${sleeper.pid}\n`);
      }
      expect(procs(busy)).toEqual([sleeper.pid]);
      expect(run(["list"]).code).toBe(0);
      expect(cgroupDirs(live).length).toBe(roots.length);
      expect(existsSync(mark(live))).toBe(true);
      expect(cgroupDirs(busy).length).toBe(roots.length);
      expect(procs(busy)).toEqual([sleeper.pid]);
      // the run goes on and ends as it would have
      expect(await restOf(p)).toBe("done\n");
      expect(await p.exited).toBe(0);
      expect(remains(live, tree)).toEqual([]);
      sleeper.kill(9);
      await sleeper.exited;
      await waitFor(() => procs(busy).length === 0, 5000, "the sleeper's end");
      expect(run(["list"]).code).toBe(0);
      expect(remains(busy)).toEqual([]);
    } finally {
      await stopAll();
      sleeper?.kill(9);
      await scrub(busy);
      await scrub(live, tree);
    }
  }, 30_000);
});

describe("run marks", () => {
  test("a dead run's mark: the collector releases the tree locks it names, and nothing else", () => {
    const name = `${P}-mk1`;
    const lck = `${base}/.#gone.lck`;
    const decoy = `${base}/decoy`;
    try {
      writeFileSync(lck, "");
      writeFileSync(decoy, "keep");
      writeFileSync(mark(name), `${JSON.stringify({ pid: 1, locks: [lck, decoy, `${base}/../${P}-x/.#y.lck`] })}\n`);
      expect(run(["list"]).code).toBe(0);
      expect(existsSync(lck)).toBe(false);
      expect(readFileSync(decoy, "utf8")).toBe("keep");
      expect(remains(name)).toEqual([]);
    } finally {
      rmSync(lck, { force: true });
      rmSync(decoy, { force: true });
      rmSync(mark(name), { force: true });
    }
  });

  test("a run that finds a dead run's mark of its name takes it over: the old locks go, the new record is whole", () => {
    const name = `${P}-mk2`;
    const old = `${base}/.#old.lck`;
    const mine = `${base}/.#mine.lck`;
    try {
      writeFileSync(old, "");
      // longer than the new record: a leftover tail would spoil it
      writeFileSync(mark(name), `${JSON.stringify({ pid: 1, locks: [old, `${base}/.#${"x".repeat(200)}.lck`] })}\n`);
      const release = markRun(name, [mine]);
      expect(existsSync(old)).toBe(false);
      expect(JSON.parse(readFileSync(mark(name), "utf8"))).toEqual({ pid: process.pid, locks: [mine] });
      // held: the collector leaves it
      expect(run(["list"]).code).toBe(0);
      expect(existsSync(mark(name))).toBe(true);
      release();
      expect(existsSync(mark(name))).toBe(false);
    } finally {
      rmSync(old, { force: true });
      rmSync(mark(name), { force: true });
    }
  });
});

describe("interrupted image work", () => {
  const imgTest = needs("root and busybox-static", IS_ROOT && !!busyboxPath());

  imgTest("import-tar SIGKILLed midway: the name lock is collected, the next import works, clean removes the half image", async () => {
    const pool = `${base}/pool`;
    const tar = `${base}/big.tar`;
    const name = `${P}-img`;
    const env = { SPAWNCTL_IMAGE_PATH: pool };
    try {
      mkdirSync(pool, { mode: 0o700 });
      // 1200 files of 256 KiB: extracting takes a while
      const w = Bun.file(tar).writer();
      const tw = new TarWriter((c) => void w.write(c));
      const data = new Uint8Array(256 << 10).fill(0x5a);
      tw.addDir("data");
      for (let i = 0; i < 1200; i++) tw.addFile(`data/f${i}`, data);
      tw.finish();
      await w.end();
      const p = track(Bun.spawn([SPAWNCTL, "import-tar", tar, name], { env: { ...process.env, ...env }, stdout: "ignore", stderr: "pipe" }));
      const temp = () => ls(pool).filter((n) => n.startsWith(`.#spawnctl.${p.pid}.`));
      await waitFor(() => temp().length > 0, 10_000, "the import's temporary tree");
      await Bun.sleep(30);
      await sigkill(p);
      const nameLock = `${LOCKS}/name-${name}`;
      expect(existsSync(nameLock)).toBe(true);
      expect(existsSync(`${pool}/${name}`)).toBe(false);
      expect(temp().length).toBe(1);
      await waitFor(() => Date.now() - statSync(nameLock).ctimeMs > 1100, 5000, "the name lock to age");
      expect(run(["list"]).code).toBe(0);
      expect(existsSync(nameLock)).toBe(false);
      const again = run(["import-tar", tar, name], { env, timeout: 120_000 });
      expect(again.stderr).not.toContain("another process");
      expect(again.code).toBe(0);
      expect(existsSync(`${pool}/${name}/data/f1199`)).toBe(true);
      const clean = run(["clean"], { env });
      expect(clean.code).toBe(0);
      expect(clean.stderr).toContain(`.#spawnctl.${p.pid}.`);
      expect(temp()).toEqual([]);
      expect(existsSync(nameLock)).toBe(false);
    } finally {
      await stopAll();
      rmSync(tar, { force: true });
      removeTree(pool);
      rmSync(`${LOCKS}/name-${name}`, { force: true });
    }
  }, 180_000);

  const archReady = IS_ROOT && ensureTools() && hasTool("pacman") && existsSync(SPAWNCTL);
  const archTest = needs(`root, ${SPAWNCTL} and ${[...TOOLS, "pacman", "busybox"].join(", ")} (${INSTALL_HINT})`, archReady);

  archTest("bootstrap SIGKILLed during its second stage: its container's cgroup, mark and locks are collected, the next attempt works", async () => {
    let fx: Fixture | undefined;
    const work = `${base}/arch`;
    const dest = `${work}/tree`;
    const killed: string[] = [];
    let container = "";
    try {
      fx = buildFixture({ prefix: `${P}-arch-` });
      mkdirSync(work);
      const args = [`--mirror=${fx.mirror}`, `--keyring=${fx.pubkey}`, "-q"];
      const p = track(Bun.spawn([SPAWNCTL, "bootstrap", "arch", dest, "base", "toy-slow", ...args, `--cache-dir=${work}/c1`], { stdout: "ignore", stderr: "pipe" }));
      const temps = () => ls(work).filter((e) => e.startsWith(".#tree.bootstrap-") && !e.endsWith(".lck"));
      // toy-slow's post_install sleeps in a container of bootstrap's own
      await waitFor(() => temps().some((t) => existsSync(`${work}/${t}/var/lib/toy-slow-started`)), 120_000, "toy-slow's scriptlet");
      killed.push(...temps());
      for (const f of ls(REGISTRY).filter((f) => f.endsWith(".run"))) {
        try {
          if (JSON.parse(readFileSync(`${REGISTRY}/${f}`, "utf8")).pid === p.pid) container = f.slice(0, -4);
        } catch {
          /* another's, being written */
        }
      }
      expect(container).not.toBe("");
      await sigkill(p);
      await waitFor(() => procs(container).length === 0, 10_000, "the container's end");
      const inTemp = `${work}/${killed[0]}`;
      expect(remains(container, inTemp)).toEqual(expect.arrayContaining([`registry ${container}.run`, ...treeLockPaths(inTemp).map((l) => `lock ${l}`)]));
      expect(cgroupDirs(container).length).toBeGreaterThan(0);
      expect(run(["list"]).code).toBe(0);
      expect(remains(container, inTemp)).toEqual([]);
      const again = run(["bootstrap", "arch", dest, "base", ...args, `--cache-dir=${work}/c2`], { timeout: 180_000 });
      if (again.code !== 0) throw new Error(`the next bootstrap failed (exit ${again.code}):\n${again.stderr}`);
      expect(readFileSync(`${dest}/etc/os-release`, "utf8")).toContain("ID=");
    } finally {
      await stopAll();
      if (container) await scrub(container);
      if (fx) removeTree(fx.dir);
      removeTree(work);
    }
  }, 300_000);
});
