// Command-line and .nspawn parsing, merging and validation, without root.
import { describe, expect, test } from "bun:test";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { resolveSettings, mergeSettings, type MergeEnv } from "../../src/settings/merge.ts";
import { applyNspawnFile, parseIni } from "../../src/settings/nspawn-file.ts";
import { parseSignal, parseBind, parseOverlay, parsePort, parseRlimit, splitQuoted, parseBoolean, parseId128 } from "../../src/settings/parse.ts";
import { ROWS } from "../../src/settings/table.ts";
import { DEFAULT_CAPS, DEFAULT_CAP_MASK, capBit, capNumber, maskOf } from "../../src/settings/caps.ts";

function env(files: Record<string, string> = {}, dirs: string[] = []): MergeEnv & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    cwd: "/work",
    isRoot: true,
    isTty: false,
    hostname: () => "host",
    isDir: (p) => dirs.includes(p),
    readFile: (p) => files[p],
    random64: () => "0123456789abcdef",
    warn: (m) => warnings.push(m),
    boundingSet: (1n << 41n) - 1n,
    warnings,
  };
}

function resolve(argv: string[], e = env()) {
  return resolveSettings(parseCommandLine(argv, "/work"), e).settings;
}

describe("command line", () => {
  test("options stop at the first non-option; the payload keeps its own flags", () => {
    const cl = parseCommandLine(["-D", "/t", "-q", "ls", "-l", "--boot", "-x"]);
    expect(cl.settings.directory).toBe("/t");
    expect(cl.settings.quiet).toBe(true);
    expect(cl.settings.boot).toBeUndefined();
    expect(cl.args).toEqual(["ls", "-l", "--boot", "-x"]);
  });

  test("short option clusters, attached and separate values, --opt=value and --opt value", () => {
    const cl = parseCommandLine(["-bqD/t", "-M", "m1", "--hostname=h", "--setenv", "A=1", "-EB=2"]);
    expect(cl.settings).toMatchObject({ boot: true, quiet: true, directory: "/t", machine: "m1", hostname: "h", environment: ["A=1", "B=2"] });
  });

  test("-- ends the options", () => {
    expect(parseCommandLine(["-D/t", "--", "-b"]).args).toEqual(["-b"]);
  });

  test("relative paths are made absolute against the working directory", () => {
    expect(parseCommandLine(["-D", "tree"], "/srv").settings.directory).toBe("/srv/tree");
  });

  test("--volatile takes an optional argument", () => {
    expect(parseCommandLine(["--volatile"]).settings.volatile).toBe("yes");
    expect(parseCommandLine(["--volatile=state"]).settings.volatile).toBe("state");
    expect(parseCommandLine(["--volatile=no"]).settings.volatile).toBe("no");
  });

  test("unknown options and missing arguments are errors naming the option", () => {
    expect(() => parseCommandLine(["--frobnicate"])).toThrow("unrecognized option '--frobnicate'");
    expect(() => parseCommandLine(["-Y"])).toThrow("invalid option -- 'Y'");
    expect(() => parseCommandLine(["--machine"])).toThrow("option '--machine' requires an argument");
    expect(() => parseCommandLine(["--boot=yes"])).toThrow("option '--boot' doesn't allow an argument");
  });

  test("nspawn's validation messages", () => {
    expect(() => parseCommandLine(["--chdir=tmp"])).toThrow("Working directory tmp is not an absolute path.");
    expect(() => parseCommandLine(["--tmpfs=mnt"])).toThrow("Failed to parse --tmpfs= argument mnt: Invalid argument");
    expect(() => parseCommandLine(["-M", "bad name!"])).toThrow("Invalid machine name: bad name!");
    expect(() => parseCommandLine(["-p", "icmp:80:8080"])).toThrow("Failed to parse host port icmp:80:8080: Invalid argument");
  });

  // nspawn's own test sweep: every option that takes a value fails on empty and garbage values
  const garbage: Array<[string, string[]]> = [
    ["--directory", [""]], ["--template", [""]], ["--image", [""]], ["--volatile", ["", "foo"]],
    ["--chdir", ["", "foo", "/a/../b"]], ["--setenv", ["", "=x", "1A=b"]], ["--user", ["", "a:b"]],
    ["--kill-signal", ["", "foo", "SIGFOO", "0", "65"]], ["--notify-ready", ["", "maybe"]], ["--suppress-sync", ["", "x"]],
    ["--machine", ["", "a b", ".x"]], ["--hostname", ["", "-x", "a..b"]], ["--uuid", ["", "xyz", "00000000000000000000000000000000"]],
    ["--slice", ["", "foo"]], ["--property", ["", "=1", "MemoryMax=lots", "Frobnicate=1", "CPUQuota=50"]], ["--register", ["", "perhaps"]],
    ["--private-users", ["", "-1", "foo:bar"]], ["--private-users-ownership", ["", "maybe"]],
    ["--network-veth-extra", ["", "a:b:c"]], ["--network-bridge", [""]], ["--network-zone", ["", "a/b"]],
    ["--network-macvlan", [""]], ["--network-ipvlan", [""]], ["--network-interface", [""]], ["--network-namespace-path", [""]],
    ["--port", ["", "-1", ":", "icmp:", "tcp::8080", "8080:", "0", "65536"]],
    ["--capability", ["", "CAP_FOO"]], ["--drop-capability", ["", "nope"]], ["--ambient-capability", ["", "x"]],
    ["--no-new-privileges", ["", "x"]], ["--system-call-filter", ["", "~"]],
    ["--rlimit", ["", "FOO=1", "NOFILE", "NOFILE=x", "NOFILE=2:1"]], ["--oom-score-adjust", ["", "x", "1001", "-1001"]],
    ["--cpu-affinity", ["", "x", "3-1"]], ["--personality", ["", "arm"]],
    ["--resolv-conf", ["", "copy"]], ["--timezone", ["", "x"]], ["--link-journal", ["", "x"]],
    ["--bind", ["", ":", "/a:rel", "/a:/b:bogus"]], ["--bind-ro", ["", "/a:/"]], ["--tmpfs", ["", "rel", "/"]],
    ["--overlay", ["", "/a", "/a:/"]], ["--overlay-ro", ["", "/a"]], ["--inaccessible", ["", "rel", "/"]],
    ["--console", ["", "tty"]], ["--set-credential", ["", "noval", "a/b:x"]], ["--load-credential", ["", "x", "id:/nonexistent/file"]],
    ["--settings", ["", "sometimes"]],
  ];
  for (const [flag, values] of garbage) {
    for (const v of values) {
      test(`${flag}=${JSON.stringify(v)} fails cleanly`, () => {
        let err: unknown;
        try {
          parseCommandLine([`${flag}=${v}`]);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).name).toBe("SpawnctlError");
      });
    }
  }

  test("every table row with a long option is reachable and has a group", () => {
    for (const r of ROWS) {
      expect(r.group.length).toBeGreaterThan(0);
      expect(r.long || r.short || r.file).toBeTruthy();
    }
  });
});

describe("capabilities", () => {
  test("the written-out default mask is nspawn's 26 capabilities, 0xfdecafff", () => {
    expect(DEFAULT_CAP_MASK).toBe(maskOf(DEFAULT_CAPS));
    expect(DEFAULT_CAPS.length).toBe(26);
  });
  test("names with or without CAP_, in any case", () => {
    expect(capNumber("CAP_SYS_ADMIN")).toBe(21);
    expect(capNumber("sys_admin")).toBe(21);
    expect(capNumber("cap_chown")).toBe(0);
    expect(capNumber("CAP_")).toBeUndefined();
    expect(capNumber("NOPE")).toBeUndefined();
  });
});

describe("value parsers", () => {
  test("booleans as systemd parses them", () => {
    for (const t of ["1", "yes", "Y", "true", "T", "on"]) expect(parseBoolean(t)).toBe(true);
    for (const f of ["0", "no", "N", "false", "f", "OFF"]) expect(parseBoolean(f)).toBe(false);
    expect(() => parseBoolean("2")).toThrow();
  });
  test("signals by name, number and RTMIN offset", () => {
    expect(parseSignal("SIGTERM")).toBe(15);
    expect(parseSignal("term")).toBe(15);
    expect(parseSignal("9")).toBe(9);
    expect(parseSignal("SIGRTMIN+3")).toBe(37);
    expect(parseSignal("RTMIN+4")).toBe(38);
    expect(parseSignal("SIGUSR2")).toBe(12);
  });
  test("bind specs", () => {
    expect(parseBind("/a", false)).toMatchObject({ source: "/a", destination: "/a", recursive: true, readOnly: false });
    expect(parseBind("/a:/b:norbind", true)).toMatchObject({ source: "/a", destination: "/b", recursive: false, readOnly: true });
    expect(parseBind("+/srv:/mnt", false)).toMatchObject({ source: "/srv", sourceInImage: true, destination: "/mnt" });
    expect(parseBind(":/scratch", false)).toMatchObject({ source: "", destination: "/scratch" });
    expect(parseBind("/with\\:colon:/d", false)).toMatchObject({ source: "/with:colon", destination: "/d" });
    expect(parseBind("rel/dir:/d", false, "/base")).toMatchObject({ source: "/base/rel/dir" });
  });
  test("overlay specs", () => {
    expect(parseOverlay("/l1:/l2:/up:/dst", false)).toMatchObject({ lower: [{ path: "/l1" }, { path: "/l2" }], upper: { path: "/up" }, destination: "/dst" });
    expect(parseOverlay("/l:/dst", false)).toMatchObject({ lower: [{ path: "/l" }], upper: { path: "/dst" }, destination: "/dst" });
    expect(parseOverlay("/l1:/l2:/dst", true)).toMatchObject({ lower: [{ path: "/l1" }, { path: "/l2" }], upper: null, readOnly: true });
    expect(parseOverlay("/l::/dst", false)).toMatchObject({ upper: { path: "" } });
  });
  test("ports", () => {
    expect(parsePort("80")).toEqual({ protocol: "tcp", hostPort: 80, containerPort: 80 });
    expect(parsePort("udp:53:5353")).toEqual({ protocol: "udp", hostPort: 53, containerPort: 5353 });
  });
  test("rlimits", () => {
    expect(parseRlimit("NOFILE=100:200")).toMatchObject({ resource: 7, soft: 100n, hard: 200n });
    expect(parseRlimit("RLIMIT_CORE=infinity")).toMatchObject({ resource: 4, soft: 0xffffffffffffffffn });
    expect(parseRlimit("MEMLOCK=64K")).toMatchObject({ soft: 65536n });
  });
  test("quoted lists and ids", () => {
    expect(splitQuoted(`a "b c" 'd'\\ e`)).toEqual(["a", "b c", "d e"]);
    expect(parseId128("b37ae3ef-1a4e-4c3e-9d1a-7e1f3e6a8b0c")).toBe("b37ae3ef1a4e4c3e9d1a7e1f3e6a8b0c");
  });
});

describe("merging and defaults", () => {
  test("defaults: machine name from the directory, kill signal with --boot, console without a tty", () => {
    const s = resolve(["-D", "/var/lib/machines/web"]);
    expect(s.machine).toBe("web");
    expect(s.hostname).toBe("web");
    expect(s.killSignal).toBe(0);
    expect(s.console).toBe("read-only");
    expect(s.capability).toBe(DEFAULT_CAP_MASK);
    expect(resolve(["-b", "-D", "/m/web"]).killSignal).toBe(37);
  });
  test("-x adds a random suffix to the machine name; the .nspawn file is found by the plain name", () => {
    const e = env({ "/etc/systemd/nspawn/web.nspawn": "[Exec]\nHostname=fromfile\n" });
    const s = resolve(["-x", "-D", "/m/web"], e);
    expect(s.machine).toBe("web-0123456789abcdef");
    expect(s.hostname).toBe("fromfile");
    // a name given with -M is kept (nspawn's rule: systemd-nspawn@.service passes --machine=%i)
    expect(resolve(["-x", "-D", "/m/web", "-M", "task1"], e).machine).toBe("task1");
  });
  test("-M finds the image in the search path", () => {
    const s = resolve(["-M", "web"], env({}, ["/var/lib/machines/web"]));
    expect(s.directory).toBe("/var/lib/machines/web");
    expect(() => resolve(["-M", "nothere"])).toThrow("No image for machine 'nothere'.");
  });
  test("a private network adds CAP_NET_ADMIN", () => {
    const s = resolve(["--private-network", "-D", "/m/x"]);
    expect(s.capability & capBit("NET_ADMIN")).toBeTruthy();
    const d = resolve(["--private-network", "--drop-capability=CAP_NET_ADMIN", "-D", "/m/x"]);
    expect(d.capability & capBit("NET_ADMIN")).toBeFalsy();
  });
  test("capabilities the host lacks are dropped from the set", () => {
    const e = env();
    e.boundingSet = DEFAULT_CAP_MASK & ~capBit("SYS_RESOURCE");
    expect(resolve(["-D", "/m/x"], e).capability & capBit("SYS_RESOURCE")).toBeFalsy();
    expect(e.warnings).toEqual([]);
    resolve(["--capability=CAP_SYS_RESOURCE", "-D", "/m/x"], e);
    expect(e.warnings.join()).toContain("CAP_SYS_RESOURCE");
  });
  test("refused combinations", () => {
    expect(() => resolve(["-b", "-a", "-D", "/m/x"])).toThrow("--boot and --as-pid2 may not be combined.");
    expect(() => resolve(["-x", "--template=/t", "-D", "/m/x"])).toThrow("--ephemeral and --template= may not be combined.");
    expect(() => resolve(["--network-bridge=br0", "--network-zone=z", "-D", "/m/x"])).toThrow("--network-bridge= and --network-zone= may not be combined.");
    expect(() => resolve(["-p", "80", "-D", "/m/x"])).toThrow("Cannot use --port= without private networking.");
    expect(() => resolve(["--network-namespace-path=/run/netns/a", "-n", "-D", "/m/x"])).toThrow("--network-namespace-path= cannot be combined with other network options.");
    expect(() => resolve(["--read-only", "--private-users-ownership=chown", "-D", "/m/x"])).toThrow("--read-only and --private-users-ownership=chown may not be combined.");
    expect(() => resolve(["-D", "/"])).toThrow("Refusing to run the host's root directory");
    expect(resolve(["-x", "-D", "/"]).ephemeral).toBe(true);
  });
});

describe(".nspawn files", () => {
  test("INI dialect: sections, repeated keys, continuation, comments", () => {
    const entries = parseIni("# c\n[Exec]\nEnvironment=A=1\n; c\nEnvironment=B=2\nParameters=a \\\n b\n", "f", () => {});
    expect(entries.map((e) => `${e.key}=${e.value}`)).toEqual(["Environment=A=1", "Environment=B=2", "Parameters=a   b"]);
  });
  test("bad values warn with file:line and are skipped; unknown keys warn", () => {
    const w: string[] = [];
    const f = applyNspawnFile("/etc/systemd/nspawn/x.nspawn", "[Exec]\nBoot=maybe\nHostname=ok\nFrobnicate=1\n[Files]\nBind=:\n", true, "/", (m) => w.push(m));
    expect(f.settings.hostname).toBe("ok");
    expect(f.settings.boot).toBeUndefined();
    expect(w[0]).toContain("/etc/systemd/nspawn/x.nspawn:2:");
    expect(w.join("\n")).toContain("Unknown key name 'Frobnicate'");
    expect(w.join("\n")).toContain("x.nspawn:6:");
  });
  test("untrusted files: privileged settings are ignored with one warning", () => {
    const w: string[] = [];
    const f = applyNspawnFile("/var/lib/machines/x.nspawn", "[Exec]\nHostname=h\nCapability=CAP_SYS_MODULE\n[Files]\nBind=/etc\n[Network]\nPrivate=yes\n", false, "/", (m) => w.push(m));
    expect(f.settings.hostname).toBe("h");
    expect(f.settings.capability).toBeUndefined();
    expect(f.settings.binds).toBeUndefined();
    expect(f.settings.privateNetwork).toBeUndefined();
    expect(w.join()).toContain("is not trusted");
  });
  test("the command line wins; --settings=override lets the file win; no ignores it", () => {
    const files = { "/etc/systemd/nspawn/web.nspawn": "[Exec]\nHostname=file\nEnvironment=F=1\n[Files]\nBind=/srv\n" };
    const a = resolve(["-D", "/m/web", "--hostname=cli", "-E", "C=1"], env(files));
    expect(a.hostname).toBe("cli");
    expect(a.environment).toEqual(["C=1"]);
    expect(a.binds.map((b) => b.source)).toEqual(["/srv"]);
    const b = resolve(["-D", "/m/web", "--hostname=cli", "--settings=override"], env(files));
    expect(b.hostname).toBe("file");
    const c = resolve(["-D", "/m/web", "--settings=no"], env(files));
    expect(c.hostname).toBe("web");
  });
  test("lookup order: /etc, then /run, then beside the image (untrusted unless --settings=trusted)", () => {
    const beside = { "/m/web.nspawn": "[Exec]\nHostname=beside\n[Files]\nBind=/srv\n" };
    const s = resolve(["-D", "/m/web"], env(beside));
    expect(s.hostname).toBe("beside");
    expect(s.binds).toEqual([]);
    const t = resolve(["-D", "/m/web", "--settings=trusted"], env(beside));
    expect(t.binds.length).toBe(1);
    const both = { ...beside, "/run/systemd/nspawn/web.nspawn": "[Exec]\nHostname=run\n" };
    expect(resolve(["-D", "/m/web"], env(both)).hostname).toBe("run");
  });
  test("Parameters= feeds the payload only when the command line has none; Limit* keys", () => {
    const files = { "/etc/systemd/nspawn/web.nspawn": "[Exec]\nParameters=/bin/echo \"a b\"\nLimitNOFILE=4096\n" };
    expect(resolve(["-D", "/m/web"], env(files)).parameters).toEqual(["/bin/echo", "a b"]);
    expect(resolve(["-D", "/m/web", "true"], env(files)).parameters).toEqual(["true"]);
    expect(resolve(["-D", "/m/web"], env(files)).rlimits[0]).toMatchObject({ resource: 7, soft: 4096n });
  });
  test("mergeSettings keeps command-line groups", () => {
    const cl = parseCommandLine(["--bind=/a"]);
    const file = applyNspawnFile("f", "[Files]\nTemporaryFileSystem=/t\n", true, "/", () => {});
    const m = mergeSettings(cl, file, "yes");
    expect(m.tmpfs).toBeUndefined();
    expect(m.binds?.length).toBe(1);
  });
});
