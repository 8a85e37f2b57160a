#!/usr/bin/env bun
// Benchmarks side by side with peers, as ratios from one run. Not a test.
//   bun bench/run.ts [start] [--runs N]
//
// start: start→exit of /bin/true in a busybox tree, paired and alternating:
//   dist/spawnctl run -q -D tree /bin/true
//   unshare -fpmiu --mount-proc chroot tree /bin/true      (the floor)
//   systemd-nspawn -q --register=no --keep-unit -D tree /bin/true   (if installed)
import { existsSync, writeFileSync } from "node:fs";
import { makeBusyboxTree, removeTree, tempDir, SPAWNCTL } from "../tests/helpers.ts";

const args = process.argv.slice(2);
const runsArg = args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 40;
const which = args.filter((a, i) => !a.startsWith("--") && args[i - 1] !== "--runs");

interface Sample { ms: number; rssKiB: number }

const HAVE_TIME = existsSync("/usr/bin/time");

function once(cmd: string[], withRss = false): Sample {
  // peak RSS through GNU time (its own start-up is not timed: separate runs)
  if (withRss && HAVE_TIME) {
    const p = Bun.spawnSync(["/usr/bin/time", "-f", "%M", ...cmd], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
    const lines = p.stderr.toString().trim().split("\n");
    return { ms: 0, rssKiB: Number(lines[lines.length - 1]) };
  }
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: exit ${p.exitCode}: ${p.stderr.toString().slice(0, 300)}`);
  return { ms, rssKiB: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The median of the differences a[i] - b[i] between runs made side by side:
 * steadier than the difference of two medians on a machine whose speed drifts. */
function pairedDiff(a: number[], b: number[]): number {
  return median(a.map((x, i) => x - b[i]!));
}

function runPaired(cmds: Record<string, string[]>, runs: number): Record<string, { med: number; p90: number; rss: number; samples: number[] }> {
  const names = Object.keys(cmds);
  const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) for (let i = 0; i < 3; i++) once(cmds[n]!); // warm-up
  for (let i = 0; i < runs; i++) {
    // alternate the order so drift affects every command alike
    const order = i % 2 === 0 ? names : [...names].reverse();
    for (const n of order) samples[n]!.push(once(cmds[n]!));
  }
  return Object.fromEntries(names.map((n) => {
    const raw = samples[n]!.map((s) => s.ms);
    const ms = [...raw].sort((a, b) => a - b);
    const rss = median([0, 1, 2].map(() => once(cmds[n]!, true).rssKiB));
    return [n, { med: median(ms), p90: ms[Math.floor(ms.length * 0.9)]!, rss, samples: raw }];
  }));
}

function benchStart(): void {
  const base = tempDir("spawnctl-bench-");
  try {
    const tree = makeBusyboxTree(`${base}/bb`);
    // Bun's own floor: a compiled hello-world made by the same Bun, now
    writeFileSync(`${base}/hello.ts`, 'console.log("hello");\n');
    const b = Bun.spawnSync([process.execPath, "build", "--compile", `${base}/hello.ts`, "--outfile", `${base}/hello`], { stdout: "ignore", stderr: "pipe" });
    if (b.exitCode !== 0) throw new Error(`compiling the Bun hello-world: ${b.stderr.toString()}`);
    const cmds: Record<string, string[]> = {
      floor: ["unshare", "-fpmiu", "--mount-proc", "chroot", tree, "/bin/true"],
      "bun hello": [`${base}/hello`],
      spawnctl: [SPAWNCTL, "run", "-q", "-D", tree, "/bin/true"],
      "spawnctl -P": [SPAWNCTL, "run", "-q", "-P", "-D", tree, "/bin/true"],
    };
    if (existsSync("/usr/bin/systemd-nspawn")) cmds["systemd-nspawn"] = ["/usr/bin/systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", tree, "/bin/true"];
    const r = runPaired(cmds, RUNS);
    console.log(`start→exit of /bin/true in a busybox tree, ${RUNS} paired runs (median, p90, peak RSS)`);
    for (const [n, v] of Object.entries(r)) {
      console.log(`  ${n.padEnd(16)} ${v.med.toFixed(2).padStart(7)} ms  p90 ${v.p90.toFixed(2).padStart(7)} ms  ${(v.rss / 1024).toFixed(1).padStart(6)} MiB  ×${(v.med / r.floor!.med).toFixed(2)} of the floor`);
    }
    if (r["systemd-nspawn"]) console.log(`  systemd-nspawn / spawnctl: ×${(r["systemd-nspawn"].med / r.spawnctl!.med).toFixed(2)}`);
    const hello = r["bun hello"]!.med;
    console.log(`  spawnctl / compiled Bun hello-world: ×${(r.spawnctl!.med / hello).toFixed(2)} (-P ×${(r["spawnctl -P"]!.med / hello).toFixed(2)}); goal ≤ 2.5×`);
  } finally {
    removeTree(base);
  }
}

const benches: Record<string, () => void | Promise<void>> = { start: benchStart };

// machines: start 50 machines from one read-only busybox tree, time until all
// run, and the memory each costs: the PSS of every spawnctl process (the
// supervisors) divided by 50; side by side with 50 background systemd-nspawn.
function pssKiB(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(require("node:fs").readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      if (m) sum += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return sum;
}

function pidsWhere(pred: (cmd: string) => boolean): number[] {
  const fs = require("node:fs");
  const out: number[] = [];
  for (const p of fs.readdirSync("/proc").filter((x: string) => /^\d+$/.test(x))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ");
      if (pred(cmd)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function benchMachines(): Promise<void> {
  const fs = require("node:fs");
  const N = Number(process.env.BENCH_MACHINES ?? 50);
  const base = tempDir("spawnctl-bench-");
  const tree = makeBusyboxTree(`${base}/bb`, { inittab: "::respawn:/bin/sleep 100000\n" });
  Bun.spawnSync(["ln", "-sf", "busybox", `${tree}/usr/bin/init`]);
  const names = Array.from({ length: N }, (_, i) => `scbench-${i + 1}`);
  fs.mkdirSync("/etc/systemd/nspawn", { recursive: true });
  for (const n of names) {
    fs.symlinkSync(tree, `/var/lib/machines/${n}`);
    fs.writeFileSync(`/etc/systemd/nspawn/${n}.nspawn`, "[Exec]\nKillSignal=SIGUSR2\n[Files]\nReadOnly=yes\n");
  }
  try {
    // several rounds: this kind of VM drifts by tens of percent within minutes
    const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
    const times: number[] = [];
    let pss = 0;
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      // in a network namespace of the bench's own: every machine gets its
      // default veth link, none of them on this host's real network
      const r = Bun.spawnSync(["unshare", "--net", SPAWNCTL, "start", ...names], { stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(r.stderr.toString());
      // all running: every machine's leader has its child (the respawned sleep)
      for (;;) {
        const n = pidsWhere((c) => c.startsWith("/bin/sleep 100000")).length;
        if (n >= N) break;
        await Bun.sleep(5);
      }
      const ms = performance.now() - t0;
      times.push(ms);
      await Bun.sleep(300);
      const sup = pidsWhere((c) => c.includes("--name scbench-"));
      pss = pssKiB(sup);
      console.log(`${N} machines with spawnctl start: all running after ${ms.toFixed(0)} ms; supervisors: ${sup.length}, PSS ${(pss / 1024).toFixed(2)} MiB in all, ${(pss / N).toFixed(0)} KiB per machine`);
      Bun.spawnSync([SPAWNCTL, "terminate", ...names]);
      // gone, and cleaned up by their supervisors (state files removed)
      while (pidsWhere((c) => c.startsWith("/bin/sleep 100000") || c.includes("__machine-exited")).length > 0 ||
        names.some((n) => fs.existsSync(`/run/spawnctl/machines/${n}.json`))) await Bun.sleep(20);
    }
    const ms = median(times);
    console.log(`  spawnctl: median of ${rounds} rounds ${ms.toFixed(0)} ms (goal ≤ 500 ms), ${(pss / N).toFixed(0)} KiB PSS per machine (goal ≤ 1024)`);
    if (fs.existsSync("/usr/bin/systemd-nspawn")) {
      const t1 = performance.now();
      const procs = names.map((n) => Bun.spawn(["/usr/bin/systemd-nspawn", "-q", "--read-only", "--register=no", "--keep-unit", "-b", "-M", n, "-D", tree], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }));
      for (;;) {
        const n = pidsWhere((c) => c.startsWith("/bin/sleep 100000")).length;
        if (n >= N) break;
        await Bun.sleep(5);
      }
      const ms2 = performance.now() - t1;
      await Bun.sleep(300);
      const pss2 = pssKiB(procs.map((p) => p.pid));
      console.log(`${N} machines with systemd-nspawn in the background: all running after ${ms2.toFixed(0)} ms; PSS ${(pss2 / 1024).toFixed(2)} MiB in all, ${(pss2 / N).toFixed(0)} KiB per machine`);
      // nspawn killed outright leaves its container running: end every
      // descendant (the container's init first), then nspawn itself
      const fs2 = require("node:fs");
      const descendants = (pid: number): number[] => {
        let kids: number[] = [];
        try {
          kids = String(fs2.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")).trim().split(/\s+/).filter(Boolean).map(Number);
        } catch { /* gone */ }
        return kids.flatMap((k) => [k, ...descendants(k)]);
      };
      for (const p of procs) {
        for (const c of descendants(p.pid)) {
          try { process.kill(c, "SIGKILL"); } catch { /* gone */ }
        }
      }
      for (const p of procs) p.kill("SIGKILL");
      await Promise.all(procs.map((p) => p.exited));
      // nspawn 252 leaves payload/ and supervisor/ in the cgroup it ran in
      for (const line of String(fs2.readFileSync("/proc/self/cgroup", "utf8")).trim().split("\n")) {
        const [, ctl, path] = line.split(":");
        const mnt = ctl === "" ? "/sys/fs/cgroup/unified" : ctl === "name=systemd" ? "/sys/fs/cgroup/systemd" : null;
        if (!mnt) continue;
        for (const d of ["payload", "supervisor"]) {
          try { fs2.rmdirSync(`${mnt}${path === "/" ? "" : path}/${d}`); } catch { /* not there */ }
        }
      }
      console.log(`  ratio nspawn/spawnctl: time ×${(ms2 / ms).toFixed(2)}, memory ×${(pss2 / pss).toFixed(2)}`);
    }
  } finally {
    for (const n of names) {
      fs.rmSync(`/var/lib/machines/${n}`, { force: true });
      fs.rmSync(`/etc/systemd/nspawn/${n}.nspawn`, { force: true });
      fs.rmSync(`/var/log/spawnctl/${n}.console`, { force: true });
    }
    removeTree(base);
  }
}
benches.machines = () => benchMachines();


// bootstrap: bookworm minbase into an empty directory, alternating runs of
// spawnctl bootstrap, mmdebstrap and debootstrap against the same mirror.
async function benchBootstrap(): Promise<void> {
  const { defaultMirror } = await import("../src/bootstrap/mirror.ts");
  const fs = require("node:fs");
  const mirror = defaultMirror("bookworm");
  if (!mirror) throw new Error("no Debian mirror configured");
  const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
  const base = tempDir("spawnctl-bench-");
  const cache = `${base}/cache`;
  const tools: Record<string, (dest: string) => string[]> = {
    spawnctl: (d) => [SPAWNCTL, "bootstrap", "-q", "debian", "bookworm", d, `--mirror=${mirror}`, `--cache-dir=${cache}`],
  };
  if (fs.existsSync("/usr/bin/mmdebstrap")) tools.mmdebstrap = (d) => ["mmdebstrap", "--quiet", "--variant=minbase", "bookworm", d, mirror];
  if (fs.existsSync("/usr/sbin/debootstrap")) tools.debootstrap = (d) => ["debootstrap", "--variant=minbase", "bookworm", d, mirror];
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(tools).map((k) => [k, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, cmd] of Object.entries(tools)) {
        const dest = `${base}/${name}-${r}`;
        // spawnctl's package cache is emptied so it downloads like the others
        fs.rmSync(cache, { recursive: true, force: true });
        const t0 = performance.now();
        const p = Bun.spawnSync(cmd(dest), { stdout: "ignore", stderr: "pipe" });
        const s = (performance.now() - t0) / 1000;
        if (p.exitCode !== 0) throw new Error(`${name}: ${p.stderr.toString().slice(-500)}`);
        times[name]!.push(s);
        fs.rmSync(dest, { recursive: true, force: true });
        console.log(`  round ${r + 1}: ${name} ${s.toFixed(1)} s`);
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`bookworm minbase, ${rounds} alternating rounds (median):`);
    for (const [n, xs] of Object.entries(times)) console.log(`  ${n.padEnd(12)} ${med(xs).toFixed(1)} s  ×${(med(xs) / med(times.spawnctl!)).toFixed(2)} of spawnctl`);
    if (times.mmdebstrap) console.log(`  spawnctl / mmdebstrap: ×${(med(times.spawnctl!) / med(times.mmdebstrap)).toFixed(2)} (goal ≤ 0.6)`);
  } finally {
    removeTree(base);
  }
}
benches.bootstrap = () => benchBootstrap();

// network: the extra start cost of -n (a veth pair, addresses, DHCP, NAT) over
// --private-network, and of -p on top: the time until the payload runs (it
// writes to a fifo the bench waits on) and until spawnctl has exited; paired
// runs, each inside a network namespace of the bench's own
async function benchNetwork(): Promise<void> {
  const fs = require("node:fs");
  const base = tempDir("spawnctl-bench-");
  try {
    const tree = makeBusyboxTree(`${base}/bb`);
    const fifo = `${base}/started`;
    Bun.spawnSync(["mkfifo", fifo]);
    const cmds: Record<string, string[]> = {
      "--private-network": ["--private-network"],
      "-n": ["-n"],
      "-n -p 8080:80": ["-n", "-p", "tcp:8080:80"],
    };
    const once = async (o: string[]) => {
      const t0 = performance.now();
      const p = Bun.spawn(["unshare", "--net", SPAWNCTL, "run", "-q", "-P", ...o, `--bind=${fifo}:/started`, "-D", tree, "/bin/sh", "-c", "echo > /started"], { stdout: "ignore", stderr: "pipe" });
      const fd = fs.openSync(fifo, "r"); // returns once the payload opens it
      const t1 = performance.now();
      fs.readSync(fd, Buffer.alloc(1));
      fs.closeSync(fd);
      const code = await p.exited;
      if (code !== 0) throw new Error(`${o.join(" ")}: ${await new Response(p.stderr).text()}`);
      return { start: t1 - t0, total: performance.now() - t0 };
    };
    const names = Object.keys(cmds);
    const samples: Record<string, Array<{ start: number; total: number }>> = Object.fromEntries(names.map((n) => [n, []]));
    for (const n of names) await once(cmds[n]!);
    for (let i = 0; i < RUNS; i++) for (const n of i % 2 ? [...names].reverse() : names) samples[n]!.push(await once(cmds[n]!));
    const med = (xs: number[]) => median(xs);
    const st = (n: string) => med(samples[n]!.map((x) => x.start));
    const tt = (n: string) => med(samples[n]!.map((x) => x.total));
    console.log(`${RUNS} paired runs (median), each in a fresh network namespace: time until the payload runs, and until spawnctl has exited`);
    for (const n of names) console.log(`  ${n.padEnd(20)} start ${st(n).toFixed(2).padStart(7)} ms (+${(st(n) - st(names[0]!)).toFixed(2)})   exit ${tt(n).toFixed(2).padStart(7)} ms (+${(tt(n) - tt(names[0]!)).toFixed(2)})`);
    console.log(`  -n adds ${(st("-n") - st(names[0]!)).toFixed(2)} ms to the start (goal ≤ 2 ms); -p adds ${(st("-n -p 8080:80") - st("-n")).toFixed(2)} ms to -n`);
    const pd = (a: string, b: string) => pairedDiff(samples[a]!.map((x) => x.start), samples[b]!.map((x) => x.start));
    console.log(`  median of the paired differences: -n adds ${pd("-n", names[0]!).toFixed(2)} ms, -p adds ${pd("-n -p 8080:80", "-n").toFixed(2)} ms`);
  } finally {
    removeTree(base);
  }
}
benches.network = benchNetwork;

// userns: start cost of -U (ownership map: idmapped root) against none, on a
// small busybox tree and on a Debian tree (the cost must not grow with the
// tree); and a recursive chown of the Debian tree there and back
function benchUserns(): void {
  const fs = require("node:fs");
  const base = tempDir("spawnctl-bench-");
  try {
    const tree = makeBusyboxTree(`${base}/bb`);
    const debian = "/var/cache/spawnctl-test/debian-bookworm-systemd-v2";
    const cmds: Record<string, string[]> = {
      "busybox": [SPAWNCTL, "run", "-q", "-P", "--read-only", "-D", tree, "/bin/true"],
      "busybox -U": [SPAWNCTL, "run", "-q", "-P", "--read-only", "-U", "-D", tree, "/bin/true"],
    };
    const haveDebian = fs.existsSync(`${debian}/usr/bin/true`);
    if (haveDebian) {
      cmds.debian = [SPAWNCTL, "run", "-q", "-P", "--read-only", "-D", debian, "/bin/true"];
      cmds["debian -U"] = [SPAWNCTL, "run", "-q", "-P", "--read-only", "-U", "-D", debian, "/bin/true"];
    }
    const r = runPaired(cmds, RUNS);
    console.log(`start→exit of /bin/true with and without -U (ownership map), ${RUNS} paired runs (median)`);
    for (const [n, v] of Object.entries(r)) console.log(`  ${n.padEnd(12)} ${v.med.toFixed(2).padStart(7)} ms  p90 ${v.p90.toFixed(2).padStart(7)} ms`);
    const d = (a: string, b: string) => pairedDiff(r[a]!.samples, r[b]!.samples);
    console.log(`  -U costs +${(r["busybox -U"]!.med - r.busybox!.med).toFixed(2)} ms on busybox${haveDebian ? `, +${(r["debian -U"]!.med - r.debian!.med).toFixed(2)} ms on Debian` : ""} (difference of the medians)`);
    console.log(`  -U costs ${d("busybox -U", "busybox").toFixed(2)} ms on busybox${haveDebian ? `, ${d("debian -U", "debian").toFixed(2)} ms on Debian` : ""} (median of the paired differences; goal ≤ 1 ms, independent of the tree)`);
    if (haveDebian) {
      // chown: a copy of the Debian tree shifted into a range and back, through the binary
      const copy = `${base}/debian`;
      Bun.spawnSync(["cp", "-a", debian, copy]);
      const files = Number(Bun.spawnSync(["sh", "-c", `find ${copy} -xdev | wc -l`]).stdout.toString().trim());
      const plain = runPaired({ plain: [SPAWNCTL, "run", "-q", "-P", "-D", copy, "/bin/true"] }, 5).plain!.med;
      const times: number[] = [];
      for (const shift of ["1966080", "0", "1966080", "0"]) {
        const t0 = performance.now();
        const p = Bun.spawnSync([SPAWNCTL, "run", "-q", "-P", `--private-users=${shift}`, "--private-users-chown", "-D", copy, "/bin/true"], { stdout: "ignore", stderr: "pipe" });
        if (p.exitCode !== 0) throw new Error(p.stderr.toString());
        times.push(performance.now() - t0 - plain);
      }
      console.log(`  chown of the Debian tree (${files} files): ${times.map((t) => (t / 1000).toFixed(3)).join(", ")} s (there, back, there, back; start time subtracted)`);
    }
  } finally {
    removeTree(base);
  }
}
benches.userns = benchUserns;

for (const b of which.length ? which : Object.keys(benches)) {
  const f = benches[b];
  if (!f) throw new Error(`unknown benchmark ${b}; have: ${Object.keys(benches).join(", ")}`);
  await f();
}
