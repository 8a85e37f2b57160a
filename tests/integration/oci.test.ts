// OCI images without a network (issue 16): import-oci of an OCI layout, an
// oci-archive and a docker-archive (made by umoci and skopeo from the busybox
// fixture: two layers with whiteouts and an opaque directory), running them
// with the image's own config, with and without a user namespace, -x and
// --read-only, start in a network namespace, clone without a copy, layers
// stored once, remove collecting what no image uses, export-oci and
// export-tar, and the refusals: a tampered blob, a hostile layer, a malformed
// manifest. A private pool (SPAWNCTL_IMAGE_PATH). Root, busybox-static,
// umoci and skopeo.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from "bun:test";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { removePath } from "../../src/image/job.ts";
import { TarWriter } from "../../src/archive/tar.ts";
import { IS_ROOT, busyboxPath, leftovers, makeBusyboxTree, needs, run, tempDir } from "../helpers.ts";

setDefaultTimeout(600_000);
const ok = IS_ROOT && !!busyboxPath() && !!Bun.which("umoci") && !!Bun.which("skopeo");
const test = needs("root, busybox-static, umoci and skopeo", ok);
const before = IS_ROOT ? leftovers() : [];
let base = "";
let pool = "";
let lay = "";
let env: Record<string, string> = {};

function sh(...cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

const sc = (args: string[], opts: { netns?: boolean } = {}) => run(args, { env, ...opts });
const store = () => `${pool}/.#oci`;
const layers = () => readdirSync(`${store()}/layers`).filter((n) => !n.startsWith(".#"));
const blobs = () => readdirSync(`${store()}/blobs/sha256`).filter((n) => !n.startsWith(".#"));
const poolEntries = () => readdirSync(pool).filter((n) => n !== ".#oci");

/** A layout with v1 (the busybox tree; then a layer that adds, deletes and empties), v2 (one more layer on v1) and app (no init, a command to run). */
function makeLayout(dir: string): void {
  const tree = makeBusyboxTree(`${base}/tree`);
  sh("umoci", "init", "--layout", dir);
  sh("umoci", "new", "--image", `${dir}:v1`);
  sh("umoci", "unpack", "--image", `${dir}:v1`, `${base}/b1`);
  cpSync(`${tree}/`, `${base}/b1/rootfs`, { recursive: true, verbatimSymlinks: true });
  sh("umoci", "repack", "--image", `${dir}:v1`, `${base}/b1`);
  sh("umoci", "unpack", "--image", `${dir}:v1`, `${base}/b2`);
  const r = `${base}/b2/rootfs`;
  mkdirSync(`${r}/data`);
  writeFileSync(`${r}/data/file`, "from layer 2\n");
  removePath(`${r}/home`);
  removePath(`${r}/etc/inittab`);
  removePath(`${r}/var/log`);
  mkdirSync(`${r}/var/log`);
  writeFileSync(`${r}/var/log/fresh`, "x\n");
  sh("umoci", "repack", "--image", `${dir}:v1`, `${base}/b2`);
  sh("umoci", "config", "--image", `${dir}:v1`, "--config.entrypoint", "/bin/sh", "--config.cmd", "-c",
    "--config.cmd", 'echo "hello $GREETING in $(pwd) as $(id -un)"; cat /data/file', "--config.env", "GREETING=oci", "--config.workingdir", "/data", "--config.user", "tester");
  sh("umoci", "unpack", "--image", `${dir}:v1`, `${base}/b3`);
  writeFileSync(`${base}/b3/rootfs/data/v2`, "v2\n");
  sh("umoci", "repack", "--image", `${dir}:v2`, `${base}/b3`);
  sh("umoci", "unpack", "--image", `${dir}:v1`, `${base}/b4`);
  removePath(`${base}/b4/rootfs/usr/bin/init`);
  sh("umoci", "repack", "--image", `${dir}:app`, `${base}/b4`);
  sh("umoci", "config", "--image", `${dir}:app`, "--config.user", "root", "--clear=config.entrypoint", "--clear=config.cmd", "--config.cmd", "/bin/sleep", "--config.cmd", "1000");
}

/** A layout of one image whose only layer is `entries` (for hostile layers and broken documents). */
async function handLayout(dir: string, tar: Uint8Array, edit?: (m: Record<string, unknown>) => void): Promise<void> {
  const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
  mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
  const put = (b: Uint8Array) => {
    writeFileSync(`${dir}/blobs/sha256/${sha(b)}`, b);
    return `sha256:${sha(b)}`;
  };
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const layer = put(tar);
  const cfg = enc({ architecture: "amd64", os: "linux", config: { Cmd: ["/bin/true"] }, rootfs: { type: "layers", diff_ids: [layer] } });
  const m: Record<string, unknown> = {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: put(cfg), size: cfg.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: tar.length }],
  };
  edit?.(m);
  const mb = enc(m);
  writeFileSync(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: put(mb), size: mb.length }] }));
}

beforeAll(() => {
  if (!ok) return;
  base = tempDir("sctest-oci-");
  pool = `${base}/pool`;
  mkdirSync(pool);
  env = { SPAWNCTL_IMAGE_PATH: pool };
  lay = `${base}/layout`;
  makeLayout(lay);
});

afterAll(() => {
  if (!ok || !base) return;
  for (const n of poolEntries()) if (n.endsWith(".oci")) run(["remove", n.slice(0, -4)], { env });
  removePath(base);
  // (other work may run beside these tests: what is ours names our directory or our images)
  const ours = ["bb", "bb2", "bb3", "app", "bbusergrp", "bbusernum", "bbuserbad", "many", "fromoci", "fromdocker", "reimported", "tampered", "hostile", "bad"];
  expect(leftovers().filter((l) => !before.includes(l) && (l.includes(base) || ours.some((n) => l.includes(`/${n}.`))))).toEqual([]);
});

describe("import-oci and running the image's config", () => {
  test("an OCI layout imports as type oci, with its layers unpacked once and its whiteouts in overlayfs form", () => {
    // the layout holds three images: without a name, which one is a question
    expect(sc(["import-oci", lay, "bb"]).stderr).toMatch(/index\.json lists 3 images; name one as .*:NAME \(it has: v1, v2, app\)/);
    const r = sc(["import-oci", `${lay}:v1`, "bb"]);
    expect(r.stderr).toContain("Imported image 'bb' from");
    expect(r.code).toBe(0);
    expect(sc(["list-images", "--no-legend"]).stdout).toMatch(/^bb\s+oci\s+no/m);
    const st = sc(["image-status", "bb"]).stdout;
    expect(st).toMatch(/Type: oci/);
    expect(st).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    expect(st).toMatch(/Layers: 2 /);
    expect(layers().length).toBe(2);
    // the second layer's whiteout of /home is a 0:0 character device
    const top = readlinkSync(`${pool}/bb.oci/lower/0001`);
    const home = lstatSync(`${pool}/bb.oci/lower/${top}/home`);
    expect(home.isCharacterDevice() && home.rdev === 0).toBe(true);
  });

  for (const userns of [false, true]) {
    test(`run without a command runs Entrypoint + Cmd with Env, WorkingDir and User${userns ? " (-U)" : ""}`, () => {
      const r = sc(["run", "-q", "--console=pipe", "-M", "bb", ...(userns ? ["-U"] : [])]);
      expect(r.stdout).toBe("hello oci in /data as tester\nfrom layer 2\n");
      expect(r.code).toBe(0);
    });
  }

  test("a command and --user= override the config; deleted and emptied paths stay deleted", () => {
    const r = sc(["run", "-q", "--console=pipe", "-M", "bb", "--user=root", "-E", "GREETING=cli", "/bin/sh", "-c", "echo $GREETING; ls /home 2>&1; ls /var/log; test -e /etc/inittab || echo no-inittab"]);
    expect(r.stdout).toBe("cli\nls: /home: No such file or directory\nfresh\nno-inittab\n");
  });

  test("changes persist in the image's own upper layer, written with -U and read without (and back)", () => {
    expect(sc(["run", "-q", "--console=pipe", "-M", "bb", "-U", "--user=root", "/bin/sh", "-c", "echo from-userns > /data/w; rm /data/file"]).code).toBe(0);
    const up = lstatSync(`${pool}/bb.oci/upper/data/w`);
    // idmapped: the container's root is the host's root on disk, as in a mapped directory tree
    expect([up.uid, up.gid]).toEqual([0, 0]);
    const r = sc(["run", "-q", "--console=pipe", "-M", "bb", "--user=root", "/bin/sh", "-c", "cat /data/w; ls /data; echo again > /data/w2"]);
    expect(r.stdout).toBe("from-userns\nw\n");
    expect(sc(["run", "-q", "--console=pipe", "-M", "bb", "-U", "--user=root", "/bin/cat", "/data/w2"]).stdout).toBe("again\n");
    // the layers themselves never change
    expect(existsSync(`${store()}/layers/${readlinkSync(`${pool}/bb.oci/lower/0001`).split("/").pop()}/data/file`)).toBe(true);
  });

  test("-x keeps nothing; --read-only writes nothing", () => {
    expect(sc(["run", "-q", "--console=pipe", "-M", "bb", "-x", "--user=root", "/bin/sh", "-c", "echo gone > /data/x"]).code).toBe(0);
    expect(existsSync(`${pool}/bb.oci/upper/data/x`)).toBe(false);
    const r = sc(["run", "-q", "--console=pipe", "-M", "bb", "--read-only", "--user=root", "/bin/sh", "-c", "cat /data/w; echo no > /data/y"]);
    expect(r.stdout).toBe("from-userns\n");
    expect(r.stdout + r.stderr).toMatch(/Read-only file system/);
  });

  test("User=USER:GROUP and UID:GID: the group is looked up in the image's /etc/group; an unknown one is an error naming config.User", () => {
    const lay2 = `${base}/layout-user`;
    cpSync(lay, lay2, { recursive: true });
    sh("umoci", "config", "--image", `${lay2}:v1`, "--tag", "grp", "--config.user", "tester:users");
    sh("umoci", "config", "--image", `${lay2}:v1`, "--tag", "num", "--config.user", "1000:5");
    sh("umoci", "config", "--image", `${lay2}:v1`, "--tag", "bad", "--config.user", "tester:nosuch");
    try {
      for (const [tag, want] of [["grp", "1000 100 tester"], ["num", "1000 5 tester"]] as const) {
        expect(sc(["import-oci", `${lay2}:${tag}`, `bbuser${tag}`]).code).toBe(0);
        const r = sc(["run", "-q", "--console=pipe", "-M", `bbuser${tag}`, "/bin/sh", "-c", "echo $(id -u) $(id -g) $(id -un)"]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe(`${want}\n`);
      }
      expect(sc(["import-oci", `${lay2}:bad`, "bbuserbad"]).code).toBe(0);
      const r = sc(["run", "-q", "--console=pipe", "-M", "bbuserbad", "/bin/true"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('config.User: no group "nosuch" in the image\'s /etc/group');
    } finally {
      for (const n of ["bbusergrp", "bbusernum", "bbuserbad"]) sc(["remove", n]);
    }
  });

  test("start (user namespace, private network) runs the config's command in an image without an init", async () => {
    expect(sc(["import-oci", `${lay}:app`, "app"]).code).toBe(0);
    const r = sc(["start", "app"], { netns: true });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    try {
      const status = sc(["status", "app"]).stdout;
      expect(status).toMatch(/Root: .*\/app\.oci/);
      expect(status).toMatch(/sleep 1000/);
      expect(sc(["shell", "app", "/bin/cat", "/proc/self/uid_map"]).stdout).not.toMatch(/^\s*0\s+0\s/);
    } finally {
      sc(["terminate", "app"]);
      for (let i = 0; i < 100 && sc(["list", "--no-legend"]).stdout.includes("app"); i++) await Bun.sleep(100);
    }
    expect(sc(["remove", "app"]).code).toBe(0);
  });
});

describe("many layers", () => {
  test("an image of 100 layers runs, with and without -U (short links keep the mount options in one page)", () => {
    // v1's two layers, then 98 of one file each
    const dir = `${base}/many`;
    mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
    const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
    const put = (b: Uint8Array) => {
      const d = sha(b);
      writeFileSync(`${dir}/blobs/sha256/${d.slice(7)}`, b);
      return d;
    };
    const blob = (d: string) => readFileSync(`${lay}/blobs/sha256/${d.slice(7)}`);
    const idx = JSON.parse(readFileSync(`${lay}/index.json`, "utf8")) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    const v1 = JSON.parse(blob(idx.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === "v1")!.digest).toString());
    const cfg = JSON.parse(blob(v1.config.digest).toString());
    for (const l of v1.layers) put(blob(l.digest));
    for (let i = 0; i < 98; i++) {
      const w = new TarWriter();
      w.addDir("many");
      w.addFile(`many/${String(i).padStart(3, "0")}`, new TextEncoder().encode(`${i}\n`));
      const tar = w.finish();
      v1.layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: put(tar), size: tar.length });
      cfg.rootfs.diff_ids.push(sha(tar));
    }
    cfg.config = { Cmd: ["/bin/sh", "-c", "ls /many | wc -l; cat /many/097"] };
    const cb = new TextEncoder().encode(JSON.stringify(cfg));
    v1.config = { mediaType: "application/vnd.oci.image.config.v1+json", digest: put(cb), size: cb.length };
    const mb = new TextEncoder().encode(JSON.stringify(v1));
    writeFileSync(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: put(mb), size: mb.length }] }));
    expect(sc(["import-oci", dir, "many"]).code).toBe(0);
    expect(readdirSync(`${pool}/many.oci/lower`).length).toBe(100);
    for (const u of [[], ["-U"]]) expect(sc(["run", "-q", "--console=pipe", "-M", "many", ...u]).stdout.replace(/ +/g, "")).toBe("98\n97\n");
    expect(sc(["remove", "many"]).code).toBe(0);
  });
});

describe("layers stored once: clone, a second image on the same base, remove", () => {
  test("clone copies no layer: the same links, the upper layer's changes", () => {
    const n = layers().length;
    expect(sc(["clone", "bb", "bb2"]).code).toBe(0);
    expect(readdirSync(`${pool}/bb2.oci/lower`).map((l) => readlinkSync(`${pool}/bb2.oci/lower/${l}`))).toEqual(
      readdirSync(`${pool}/bb.oci/lower`).map((l) => readlinkSync(`${pool}/bb.oci/lower/${l}`)),
    );
    expect(layers().length).toBe(n);
    expect(readFileSync(`${pool}/bb2.oci/upper/data/w`, "utf8")).toBe("from-userns\n");
    expect(sc(["list-images", "--no-legend"]).stdout).toMatch(/^bb2\s+oci/m);
  });

  test("an image on the same base adds only its own layer", async () => {
    expect(sc(["import-oci", `${lay}:v2`, "bb3"]).code).toBe(0);
    expect(layers().length).toBe(3);
    expect(sc(["run", "-q", "--console=pipe", "-M", "bb3", "/bin/cat", "/data/v2"]).stdout).toBe("v2\n");
  });

  test("remove keeps what other images use and collects the rest", () => {
    expect(sc(["remove", "bb3"]).stderr).toMatch(/Removed 1 unused layers and \d+ unused blobs/);
    expect(layers().length).toBe(2);
    expect(sc(["remove", "bb"]).code).toBe(0);
    expect(layers().length).toBe(2); // bb2 still uses both
    expect(sc(["run", "-q", "--console=pipe", "-M", "bb2", "--user=root", "/bin/cat", "/data/w"]).stdout).toBe("from-userns\n");
    expect(sc(["remove", "bb2"]).code).toBe(0);
    expect(layers()).toEqual([]);
    expect(blobs()).toEqual([]);
    expect(poolEntries()).toEqual([]);
  });
});

describe("archives: oci-archive, docker-archive, export-oci, export-tar", () => {
  test("an oci-archive and a docker save archive import and run their config", () => {
    sh("skopeo", "copy", `oci:${lay}:v1`, `oci-archive:${base}/bb.oci.tar`);
    sh("skopeo", "copy", `oci:${lay}:v1`, `docker-archive:${base}/bb.docker.tar:test/bb:v1`);
    for (const [file, name] of [[`${base}/bb.oci.tar`, "fromoci"], [`${base}/bb.docker.tar`, "fromdocker"]] as const) {
      const r = sc(["import-oci", file, name]);
      expect(r.stderr).toContain(`Imported image '${name}'`);
      expect(sc(["run", "-q", "--console=pipe", "-M", name]).stdout).toBe("hello oci in /data as tester\nfrom layer 2\n");
    }
    // the same layers, stored once for both
    expect(layers().length).toBe(2);
  });

  test("export-oci writes the image with its own changes as one more layer; skopeo, umoci and import-oci read it", () => {
    expect(sc(["run", "-q", "--console=pipe", "-M", "fromoci", "--user=root", "/bin/sh", "-c", "rm -rf /data; mkdir /data; echo new > /data/only; rm /etc/group"]).code).toBe(0);
    const out = `${base}/export.tar`;
    const r = sc(["export-oci", "fromoci", out]);
    expect(r.stderr).toMatch(/its own changes as one more layer/);
    sh("skopeo", "copy", `oci-archive:${out}`, `oci:${base}/exported:x`);
    sh("umoci", "unpack", "--image", `${base}/exported:x`, `${base}/unpacked`);
    expect(readdirSync(`${base}/unpacked/rootfs/data`)).toEqual(["only"]);
    expect(existsSync(`${base}/unpacked/rootfs/etc/group`)).toBe(false);
    expect(sc(["import-oci", out, "reimported"]).code).toBe(0);
    expect(sc(["run", "-q", "--console=pipe", "-M", "reimported", "--user=root", "/bin/sh", "-c", "ls /data; test -e /etc/group || echo no-group"]).stdout).toBe("only\nno-group\n");
  });

  test("export-tar flattens the layers and the changes into one tree", () => {
    const out = `${base}/flat.tar`;
    expect(sc(["export-tar", "fromoci", out]).code).toBe(0);
    const names = sh("tar", "tf", out).split("\n");
    expect(names).toContain("./data/only");
    expect(names.some((n) => n.includes("home") || n.includes(".wh.") || n === "./etc/group")).toBe(false);
    expect(names).toContain("./usr/bin/busybox");
  });
});

describe("refusals leave nothing behind", () => {
  const nothingLeft = (name: string) => {
    expect(poolEntries().filter((n) => n.startsWith(name) || n.startsWith(".#spawnctl"))).toEqual([]);
    expect(readdirSync(`${store()}/layers`).filter((n) => n.startsWith(".#"))).toEqual([]);
  };

  test("a layer blob that does not match its digest (into a pool whose store lacks it)", () => {
    const bad = `${base}/tampered`;
    const pool2 = `${base}/pool2`;
    mkdirSync(pool2);
    cpSync(lay, bad, { recursive: true });
    const before = layers().length;
    // flip one byte of the biggest blob (the base layer)
    const dir = `${bad}/blobs/sha256`;
    const big = readdirSync(dir).sort((a, b) => readFileSync(`${dir}/${b}`).length - readFileSync(`${dir}/${a}`).length)[0]!;
    const b = readFileSync(`${dir}/${big}`);
    b[b.length >> 1] ^= 0xff;
    writeFileSync(`${dir}/${big}`, b);
    const r = run(["import-oci", `${bad}:v1`, "tampered"], { env: { SPAWNCTL_IMAGE_PATH: pool2 } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/digest mismatch: expected sha256:/);
    nothingLeft("tampered");
    expect(layers().length).toBe(before);
    // nothing in the other pool either: no image, no blob, no layer
    expect(readdirSync(pool2).filter((n) => n !== ".#oci")).toEqual([]);
    expect(readdirSync(`${pool2}/.#oci/blobs/sha256`)).toEqual([]);
    expect(readdirSync(`${pool2}/.#oci/layers`)).toEqual([]);
  });

  test("a layer that climbs out of its directory, or marks a symlink's target opaque", async () => {
    const w = new TarWriter();
    w.addFile("../escape", new TextEncoder().encode("x"));
    await handLayout(`${base}/hostile1`, w.finish());
    const r = sc(["import-oci", `${base}/hostile1`, "hostile"]);
    expect(r.stderr).toMatch(/escape.*contains "\.\."|contains "\.\.".*escape/);
    expect(r.code).not.toBe(0);
    nothingLeft("hostile");
    const w2 = new TarWriter();
    w2.addSymlink("evil", "/etc");
    w2.addFile("evil/.wh..wh..opq", new Uint8Array(0));
    await handLayout(`${base}/hostile2`, w2.finish());
    const r2 = sc(["import-oci", `${base}/hostile2`, "hostile"]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/points out of the tree|leads out of the layer/);
    nothingLeft("hostile");
  });

  test("a malformed manifest and an unknown layer type are errors naming the field", async () => {
    const w = new TarWriter();
    w.addFile("a", new TextEncoder().encode("x"));
    const tar = w.finish();
    await handLayout(`${base}/bad1`, tar, (m) => {
      m.layers = "nope";
    });
    const r = sc(["import-oci", `${base}/bad1`, "bad"]);
    expect(r.stderr).toMatch(/the manifest of .*bad1: layers: /);
    await handLayout(`${base}/bad2`, tar, (m) => {
      (m.layers as Array<Record<string, unknown>>)[0]!.mediaType = "application/x-mystery";
    });
    expect(sc(["import-oci", `${base}/bad2`, "bad"]).stderr).toMatch(/unknown layer media type "application\/x-mystery"/);
    nothingLeft("bad");
  });
});
