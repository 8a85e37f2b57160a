// e2e: the built binary boots a real Debian with systemd as PID 1 to the
// login prompt on its console, and one SIGTERM shuts it down cleanly.
import { beforeAll, describe, expect } from "bun:test";
import { IS_ROOT, SPAWNCTL, leftovers, needs } from "../helpers.ts";
import { ensureDebianTree, haveMirror } from "./debian.ts";

const ok = IS_ROOT && haveMirror();
const test = needs("root and a Debian mirror", ok);
let tree = "";
beforeAll(() => {
  if (ok) tree = ensureDebianTree();
}, 900_000);

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

describe("booting Debian bookworm with systemd", () => {
  // without and with a user namespace (nspawn 252 fails the latter on this
  // kind of host: "Failed to create /init.scope control group")
  for (const [label, extra] of [["", []], [" under -U", ["-U"]]] as Array<[string, string[]]>) {
    test(`run -b${label} reaches the login prompt and powers off on one SIGTERM with exit 0`, async () => {
      const before = leftovers();
      const p = Bun.spawn([SPAWNCTL, "run", "-b", "-x", ...extra, "--console=read-only", "-D", tree, "-M", "e2e-debian"], { stdout: "pipe", stderr: "pipe" });
      let out: string;
      try {
        out = await readUntil(p.stdout, /login: /, 120_000);
      } catch (e) {
        p.kill("SIGKILL");
        await p.exited;
        throw e;
      }
      expect(out).toContain("Debian GNU/Linux 12");
      expect(out).not.toContain("control group");
      expect(out).not.toContain("FAILED");
      p.kill("SIGTERM");
      const code = await p.exited;
      const err = await new Response(p.stderr).text();
      expect(err).toContain("Container e2e-debian");
      expect(err).toContain("has been shut down.");
      expect(code).toBe(0);
      expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
    }, 180_000);
  }
});
