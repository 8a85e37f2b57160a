// --notify-ready=yes (NotifyReady= in a .nspawn file): the payload gets a
// notify socket at /run/host/notify (NOTIFY_SOCKET), and `start` returns
// once it has said READY=1, as systemd-nspawn@.service becomes active then.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { IS_ROOT, leftovers, makeBusyboxTree, needs, removeTree, run, tempDir } from "../helpers.ts";

const haveCc = Bun.spawnSync(["sh", "-c", "command -v cc"]).exitCode === 0;
const test = needs("root and a C compiler with a static libc (build-essential)", IS_ROOT && haveCc);
const NAME = "sctest-notify";
const IMAGE = `/var/lib/machines/${NAME}`;
const NSPAWN = `/etc/systemd/nspawn/${NAME}.nspawn`;
let base = "";
const before = IS_ROOT ? leftovers() : [];

// what sd_notify does: one datagram to $NOTIFY_SOCKET
const NOTIFY_C = `#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
  const char *p = getenv("NOTIFY_SOCKET");
  if (!p || argc < 2) return 2;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strncpy(sa.sun_path, p, sizeof sa.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  return sendto(fd, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&sa, sizeof sa) < 0;
}
`;

function image(init: string): void {
  removeTree(IMAGE);
  makeBusyboxTree(IMAGE, { init });
  const c = Bun.spawnSync(["cc", "-static", "-O2", "-o", `${IMAGE}/usr/bin/notify`, `${base}/notify.c`], { stderr: "pipe" });
  if (c.exitCode !== 0) throw new Error(`cc: ${c.stderr}`);
}

beforeAll(() => {
  if (!IS_ROOT || !haveCc) return;
  base = tempDir();
  writeFileSync(`${base}/notify.c`, NOTIFY_C);
  mkdirSync("/var/lib/machines", { recursive: true });
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  writeFileSync(NSPAWN, "[Exec]\nNotifyReady=yes\n");
});

afterAll(() => {
  if (!IS_ROOT) return;
  run(["terminate", NAME]);
  removeTree(IMAGE);
  rmSync(NSPAWN, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  removeTree(base);
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

describe("--notify-ready", () => {
  test("start returns once the payload has said READY=1, not before", () => {
    image("#!/bin/sh\nsleep 1.5\necho ready > /ready-said\nnotify 'STATUS=up\nREADY=1'\nwhile true; do sleep 1; done\n");
    const t0 = Date.now();
    const r = run(["start", NAME], { netns: true });
    const took = Date.now() - t0;
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(took).toBeGreaterThanOrEqual(1400);
    // it said so before start returned
    expect(run(["shell", NAME, "/bin/cat", "/ready-said"]).stdout).toBe("ready\n");
    // analyze counts until READY=1
    const a = run(["analyze", NAME]);
    expect(a.stdout).toMatch(/^Startup finished in 1\.[0-9]+s \(container\)$/m);
    expect(a.stdout).toContain("until it reported READY=1 on its notify socket (--notify-ready)");
    run(["terminate", NAME]);
    expect(existsSync(`/run/spawnctl/machines/${NAME}.ready`)).toBe(false);
  });

  test("a payload that ends before READY=1 fails the start, naming it", () => {
    image("#!/bin/sh\nsleep 0.3\nexit 3\n");
    const r = run(["start", NAME], { netns: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Machine ${NAME} ended before it reported READY=1 (--notify-ready).`);
  });

  test("run --notify-ready=yes: the socket and NOTIFY_SOCKET are there; without it neither is", () => {
    image("#!/bin/sh\nexec sleep 1000\n");
    const yes = run(["run", "-q", "-P", "--notify-ready=yes", "-D", IMAGE, "/bin/sh", "-c", "echo $NOTIFY_SOCKET; test -S /run/host/notify && echo socket; notify READY=1 && echo sent"]);
    expect(yes.stdout).toBe("/run/host/notify\nsocket\nsent\n");
    const no = run(["run", "-q", "-P", "--settings=no", "-D", IMAGE, "/bin/sh", "-c", "echo \"[$NOTIFY_SOCKET]\"; test -e /run/host/notify || echo none"]);
    expect(no.stdout).toBe("[]\nnone\n");
    expect(existsSync(`${IMAGE}/run/host/notify`)).toBe(false);
  });
});
