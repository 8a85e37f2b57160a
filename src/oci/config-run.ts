// What an OCI image's own config means for a run: without a command on the
// command line or in a .nspawn file, Entrypoint + Cmd run, with the config's
// Env (under what --setenv= and the .nspawn file say), WorkingDir and User
// (looked up in the image's own /etc/passwd at start, like any --user=).
// --boot still boots an image that has an init; `start` (whose defaults
// include --boot) runs the config's command in an image without one.
import type { Settings } from "../settings/types.ts";
import { existsInRoot, parseGroup, parseId, readInRoot, resolveUser } from "../util/tree.ts";
import { isStack, withTreeView } from "../container/stack.ts";
import { readRecord } from "./image-dir.ts";
import { configSchema, parseDoc, type ImageConfig } from "./schema.ts";
import { readBlob, storeAt } from "./store.ts";
import { SpawnctlError } from "../util/errors.ts";

const INITS = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"];
const SIGRTMIN = 34;

/** The config of the OCI image at `dir` (NAME.oci), read from the pool's store and verified. */
export function imageConfig(dir: string): ImageConfig {
  const rec = readRecord(dir);
  const pool = dir.slice(0, dir.lastIndexOf("/"));
  const what = `the config of the image ${dir}`;
  return parseDoc(configSchema(), readBlob(storeAt(pool), rec.configDigest, what), what);
}

export interface ConfigRunOptions {
  /** --boot came from defaults (start), not from the user: an image without an init runs its command instead */
  bootOptional?: boolean;
}

/** Fill in what the image's config says where the settings leave it open. Changes `s` in place. */
export function applyImageConfig(s: Settings, o: ConfigRunOptions = {}): void {
  if (!isStack(s.directory)) return;
  let cfg: ImageConfig;
  try {
    cfg = imageConfig(s.directory);
  } catch (e) {
    // an image made by hand (no image.json) runs as any tree does
    if (e instanceof SpawnctlError && /image\.json: ENOENT|no such file/i.test(e.message)) return;
    throw e;
  }
  const c = cfg.config ?? {};
  if (s.boot && o.bootOptional && s.parameters.length === 0) {
    const hasInit = withTreeView(s.directory, s.machine, (view) => INITS.some((p) => existsInRoot(view, p)));
    if (!hasInit) {
      s.boot = false;
      if (s.killSignal === SIGRTMIN + 3) s.killSignal = 15;
    }
  }
  if (!s.boot && s.parameters.length === 0) {
    const argv = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
    if (argv.length) s.parameters = argv;
  }
  if (c.Env?.length) {
    const set = new Set(s.environment.map((e) => e.slice(0, e.indexOf("="))));
    s.environment = [...c.Env.filter((e) => e.includes("=") && !set.has(e.slice(0, e.indexOf("=")))), ...s.environment];
  }
  if (!s.workingDirectory && c.WorkingDir) s.workingDirectory = c.WorkingDir;
  if (!s.user && c.User) applyImageUser(s, c.User);
}

/**
 * User: USER, UID, USER:GROUP or UID:GID, looked up in the image's own
 * /etc/passwd and /etc/group (as a container runtime does). A group given
 * becomes the process's gid (spawnctl's --user= alone takes no group).
 */
function applyImageUser(s: Settings, spec: string): void {
  const [u, g] = spec.split(":", 2) as [string, string | undefined];
  if (!u) throw new SpawnctlError(`the config of the image ${s.directory}: config.User: no user in "${spec}"`);
  s.user = u;
  if (g === undefined || g === "") return;
  const ids = withTreeView(s.directory, s.machine, (view) => {
    const user = resolveUser(view, u);
    if (!user) throw new SpawnctlError(`the config of the image ${s.directory}: config.User: no user "${u}" in the image's /etc/passwd`);
    let gid: number;
    if (/^\d+$/.test(g)) gid = parseId(g);
    else {
      const e = parseGroup(readInRoot(view, "/etc/group") ?? "").find((x) => x.name === g);
      if (!e) throw new SpawnctlError(`the config of the image ${s.directory}: config.User: no group "${g}" in the image's /etc/group`);
      gid = e.gid;
    }
    if (Number.isNaN(gid)) throw new SpawnctlError(`the config of the image ${s.directory}: config.User: invalid group id "${g}"`);
    return { uid: user.uid, gid, groups: user.groups };
  });
  s.userIds = ids;
}
