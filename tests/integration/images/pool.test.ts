// The image pool verbs on the real /var/lib/machines (images named
// sctest-img-*-PID) and, for clean, on a private pool: list-images,
// image-status, show-image, clone, rename, read-only, remove, set-limit,
// clean, cat and edit. Root and busybox-static; the built binary.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, lstatSync } from "node:fs";
import { removePath } from "../../../src/image/job.ts";
import { statFs } from "../../../src/image/sys.ts";
import { processStart } from "../../../src/container/registry.ts";
import { IS_ROOT, SPAWNCTL, busyboxPath, leftovers, makeBusyboxTree, needs, run, tempDir } from "../../helpers.ts";
import { FRESH_MACHINE_ID, compareManifests, ensureDirs, imgName, machineIdOf, manifest, ourLeftovers, POOL } from "./lib.ts";

const test = needs("root and busybox-static", IS_ROOT && !!busyboxPath());
const before = IS_ROOT ? leftovers() : [];
let base = "";
let tree = "";
const made: string[] = [];
let removeDirs = () => {};

/** Remember what a test creates, so afterAll removes it even when the test failed half-way. */
function track(...paths: string[]): void {
  made.push(...paths);
}

beforeAll(() => {
  if (!IS_ROOT || !busyboxPath()) return;
  removeDirs = ensureDirs(POOL, "/etc/systemd/nspawn", "/etc/spawnctl/properties", "/run/spawnctl/machines");
  base = tempDir("sctest-img-pool-");
  tree = makeBusyboxTree(`${base}/bb`, { machineId: "0123456789abcdef0123456789abcdef", files: { "etc/hostname": "bbhost\n" } });
});

afterAll(() => {
  if (!IS_ROOT || !base) return;
  for (const p of made.reverse()) removePath(p);
  removePath(base);
  removeDirs();
  expect(ourLeftovers()).toEqual([]);
  // (the suite-wide leftover check in tests/run.ts sees the rest; other work may run beside these tests)
  expect(leftovers().filter((l) => !before.includes(l) && l.includes("sctest-img"))).toEqual([]);
});

function importTree(name: string): string {
  const p = `${POOL}/${name}`;
  track(p, `${POOL}/${name}.nspawn`, `/etc/systemd/nspawn/${name}.nspawn`);
  const r = run(["import-fs", tree, name]);
  expect(r.stderr).toBe(`Imported image '${name}' from ${tree}.\n`);
  expect(r.code).toBe(0);
  return p;
}

function immutable(p: string): boolean {
  const r = Bun.spawnSync(["lsattr", "-d", p]);
  return r.stdout.toString().split(" ")[0]!.includes("i");
}

/** A `spawnctl run` on the image for a few seconds: it holds the image lock, as a running container does. */
async function whileRunning<T>(path: string, name: string, fn: () => T): Promise<T> {
  const p = Bun.spawn([SPAWNCTL, "run", "-q", "--console=pipe", "-D", path, "/bin/sleep", "4"], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  const lock = `${POOL}/.#${name}.lck`;
  for (let i = 0; i < 200 && !existsSync(lock); i++) await Bun.sleep(20);
  expect(existsSync(lock)).toBe(true);
  try {
    return fn();
  } finally {
    await p.exited;
  }
}

describe("listing and inspecting", () => {
  test("list-images, --all, --no-legend, --json; image-status; show-image", () => {
    const a = imgName("list");
    const path = importTree(a);
    // the import emptied the ID; image-status shows one the image has
    writeFileSync(`${path}/etc/machine-id`, "0123456789abcdef0123456789abcdef\n");
    const hidden = `.${imgName("hidden")}`;
    track(`${POOL}/${hidden}`);
    expect(run(["clone", a, hidden]).code).toBe(0);

    const l = run(["list-images"]);
    expect(l.code).toBe(0);
    const lines = l.stdout.split("\n");
    expect(lines[0]).toMatch(/^NAME +TYPE +RO +USAGE +CREATED +MODIFIED$/);
    const row = lines.find((x) => x.startsWith(`${a} `))!;
    expect(row).toMatch(new RegExp(`^${a} +directory +no +- +\\w{3} \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC +\\w{3} `));
    expect(l.stdout).toMatch(/\n\n\d+ images listed\.\n$/);
    expect(l.stdout).not.toContain(hidden);
    expect(l.stdout).not.toContain(".host");

    const all = run(["list-images", "--all"]).stdout;
    expect(all).toContain(hidden);
    expect(all).toMatch(/\n\.host +directory /);

    const nl = run(["list-images", "--no-legend"]).stdout;
    expect(nl).not.toContain("NAME");
    expect(nl).not.toContain("images listed");
    expect(nl).toContain(a);

    const js = JSON.parse(run(["list-images", "--json=short"]).stdout) as Array<Record<string, unknown>>;
    const mine = js.find((i) => i.name === a)!;
    expect(mine).toMatchObject({ type: "directory", ro: false, usage: null });
    expect(typeof mine.modified).toBe("number");
    expect(JSON.parse(run(["list-images", "--json=pretty"]).stdout)).toBeArray();

    const st = run(["image-status", a]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain(`${a}\n`);
    expect(st.stdout).toMatch(/ Type: directory\n/);
    expect(st.stdout).toContain(`Path: ${path}`);
    expect(st.stdout).toContain("Hostname: bbhost");
    expect(st.stdout).toContain("Machine ID: 0123456789abcdef0123456789abcdef");
    expect(st.stdout).toContain("OS: BusyBox test tree 1");
    expect(st.stdout).toContain("RO: writable");
    expect(st.stdout).toMatch(/Modified: \w{3} .* UTC; .* ago/);

    const sh = run(["show-image", a]).stdout;
    expect(sh).toContain(`Name=${a}\nPath=${path}\nType=directory\nReadOnly=no\n`);
    expect(sh).toMatch(/ModificationTimestamp=\w{3} \d{4}-/);
    expect(sh).not.toContain("Usage=");
    expect(run(["show-image", a, "-a"]).stdout).toContain("Usage=\n");
    expect(run(["show-image", a, "-p", "Type", "--value"]).stdout).toBe("directory\n");
    expect(run(["show-image", a, "-P", "ReadOnly"]).stdout).toBe("no\n");
    expect(run(["show-image"]).stdout).toContain("PoolPath=/var/lib/machines\n");
    expect(JSON.parse(run(["show-image", a, "--json=short"]).stdout)[0]).toMatchObject({ Name: a, Type: "directory" });

    const none = run(["image-status", imgName("nope")]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`No image '${imgName("nope")}' known.\n`);
    expect(run(["show-image", "a/b"]).stderr).toContain("Invalid image name 'a/b'.");

    expect(run(["remove", a, hidden]).code).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  test("as machinectl, through a link named machinectl", () => {
    const link = `${base}/machinectl`;
    Bun.spawnSync(["ln", "-sf", SPAWNCTL, link]);
    const p = Bun.spawnSync([link, "list-images", "--no-legend", "--all"]);
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString()).toContain(".host");
  });
});

describe("clone", () => {
  test("a copy with every owner, mode, link and attribute; --read-only; settings files come along", async () => {
    const a = imgName("src");
    const path = importTree(a);
    writeFileSync(`${POOL}/${a}.nspawn`, "[Exec]\nBoot=yes\n");
    writeFileSync(`/etc/systemd/nspawn/${a}.nspawn`, "[Network]\nPrivate=yes\n");
    const b = imgName("copy");
    track(`${POOL}/${b}`, `${POOL}/${b}.nspawn`, `/etc/systemd/nspawn/${b}.nspawn`);
    const r = run(["clone", a, b]);
    expect(r.stderr).toBe(`Cloned image '${a}' to '${b}'.\n`);
    expect(r.code).toBe(0);
    expect(compareManifests(manifest(path), manifest(`${POOL}/${b}`))).toEqual([]);
    expect(readFileSync(`${POOL}/${b}.nspawn`, "utf8")).toBe("[Exec]\nBoot=yes\n");
    expect(readFileSync(`/etc/systemd/nspawn/${b}.nspawn`, "utf8")).toBe("[Network]\nPrivate=yes\n");
    expect(immutable(`${POOL}/${b}`)).toBe(false);

    const c = imgName("rocopy");
    track(`${POOL}/${c}`, `${POOL}/${c}.nspawn`, `/etc/systemd/nspawn/${c}.nspawn`);
    expect(run(["clone", "--read-only", a, c]).code).toBe(0);
    expect(immutable(`${POOL}/${c}`)).toBe(true);
    expect(run(["show-image", c, "-P", "ReadOnly"]).stdout).toBe("yes\n");

    const again = run(["clone", a, b]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`cloning image '${a}' to '${b}': an image called '${b}' already exists (${POOL}/${b}).\n`);
    expect(run(["clone", a, ".#bad"]).stderr).toContain("Invalid image name '.#bad'.");
    expect(run(["clone", ".host", imgName("host")]).stderr).toContain("copying the host's own root (.host) is not supported");

    // a writable container holds the image: a clone would copy a tree in flux
    const busy = await whileRunning(path, a, () => run(["clone", a, imgName("busy")]));
    expect(busy.code).toBe(1);
    // the tree is locked, or (once the run has registered) its machine runs from it
    expect(busy.stderr).toMatch(/the image is in use|is running from it; stop it first/);
    expect(existsSync(`${POOL}/${imgName("busy")}`)).toBe(false);

    expect(run(["remove", a, b, c]).code).toBe(0);
    for (const n of [a, b, c]) {
      expect(existsSync(`${POOL}/${n}`)).toBe(false);
      expect(existsSync(`${POOL}/${n}.nspawn`)).toBe(false);
      expect(existsSync(`/etc/systemd/nspawn/${n}.nspawn`)).toBe(false);
    }
  });
});

describe("a new machine's identity", () => {
  test("clone and import-fs leave /etc/machine-id empty (0444, same owner); the source keeps its ID", () => {
    const a = imgName("id-src");
    const path = importTree(a);
    expect(machineIdOf(path)).toEqual(FRESH_MACHINE_ID);
    // a shifted tree (-U chown): the file keeps its owner, so the guest's root may write it
    writeFileSync(`${path}/etc/machine-id`, "0123456789abcdef0123456789abcdef\n");
    Bun.spawnSync(["chown", "524288:524288", `${path}/etc/machine-id`]);
    const b = imgName("id-clone");
    track(`${POOL}/${b}`);
    expect(run(["clone", a, b]).code).toBe(0);
    expect(machineIdOf(`${POOL}/${b}`)).toEqual({ ...FRESH_MACHINE_ID, uid: 524288 });
    expect(readFileSync(`${path}/etc/machine-id`, "utf8")).toBe("0123456789abcdef0123456789abcdef\n");
    expect(run(["image-status", b]).stdout).not.toContain("Machine ID:");
    const c = imgName("id-ro");
    track(`${POOL}/${c}`);
    expect(run(["clone", "--read-only", a, c]).code).toBe(0);
    expect(machineIdOf(`${POOL}/${c}`)).toEqual({ ...FRESH_MACHINE_ID, uid: 524288 });
    expect(immutable(`${POOL}/${c}`)).toBe(true);
    expect(run(["remove", a, b, c]).code).toBe(0);
  });

  test("a tree without /etc/machine-id gets none; links out of the tree are never followed", () => {
    const hostIdentity = () => (existsSync("/etc/machine-id") ? `${statSync("/etc/machine-id").mode} ${readFileSync("/etc/machine-id", "utf8")}` : "none");
    const hostBefore = hostIdentity();
    // no machine-id
    const bare = `${base}/bare`;
    mkdirSync(`${bare}/etc`, { recursive: true });
    const n1 = imgName("id-bare");
    track(`${POOL}/${n1}`);
    expect(run(["import-fs", bare, n1]).code).toBe(0);
    expect(existsSync(`${POOL}/${n1}/etc/machine-id`)).toBe(false);
    // /etc -> the host's /etc: resolved inside the tree (itself), nothing to reset
    const etcLink = `${base}/etc-link`;
    mkdirSync(etcLink);
    Bun.spawnSync(["ln", "-s", "/etc", `${etcLink}/etc`]);
    const n2 = imgName("id-etclink");
    track(`${POOL}/${n2}`);
    const r2 = run(["import-fs", etcLink, n2]);
    expect(r2.stderr).toBe(`Imported image '${n2}' from ${etcLink}.\n`);
    expect(r2.code).toBe(0);
    // machine-id -> the host's: left as the link it is
    const idLink = `${base}/id-link`;
    mkdirSync(`${idLink}/etc`, { recursive: true });
    Bun.spawnSync(["ln", "-s", "/etc/machine-id", `${idLink}/etc/machine-id`]);
    const n3 = imgName("id-idlink");
    track(`${POOL}/${n3}`);
    expect(run(["import-fs", idLink, n3]).code).toBe(0);
    expect(lstatSync(`${POOL}/${n3}/etc/machine-id`).isSymbolicLink()).toBe(true);
    expect(hostIdentity()).toBe(hostBefore);
    expect(run(["remove", n1, n2, n3]).code).toBe(0);
  });
});

describe("rename", () => {
  test("the image, its .nspawn files, its properties and its lock move to the new name", async () => {
    const a = imgName("old");
    const b = imgName("new");
    const path = importTree(a);
    track(`${POOL}/${b}`, `${POOL}/${b}.nspawn`, `/etc/systemd/nspawn/${b}.nspawn`, `/etc/spawnctl/properties/${a}.conf`, `/etc/spawnctl/properties/${b}.conf`);
    writeFileSync(`${POOL}/${a}.nspawn`, "[Exec]\nBoot=yes\n");
    writeFileSync(`/etc/systemd/nspawn/${a}.nspawn`, "[Files]\nReadOnly=yes\n");
    writeFileSync(`/etc/spawnctl/properties/${a}.conf`, "MemoryMax=1G\n");

    const busy = await whileRunning(path, a, () => run(["rename", a, b]));
    expect(busy.code).toBe(1);
    // the tree is locked, or (once the run has registered) its machine runs from it
    expect(busy.stderr).toMatch(/the image is in use|is running from it; stop it first/);
    expect(existsSync(path)).toBe(true);

    expect(run(["read-only", a]).code).toBe(0);
    const r = run(["rename", a, b]);
    expect(r.stderr).toBe(`Renamed image '${a}' to '${b}'.\n`);
    expect(r.code).toBe(0);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${POOL}/${b}/etc/os-release`)).toBe(true);
    expect(immutable(`${POOL}/${b}`)).toBe(true); // still read-only after the move
    expect(readFileSync(`${POOL}/${b}.nspawn`, "utf8")).toBe("[Exec]\nBoot=yes\n");
    expect(readFileSync(`/etc/systemd/nspawn/${b}.nspawn`, "utf8")).toBe("[Files]\nReadOnly=yes\n");
    expect(readFileSync(`/etc/spawnctl/properties/${b}.conf`, "utf8")).toBe("MemoryMax=1G\n");
    for (const gone of [`${POOL}/${a}.nspawn`, `/etc/systemd/nspawn/${a}.nspawn`, `/etc/spawnctl/properties/${a}.conf`, `${POOL}/.#${a}.lck`, `${POOL}/.#${b}.lck`]) expect(existsSync(gone)).toBe(false);
    expect(run(["list-images", "--no-legend"]).stdout).toContain(`${b} `);

    // the name is taken; .host and unknown images cannot be renamed
    const c = imgName("third");
    importTree(c);
    expect(run(["rename", c, b]).stderr).toBe(`renaming image '${c}' to '${b}': an image called '${b}' already exists (${POOL}/${b}).\n`);
    expect(run(["rename", ".host", imgName("h")]).stderr).toContain(".host is the host's own root directory");
    expect(run(["rename", imgName("nope"), imgName("h")]).stderr).toBe(`No image '${imgName("nope")}' known.\n`);

    expect(run(["remove", b, c]).code).toBe(0);
    expect(existsSync(`/etc/spawnctl/properties/${b}.conf`)).toBe(false);
  });
});

describe("read-only", () => {
  test("directories: the immutable flag on the top directory (chattr +i); raw files: the mode", () => {
    const a = imgName("ro");
    const path = importTree(a);
    expect(run(["read-only", a]).code).toBe(0);
    expect(immutable(path)).toBe(true);
    expect(run(["list-images", "--no-legend"]).stdout).toMatch(new RegExp(`${a} +directory +yes `));
    expect(run(["image-status", a]).stdout).toContain("RO: read-only");
    expect(() => writeFileSync(`${path}/new-file`, "x")).toThrow();
    expect(run(["read-only", a, "no"]).code).toBe(0);
    expect(immutable(path)).toBe(false);
    writeFileSync(`${path}/new-file`, "x");
    expect(run(["read-only", a, "yes"]).code).toBe(0);
    expect(immutable(path)).toBe(true);
    expect(run(["read-only", a, "false"]).code).toBe(0);
    expect(immutable(path)).toBe(false);
    expect(run(["read-only", a, "maybe"]).stderr).toBe("Failed to parse read-only boolean: maybe\n");
    expect(run(["read-only", ".host"]).stderr).toContain(".host is the host's own root directory");

    const raw = imgName("rawro");
    const file = `${base}/disk.raw`;
    writeFileSync(file, Buffer.alloc(1 << 20, 7));
    track(`${POOL}/${raw}.raw`);
    expect(run(["import-raw", file, raw]).code).toBe(0);
    expect(statSync(`${POOL}/${raw}.raw`).mode & 0o777).toBe(0o644);
    expect(run(["read-only", raw]).code).toBe(0);
    expect(statSync(`${POOL}/${raw}.raw`).mode & 0o777).toBe(0o444);
    expect(run(["show-image", raw, "-P", "ReadOnly"]).stdout).toBe("yes\n");
    expect(run(["read-only", raw, "off"]).code).toBe(0);
    expect(statSync(`${POOL}/${raw}.raw`).mode & 0o777).toBe(0o644);
    expect(run(["remove", a, raw]).code).toBe(0);
  });
});

describe("remove", () => {
  test("refuses .host, unknown names, images in use and running machines; removes read-only images", async () => {
    expect(run(["remove", ".host"]).stderr).toBe("removing image '.host': refusing to remove the host's own root directory.\n");
    expect(run(["remove", imgName("nope")]).stderr).toBe(`No image '${imgName("nope")}' known.\n`);
    const a = imgName("rm");
    const path = importTree(a);

    const busy = await whileRunning(path, a, () => run(["remove", a]));
    expect(busy.code).toBe(1);
    // the tree is locked, or (once the run has registered) its machine runs from it
    expect(busy.stderr).toMatch(/the image is in use|is running from it; stop it first/);
    expect(existsSync(`${path}/etc/os-release`)).toBe(true);

    // a machine of that name in spawnctl's registry (its leader: this process)
    const state = `/run/spawnctl/machines/${a}.json`;
    track(state);
    writeFileSync(state, JSON.stringify({ name: a, class: "container", service: "spawnctl", leader: process.pid, leaderStart: processStart(process.pid), supervisor: process.pid, supervisorStart: processStart(process.pid), root: path, uuid: "0".repeat(32), since: 0, cgroups: [], killSignal: 15, capability: "0", privateNetwork: false, boot: false }));
    const running = run(["remove", a]);
    expect(running.stderr).toBe(`removing image '${a}': the machine '${a}' is running from it; stop it first (spawnctl poweroff ${a}).\n`);
    rmSync(state);
    expect(existsSync(path)).toBe(true);

    expect(run(["read-only", a]).code).toBe(0);
    writeFileSync(`${POOL}/${a}.nspawn`, "[Exec]\n");
    const r = run(["remove", a]);
    expect(r.stderr).toBe(`Removed image '${a}'.\n`);
    expect(r.code).toBe(0);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${POOL}/${a}.nspawn`)).toBe(false);
  });
});

describe("set-limit", () => {
  test("needs btrfs: a clear error naming the file system elsewhere", () => {
    const fs = statFs(POOL).name;
    if (fs === "btrfs") return; // tests/integration/images/btrfs.test.ts covers quotas
    const a = imgName("limit");
    importTree(a);
    const r = run(["set-limit", a, "1G"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`setting the size limit of image '${a}' to 1.0G: ${POOL}/${a} is a plain directory on ${fs}; size limits need btrfs subvolumes with quotas.\n`);
    const p = run(["set-limit", "10G"]);
    expect(p.stderr).toBe(`setting the size limit of the image pool ${POOL} to 10G: ${POOL} is on ${fs}; size limits need btrfs quotas, which ${fs} does not have.\n`);
    expect(run(["set-limit", a, "lots"]).stderr).toBe('set-limit: Failed to parse size: lots (the limit is bytes with an optional K, M, G, T, P or E suffix, or "-" for none)\n');
    expect(run(["remove", a]).code).toBe(0);
  });
});

describe("clean", () => {
  test("hidden images, then all; leftovers of killed imports; vendor images and .host stay", () => {
    const pool = `${base}/pool`;
    // vendor images are the ones below /usr: a hidden one there must survive clean
    const vendor = "/usr/lib/machines";
    const madeVendorDir = !existsSync(vendor);
    const vendorImage = `${vendor}/.${imgName("vendor")}`;
    mkdirSync(pool);
    mkdirSync(vendorImage, { recursive: true });
    track(vendorImage);
    const env = { SPAWNCTL_IMAGE_PATH: `${pool}:${vendor}` };
    const e = (args: string[]) => run(args, { env });
    expect(e(["import-fs", tree, "visible"]).code).toBe(0);
    expect(e(["clone", "visible", ".hidden-dir"]).code).toBe(0);
    expect(e(["read-only", ".hidden-dir"]).code).toBe(0);
    writeFileSync(`${base}/d.raw`, "raw");
    expect(e(["import-raw", `${base}/d.raw`, "rawimg"]).code).toBe(0);
    expect(e(["rename", "rawimg", ".hidden-raw"]).code).toBe(0);
    // what a SIGKILLed import leaves: a hidden temporary tree of a process that is gone
    let dead = 999_999;
    while (processStart(dead) !== undefined) dead++;
    mkdirSync(`${pool}/.#spawnctl.${dead}.x1.import-gone/etc`, { recursive: true });
    chmodSync(`${pool}/.#spawnctl.${dead}.x1.import-gone`, 0o700);
    // ... and one of a live process (this one), which must stay
    mkdirSync(`${pool}/.#spawnctl.${process.pid}.x2.import-busy`);

    const all = e(["list-images", "--all", "--no-legend"]).stdout;
    expect(all).toMatch(/^\.hidden-dir +directory +yes /m);
    expect(all).toMatch(/^\.hidden-raw +raw +no /m);
    expect(all).toContain(vendorImage.slice(vendor.length + 1));
    expect(all).not.toContain("import-gone");

    const c = e(["clean"]);
    expect(c.code).toBe(0);
    expect(c.stderr).toContain("Removed image '.hidden-dir'.\n");
    expect(c.stderr).toContain("Removed image '.hidden-raw'.\n");
    expect(c.stderr).toContain(`Removed ${pool}/.#spawnctl.${dead}.x1.import-gone, left behind by an interrupted operation.\n`);
    expect(c.stderr).toContain("Removed 2 images in total.\n");
    expect(existsSync(`${pool}/.hidden-dir`)).toBe(false);
    expect(existsSync(`${pool}/.hidden-raw.raw`)).toBe(false);
    expect(existsSync(`${pool}/.#spawnctl.${dead}.x1.import-gone`)).toBe(false);
    expect(existsSync(`${pool}/.#spawnctl.${process.pid}.x2.import-busy`)).toBe(true);
    expect(existsSync(`${pool}/visible`)).toBe(true);
    expect(existsSync(vendorImage)).toBe(true);
    expect(e(["remove", vendorImage.slice(vendor.length + 1)]).stderr).toContain("is a vendor image below /usr, which is read-only");

    const ca = e(["clean", "--all"]);
    expect(ca.stderr).toContain("Removed image 'visible'.\n");
    expect(ca.stderr).toContain("Removed 1 images in total.\n");
    expect(existsSync(`${pool}/visible`)).toBe(false);
    expect(e(["list-images", "--no-legend"]).stdout).toBe("");
    expect(e(["list-images"]).stdout).toBe("No images.\n");
    rmSync(pool, { recursive: true });
    rmSync(madeVendorDir ? vendor : vendorImage, { recursive: true });
  });
});

describe("cat and edit", () => {
  test("cat prints the file systemd-nspawn would read; edit writes /etc/systemd/nspawn/NAME.nspawn", () => {
    const a = imgName("cfg");
    importTree(a);
    const etc = `/etc/systemd/nspawn/${a}.nspawn`;
    const beside = `${POOL}/${a}.nspawn`;
    expect(run(["cat", a]).stderr).toContain(`No settings file for '${a}' found`);

    writeFileSync(beside, "[Exec]\nBoot=yes\n");
    expect(run(["cat", a]).stdout).toBe(`# ${beside}\n[Exec]\nBoot=yes\n`);
    expect(run(["cat", `${a}.nspawn`]).stdout).toBe(`# ${beside}\n[Exec]\nBoot=yes\n`);
    expect(run(["cat", beside]).stdout).toBe(`# ${beside}\n[Exec]\nBoot=yes\n`);

    const ed = `${base}/editor.sh`;
    writeFileSync(ed, `#!/bin/sh\nprintf '[Network]\\nPrivate=yes\\n' >> "$1"\n`);
    chmodSync(ed, 0o755);
    // the file beside the image is the starting point, the result goes to /etc
    const r = run(["edit", a], { env: { EDITOR: ed, VISUAL: "", SYSTEMD_EDITOR: "" } });
    expect(r.stderr).toBe(`Successfully installed edited file '${etc}'.\n`);
    expect(r.code).toBe(0);
    expect(readFileSync(etc, "utf8")).toBe("[Exec]\nBoot=yes\n[Network]\nPrivate=yes\n");
    expect(readFileSync(beside, "utf8")).toBe("[Exec]\nBoot=yes\n");
    expect(run(["cat", a]).stdout).toBe(`# ${etc}\n[Exec]\nBoot=yes\n[Network]\nPrivate=yes\n`);
    // $SYSTEMD_EDITOR first
    run(["edit", a], { env: { SYSTEMD_EDITOR: ed, EDITOR: "/bin/false" } });
    expect(readFileSync(etc, "utf8")).toBe("[Exec]\nBoot=yes\n[Network]\nPrivate=yes\n[Network]\nPrivate=yes\n");

    const empty = `${base}/empty.sh`;
    writeFileSync(empty, `#!/bin/sh\n: > "$1"\n`);
    chmodSync(empty, 0o755);
    const c = run(["edit", a], { env: { EDITOR: empty } });
    expect(c.stderr).toBe(`Editing "${etc}" canceled: temporary file is empty.\n`);
    expect(readFileSync(etc, "utf8")).toContain("Boot=yes");

    const fail = run(["edit", a], { env: { EDITOR: "/bin/false" } });
    expect(fail.code).toBe(1);
    expect(fail.stderr).toContain("exited with status 1; nothing was changed.");

    // a new file for a machine without one
    const b = imgName("cfg-new");
    track(`/etc/systemd/nspawn/${b}.nspawn`);
    expect(run(["edit", b], { env: { EDITOR: ed } }).code).toBe(0);
    expect(readFileSync(`/etc/systemd/nspawn/${b}.nspawn`, "utf8")).toBe("[Network]\nPrivate=yes\n");
    rmSync(`/etc/systemd/nspawn/${b}.nspawn`);

    expect(run(["cat", "../x"]).stderr).toBe("Invalid machine name '../x'.\n");
    expect(run(["remove", a]).code).toBe(0);
    expect(existsSync(etc)).toBe(false);
    expect(existsSync(beside)).toBe(false);
    expect(lstatSync("/etc/systemd/nspawn").isDirectory()).toBe(true);
  });
});
