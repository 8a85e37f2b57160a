// Console modes: pipe, read-only, passive, autopipe and interactive (under a pty made by script(1)).
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { SPAWNCTL, rootTest as test, run } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
});

/** run spawnctl inside a pty (script -q), feeding `input` chunks with pauses */
async function onTty(cmd: string, inputs: Array<[delayMs: number, data: string]>): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(["script", "-qfec", cmd, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  for (const [delay, data] of inputs) {
    await Bun.sleep(delay);
    p.stdin.write(data);
    p.stdin.flush();
  }
  const code = await p.exited;
  return { code, out: await new Response(p.stdout).text() };
}

describe("console modes", () => {
  test("pipe: stdin, stdout and stderr pass through; no /dev/console", () => {
    const r = run(["run", "-q", "--console=pipe", "-D", tree, "/bin/sh", "-c", "cat; echo err >&2; test -e /dev/console || echo no-console"], { stdin: "in\n" });
    expect(r.stdout).toBe("in\nno-console\n");
    expect(r.stderr).toBe("err\n");
  });
  test("read-only (the default without a terminal): output through a pty", () => {
    const r = run(["run", "-q", "-D", tree, "/bin/sh", "-c", "tty; echo out"]);
    expect(r.stdout).toBe("/dev/pts/0\r\nout\r\n");
  });
  test("passive: output is flushed at the end", () => {
    const r = run(["run", "-q", "--console=passive", "-D", tree, "/bin/sh", "-c", "echo late"]);
    expect(r.stdout).toBe("late\r\n");
  });
  test("passive: a guest writing more than a pty holds is never blocked; the end of its output is shown", () => {
    // 20000 lines of 50 bytes: 1 MB, far more than the pty buffers
    const r = run(["run", "-q", "--console=passive", "-D", tree, "/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo done"], { timeout: 30_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith("line-19999-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\ndone\r\n")).toBe(true);
    // (the last 256 KiB, give or take a read)
    expect(r.stdout.length).toBeLessThanOrEqual(256 * 1024 + 65536);
    expect(r.stdout.length).toBeLessThan(1_000_000);
  });
  test("autopipe without a terminal is pipe", () => {
    const r = run(["run", "-q", "--console=autopipe", "-D", tree, "/bin/cat"], { stdin: "piped\n" });
    expect(r.stdout).toBe("piped\n");
  });
  test("interactive: a shell on the container's console, window size from the terminal", async () => {
    const r = await onTty(`stty cols 123 rows 45; ${SPAWNCTL} run -D ${tree}`, [
      [800, "echo hello-$((40+2)); stty size; tty\r"],
      [400, "exit 5\r"],
    ]);
    expect(r.code).toBe(5);
    expect(r.out).toContain("Press ^] three times within 1s to kill container.");
    expect(r.out).toContain("hello-42");
    expect(r.out).toContain("45 123");
    expect(r.out).toContain("/dev/pts/0");
    expect(r.out).toContain("Container bb failed with error code 5.");
  });
  test("interactive: ^] three times within a second kills the container", async () => {
    const r = await onTty(`${SPAWNCTL} run -D ${tree} /bin/sh -c 'echo ready; sleep 100'`, [[800, "\x1d\x1d\x1d"]]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("Container bb terminated by signal KILL.");
  });
  test("interactive: the outer terminal is restored afterwards", async () => {
    const r = await onTty(`stty -a | grep -o -- '-\\?icanon' | head -1; ${SPAWNCTL} run -q -D ${tree} /bin/true; stty -a | grep -o -- '-\\?icanon' | head -1`, []);
    const modes = r.out.replace(/\r/g, "").split("\n").filter((l) => l.includes("icanon"));
    expect(modes).toEqual(["icanon", "icanon"]);
  });
});
