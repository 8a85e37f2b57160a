// -i/--image=FILE: raw disk images built here with sfdisk and mkfs (no mount
// needed), run through loop devices without udev. Every case, the failing
// ones too, must leave no loop device on the test's images and no mount.
import { describe, expect } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { busyboxFixture } from "../fixture.ts";
import { IS_ROOT, SPAWNCTL, makeBusyboxTree, needs, run } from "../helpers.ts";

const ROOT_X64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
const HOME = "933ac7e1-2eb4-4f13-b844-0e14e2aef915";
const SRV = "3b8f8425-20e0-4f3b-907f-1a25a76f98e8";
const VAR = "4d21b016-b534-45c2-a9fb-5c16e091fd2d";
const SWAP = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f";

const has = (tool: string) => ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => existsSync(`${d}/${tool}`));
const test = needs("root, sfdisk (fdisk) and mkfs.ext4 (e2fsprogs)", IS_ROOT && has("sfdisk") && has("mkfs.ext4"));
const fsTest = (tool: string, pkg: string) => needs(`root, sfdisk and ${tool} (${pkg})`, IS_ROOT && has("sfdisk") && has(tool));

// init for start/poweroff: leaves on SIGRTMIN+4 (38) and SIGUSR2
const INIT = `#!/bin/sh
echo booted > /run/booted
trap "exit 0" 38 12
while true; do sleep 0.05; done
`;

let base = "";
let tree = "";
busyboxFixture({ init: INIT }, (b, t) => {
  base = b;
  tree = t;
  mkdirSync(`${base}/home/tester`, { recursive: true });
  writeFileSync(`${base}/home/tester/f`, "hello from /home\n");
});

function sh(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** An ext4 file system holding `dir`, in a file of its own (mkfs.ext4 -d: no mount). */
function ext4(file: string, dir: string, mb = 40): string {
  sh(["truncate", "-s", `${mb}M`, file]);
  sh(["mkfs.ext4", "-q", "-F", "-d", dir, file]);
  return file;
}

interface Part { type: string; fs?: string; mb: number; attrs?: string }

/** A GPT image: the table written by sfdisk from a script, each file system dd'ed into its partition. */
function gpt(file: string, parts: Part[]): string {
  const total = parts.reduce((n, p) => n + p.mb, 0) + 2;
  sh(["truncate", "-s", `${total}M`, file]);
  let start = 2048;
  const lines = ["label: gpt"];
  const starts: number[] = [];
  for (const p of parts) {
    lines.push(`start=${start}, size=${p.mb * 2048}, type=${p.type}${p.attrs ? `, attrs="${p.attrs}"` : ""}`);
    starts.push(start);
    start += p.mb * 2048;
  }
  const s = Bun.spawnSync(["sfdisk", "-q", file], { stdin: Buffer.from(`${lines.join("\n")}\n`), stderr: "pipe" });
  if (s.exitCode !== 0) throw new Error(`sfdisk: ${s.stderr}`);
  parts.forEach((p, i) => {
    if (p.fs) sh(["dd", `if=${p.fs}`, `of=${file}`, "bs=512", `seek=${starts[i]}`, "conv=notrunc,sparse", "status=none"]);
  });
  return file;
}

/** The loop devices whose backing file lies in the test's directory (sysfs: what losetup -a shows). */
function loops(): string[] {
  const out: string[] = [];
  for (const n of readdirSync("/sys/block").filter((d) => d.startsWith("loop"))) {
    try {
      const f = readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").trim();
      if (f.startsWith(`${base}/`)) out.push(`${n}: ${f}`);
    } catch {
      /* not attached */
    }
  }
  return out;
}
const mounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes("/run/spawnctl/disk") || l.includes(base));
const diskDirs = () => (existsSync("/run/spawnctl/disk") ? readdirSync("/run/spawnctl/disk") : []);

/** Nothing of an image is left: no loop device (the kernel frees auto-clear ones as the last user goes), no mount, no directory. */
async function nothingLeft(): Promise<void> {
  const end = Date.now() + 3000;
  while (loops().length > 0 && Date.now() < end) await Bun.sleep(20);
  expect(loops()).toEqual([]);
  expect(mounts()).toEqual([]);
  expect(diskDirs()).toEqual([]);
}

const runImg = (image: string, script: string, ...opts: string[]) => run(["run", "-q", "-P", ...opts, "-i", image, "/bin/sh", "-c", script]);
const md5 = (f: string) => new Bun.CryptoHasher("md5").update(readFileSync(f)).digest("hex");

let rootFs = "";
let homeFs = "";
function fsFiles(): void {
  if (rootFs) return;
  rootFs = ext4(`${base}/root.ext4`, tree);
  homeFs = ext4(`${base}/home.ext4`, `${base}/home`, 8);
}

describe("run -i IMAGE", () => {
  test("a GPT image with root and /home partitions: both mounted, writes reach the image, nothing left", async () => {
    fsFiles();
    const img = gpt(`${base}/gpt.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const r = runImg(img, "cat /home/tester/f; grep -E ' / | /home ' /proc/mounts | cut -d' ' -f2,3; hostname; echo kept > /root/kept");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from /home\n/ ext4\n/home ext4\ngpt\n");
    expect(r.code).toBe(0);
    await nothingLeft();
    expect(runImg(img, "cat /root/kept").stdout).toBe("kept\n");
    // the status lines name the image
    const v = run(["run", "--console=read-only", "-i", img, "/bin/true"]);
    expect(v.stderr).toContain(`Spawning container gpt on ${img}.`);
    expect(v.code).toBe(0);
    await nothingLeft();
  });

  test("a file system without partition table is the root; a read-only image file is mounted read-only", async () => {
    fsFiles();
    const img = `${base}/bare.raw`;
    sh(["cp", rootFs, img]);
    expect(runImg(img, "grep ' / ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; cat /etc/os-release | head -1").stdout).toBe("ext4 rw\nID=busybox\n");
    chmodSync(img, 0o444);
    const r = runImg(img, "grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; touch /x || echo refused");
    expect(r.stdout).toBe("ro\nrefused\n");
    expect(r.code).toBe(0);
    chmodSync(img, 0o644);
    await nothingLeft();
  });

  test("an MBR (DOS) table with one bootable Linux partition, as nspawn takes it", async () => {
    fsFiles();
    const img = `${base}/dos.raw`;
    sh(["truncate", "-s", "42M", img]);
    const s = Bun.spawnSync(["sfdisk", "-q", img], { stdin: Buffer.from("label: dos\nstart=2048, size=81920, type=83, bootable\n"), stderr: "pipe" });
    expect(s.exitCode).toBe(0);
    sh(["dd", `if=${rootFs}`, `of=${img}`, "bs=512", "seek=2048", "conv=notrunc,sparse", "status=none"]);
    expect(runImg(img, "cat /etc/os-release | head -1").stdout).toBe("ID=busybox\n");
    // the bootable flag taken away: which partition is the root is not said
    sh(["sfdisk", "-q", "--activate", img, "-"]);
    expect(runImg(img, "true").stderr).toBe(
      `Failed to dissect image ${img}: it has an MBR (DOS) partition table without a single bootable Linux (0x83) partition (it has 1 Linux partition(s), 0 marked bootable).\n`,
    );
    await nothingLeft();
  });

  test("--read-only: a read-only loop device and mounts; the image is unchanged", async () => {
    fsFiles();
    const img = gpt(`${base}/ro.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const sum = md5(img);
    const r = runImg(img, "touch /x 2>/dev/null || echo root-ro; touch /home/x 2>/dev/null || echo home-ro", "--read-only");
    expect(r.stdout).toBe("root-ro\nhome-ro\n");
    expect(r.code).toBe(0);
    expect(md5(img)).toBe(sum);
    await nothingLeft();
  });

  test("-x runs on a throw-away copy: changes are seen inside, the image stays as it was, no copy is left", async () => {
    fsFiles();
    const img = gpt(`${base}/eph.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }]);
    const sum = md5(img);
    const r = runImg(img, "echo changed > /etc/os-release; cat /etc/os-release; hostname", "-x");
    expect(r.stdout).toMatch(/^changed\neph-[0-9a-f]{16}\n$/);
    expect(r.code).toBe(0);
    expect(md5(img)).toBe(sum);
    expect(readdirSync(base).filter((f) => f.includes("spawnctl-ephemeral"))).toEqual([]);
    expect(readdirSync("/var/tmp").filter((f) => f.startsWith(`.#spawnctl-ephemeral-`))).toEqual([]);
    await nothingLeft();
  });

  test("-U: the image's root is idmapped into the picked range; files made inside belong to root on the image", async () => {
    fsFiles();
    const img = gpt(`${base}/userns.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }]);
    const r = runImg(img, "awk '{print $1, ($2 > 0)}' /proc/self/uid_map; touch /root/made; stat -c %u /root/made /etc/passwd", "-U");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0 1\n0\n0\n");
    expect(r.code).toBe(0);
    // on the image (outside any user namespace) the new file is root's, not the range's
    expect(runImg(img, "stat -c %u /root/made").stdout).toBe("0\n");
    await nothingLeft();
  });

  test("--print-plan describes the image and attaches nothing", async () => {
    fsFiles();
    const img = gpt(`${base}/plan.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const r = run(["run", "--print-plan", "-i", img, "/bin/true"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`# disk image ${img}: GUID partition table (primary header, 512-byte sectors)`);
    expect(r.stdout).toContain("#   partition 1 (root, ext4): loop device (offset 1048576, size 41943040, auto-clear) mounted on /run/spawnctl/disk/PID-XXXXXX/root");
    expect(r.stdout).toContain("#   partition 2 (/home, ext4): loop device (offset 42991616, size 8388608, auto-clear) mounted on /run/spawnctl/disk/PID-XXXXXX/root/home");
    // -U: the mounted root is idmapped as a directory is; -x: the copy is named, not made
    const u = run(["run", "--print-plan", "-U", "-x", "-i", img, "/bin/true"]);
    expect(u.code).toBe(0);
    expect(u.stdout).toContain('idmapTree path="/run/spawnctl/disk/PID-XXXXXX/root" reg=0 recursive=true');
    expect(u.stdout).toContain("#   copied to a throw-away file beside it (reflink where possible), removed once attached");
    expect(readdirSync(base).filter((f) => f.includes("spawnctl-ephemeral"))).toEqual([]);
    await nothingLeft();
  });

  test("hostile images are refused with a sentence naming the image, leaving nothing", async () => {
    fsFiles();
    const wrong = gpt(`${base}/wrong.raw`, [{ type: SWAP, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const two = gpt(`${base}/two.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: ROOT_X64, fs: rootFs, mb: 40 }]);
    const full = gpt(`${base}/full.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const truncated = `${base}/truncated.raw`;
    sh(["dd", `if=${full}`, `of=${truncated}`, "bs=1M", "count=30", "status=none"]);
    const nofs = gpt(`${base}/nofs.raw`, [{ type: ROOT_X64, mb: 8 }]);
    const junk = `${base}/junk.raw`;
    writeFileSync(junk, crypto.getRandomValues(new Uint8Array(65536)));
    const cases: Array<[string, string]> = [
      [wrong, "it has no root partition for x86-64"],
      [two, "it has two root partitions for x86-64 (1 and 2); mark all but one with the GPT no-auto flag (bit 63) or change their type"],
      [truncated, "partition 1 reaches beyond the end of the image (a truncated image?)"],
      [nofs, "partition 1 (root) holds no known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)"],
      [junk, "it has neither a GUID partition table nor a known file system (ext4, btrfs, xfs, vfat, squashfs, erofs)"],
    ];
    for (const [img, why] of cases) {
      const r = runImg(img, "true");
      expect(r.stderr).toBe(`Failed to dissect image ${img}: ${why}.\n`);
      expect(r.code).toBe(1);
      await nothingLeft();
    }
    // a damaged primary header: the backup at the end still reads; both damaged is refused
    const corrupt = `${base}/corrupt.raw`;
    sh(["cp", full, corrupt]);
    const poke = (at: number) => sh(["dd", "if=/dev/urandom", `of=${corrupt}`, "bs=1", `seek=${at}`, "count=8", "conv=notrunc", "status=none"]);
    poke(512 + 24);
    expect(runImg(corrupt, "cat /home/tester/f").stdout).toBe("hello from /home\n");
    poke(50 * 1024 * 1024 - 512 + 24);
    const r = runImg(corrupt, "true");
    expect(r.stderr).toMatch(/^Failed to dissect image .*: the primary GPT header is unusable: .*, and so is the backup \(.*\)\.\n$/);
    expect(r.code).toBe(1);
    // a mount point that is a symlink out of the image is refused, not followed
    const evil = `${base}/evil`;
    makeBusyboxTree(evil);
    rmSync(`${evil}/home`, { recursive: true });
    symlinkSync("/etc", `${evil}/home`);
    const ev = gpt(`${base}/evil.raw`, [{ type: ROOT_X64, fs: ext4(`${base}/evil.ext4`, evil), mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const e = runImg(ev, "true");
    expect(e.stderr).toBe(`Failed to mount partition 2 (/home, ext4) of ${ev}: /home is a symlink in the root file system; refusing.\n`);
    expect(e.code).toBe(1);
    await nothingLeft();
    // a file system that holds no OS: refused once mounted, and unmounted again
    mkdirSync(`${base}/empty`);
    const empty = ext4(`${base}/empty.raw`, `${base}/empty`, 8);
    expect(runImg(empty, "true").stderr).toBe(`Image ${empty} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.\n`);
    await nothingLeft();
    // a writable image runs once at a time (under another machine name: the name is locked first)
    const busy = Bun.spawn([SPAWNCTL, "run", "-q", "-P", "-i", full, "/bin/sleep", "30"], { stdout: "ignore", stderr: "ignore" });
    const until = Date.now() + 10_000;
    while (loops().length < 2 && Date.now() < until) await Bun.sleep(20);
    expect(runImg(full, "true", "-M", "other").stderr).toBe(`Directory tree ${full} is currently busy.\n`);
    busy.kill(9);
    await busy.exited;
    // (killed while it set up, its mounts wait for the next command's collector)
    run(["list"]);
    await nothingLeft();
    expect(run(["run", "-i", `${base}/missing.raw`, "/bin/true"]).code).toBe(1);
    expect(run(["run", "-i", base, "/bin/true"]).stderr).toBe(`--image=${base} is a directory; use --directory= for a directory tree.\n`);
    expect(run(["run", "-i", full, "-D", tree, "/bin/true"]).stderr).toBe("--directory= and --image= may not be combined.\n");
    expect(run(["run", "--root-hash=00", "-i", full, "/bin/true"]).stderr).toContain("--root-hash= is not supported");
    await nothingLeft();
  });

  test("SIGKILL of spawnctl: the running container's image goes with it; a run killed before its container started is collected", async () => {
    fsFiles();
    const img = gpt(`${base}/kill.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: HOME, fs: homeFs, mb: 8 }]);
    const p = Bun.spawn([SPAWNCTL, "run", "-q", "-P", "-i", img, "/bin/sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    const end = Date.now() + 10_000;
    while (loops().length < 2 && Date.now() < end) await Bun.sleep(20);
    expect(loops().length).toBe(2);
    // the host's mounts went when the container started
    await Bun.sleep(200);
    expect(mounts()).toEqual([]);
    p.kill(9);
    await p.exited;
    await nothingLeft();
    run(["list"]);
    // what a run killed between mounting and spawning left: its directory, named by its (dead) pid
    const dead = Bun.spawnSync(["true"]).pid;
    const dir = `/run/spawnctl/disk/${dead}-stale`;
    mkdirSync(`${dir}`, { recursive: true });
    sh(["mount", "-t", "tmpfs", "tmpfs", dir]);
    mkdirSync(`${dir}/root`);
    sh(["mount", "-o", "loop,ro", `${base}/root.ext4`, `${dir}/root`]);
    expect(loops().length).toBe(1);
    run(["list"]);
    expect(existsSync(dir)).toBe(false);
    await nothingLeft();
  });
});

describe("file systems", () => {
  fsTest("mksquashfs", "squashfs-tools")("squashfs as the root: read-only", async () => {
    const img = `${base}/root.squashfs`;
    sh(["mksquashfs", tree, img, "-noappend", "-quiet", "-no-progress"]);
    const r = runImg(img, "grep ' / ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; cat /etc/os-release | head -1");
    expect(r.stdout).toBe("squashfs ro\nID=busybox\n");
    expect(r.code).toBe(0);
    await nothingLeft();
  });

  fsTest("mkfs.erofs", "erofs-utils")("erofs as the root partition of a GPT", async () => {
    const fs = `${base}/root.erofs`;
    sh(["mkfs.erofs", fs, tree]);
    const img = gpt(`${base}/erofs.raw`, [{ type: ROOT_X64, fs, mb: 40 }]);
    const r = runImg(img, "grep ' / ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; ls /usr/bin/busybox");
    expect(r.stdout).toBe("erofs ro\n/usr/bin/busybox\n");
    expect(r.code).toBe(0);
    await nothingLeft();
  });

  fsTest("mkfs.btrfs", "btrfs-progs")("btrfs as the root, /srv with the GPT read-only flag (bit 60)", async () => {
    fsFiles();
    const root = `${base}/root.btrfs`;
    sh(["truncate", "-s", "120M", root]);
    sh(["mkfs.btrfs", "-q", "--rootdir", tree, root]);
    const img = gpt(`${base}/btrfs.raw`, [{ type: ROOT_X64, fs: root, mb: 120 }, { type: SRV, fs: homeFs, mb: 8, attrs: "GUID:60" }]);
    const r = runImg(img, "grep -E ' / | /srv ' /proc/mounts | cut -d' ' -f2,3,4 | cut -d, -f1; touch /srv/x 2>/dev/null || echo srv-ro; touch /y && echo root-rw");
    expect(r.stdout).toBe("/ btrfs rw\n/srv ext4 ro\nsrv-ro\nroot-rw\n");
    expect(r.code).toBe(0);
    rmSync(img);
    await nothingLeft();
  });

  fsTest("mkfs.vfat", "dosfstools")("vfat as /srv: mounted where the kernel has vfat, else a sentence saying it has not", async () => {
    fsFiles();
    const srv = `${base}/srv.vfat`;
    sh(["truncate", "-s", "8M", srv]);
    sh(["mkfs.vfat", srv]);
    const img = gpt(`${base}/vfat.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: SRV, fs: srv, mb: 8 }]);
    const r = runImg(img, "grep ' /srv ' /proc/mounts | cut -d' ' -f3");
    if (/\bvfat$/m.test(readFileSync("/proc/filesystems", "utf8"))) {
      expect(r.stdout).toBe("vfat\n");
      expect(r.code).toBe(0);
    } else {
      expect(r.stderr).toMatch(new RegExp(`^Failed to mount partition 2 \\(/srv, vfat\\) of ${img} \\(/dev/loop\\d+\\) on /run/spawnctl/disk/\\d+-\\w+/root/srv: No such device \\(the kernel does not support this file system type\\)\n$`));
      expect(r.code).toBe(1);
    }
    await nothingLeft();
  });

  fsTest("mkfs.xfs", "xfsprogs")("xfs as /var", async () => {
    fsFiles();
    const v = `${base}/var.xfs`;
    sh(["truncate", "-s", "300M", v]);
    sh(["mkfs.xfs", "-q", v]);
    const img = gpt(`${base}/xfs.raw`, [{ type: ROOT_X64, fs: rootFs, mb: 40 }, { type: VAR, fs: v, mb: 300 }]);
    const r = runImg(img, "grep ' /var ' /proc/mounts | cut -d' ' -f3; echo x > /var/x && cat /var/x");
    expect(r.stdout).toBe("xfs\nx\n");
    expect(r.code).toBe(0);
    rmSync(v);
    rmSync(img);
    await nothingLeft();
  });
});

describe("NAME.raw in the pool", () => {
  test("start / run -M / machinectl show / poweroff of a raw image in a private pool, and Nomad's systemd-nspawn -i line", async () => {
    const pool = `${base}/pool`;
    mkdirSync(pool);
    const NAME = "sctest-disk";
    ext4(`${pool}/${NAME}.raw`, tree);
    const env = { SPAWNCTL_IMAGE_PATH: pool };
    try {
      expect(run(["list-images", "--no-legend"], { env }).stdout).toMatch(new RegExp(`^${NAME} +raw +no `));
      expect(run(["run", "-q", "-P", "-M", NAME, "/bin/sh", "-c", "cat /etc/os-release | head -1"], { env }).stdout).toBe("ID=busybox\n");
      await nothingLeft();
      // a start that fails once the image is mounted leaves nothing
      mkdirSync(`${base}/empty-os`);
      ext4(`${pool}/sctest-empty.raw`, `${base}/empty-os`, 8);
      const bad = run(["start", "sctest-empty"], { env, netns: true });
      expect(bad.stderr).toBe(`Image ${pool}/sctest-empty.raw doesn't look like an OS root directory (os-release file is missing). Refusing.\n`);
      expect(bad.code).toBe(1);
      rmSync(`${pool}/sctest-empty.raw`);
      await nothingLeft();
      const r = run(["start", NAME], { env, netns: true });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(run(["show", NAME, "-p", "RootDirectory", "--value"], { env }).stdout).toBe(`${pool}/${NAME}.raw\n`);
      expect(run(["shell", NAME, "/bin/sh", "-c", "cat /run/booted; grep ' / ' /proc/mounts | cut -d' ' -f3"], { env }).stdout).toBe("booted\next4\n");
      // nothing of it is mounted on the host; its loop device is held by the machine alone
      expect(mounts()).toEqual([]);
      expect(loops().length).toBe(1);
      // the pool knows it is in use
      expect(run(["remove", NAME], { env }).code).toBe(1);
      expect(run(["poweroff", NAME], { env }).code).toBe(0);
      const end = Date.now() + 10_000;
      while (run(["list", "--no-legend"], { env }).stdout.includes(NAME) && Date.now() < end) await Bun.sleep(50);
      expect(run(["list", "--no-legend"], { env }).stdout).not.toContain(NAME);
      await nothingLeft();

      // the CLI-only Nomad driver's line, through a link named systemd-nspawn
      const bin = `${base}/bin`;
      mkdirSync(bin);
      symlinkSync(SPAWNCTL, `${bin}/systemd-nspawn`);
      mkdirSync(`${base}/vol`);
      const task = Bun.spawn(["unshare", "--net", `${bin}/systemd-nspawn`, "-i", `${pool}/${NAME}.raw`, "--machine", "nomad-task", "--hostname", "h1", "--boot",
        "--ephemeral", "--resolv-conf", "copy-host", "-E", "K=V", "--bind", `${base}/vol:/alloc`, "--bind-ro", `${base}/home:/local`, "--network-veth"],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
      try {
        const until = Date.now() + 15_000;
        while (!run(["list", "--no-legend"]).stdout.includes("nomad-task") && Date.now() < until) await Bun.sleep(50);
        const out = run(["shell", "nomad-task", "/bin/sh", "-c", "hostname; cat /local/tester/f; echo w > /alloc/out; echo e > /etc/eph"]).stdout;
        if (out !== "h1\nhello from /home\n") {
          // say why the task is not there: its own stderr
          task.kill(9);
          expect({ out, taskStderr: await new Response(task.stderr).text() }).toEqual({ out: "h1\nhello from /home\n", taskStderr: "" });
        }
        expect(readFileSync(`${base}/vol/out`, "utf8")).toBe("w\n");
        expect(run(["poweroff", "nomad-task"]).code).toBe(0);
        expect(await task.exited).toBe(0);
      } finally {
        run(["terminate", "nomad-task"]);
        task.kill(9);
        await task.exited;
      }
      // --ephemeral: the image did not change
      expect(run(["run", "-q", "-P", "-M", NAME, "/bin/sh", "-c", "cat /etc/eph 2>/dev/null || echo none"], { env }).stdout).toBe("none\n");
      await nothingLeft();
    } finally {
      run(["terminate", NAME], { env });
      rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
      rmSync(`/var/log/spawnctl/nomad-task.console`, { force: true });
    }
  }, 60_000);
});
