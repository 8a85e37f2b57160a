// e2e: the cached Debian tree packed into an ext4 GPT disk image (sfdisk and
// mkfs.ext4 -d: no mount), put in a private pool as NAME.raw and booted with
// systemd as PID 1 by `start` (through loop devices, without udev), then
// powered off; and booted once in the foreground with systemd-nspawn's -b -i.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, run, tempDir } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";

const has = (tool: string) => ["/usr/sbin", "/usr/bin", "/sbin"].some((d) => existsSync(`${d}/${tool}`));
const ok = IS_ROOT && haveMirror() && has("sfdisk") && has("mkfs.ext4");
const test = needs("root, a Debian mirror, sfdisk and mkfs.ext4", ok);
const NAME = "sctest-debraw";
const before = ok ? leftovers() : [];
let tmp = "";
let pool = "";
const env = () => ({ SPAWNCTL_IMAGE_PATH: pool });

function sh(cmd: string[], stdin?: string): void {
  const p = Bun.spawnSync(cmd, { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
}

beforeAll(() => {
  if (!ok) return;
  const tree = ensureDebianTree();
  tmp = tempDir();
  pool = `${tmp}/pool`;
  mkdirSync(pool);
  const fs = `${tmp}/root.ext4`;
  sh(["truncate", "-s", "1G", fs]);
  sh(["mkfs.ext4", "-q", "-d", tree, fs]);
  const img = `${pool}/${NAME}.raw`;
  sh(["truncate", "-s", "1026M", img]);
  sh(["sfdisk", "-q", img], "label: gpt\nstart=2048, size=2097152, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=root-x86-64\n");
  sh(["dd", `if=${fs}`, `of=${img}`, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]);
  rmSync(fs);
}, 900_000);

afterAll(() => {
  if (!ok) return;
  run(["terminate", NAME], { env: env() });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  rmSync(tmp, { recursive: true, force: true });
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

async function until(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(100);
  }
}

function loops(): string[] {
  return readdirSync("/sys/block").filter((n) => {
    try {
      return readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").startsWith(`${tmp}/`);
    } catch {
      return false;
    }
  });
}

describe("a Debian disk image", () => {
  test("start NAME.raw boots systemd from the image; poweroff leaves no loop device and no mount", async () => {
    const r = run(["start", NAME], { netns: true, env: env() });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await until(() => {
      const s = run(["shell", NAME, "/bin/systemctl", "is-system-running"]).stdout.trim();
      return s === "running" || s === "degraded";
    }, 120_000);
    const out = run(["shell", NAME, "/bin/sh", "-c", "cat /proc/1/comm; findmnt -no FSTYPE /; . /etc/os-release; echo $VERSION_CODENAME"]);
    expect(out.stdout).toBe("systemd\next4\nbookworm\n");
    expect(run(["show", NAME, "-p", "RootDirectory", "--value"]).stdout).toBe(`${pool}/${NAME}.raw\n`);
    expect(loops().length).toBe(1);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("/run/spawnctl/disk");
    expect(run(["poweroff", NAME]).code).toBe(0);
    await until(() => !run(["list", "--no-legend"]).stdout.includes(NAME), 60_000);
    await until(() => loops().length === 0, 5000);
  }, 300_000);

  test("run -b -x -i IMAGE in the foreground, the image unchanged", async () => {
    const img = `${pool}/${NAME}.raw`;
    const mtime = Bun.file(img).lastModified;
    const task = Bun.spawn(["unshare", "--net", SPAWNCTL, "run", "-q", "--console=passive", "-b", "-x", "-M", `${NAME}-fg`, "-i", img],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    try {
      await until(() => {
        const s = run(["shell", `${NAME}-fg`, "/bin/systemctl", "is-system-running"]).stdout.trim();
        return s === "running" || s === "degraded";
      }, 120_000);
      expect(run(["shell", `${NAME}-fg`, "/bin/sh", "-c", "touch /etc/ephemeral-mark; cat /proc/1/comm"]).stdout).toBe("systemd\n");
      expect(run(["poweroff", `${NAME}-fg`]).code).toBe(0);
      expect(await task.exited).toBe(0);
    } finally {
      run(["terminate", `${NAME}-fg`]);
      task.kill(9);
      await task.exited;
    }
    expect(Bun.file(img).lastModified).toBe(mtime);
    expect(run(["run", "-q", "-P", "--read-only", "-i", img, "/bin/sh", "-c", "test -e /etc/ephemeral-mark && echo kept || echo gone"]).stdout).toBe("gone\n");
    await until(() => loops().length === 0, 5000);
    expect(readdirSync(pool).filter((f) => f !== `${NAME}.raw`)).toEqual([]);
  }, 300_000);
});
