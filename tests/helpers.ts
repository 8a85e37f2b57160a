// Shared test helpers: the built binary, root checks that fail instead of
// skipping in CI, the busybox tree fixture, and the leftover scanner.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { test } from "bun:test";

export const ROOT = `${import.meta.dir}/..`;
export const SPAWNCTL = `${ROOT}/dist/spawnctl`;
export const IS_ROOT = process.getuid?.() === 0;
export const IN_CI = process.env.CI === "true";

/** A test that needs something: skipped with a reason outside CI, failing in CI. */
export function needs(what: string, ok: boolean): typeof test {
  if (ok) return test;
  if (IN_CI) {
    return ((name: string, _fn: unknown) =>
      test(name, () => {
        throw new Error(`CI=true and this test needs ${what}`);
      })) as unknown as typeof test;
  }
  return ((name: string, _fn: unknown) => test.skip(`${name} (needs ${what})`, () => {})) as unknown as typeof test;
}

export const rootTest = needs("root", IS_ROOT);

export interface Result { code: number; stdout: string; stderr: string }

export function run(args: string[], opts: { stdin?: string; env?: Record<string, string>; timeout?: number; cwd?: string; netns?: boolean } = {}): Result {
  // netns: in a network namespace of its own, so that what a machine's start
  // does to the network (veth links, forwarding, firewall rules) never
  // touches this host's; it lives as long as the machine's supervisor
  const p = Bun.spawnSync([...(opts.netns ? ["unshare", "--net"] : []), SPAWNCTL, ...args], {
    stdin: opts.stdin !== undefined ? Buffer.from(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
    timeout: opts.timeout ?? 60_000,
    cwd: opts.cwd,
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

export function busyboxPath(): string | undefined {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  return undefined;
}

export function tempDir(prefix = "spawnctl-test-"): string {
  mkdirSync("/var/tmp", { recursive: true });
  return mkdtempSync(`/var/tmp/${prefix}`);
}

export interface TreeOptions {
  /** /etc/inittab content; the default one runs a shell script as sysinit and waits */
  inittab?: string;
  files?: Record<string, string>;
  machineId?: string;
  /** a script of its own as /usr/sbin/init (what -b and start run), instead of busybox's init */
  init?: string;
}

/**
 * A minimal OS tree built from Debian's busybox-static: merged /usr, the
 * applets as symlinks, passwd/group with a test user, os-release.
 */
export function makeBusyboxTree(dir: string, opts: TreeOptions = {}): string {
  const bb = busyboxPath();
  if (!bb) throw new Error("busybox-static is not installed (apt-get install busybox-static)");
  for (const d of ["usr/bin", "usr/sbin", "etc", "root", "home/tester", "var/log", "tmp", "proc", "sys", "dev", "run"]) mkdirSync(`${dir}/${d}`, { recursive: true });
  copyFileSync(bb, `${dir}/usr/bin/busybox`);
  chmodSync(`${dir}/usr/bin/busybox`, 0o755);
  const applets = Bun.spawnSync([bb, "--list"]).stdout.toString().split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", `${dir}/usr/bin/${a}`);
  symlinkSync("usr/bin", `${dir}/bin`);
  symlinkSync("usr/bin", `${dir}/sbin`);
  writeFileSync(`${dir}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:Test User:/home/tester:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(`${dir}/etc/group`, "root:x:0:\ntty:x:5:\nusers:x:100:tester\ntester:x:1000:\nnogroup:x:65534:\n");
  writeFileSync(`${dir}/etc/os-release`, 'ID=busybox\nNAME="BusyBox test tree"\nVERSION_ID=1\n');
  writeFileSync(`${dir}/etc/inittab`, opts.inittab ?? "::sysinit:/bin/true\n::respawn:/bin/sleep 1000\n");
  if (opts.machineId !== undefined) writeFileSync(`${dir}/etc/machine-id`, `${opts.machineId}\n`);
  for (const [p, content] of Object.entries(opts.files ?? {})) {
    mkdirSync(`${dir}/${p.slice(0, p.lastIndexOf("/"))}`, { recursive: true });
    writeFileSync(`${dir}/${p}`, content);
    if (p.includes("/bin/") || p.endsWith(".sh")) chmodSync(`${dir}/${p}`, 0o755);
  }
  chmodSync(`${dir}/home/tester`, 0o755);
  if (opts.init !== undefined) {
    // /sbin is the busybox applets' directory: a directory of its own with the init
    rmSync(`${dir}/sbin`, { force: true });
    mkdirSync(`${dir}/usr/sbin`, { recursive: true });
    writeFileSync(`${dir}/usr/sbin/init`, opts.init);
    chmodSync(`${dir}/usr/sbin/init`, 0o755);
    symlinkSync("usr/sbin", `${dir}/sbin`);
  }
  Bun.spawnSync(["chown", "1000:1000", `${dir}/home/tester`]);
  return dir;
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** What a spawnctl run may leave behind: mounts, cgroups, links, lock and state files, processes. */
export function leftovers(): string[] {
  const out: string[] = [];
  try {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (line.includes("spawnctl")) out.push(`mount: ${line.split(" ")[4]}`);
  } catch {
    /* no /proc */
  }
  const cg = "/sys/fs/cgroup";
  const scan = (d: string, depth: number) => {
    if (depth > 3) return;
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) {
      // spawnctl's machines (machine.slice, as systemd names it; spawnctl/ before)
      if (e.includes("spawnctl") || e === "machine.slice") out.push(`cgroup: ${d}/${e}`);
      else scan(`${d}/${e}`, depth + 1);
    }
  };
  scan(cg, 0);
  try {
    for (const l of readdirSync("/sys/class/net")) if (/^(ve|vb|vz|mv|iv)-/.test(l)) out.push(`link: ${l}`);
  } catch {
    /* no sysfs */
  }
  // tests run their networked containers in network namespaces of their own:
  // the host's forwarding must be as it was (compared with the value at the start)
  try {
    if (readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() === "1") out.push("sysctl: net.ipv4.ip_forward=1");
  } catch {
    /* no procfs */
  }
  for (const d of ["/run/spawnctl/machines", "/run/systemd/nspawn/locks", "/run/spawnctl/uid-range", "/run/spawnctl/hosts"]) {
    try {
      for (const f of readdirSync(d)) if (f !== ".lock") out.push(`state: ${d}/${f}`);
    } catch {
      /* none */
    }
  }
  try {
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        const argv0 = cmd.split("\0")[0]!;
        if (argv0 === SPAWNCTL || argv0.endsWith("/dist/spawnctl")) out.push(`process: ${pid} ${cmd.replace(/\0/g, " ").trim()}`);
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no /proc */
  }
  return out;
}

/** Run cmd on a pty (script(1)), typing each input after its delay in ms; what the terminal showed, without CRs. */
export async function onTty(cmd: string, inputs: Array<[number, string]>, env?: Record<string, string>): Promise<string> {
  const p = Bun.spawn(["script", "-qfec", cmd, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: env ? { ...process.env, ...env } : undefined });
  for (const [delay, data] of inputs) {
    await Bun.sleep(delay);
    p.stdin.write(data);
    p.stdin.flush();
  }
  const t = setTimeout(() => p.kill(), 20_000);
  await p.exited;
  clearTimeout(t);
  return (await new Response(p.stdout).text()).replace(/\r/g, "");
}
