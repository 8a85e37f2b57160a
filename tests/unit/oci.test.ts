// OCI images without root or network: references normalised as Docker does,
// the documents' schemas, platform choice, auth challenges, redirects that
// must not carry credentials to another host, the layer's whiteouts in
// overlayfs form, and the plan of a layered image's root.
import { describe, expect, test } from "bun:test";
import { buildPlan, idmapSources, PROC_INACCESSIBLE, type RunContext } from "../../src/container/build-plan.ts";
import { detectCgroups } from "../../src/container/host.ts";
import { stackMountData, type LayerStack } from "../../src/container/stack.ts";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { resolveSettings, type MergeEnv } from "../../src/settings/merge.ts";
import type { TarEntry } from "../../src/archive/tar.ts";
import { overlayEntries } from "../../src/oci/layer.ts";
import { formatReference, isLoopback, parseReference, registryBase } from "../../src/oci/reference.ts";
import { parseChallenge, Registry } from "../../src/oci/registry.ts";
import { choosePlatform, configSchema, indexSchema, manifestSchema, parseDoc, parsePlatform } from "../../src/oci/schema.ts";

const D = `sha256:${"a".repeat(64)}`;
const E = `sha256:${"b".repeat(64)}`;

describe("references", () => {
  const p = (r: string) => formatReference(parseReference(r, { registry: "default.test" }));
  test("Docker's normalisation: registry, library/, latest", () => {
    expect(p("busybox")).toBe("default.test/library/busybox:latest");
    expect(p("user/app:1.2")).toBe("default.test/user/app:1.2");
    expect(p("localhost/app")).toBe("localhost/app:latest");
    expect(p("127.0.0.1:5000/a/b/c:v")).toBe("127.0.0.1:5000/a/b/c:v");
    expect(p(`reg.test/app@${D}`)).toBe(`reg.test/app@${D}`);
    expect(p(`reg.test/app:1@${D}`)).toBe(`reg.test/app:1@${D}`);
  });

  test("bad references are errors naming what is wrong", () => {
    expect(() => parseReference("Reg.test/App", { registry: "d" })).toThrow(/repository component "App"/);
    expect(() => parseReference("a@sha256:12", { registry: "d" })).toThrow(/digest/);
    expect(() => parseReference("a:b:c/d", { registry: "d" })).toThrow(/Invalid image reference/);
    expect(() => parseReference("busybox", {})).toThrow(/names no registry.*\[oci\] registry in spawnctl\.toml, or SPAWNCTL_OCI_REGISTRY/);
  });

  test("plain HTTP only for loopback and listed registries", () => {
    expect(isLoopback("127.0.0.1:5000")).toBe(true);
    expect(isLoopback("[::1]:5000")).toBe(true);
    expect(isLoopback("localhost")).toBe(true);
    expect(isLoopback("10.0.0.1:5000")).toBe(false);
    expect(registryBase("reg.test:5000", [])).toBe("https://reg.test:5000");
    expect(registryBase("reg.test:5000", ["reg.test"])).toBe("http://reg.test:5000");
  });
});

describe("documents", () => {
  test("a manifest that does not fit names the document and the field", () => {
    const m = { schemaVersion: 2, config: { mediaType: "x", digest: D, size: 1 }, layers: [{ mediaType: "y", digest: "sha256:zz", size: 1 }] };
    expect(() => parseDoc(manifestSchema(), JSON.stringify(m), "the manifest of img")).toThrow(/^the manifest of img: layers\.0\.digest: expected sha256/);
    expect(() => parseDoc(manifestSchema(), "{", "the manifest of img")).toThrow(/not valid JSON/);
    expect(() => parseDoc(configSchema(), JSON.stringify({ rootfs: { type: "layers", diff_ids: "x" } }), "cfg")).toThrow(/cfg: rootfs\.diff_ids/);
  });

  test("the platform of an index: the one asked for, or a list of what there is", () => {
    const ix = parseDoc(indexSchema(), JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: D, size: 1, platform: { os: "linux", architecture: "amd64" } },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: E, size: 1, platform: { os: "linux", architecture: "arm", variant: "v7" } },
      ],
    }), "ix");
    expect(choosePlatform(ix, parsePlatform("linux/arm/v7"), "ix").digest).toBe(E);
    expect(choosePlatform(ix, parsePlatform("linux/amd64"), "ix").digest).toBe(D);
    expect(() => choosePlatform(ix, parsePlatform("linux/riscv64"), "ix")).toThrow(/no image for the platform linux\/riscv64 \(it has: linux\/amd64, linux\/arm\/v7\)/);
    expect(() => parsePlatform("amd64")).toThrow(/--platform=amd64/);
  });
});

describe("auth", () => {
  test("challenges", () => {
    expect(parseChallenge('Bearer realm="https://auth.test/token",service="reg",scope="repository:a/b:pull"')).toEqual({
      scheme: "bearer", params: { realm: "https://auth.test/token", service: "reg", scope: "repository:a/b:pull" },
    });
    expect(parseChallenge('Basic realm="x"').scheme).toBe("basic");
  });

  test("a redirect to another host does not carry the registry's Authorization", async () => {
    const got: Array<string | null> = [];
    const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (got.push(req.headers.get("authorization")), new Response("blob")) });
    let port = 0;
    const reg = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req): Response {
        if (req.headers.get("authorization") !== `Basic ${btoa("u:p")}`) return new Response("", { status: 401, headers: { "WWW-Authenticate": 'Basic realm="r"' } });
        const u = new URL(req.url);
        if (u.pathname.endsWith("/same")) return Response.redirect(`http://127.0.0.1:${port}/v2/a/final`, 307);
        if (u.pathname.endsWith("/final")) return new Response("same host");
        return Response.redirect(`http://localhost:${other.port}/elsewhere`, 307);
      },
    });
    port = reg.port!;
    try {
      const r = new Registry({ registry: `127.0.0.1:${reg.port}`, repository: "a", tag: "x" }, { user: "u", pass: "p" }, []);
      expect(await (await r.request("a/blobs/x")).text()).toBe("blob");
      expect(got).toEqual([null]);
      expect(await (await r.request("a/same")).text()).toBe("same host");
    } finally {
      reg.stop(true);
      other.stop(true);
    }
  });
});

describe("layers", () => {
  const e = (path: string, over: Partial<TarEntry> = {}): TarEntry => ({
    path, type: "file", mode: 0o644, uid: 0, gid: 0, uname: "", gname: "", mtime: 0, size: 0, linkname: "", devmajor: 0, devminor: 0, xattrs: new Map(), data: new Uint8Array(0), ...over,
  });

  test("whiteouts become 0:0 devices, opaque markers are collected, overlay xattrs are dropped", () => {
    const opaque: string[] = [];
    const out = [...overlayEntries([
      e("etc/.wh.passwd"), e("var/lib/.wh..wh..opq"), e(".wh.top"), e("usr/x", { xattrs: new Map([["trusted.overlay.redirect", new Uint8Array([47])], ["user.keep", new Uint8Array([1])]]) }),
    ], opaque, "layer")];
    expect(out.map((x) => [x.path, x.type, x.devmajor, x.devminor])).toEqual([["etc/passwd", "char", 0, 0], ["top", "char", 0, 0], ["usr/x", "file", 0, 0]]);
    expect([...out[2]!.xattrs.keys()]).toEqual(["user.keep"]);
    expect(opaque).toEqual(["var/lib"]);
    expect(() => [...overlayEntries([e("a/.wh.")], [], "layer 3")]).toThrow(/layer 3: the whiteout "a\/\.wh\." names no file/);
  });
});

describe("the plan of a layered image", () => {
  const env: MergeEnv = { cwd: "/", isRoot: true, isTty: false, hostname: () => "h", isDir: () => false, readFile: () => undefined, random64: () => "1", warn: () => {}, boundingSet: (1n << 41n) - 1n };
  const stack: LayerStack = { dir: "/p/app.oci", layerRoot: "/p/.#oci/layers", lower: ["bbb", "aaa"], upper: "/p/app.oci/upper", work: "/p/app.oci/work" };
  const ctx = (over: Partial<RunContext> = {}): RunContext => ({
    stage: "/run/spawnctl/root", scratch: "/run/spawnctl/scratch", tree: "/p/app.oci", cgroup: detectCgroups(""), cgroupNamespace: false, cgroupJoin: [], osRelease: "",
    user: { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", groups: [] }, uuid: "0".repeat(32), bootId: "b", env: [], seccomp: new Uint8Array(8),
    binds: [], overlays: [], resolvConf: { op: "none" }, timezone: { op: "none" }, devices: { fuse: false, tun: false }, treeHasEtc: true, procMasks: PROC_INACCESSIBLE,
    usrLinks: [], nofileHard: 1024n, networkBarrier: false, stack, ...over,
  });
  const settings = (argv: string[]) => resolveSettings(parseCommandLine([...argv, "-D", "/p/app.oci", "true"], "/"), env).settings;
  const rootMount = (argv: string[], over: Partial<RunContext> = {}) => buildPlan(settings(argv), ctx(over)).ops.find((o) => o.kind === "mount" && o.dst === "/run/spawnctl/root");

  test("the layers, top-most first (by short links), under the image's own upper layer; user xattrs", () => {
    const ops = buildPlan(settings([]), ctx()).ops;
    expect(ops.filter((o) => o.kind === "symlink" && !o.inRoot)).toEqual([
      { kind: "symlink", target: "/p/.#oci/layers/bbb", path: "/run/spawnctl/scratch/l/0", inRoot: false },
      { kind: "symlink", target: "/p/.#oci/layers/aaa", path: "/run/spawnctl/scratch/l/1", inRoot: false },
    ]);
    const L = "/run/spawnctl/scratch/l/0:/run/spawnctl/scratch/l/1";
    expect(rootMount([])).toMatchObject({ fstype: "overlay", data: `lowerdir=${L},upperdir=/p/app.oci/upper,workdir=/p/app.oci/work,userxattr` });
    // -x: the image's upper layer is one more lower one, the changes go to the scratch tmpfs
    expect(rootMount(["-x"])).toMatchObject({ data: `lowerdir=/p/app.oci/upper:${L},upperdir=/run/spawnctl/scratch/upper,workdir=/run/spawnctl/scratch/work,userxattr` });
    expect(rootMount(["--read-only"])).toMatchObject({ flags: MS_RDONLY, data: `lowerdir=/p/app.oci/upper:${L},userxattr` });
    expect(() => rootMount(["--volatile=yes"])).toThrow(/--volatile=yes/);
  });

  test("in a user namespace the store and the image arrive idmapped in slots 0 and 1", () => {
    const userns = { shift: 0x10000, range: 0x10000, idmapRoot: true, rootBase: 0 };
    const s = settings(["-U"]);
    expect(idmapSources(s, ctx({ userns }))).toEqual([
      { hostPath: "/p/.#oci/layers", recursive: false, map: "container" },
      { hostPath: "/p/app.oci", recursive: false, map: "container" },
    ]);
    const ops = buildPlan(s, ctx({ userns })).ops;
    expect(ops.filter((o) => o.kind === "moveMount").slice(0, 2)).toEqual([
      { kind: "moveMount", slot: 0, dst: "/run/spawnctl/scratch/layers", dstInRoot: false, mkdir: true },
      { kind: "moveMount", slot: 1, dst: "/run/spawnctl/scratch/image", dstInRoot: false, mkdir: true },
    ]);
    expect(ops.find((o) => o.kind === "symlink" && !o.inRoot)).toMatchObject({ target: "/run/spawnctl/scratch/layers/bbb", path: "/run/spawnctl/scratch/l/0" });
    expect(rootMount(["-U"], { userns })).toMatchObject({ data: "lowerdir=/run/spawnctl/scratch/l/0:/run/spawnctl/scratch/l/1,upperdir=/run/spawnctl/scratch/image/upper,workdir=/run/spawnctl/scratch/image/work,userxattr" });
  });

  test("a hundred layers fit in the mount's one page of options; too many is an error that says what to do", () => {
    const many = (n: number) => ({ ...stack, lower: Array.from({ length: n }, (_, i) => `${i}`.padStart(64, "0")) });
    expect(rootMount([], { stack: many(127) })).toMatchObject({ fstype: "overlay" });
    expect(() => rootMount([], { stack: many(200) })).toThrow(/200 layers.*exceed the kernel's limit.*flatten it/);
    expect(() => stackMountData(many(80), many(80).lower.map((l) => `/p/.#oci/layers/${l}`), undefined, undefined)).toThrow(/80 layers/);
  });
});

const MS_RDONLY = 1;

describe("configuration", () => {
  test("[oci] of spawnctl.toml: the default registry and plain-HTTP registries, checked", async () => {
    const { parseConfig } = await import("../../src/settings/config.ts");
    expect(parseConfig('[oci]\nregistry = "reg.test:5000"\ninsecure-registries = ["a.lan", "b.lan:5000"]\n', "f").oci).toEqual({ registry: "reg.test:5000", "insecure-registries": ["a.lan", "b.lan:5000"] });
    expect(() => parseConfig('[oci]\nregistry = "https://reg.test"\n', "f")).toThrow(/oci\.registry: HOST\[:PORT\]/);
    expect(() => parseConfig('[oci]\nmirror = "x"\n', "f")).toThrow(/mirror/);
  });
});
