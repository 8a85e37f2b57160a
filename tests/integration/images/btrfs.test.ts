// The image verbs on a btrfs pool (a loop-mounted btrfs file in a temporary
// directory, used through SPAWNCTL_IMAGE_PATH): imports make subvolumes,
// clone snapshots (nested subvolumes too), read-only is the subvolume flag,
// set-limit sets qgroup limits, export reads a read-only snapshot, remove
// deletes subvolumes. Needs root, btrfs-progs (to make the file system and
// to check the results), the btrfs module and loop devices.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { removePath } from "../../../src/image/job.ts";
import { IS_ROOT, busyboxPath, needs, run, tempDir } from "../../helpers.ts";
import { FRESH_MACHINE_ID, compareManifests, machineIdOf, makeRichTree, manifest, manifestButMachineId } from "./lib.ts";

function btrfsAvailable(): boolean {
  if (!IS_ROOT || !busyboxPath() || !Bun.which("mkfs.btrfs") || !Bun.which("btrfs") || !existsSync("/dev/loop-control")) return false;
  if (readFileSync("/proc/filesystems", "utf8").includes("btrfs")) return true;
  return Bun.spawnSync(["modprobe", "btrfs"]).exitCode === 0;
}

const ok = btrfsAvailable();
const test = needs("root, busybox-static, btrfs-progs (mkfs.btrfs, btrfs), the btrfs module and loop devices", ok);
let base = "";
let mnt = "";
let pool = "";
let rich = "";
let mounted = false;

function sh(...cmd: string[]): string {
  const p = Bun.spawnSync(cmd);
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

beforeAll(() => {
  if (!ok) return;
  base = tempDir("sctest-img-btrfs-");
  const file = `${base}/btrfs.img`;
  sh("truncate", "-s", "512M", file);
  sh("mkfs.btrfs", "-q", file);
  mnt = `${base}/mnt`;
  mkdirSync(mnt);
  sh("mount", "-o", "loop", file, mnt);
  mounted = true;
  pool = `${mnt}/machines`;
  sh("btrfs", "subvolume", "create", pool);
  rich = makeRichTree(`${base}/rich`);
});

afterAll(() => {
  if (!ok || !base) return;
  if (mounted) {
    if (Bun.spawnSync(["umount", mnt]).exitCode !== 0) Bun.spawnSync(["umount", "-l", mnt]);
  }
  removePath(base);
  expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(base);
});

const e = (args: string[]) => run(args, { env: { SPAWNCTL_IMAGE_PATH: pool } });
const ino = (p: string) => statSync(p).ino;
const roProp = (p: string) => sh("btrfs", "property", "get", "-ts", p, "ro").trim();
function subvolId(p: string): string {
  return /Subvolume ID:\s+(\d+)/.exec(sh("btrfs", "subvolume", "show", p))![1]!;
}
function maxRfer(p: string): string {
  const id = subvolId(p);
  const line = sh("btrfs", "qgroup", "show", "-re", "--raw", mnt).split("\n").find((l) => l.startsWith(`0/${id} `))!;
  // qgroupid rfer excl max_rfer max_excl ...
  return line.trim().split(/\s+/)[3]!;
}

describe("a btrfs pool", () => {
  test("imports make subvolumes; export goes through a read-only snapshot", () => {
    expect(e(["import-fs", rich, "a"]).code).toBe(0);
    expect(ino(`${pool}/a`)).toBe(256);
    expect(e(["list-images", "--no-legend"]).stdout).toMatch(/^a +subvolume +no /m);
    expect(compareManifests(manifestButMachineId(rich), manifestButMachineId(`${pool}/a`))).toEqual([]);
    expect(machineIdOf(`${pool}/a`)).toEqual(FRESH_MACHINE_ID);

    const tar = `${base}/a.tar.zst`;
    const x = e(["export-tar", "a", tar]);
    expect(x.code).toBe(0);
    expect(readdirSync(pool).filter((n) => n.startsWith(".#"))).toEqual([]); // the snapshot is gone again
    expect(e(["import-tar", tar, "b"]).code).toBe(0);
    expect(ino(`${pool}/b`)).toBe(256);
    expect(compareManifests(manifest(`${pool}/a`), manifest(`${pool}/b`))).toEqual([]);

    // a subvolume as the source of import-fs is snapshotted
    sh("btrfs", "subvolume", "create", `${mnt}/src`);
    writeFileSync(`${mnt}/src/hello`, "hi\n");
    expect(e(["import-fs", `${mnt}/src`, "fromsub"]).code).toBe(0);
    expect(ino(`${pool}/fromsub`)).toBe(256);
    expect(sh("btrfs", "subvolume", "show", `${pool}/fromsub`)).toMatch(/Parent UUID:\s+[0-9a-f-]{36}/);
    expect(readFileSync(`${pool}/fromsub/hello`, "utf8")).toBe("hi\n");
    sh("btrfs", "subvolume", "delete", `${mnt}/src`);
    expect(e(["remove", "b", "fromsub"]).code).toBe(0);
  });

  test("clone snapshots, nested subvolumes included; --read-only sets the subvolume flag", () => {
    sh("btrfs", "subvolume", "create", `${pool}/a/var/nested`);
    writeFileSync(`${pool}/a/var/nested/inside`, "nested\n");
    const c = e(["clone", "a", "c"]);
    expect(c.stderr).toBe("Cloned image 'a' to 'c'.\n");
    expect(ino(`${pool}/c`)).toBe(256);
    expect(sh("btrfs", "subvolume", "show", `${pool}/c`)).toMatch(/Parent UUID:\s+[0-9a-f-]{36}/);
    expect(ino(`${pool}/c/var/nested`)).toBe(256);
    expect(readFileSync(`${pool}/c/var/nested/inside`, "utf8")).toBe("nested\n");
    // a's ID was emptied by its import: give it one, which the snapshots must not keep
    writeFileSync(`${pool}/a/etc/machine-id`, "0123456789abcdef0123456789abcdef\n");
    const c2 = e(["clone", "a", "c2"]);
    expect(c2.code).toBe(0);
    expect(compareManifests(manifestButMachineId(`${pool}/a`), manifestButMachineId(`${pool}/c2`))).toEqual([]);
    expect(machineIdOf(`${pool}/c2`)).toEqual(FRESH_MACHINE_ID);
    expect(readFileSync(`${pool}/a/etc/machine-id`, "utf8")).toBe("0123456789abcdef0123456789abcdef\n");
    expect(e(["remove", "c2"]).code).toBe(0);

    expect(e(["clone", "--read-only", "a", "d"]).code).toBe(0);
    expect(roProp(`${pool}/d`)).toBe("ro=true");
    // made writable for the reset, then read-only
    expect(machineIdOf(`${pool}/d`)).toEqual(FRESH_MACHINE_ID);
    expect(e(["show-image", "d", "-P", "ReadOnly"]).stdout).toBe("yes\n");
    expect(readFileSync(`${pool}/d/var/nested/inside`, "utf8")).toBe("nested\n");

    expect(e(["read-only", "c"]).code).toBe(0);
    expect(roProp(`${pool}/c`)).toBe("ro=true");
    expect(e(["list-images", "--no-legend"]).stdout).toMatch(/^c +subvolume +yes /m);
    expect(e(["read-only", "c", "no"]).code).toBe(0);
    expect(roProp(`${pool}/c`)).toBe("ro=false");

    // removal deletes the subvolumes, nested and read-only ones too
    expect(e(["remove", "c", "d"]).code).toBe(0);
    expect(existsSync(`${pool}/c`)).toBe(false);
    expect(existsSync(`${pool}/d`)).toBe(false);
    expect(sh("btrfs", "subvolume", "list", mnt)).not.toMatch(/ path machines\/(c|d)(\/|$)/m);
    sh("btrfs", "subvolume", "delete", `${pool}/a/var/nested`);
  });

  test("set-limit: qgroup limits on images and on the pool; plain directories get a clear error", () => {
    expect(e(["set-limit", "a", "100M"]).code).toBe(0);
    expect(maxRfer(`${pool}/a`)).toBe(String(100 << 20));
    expect(e(["set-limit", "a", "none"]).code).toBe(0);
    expect(maxRfer(`${pool}/a`)).toBe("none");
    expect(e(["set-limit", "1G"]).code).toBe(0);
    expect(maxRfer(pool)).toBe(String(1 << 30));
    expect(e(["set-limit", "-"]).code).toBe(0);
    expect(maxRfer(pool)).toBe("none");

    mkdirSync(`${pool}/plain`);
    const p = e(["set-limit", "plain", "1G"]);
    expect(p.code).toBe(1);
    expect(p.stderr).toBe(`setting the size limit of image 'plain' to 1.0G: ${pool}/plain is a plain directory on btrfs, not a subvolume; size limits need btrfs subvolumes (images imported or cloned into a btrfs pool are subvolumes).\n`);
    expect(e(["remove", "plain", "a"]).code).toBe(0);
    expect(readdirSync(pool)).toEqual([]);
  });
});
