// e2e: an OCI bundle whose root is the cached Debian tree (read-only: the
// cache is never written), run by the built binary as a user would.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, tempDir } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";

const ok = IS_ROOT && haveMirror();
const test = needs("root and a Debian mirror", ok);
let tree = "";
let dir = "";
const before = IS_ROOT ? leftovers() : [];
beforeAll(() => {
  if (!ok) return;
  tree = ensureDebianTree();
  dir = tempDir("spawnctl-oci-e2e-");
}, 900_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (IS_ROOT) expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

async function readUntil(stream: ReadableStream<Uint8Array>, needle: RegExp, ms: number): Promise<string> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let text = "";
  const deadline = Date.now() + ms;
  while (!needle.test(text)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out; console so far:\n${text.slice(-3000)}`);
    const r = await Promise.race([reader.read(), Bun.sleep(left).then(() => null)]);
    if (!r || r.done) throw new Error(`console ended before ${needle}; console:\n${text.slice(-3000)}`);
    text += dec.decode(r.value);
  }
  reader.releaseLock();
  return text;
}

describe("an OCI bundle with the Debian tree as its root", () => {
  test("systemd as the bundle's process boots to the login prompt (changes in an overlay: -x) and powers off", async () => {
    const bundle = `${dir}/boot`;
    mkdirSync(bundle);
    writeFileSync(`${bundle}/config.json`, JSON.stringify({
      ociVersion: "1.0.0",
      root: { path: tree },
      hostname: "oci-boot",
      process: { terminal: true, user: { uid: 0, gid: 0 }, cwd: "/", args: ["/lib/systemd/systemd"] },
      linux: { namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] },
    }));
    const p = Bun.spawn(["unshare", "--net", SPAWNCTL, "run", "-x", "--console=read-only", "-M", "e2e-oci-boot", `--oci-bundle=${bundle}`], { stdout: "pipe", stderr: "pipe" });
    let out: string;
    try {
      out = await readUntil(p.stdout, /oci-boot login: /, 120_000);
    } catch (e) {
      p.kill("SIGKILL");
      await p.exited;
      throw e;
    }
    expect(out).toContain("Debian GNU/Linux 12");
    expect(out).not.toContain("FAILED");
    const off = Bun.spawnSync([SPAWNCTL, "poweroff", "e2e-oci-boot"], { stderr: "pipe" });
    expect(off.exitCode).toBe(0);
    const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
    const code = await p.exited;
    clearTimeout(t);
    expect(code).toBe(0);
  }, 200_000);

  test("runs the bundle's process as its user, with its environment, mounts, limits and masks", () => {
    const bundle = `${dir}/debian`;
    mkdirSync(`${dir}/shared`, { recursive: true });
    writeFileSync(`${dir}/shared/note`, "shared from the host\n");
    mkdirSync(bundle);
    writeFileSync(`${bundle}/config.json`, JSON.stringify({
      ociVersion: "1.0.2",
      root: { path: tree, readonly: true },
      hostname: "oci-debian",
      process: {
        terminal: false,
        user: { uid: 65534, gid: 65534, additionalGids: [100] },
        cwd: "/tmp",
        env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "FROM_BUNDLE=1"],
        args: ["/bin/bash", "-c", [
          ". /etc/os-release; echo \"$PRETTY_NAME\"",
          "id -un; id -Gn | tr ' ' ','",
          "hostname; pwd; echo \"from_bundle=$FROM_BUNDLE\"",
          "ulimit -n",
          "grep -E '^(CapBnd|NoNewPrivs):' /proc/self/status | tr '\\t' ' '",
          "cat /mnt/shared/note",
          "stat -c 'shadow: %s bytes, mode %a' /etc/shadow",
          "touch /usr/x 2>&1 | sed 's/.*: //'",
          "df -h /var/cache/scratch | tail -1 | awk '{print $2}'",
        ].join("; ")],
        capabilities: { bounding: ["CAP_KILL", "CAP_NET_BIND_SERVICE"] },
        noNewPrivileges: true,
        rlimits: [{ type: "RLIMIT_NOFILE", soft: 4096, hard: 8192 }],
      },
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/mnt", type: "tmpfs", source: "tmpfs", options: ["size=1m"] },
        { destination: "/mnt/shared", type: "bind", source: `${dir}/shared`, options: ["rbind", "ro"] },
        { destination: "/var/cache", type: "tmpfs", source: "tmpfs", options: ["size=4m"] },
        { destination: "/var/cache/scratch", type: "tmpfs", source: "tmpfs", options: ["size=2m"] },
      ],
      linux: {
        namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
        maskedPaths: ["/etc/shadow", "/proc/kcore", "/sys/firmware"],
        readonlyPaths: ["/proc/sys"],
      },
    }));
    const p = Bun.spawnSync(["unshare", "--net", SPAWNCTL, "run", "-q", `--oci-bundle=${bundle}`], { stdout: "pipe", stderr: "pipe", timeout: 120_000 });
    const out = p.stdout.toString();
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    expect(out).toBe([
      "Debian GNU/Linux 12 (bookworm)",
      "nobody", "nogroup,users",
      "oci-debian", "/tmp", "from_bundle=1",
      "4096",
      "CapBnd: 0000000000000420", "NoNewPrivs: 1",
      "shared from the host",
      "shadow: 0 bytes, mode 0",
      "Read-only file system",
      "2.0M",
      "",
    ].join("\n"));
  });
});
