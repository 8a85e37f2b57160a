// spawnctl run against the real kernel: identity, environment, users, exit
// codes, errors, settings files, credentials. Root, a busybox tree.
import { describe, expect } from "bun:test";
import { busyboxFixture } from "../fixture.ts";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { SPAWNCTL, removeTree, rootTest as test, run, tempDir } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({}, (b, t) => {
  base = b;
  tree = t;
});

const sh = (script: string, ...opts: string[]) => run(["run", "-q", "-P", "-D", tree, ...opts, "/bin/sh", "-c", script]);

describe("run: basics", () => {
  test("the binary ignores a .env and a bunfig.toml in the working directory", () => {
    const dir = tempDir();
    try {
      // a .env would set our environment, a bunfig.toml could preload code into a root process
      writeFileSync(`${dir}/.env`, "SPAWNCTL_TRACE=1\n");
      writeFileSync(`${dir}/evil.ts`, `require("node:fs").writeFileSync(${JSON.stringify(`${dir}/ran`)}, "x");\n`);
      writeFileSync(`${dir}/bunfig.toml`, 'preload = ["./evil.ts"]\n');
      const r = run(["--version"], { cwd: dir });
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      expect(existsSync(`${dir}/ran`)).toBe(false);
    } finally {
      removeTree(dir);
    }
  });

  test("the payload is PID 1 in its own namespaces and its exit status passes through", () => {
    const r = sh("echo pid=$$; exit 7");
    expect(r.stdout).toBe("pid=1\n");
    expect(r.code).toBe(7);
    expect(sh("exit 0").code).toBe(0);
    // 133 is reserved (reboot towards a service manager)
    expect(sh("exit 133").code).toBe(1);
  });

  test("status lines unless -q; -q implied by --pipe", () => {
    const r = run(["run", "--console=read-only", "-D", tree, "/bin/true"]);
    expect(r.stderr).toContain(`Spawning container bb on ${tree}.`);
    expect(r.stderr).toContain("Container bb exited successfully.");
    const f = run(["run", "--console=read-only", "-D", tree, "/bin/sh", "-c", "exit 3"]);
    expect(f.stderr).toContain("Container bb failed with error code 3.");
    expect(run(["run", "-P", "-D", tree, "/bin/true"]).stderr).toBe("");
  });

  test("machine name, hostname, uuid", () => {
    expect(sh("hostname").stdout).toBe("bb\n");
    expect(sh("hostname", "-M", "other").stdout).toBe("other\n");
    expect(sh("hostname", "-M", "other", "--hostname=hn").stdout).toBe("hn\n");
    expect(sh("echo $container_uuid; cat /run/host/container-uuid", "--uuid=0123456789abcdef0123456789abcdef").stdout)
      .toBe("01234567-89ab-cdef-0123-456789abcdef\n01234567-89ab-cdef-0123-456789abcdef\n");
  });

  test("the payload environment", () => {
    const env = sh("env | sort", "-E", "FOO=bar", "-E", "PATH=/usr/bin:/bin").stdout;
    expect(env).toContain("container=systemd-nspawn\n");
    expect(env).toContain("FOO=bar\n");
    expect(env).toContain("PATH=/usr/bin:/bin\n");
    expect(env).toContain("HOME=/root\n");
    expect(env).toContain("LANG=C.UTF-8\n");
    expect(env).toMatch(/container_host_id=\w+/);
    const pass = run(["run", "-q", "-P", "-D", tree, "-E", "SPAWNCTL_PASS", "/bin/sh", "-c", "echo $SPAWNCTL_PASS"], { env: { SPAWNCTL_PASS: "through" } });
    expect(pass.stdout).toBe("through\n");
  });

  test("-u resolves users from the tree's own passwd and group files", () => {
    const r = sh("id -u; id -g; id -G; echo $HOME $USER; pwd", "-u", "tester");
    expect(r.stdout).toBe("1000\n1000\n1000 100\n/home/tester tester\n/\n");
    expect(sh("id -u", "-u", "1000").stdout).toBe("1000\n");
    const bad = sh("true", "-u", "nosuchuser");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("Failed to resolve user nosuchuser.");
    // a non-root payload has no capabilities
    expect(sh("grep CapEff /proc/self/status", "-u", "tester").stdout).toBe("CapEff:\t0000000000000000\n");
  });

  test("--chdir and the login shell's home", () => {
    expect(sh("pwd", "--chdir=/tmp").stdout).toBe("/tmp\n");
    const r = run(["run", "-q", "--console=pipe", "-D", tree], { stdin: "pwd\n" });
    expect(r.stdout).toBe("/root\n");
  });

  test("errors name what failed and leave nothing behind", () => {
    const missing = sh("true", "-D", `${base}/nope`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`Failed to open directory ${base}/nope`);
    mkdirSync(`${base}/empty`);
    const empty = run(["run", "-q", "-D", `${base}/empty`, "/bin/true"]);
    expect(empty.stderr).toContain("doesn't look like it has an OS tree (/usr/ directory is missing)");
    const exec = run(["run", "-q", "-P", "-D", tree, "/no/such/binary"]);
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain("execv(/no/such/binary) failed: No such file or directory");
    const os = run(["run", "-q", "-b", "-D", `${base}/empty`]);
    expect(os.stderr).toContain("os-release file is missing");
    expect(run(["run", "-D", "/", "/bin/true"]).stderr).toContain("Refusing to run the host's root directory");
    expect(readdirSync(base).filter((f) => f.startsWith(".#"))).toEqual([]);
  });

  test("-x on the host's own root runs without writing to it", () => {
    const r = run(["run", "-q", "-P", "-x", "-D", "/", "--settings=no", "/bin/sh", "-c", "touch /spawnctl-ephemeral-test && . /etc/os-release && echo $ID"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${/^ID=(.*)$/m.exec(readFileSync("/etc/os-release", "utf8"))![1]!.replace(/"/g, "")}\n`);
    expect(existsSync("/spawnctl-ephemeral-test")).toBe(false);
  });

  test("invoked as systemd-nspawn through a link, it is systemd-nspawn", () => {
    const link = `${base}/systemd-nspawn`;
    Bun.spawnSync(["ln", "-sf", SPAWNCTL, link]);
    const p = Bun.spawnSync([link, "-q", "--register=no", "--keep-unit", "-P", "-D", tree, "/bin/sh", "-c", "echo via-link $$"]);
    expect(p.stdout.toString()).toBe("via-link 1\n");
    expect(p.exitCode).toBe(0);
    expect(Bun.spawnSync([link, "--help"]).stdout.toString()).toContain("Spawn a command or OS in a light-weight container.");
  });

  test("--register and --keep-unit are accepted without D-Bus", () => {
    expect(sh("true", "--register=no", "--keep-unit").code).toBe(0);
    expect(sh("true", "--register=yes").code).toBe(0);
  });
});

describe("run: settings files", () => {
  const etc = "/etc/systemd/nspawn";
  test("a trusted file in /etc/systemd/nspawn applies; the command line wins; override lets the file win", () => {
    mkdirSync(etc, { recursive: true });
    mkdirSync(`${base}/fromfile`, { recursive: true });
    writeFileSync(`${base}/fromfile/marker`, "bound\n");
    writeFileSync(`${etc}/bb.nspawn`, `[Exec]\nHostname=fromfile\nEnvironment=FILE=1\n[Files]\nBindReadOnly=${base}/fromfile:/mnt/ff\n`);
    try {
      expect(sh("hostname; echo $FILE; cat /mnt/ff/marker").stdout).toBe("fromfile\n1\nbound\n");
      expect(sh("hostname", "--hostname=cli").stdout).toBe("cli\n");
      expect(sh("hostname", "--hostname=cli", "--settings=override").stdout).toBe("fromfile\n");
      expect(sh("hostname", "--settings=no").stdout).toBe("bb\n");
    } finally {
      rmSync(`${etc}/bb.nspawn`);
    }
  });
  test("a file beside the tree is untrusted: privileged settings are ignored with a warning", () => {
    writeFileSync(`${base}/bb.nspawn`, `[Exec]\nHostname=beside\n[Files]\nBind=/etc:/mnt/hostetc\n`);
    try {
      const r = sh("hostname; test -e /mnt/hostetc/hostname && echo leaked || echo safe");
      expect(r.stdout).toBe("beside\nsafe\n");
      expect(r.stderr).toContain("is not trusted");
      expect(sh("test -e /mnt/hostetc/hostname && echo bound", "--settings=trusted").stdout).toBe("bound\n");
    } finally {
      rmSync(`${base}/bb.nspawn`);
    }
  });
  test("a bad value in a file warns with file:line and is skipped", () => {
    writeFileSync(`${base}/bb.nspawn`, `[Exec]\nHostname=ok-name\nKillSignal=SIGNOPE\n`);
    try {
      const r = sh("hostname");
      expect(r.stdout).toBe("ok-name\n");
      expect(r.stderr).toContain(`${base}/bb.nspawn:3:`);
    } finally {
      rmSync(`${base}/bb.nspawn`);
    }
  });
});

describe("run: credentials", () => {
  test("--set-credential and --load-credential land read-only in /run/host/credentials", () => {
    writeFileSync(`${base}/cred`, "from-file");
    const r = sh("cat $CREDENTIALS_DIRECTORY/a; echo; cat $CREDENTIALS_DIRECTORY/b; echo; stat -c '%a' $CREDENTIALS_DIRECTORY $CREDENTIALS_DIRECTORY/a; echo x > $CREDENTIALS_DIRECTORY/a || echo ro",
      "--set-credential=a:hello\\nworld", `--load-credential=b:${base}/cred`);
    expect(r.stdout).toBe("hello\nworld\nfrom-file\n500\n400\nro\n");
  });
});
