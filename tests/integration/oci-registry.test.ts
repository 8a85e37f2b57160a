// pull-oci against real registries (issue 16): Debian's docker-registry (the
// CNCF distribution registry) on 127.0.0.1, fed by skopeo from umoci-built
// images of the busybox fixture. Anonymous, Basic (htpasswd) and Bearer (a
// token server in this process, signing ES256 tokens the registry checks
// against its certificate) auth; OCI and Docker v2 media types, gzip and zstd
// layers; an index with two platforms; a pull by digest; a blob tampered with
// in the registry's storage; a pull cut off mid-blob and resumed with a Range
// request (through a proxy in this process that cuts the first try). Root,
// busybox-static, umoci, skopeo, docker-registry, openssl.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from "bun:test";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { removePath } from "../../src/image/job.ts";
import { IS_ROOT, SPAWNCTL, busyboxPath, leftovers, makeBusyboxTree, needs, tempDir, type Result } from "../helpers.ts";

setDefaultTimeout(600_000);
const ok = IS_ROOT && !!busyboxPath() && ["umoci", "skopeo", "docker-registry", "openssl"].every((t) => !!Bun.which(t));
const test = needs("root, busybox-static, umoci, skopeo, docker-registry and openssl", ok);
const before = IS_ROOT ? leftovers() : [];
let base = "";
let pool = "";
let lay = "";
const procs: Array<{ kill(): void; exited: Promise<number> }> = [];
const servers: Array<{ stop(force?: boolean): void }> = [];

function sh(...cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** spawnctl, without blocking this process (the token server and the proxy run in it). */
async function sc(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const p = Bun.spawn([SPAWNCTL, ...args], { env: { ...process.env, SPAWNCTL_IMAGE_PATH: pool, ...env }, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

interface Reg {
  host: string;
  dir: string;
}

/** A registry on 127.0.0.1 with `auth` (YAML lines under "auth:"), storage in base/NAME. */
async function startRegistry(name: string, auth = ""): Promise<Reg> {
  const port = freePort();
  const dir = `${base}/${name}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/config.yml`, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth ? `auth:\n${auth}` : ""}`);
  const p = Bun.spawn(["docker-registry", "serve", `${dir}/config.yml`], { stdout: "ignore", stderr: "pipe" });
  procs.push(p);
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (r.status === 200 || r.status === 401) return { host: `127.0.0.1:${port}`, dir };
    } catch {
      /* not yet */
    }
    await Bun.sleep(50);
  }
  throw new Error(`the registry ${name} did not start: ${await new Response(p.stderr).text()}`);
}

function push(src: string, dst: string, ...opts: string[]): void {
  sh("skopeo", "copy", "-q", "--dest-tls-verify=false", ...opts, src, `docker://${dst}`);
}

/** push, without blocking this process (for a registry whose token server runs in it). */
async function pushAsync(src: string, dst: string, ...opts: string[]): Promise<void> {
  const p = Bun.spawn(["skopeo", "copy", "-q", "--dest-tls-verify=false", ...opts, src, `docker://${dst}`], { stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`skopeo copy ${src} ${dst}: ${err}`);
}

const layers = () => readdirSync(`${pool}/.#oci/layers`).filter((n) => !n.startsWith(".#"));
const images = () => readdirSync(pool).filter((n) => n.endsWith(".oci"));

/** v1 (two layers), v2 (v1 + a layer, for arm64), and `unique` (a layer no other image has, for the tampering). */
function makeLayout(): void {
  const tree = makeBusyboxTree(`${base}/tree`);
  lay = `${base}/layout`;
  sh("umoci", "init", "--layout", lay);
  sh("umoci", "new", "--image", `${lay}:v1`);
  sh("umoci", "unpack", "--image", `${lay}:v1`, `${base}/b1`);
  cpSync(`${tree}/`, `${base}/b1/rootfs`, { recursive: true, verbatimSymlinks: true });
  sh("umoci", "repack", "--image", `${lay}:v1`, `${base}/b1`);
  sh("umoci", "unpack", "--image", `${lay}:v1`, `${base}/b2`);
  mkdirSync(`${base}/b2/rootfs/data`);
  writeFileSync(`${base}/b2/rootfs/data/file`, "layer 2\n");
  removePath(`${base}/b2/rootfs/home`);
  sh("umoci", "repack", "--image", `${lay}:v1`, `${base}/b2`);
  sh("umoci", "config", "--image", `${lay}:v1`, "--config.cmd", "/bin/cat", "--config.cmd", "/data/file", "--architecture", "amd64", "--os", "linux");
  sh("umoci", "unpack", "--image", `${lay}:v1`, `${base}/b3`);
  writeFileSync(`${base}/b3/rootfs/data/arm`, "arm64\n");
  sh("umoci", "repack", "--image", `${lay}:v2`, `${base}/b3`);
  sh("umoci", "config", "--image", `${lay}:v2`, "--architecture", "arm64");
  sh("umoci", "unpack", "--image", `${lay}:v1`, `${base}/b4`);
  writeFileSync(`${base}/b4/rootfs/data/unique`, `${crypto.randomUUID()}\n`.repeat(2000));
  sh("umoci", "repack", "--image", `${lay}:unique`, `${base}/b4`);
  // an index with both platforms, as a multi-arch image is pushed
  const idx = JSON.parse(readFileSync(`${lay}/index.json`, "utf8")) as { manifests: Array<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }> };
  const by = (t: string) => idx.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === t)!;
  const list = {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      { mediaType: by("v1").mediaType, digest: by("v1").digest, size: by("v1").size, platform: { os: "linux", architecture: "amd64" } },
      { mediaType: by("v2").mediaType, digest: by("v2").digest, size: by("v2").size, platform: { os: "linux", architecture: "arm64" } },
    ],
  };
  const bytes = new TextEncoder().encode(JSON.stringify(list));
  const hex = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  writeFileSync(`${lay}/blobs/sha256/${hex}`, bytes);
  idx.manifests.push({ mediaType: list.mediaType, digest: `sha256:${hex}`, size: bytes.length, annotations: { "org.opencontainers.image.ref.name": "multi" } });
  writeFileSync(`${lay}/index.json`, JSON.stringify(idx));
}

/** The layout's v1 with zstd layers, as the tag `tag`. */
function zstdImage(tag: string): void {
  const blob = (d: string) => readFileSync(`${lay}/blobs/sha256/${d.slice(7)}`);
  const put = (b: Uint8Array) => {
    const hex = new Bun.CryptoHasher("sha256").update(b).digest("hex");
    writeFileSync(`${lay}/blobs/sha256/${hex}`, b);
    return `sha256:${hex}`;
  };
  const idx = JSON.parse(readFileSync(`${lay}/index.json`, "utf8")) as { manifests: Array<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }> };
  const v1 = idx.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === "v1")!;
  const m = JSON.parse(blob(v1.digest).toString()) as { layers: Array<{ mediaType: string; digest: string; size: number }> };
  m.layers = m.layers.map((l) => {
    const z = Bun.zstdCompressSync(Bun.gunzipSync(blob(l.digest)));
    return { mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: put(z), size: z.length };
  });
  const mb = new TextEncoder().encode(JSON.stringify(m));
  idx.manifests.push({ mediaType: v1.mediaType, digest: put(mb), size: mb.length, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(`${lay}/index.json`, JSON.stringify(idx));
}

let anon: Reg;

beforeAll(async () => {
  if (!ok) return;
  base = tempDir("sctest-ocireg-");
  pool = `${base}/pool`;
  mkdirSync(pool);
  makeLayout();
  anon = await startRegistry("anon");
  push(`oci:${lay}:v1`, `${anon.host}/test/bb:v1`);
  push(`oci:${lay}:v1`, `${anon.host}/test/docker:v1`, "--format", "v2s2");
  // zstd: the layout's image with its layers recompressed (skopeo's blob cache puts known gzip blobs back)
  zstdImage("zstd");
  push(`oci:${lay}:zstd`, `${anon.host}/test/zstd:v1`);
  push(`oci:${lay}:multi`, `${anon.host}/test/multi:1`, "--all");
});

afterAll(async () => {
  for (const s of servers) s.stop(true);
  for (const p of procs) {
    p.kill();
    await p.exited;
  }
  if (!ok || !base) return;
  for (const n of images()) await sc(["remove", n.slice(0, -4)]);
  removePath(base);
  // (other work may run beside these tests: what is ours names our directory or our images)
  const ours = ["bb", "bb-again", "docker", "zstd", "m-host", "m-arm", "bydigest", "resumed", "basic", "basic2", "public", "private"];
  expect(leftovers().filter((l) => !before.includes(l) && (l.includes(base) || ours.some((n) => l.includes(`/${n}.`))))).toEqual([]);
});

const fresh = async () => {
  for (const n of images()) await sc(["remove", n.slice(0, -4)]);
  expect(images()).toEqual([]);
};

describe("pull-oci, anonymous", () => {
  test("an OCI image pulls, lists as oci and runs its config; a second pull of it fetches no layer", async () => {
    const r = await sc(["pull-oci", `${anon.host}/test/bb:v1`]);
    expect(r.stderr).toContain(`Pulled image 'bb' from ${anon.host}/test/bb:v1 (2 layers`);
    expect(r.code).toBe(0);
    expect((await sc(["run", "-q", "--console=pipe", "-M", "bb"])).stdout).toBe("layer 2\n");
    const st = (await sc(["image-status", "bb"])).stdout;
    expect(st).toContain(`Reference: ${anon.host}/test/bb:v1`);
    expect(st).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    const n = layers().length;
    expect((await sc(["pull-oci", `${anon.host}/test/bb:v1`, "bb-again"])).code).toBe(0);
    expect(layers().length).toBe(n);
  });

  test("Docker v2 media types and zstd layers", async () => {
    for (const repo of ["docker", "zstd"]) {
      const r = await sc(["pull-oci", `${anon.host}/test/${repo}:v1`]);
      expect(r.stderr).toContain(`Pulled image '${repo}'`);
      expect((await sc(["run", "-q", "--console=pipe", "-M", repo])).stdout).toBe("layer 2\n");
    }
    const rec = JSON.parse(readFileSync(`${pool}/docker.oci/image.json`, "utf8"));
    expect(rec.manifestMediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(rec.layers[0].mediaType).toBe("application/vnd.docker.image.rootfs.diff.tar.gzip");
    const z = JSON.parse(readFileSync(`${pool}/zstd.oci/image.json`, "utf8"));
    expect(z.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar+zstd");
  });

  test("an index: the host's platform, --platform=, a platform it lacks; a pull by digest", async () => {
    expect((await sc(["pull-oci", `${anon.host}/test/multi:1`, "m-host"])).code).toBe(0);
    expect((await sc(["run", "-q", "--console=pipe", "-M", "m-host", "/bin/ls", "/data"])).stdout).toBe("file\n");
    expect((await sc(["pull-oci", "--platform=linux/arm64", `${anon.host}/test/multi:1`, "m-arm"])).code).toBe(0);
    expect(readFileSync(`${pool}/m-arm.oci/image.json`, "utf8")).toContain('"platform": "linux/arm64"');
    const none = await sc(["pull-oci", "--platform=linux/s390x", `${anon.host}/test/multi:1`, "m-none"]);
    expect(none.stderr).toMatch(/no image for the platform linux\/s390x \(it has: linux\/amd64, linux\/arm64\)/);
    expect(images()).not.toContain("m-none.oci");
    const digest = JSON.parse(readFileSync(`${pool}/bb.oci/image.json`, "utf8")).manifestDigest as string;
    expect((await sc(["pull-oci", `${anon.host}/test/bb@${digest}`, "bydigest"])).code).toBe(0);
    const wrong = await sc(["pull-oci", `${anon.host}/test/bb@sha256:${"0".repeat(64)}`, "wrong"]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/HTTP 404/);
  });

  test("a plain-HTTP registry that is not on loopback is refused unless listed", async () => {
    const r = await sc(["pull-oci", "registry.invalid:5000/test/bb:v1", "x"]);
    expect(r.stderr).toMatch(/https:\/\/registry\.invalid:5000/);
    expect(r.code).not.toBe(0);
    const flag = await sc(["pull-oci", "--insecure-registry=registry.invalid:5000", "registry.invalid:5000/test/bb:v1", "x"]);
    expect(flag.stderr).toMatch(/http:\/\/registry\.invalid:5000\/v2\//);
    writeFileSync(`${base}/spawnctl.toml`, '[oci]\nregistry = "registry.invalid"\ninsecure-registries = ["registry.invalid"]\n');
    const conf = await sc(["pull-oci", "test/bb:v1", "x"], { SPAWNCTL_CONFIG: `${base}/spawnctl.toml` });
    expect(conf.stderr).toMatch(/http:\/\/registry\.invalid\/v2\/test\/bb\/manifests\/v1/);
    expect(images()).not.toContain("x.oci");
  });

  test("a blob tampered with in the registry's storage fails the pull, leaving no image", async () => {
    push(`oci:${lay}:unique`, `${anon.host}/test/unique:1`);
    const m = JSON.parse(new TextDecoder().decode(Bun.spawnSync(["skopeo", "inspect", "--raw", "--tls-verify=false", `docker://${anon.host}/test/unique:1`]).stdout)) as { layers: Array<{ digest: string }> };
    const hex = m.layers.at(-1)!.digest.slice(7);
    const data = `${anon.dir}/data/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    const b = readFileSync(data);
    b[b.length >> 1] ^= 0xff;
    writeFileSync(data, b);
    const r = await sc(["pull-oci", `${anon.host}/test/unique:1`, "tampered"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/digest mismatch: expected sha256:/);
    expect(images()).not.toContain("tampered.oci");
    expect(existsSync(`${pool}/.#oci/blobs/sha256/${hex}`)).toBe(false);
    expect(existsSync(`${pool}/.#oci/partial/${hex}`)).toBe(false);
  });
});

describe("resumption", () => {
  test("a pull cut off mid-blob, run again, asks only for the rest (Range) and completes", async () => {
    await fresh();
    await sc(["clean"]);
    const ranges: string[] = [];
    let cut = true;
    const proxy = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        const up = await fetch(`http://${anon.host}${url.pathname}${url.search}`, { headers: req.headers, redirect: "manual" });
        const isBlob = /\/blobs\/sha256:/.test(url.pathname) && req.method === "GET" && up.status < 300;
        if (isBlob) ranges.push(req.headers.get("range") ?? "");
        const len = Number(up.headers.get("content-length") ?? 0);
        if (isBlob && cut && len > 100_000) {
          cut = false;
          // half of the biggest blob, then the connection ends
          const body = new Uint8Array(await up.arrayBuffer());
          const stream = new ReadableStream({
            start(c) {
              c.enqueue(body.subarray(0, len >> 1));
            },
            async pull(c) {
              // the end, half-way: the client sees fewer bytes than Content-Length promised
              await Bun.sleep(200);
              c.close();
            },
          });
          return new Response(stream, { status: up.status, headers: up.headers });
        }
        return new Response(up.body, { status: up.status, headers: up.headers });
      },
    });
    servers.push(proxy);
    const ref = `127.0.0.1:${proxy.port}/test/bb:v1`;
    const first = await sc(["pull-oci", ref, "resumed"]);
    expect(first.code).not.toBe(0);
    expect(images()).toEqual([]);
    expect(readdirSync(`${pool}/.#oci/partial`).length).toBe(1);
    ranges.length = 0;
    const second = await sc(["pull-oci", ref, "resumed"]);
    expect(second.stderr).toContain("Pulled image 'resumed'");
    expect(ranges.filter((r) => /^bytes=[1-9]\d*-$/.test(r)).length).toBe(1);
    // the blobs the first pull had verified were not asked for again
    expect(ranges.length).toBeLessThan(3);
    expect((await sc(["run", "-q", "--console=pipe", "-M", "resumed"])).stdout).toBe("layer 2\n");
    expect(readdirSync(`${pool}/.#oci/partial`)).toEqual([]);
  });
});

describe("auth", () => {
  test("Basic (htpasswd): refused without credentials, pulled with --creds= and with docker's config.json", async () => {
    await fresh();
    const hash = Bun.password.hashSync("s3cret", { algorithm: "bcrypt", cost: 4 });
    writeFileSync(`${base}/htpasswd`, `tester:${hash}\n`);
    const reg = await startRegistry("basic", `  htpasswd:\n    realm: test\n    path: ${base}/htpasswd\n`);
    push(`oci:${lay}:v1`, `${reg.host}/test/basic:v1`, "--dest-creds", "tester:s3cret");
    const none = await sc(["pull-oci", `${reg.host}/test/basic:v1`], { DOCKER_CONFIG: `${base}/nodocker` });
    expect(none.stderr).toMatch(/Basic auth.*--creds=USER:PASS/);
    const wrong = await sc(["pull-oci", "--creds=tester:wrong", `${reg.host}/test/basic:v1`]);
    expect(wrong.stderr).toMatch(/HTTP 401/);
    expect((await sc(["pull-oci", "--creds=tester:s3cret", `${reg.host}/test/basic:v1`])).code).toBe(0);
    mkdirSync(`${base}/docker`, { recursive: true });
    writeFileSync(`${base}/docker/config.json`, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("tester:s3cret").toString("base64") } } }));
    const viaConfig = await sc(["pull-oci", `${reg.host}/test/basic:v1`, "basic2"], { DOCKER_CONFIG: `${base}/docker` });
    expect(viaConfig.stderr).toContain("Pulled image 'basic2'");
  });

  test("Bearer: an anonymous token for a public repository, credentials for a private one", async () => {
    await fresh();
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${base}/tok.key`, "-out", `${base}/tok.crt`, "-subj", "/CN=token", "-days", "1");
    const der = Buffer.from(readFileSync(`${base}/tok.crt`, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64").toString("base64");
    const pkcs8 = Buffer.from(readFileSync(`${base}/tok.key`, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64");
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
    const b64 = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");
    const seen: string[] = [];
    const tokens = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        const auth = req.headers.get("authorization");
        const user = auth?.startsWith("Basic ") ? Buffer.from(auth.slice(6), "base64").toString() : "";
        seen.push(`${user || "anonymous"} ${u.searchParams.get("scope")}`);
        if (user && user !== "tester:s3cret") return new Response("no", { status: 401 });
        const scope = u.searchParams.get("scope") ?? "";
        const [, name, actions] = scope.split(":");
        // test/public: anyone may pull; everything else needs the user
        const allowed = (actions ?? "").split(",").filter((a) => user || (name === "test/public" && a === "pull"));
        const now = Math.floor(Date.now() / 1000);
        const head = b64(JSON.stringify({ alg: "ES256", typ: "JWT", x5c: [der] }));
        const claims = b64(JSON.stringify({ iss: "sctest", sub: user.split(":")[0] || "", aud: "sctest-registry", exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access: allowed.length ? [{ type: "repository", name, actions: allowed }] : [] }));
        const sig = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, new TextEncoder().encode(`${head}.${claims}`)));
        return Response.json({ token: `${head}.${claims}.${b64(sig)}`, expires_in: 300 });
      },
    });
    servers.push(tokens);
    const reg = await startRegistry("bearer", `  token:\n    realm: http://127.0.0.1:${tokens.port}/token\n    service: sctest-registry\n    issuer: sctest\n    rootcertbundle: ${base}/tok.crt\n`);
    await pushAsync(`oci:${lay}:v1`, `${reg.host}/test/public:v1`, "--dest-creds", "tester:s3cret");
    await pushAsync(`oci:${lay}:v1`, `${reg.host}/test/private:v1`, "--dest-creds", "tester:s3cret");
    seen.length = 0;
    const pub = await sc(["pull-oci", `${reg.host}/test/public:v1`], { DOCKER_CONFIG: `${base}/nodocker` });
    expect(pub.stderr).toContain("Pulled image 'public'");
    expect(seen).toEqual(["anonymous repository:test/public:pull"]);
    const priv = await sc(["pull-oci", `${reg.host}/test/private:v1`], { DOCKER_CONFIG: `${base}/nodocker` });
    expect(priv.code).not.toBe(0);
    expect(priv.stderr).toMatch(/HTTP 401|refused a token/);
    const withCreds = await sc(["pull-oci", "--creds=tester:s3cret", `${reg.host}/test/private:v1`]);
    expect(withCreds.stderr).toContain("Pulled image 'private'");
    expect((await sc(["run", "-q", "--console=pipe", "-M", "private"])).stdout).toBe("layer 2\n");
  });
});
