// A client of the OCI distribution API (/v2/): manifests with the Accept list
// of every type we read, blobs with resumption (Range) and verification,
// redirects followed by hand so that Authorization never goes to another
// host, and the two auth flows registries use: Basic, and the Bearer token
// challenge (anonymous, or with credentials from --creds or docker's
// config.json).
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { flock, LOCK_EX } from "../sys/ffi.ts";
import { removePath } from "../image/job.ts";
import { homedir } from "node:os";
import { SpawnctlError } from "../util/errors.ts";
import { httpReason, networkReason } from "../util/neterr.ts";
import { lazySchema } from "../util/state.ts";
import { MANIFEST_ACCEPT, apiErrorSchema, parseDoc, tokenSchema, type Descriptor } from "./schema.ts";
import { formatReference, registryBase, type ImageRef } from "./reference.ts";
import { adoptBlob, hasBlob, hexOf, sha256, type Store } from "./store.ts";

export interface Creds {
  user: string;
  pass: string;
}

const dockerConfigSchema = lazySchema((zz) =>
  zz.object({ auths: zz.optional(zz.record(zz.string(), zz.object({ auth: zz.optional(zz.string()), username: zz.optional(zz.string()), password: zz.optional(zz.string()) }))) }),
);

/** Credentials for `registry`: --creds=USER:PASS, else docker's config.json ($DOCKER_CONFIG or ~/.docker). */
export function findCreds(registry: string, flag: string | undefined): Creds | undefined {
  if (flag !== undefined) {
    const i = flag.indexOf(":");
    if (i <= 0) throw new SpawnctlError("--creds= takes USER:PASSWORD.");
    return { user: flag.slice(0, i), pass: flag.slice(i + 1) };
  }
  const file = `${process.env.DOCKER_CONFIG || `${homedir()}/.docker`}/config.json`;
  if (!existsSync(file)) return undefined;
  const cfg = parseDoc(dockerConfigSchema(), readFileSync(file, "utf8"), file);
  const e = cfg.auths?.[registry] ?? cfg.auths?.[`https://${registry}`] ?? cfg.auths?.[`http://${registry}`];
  if (!e) return undefined;
  if (e.username && e.password) return { user: e.username, pass: e.password };
  if (e.auth) {
    const t = Buffer.from(e.auth, "base64").toString("utf8");
    const i = t.indexOf(":");
    if (i > 0) return { user: t.slice(0, i), pass: t.slice(i + 1) };
  }
  throw new SpawnctlError(`${file}: the entry for ${registry} has no usable auth.`);
}

/** key=value pairs of a WWW-Authenticate challenge. */
export function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/.exec(h.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: "", params };
  for (const p of m[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1]!.toLowerCase(), params };
}

export class Registry {
  private readonly base: string;
  private readonly host: string;
  private auth: string | undefined;
  private readonly label: string;

  constructor(
    private readonly ref: ImageRef,
    private readonly creds: Creds | undefined,
    insecure: string[],
    private readonly signal?: AbortSignal,
  ) {
    this.base = registryBase(ref.registry, insecure);
    this.host = new URL(this.base).host;
    this.label = formatReference(ref);
  }

  private async send(url: string, init: RequestInit, auth: boolean): Promise<Response> {
    let u = url;
    for (let hops = 0; hops < 10; hops++) {
      const sameHost = new URL(u).host === this.host;
      const headers = new Headers(init.headers);
      // the registry's credentials go to the registry only, never where it redirects
      if (auth && sameHost && this.auth) headers.set("Authorization", this.auth);
      let res: Response;
      try {
        res = await fetch(u, { ...init, headers, redirect: "manual", signal: this.signal });
      } catch (e) {
        if (this.signal?.aborted) throw this.signal.reason;
        throw new SpawnctlError(`${this.label}: ${u}: ${networkReason(e, u) ?? (e as Error).message}`, { cause: e });
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get("location")) {
        const next = new URL(res.headers.get("location")!, u);
        if (next.protocol !== "https:" && next.protocol !== "http:") throw new SpawnctlError(`${this.label}: redirected to ${next} (not http or https).`);
        if (new URL(u).protocol === "https:" && next.protocol === "http:") throw new SpawnctlError(`${this.label}: redirected from HTTPS to plain HTTP (${next}); refused.`);
        await res.body?.cancel();
        u = next.toString();
        continue;
      }
      return res;
    }
    throw new SpawnctlError(`${this.label}: too many redirects from ${url}.`);
  }

  /** A request to the registry, answering an auth challenge once. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = `${this.base}/v2/${path}`;
    let res = await this.send(url, init, true);
    if (res.status === 401) {
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      if (!challenge) throw new SpawnctlError(`${this.label}: ${url}: HTTP 401 without a WWW-Authenticate challenge.`);
      await this.authenticate(challenge);
      res = await this.send(url, init, true);
    }
    return res;
  }

  private async authenticate(h: string): Promise<void> {
    const { scheme, params } = parseChallenge(h);
    const basic = this.creds ? `Basic ${Buffer.from(`${this.creds.user}:${this.creds.pass}`).toString("base64")}` : undefined;
    if (scheme === "basic") {
      if (!basic) throw new SpawnctlError(`${this.label}: the registry wants a user name and password (Basic auth): use --creds=USER:PASS or docker login.`);
      this.auth = basic;
      return;
    }
    if (scheme !== "bearer") throw new SpawnctlError(`${this.label}: unsupported auth scheme ${JSON.stringify(scheme)} in ${JSON.stringify(h)}.`);
    if (!params.realm) throw new SpawnctlError(`${this.label}: the Bearer challenge names no realm: ${h}`);
    const realm = new URL(params.realm);
    if (realm.protocol !== "https:" && !(realm.protocol === "http:" && this.base.startsWith("http:"))) {
      throw new SpawnctlError(`${this.label}: the token server ${realm} is not HTTPS; refused.`);
    }
    if (params.service) realm.searchParams.set("service", params.service);
    realm.searchParams.set("scope", params.scope ?? `repository:${this.ref.repository}:pull`);
    let res: Response;
    try {
      res = await fetch(realm, { headers: basic ? { Authorization: basic } : {}, signal: this.signal });
    } catch (e) {
      throw new SpawnctlError(`${this.label}: the token server ${realm.origin}: ${networkReason(e, realm.toString()) ?? (e as Error).message}`, { cause: e });
    }
    if (!res.ok) throw new SpawnctlError(`${this.label}: the token server ${realm.origin} refused a token: ${httpReason(res.status, res.statusText)}${this.creds ? "" : " (credentials may be needed: --creds=USER:PASS)"}.`);
    const t = parseDoc(tokenSchema(), await res.text(), `the token server's answer for ${this.label}`);
    const token = t.token ?? t.access_token;
    if (!token) throw new SpawnctlError(`${this.label}: the token server's answer has no token.`);
    this.auth = `Bearer ${token}`;
  }

  private async fail(res: Response, what: string): Promise<never> {
    let detail = "";
    try {
      const e = parseDoc(apiErrorSchema(), await res.text(), "error");
      detail = e.errors.map((x) => [x.code, x.message].filter(Boolean).join(": ")).join("; ");
    } catch {
      /* no API error body */
    }
    throw new SpawnctlError(`${this.label}: ${what}: ${httpReason(res.status, res.statusText)}${detail ? ` — ${detail}` : ""}.`);
  }

  /** The manifest or index `reference` (tag or digest): its bytes, media type and digest (checked when asked by digest). */
  async manifest(reference: string): Promise<{ bytes: Uint8Array; mediaType: string; digest: string }> {
    const res = await this.request(`${this.ref.repository}/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (!res.ok) await this.fail(res, `fetching the manifest ${reference}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const digest = sha256(bytes);
    if (reference.startsWith("sha256:") && digest !== reference) throw new SpawnctlError(`${this.label}: the manifest has the digest ${digest}, not the ${reference} asked for.`);
    const said = res.headers.get("docker-content-digest");
    if (said && said.startsWith("sha256:") && said !== digest) throw new SpawnctlError(`${this.label}: the manifest has the digest ${digest}, the registry says ${said}.`);
    return { bytes, mediaType: (res.headers.get("content-type") ?? "").split(";")[0]!.trim(), digest };
  }

  /**
   * Download the blob `d` into the store: to partial/HEX first, resumed from
   * what an earlier, interrupted pull left there; verified against its
   * digest and size before it moves into blobs/.
   */
  async blob(s: Store, d: Descriptor, what: string, progress?: (bytes: number) => void): Promise<void> {
    const part = `${s.partial}/${hexOf(d.digest)}`;
    const fd = openSync(part, "a", 0o600);
    try {
      // two pulls of one blob: the second waits for the first, then finds it stored
      if (flock(fd, LOCK_EX) !== 0) throw new SpawnctlError(`${this.label}: ${what}: locking ${part} failed.`);
      if (hasBlob(s, d.digest)) {
        // (the first pull moved its file into the store; ours may be a new, empty one)
        if (fstatSync(fd).size === 0) removePath(part);
        return;
      }
      let have = fstatSync(fd).size;
      if (have > d.size) {
        ftruncateSync(fd, 0);
        have = 0;
      }
      if (have < d.size || d.size === 0) {
        const res = await this.request(`${this.ref.repository}/blobs/${d.digest}`, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
        if (!res.ok) await this.fail(res, `fetching ${what}`);
        // a server that ignores Range sends it all again
        if (have > 0 && res.status !== 206) {
          ftruncateSync(fd, 0);
          have = 0;
        }
        let n = have;
        const reader = res.body!.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (let off = 0; off < value.length; ) off += writeSync(fd, value, off, value.length - off);
          n += value.length;
          if (n > d.size) throw new SpawnctlError(`${this.label}: ${what}: the registry sends more than the ${d.size} bytes its descriptor says.`);
          progress?.(n);
        }
        have = n;
      }
      if (have !== d.size) throw new SpawnctlError(`${this.label}: ${what}: got ${have} bytes, the descriptor says ${d.size} (run the pull again to resume).`);
      const got = sha256(readFileSync(part));
      if (got !== d.digest) {
        // a corrupt download is not resumed from
        unlinkSync(part);
        throw new SpawnctlError(`${this.label}: ${what}: digest mismatch: expected ${d.digest}, got ${got} (the data is corrupt or was tampered with).`);
      }
      adoptBlob(s, part, d.digest);
    } finally {
      closeSync(fd);
    }
  }
}
