// `spawnctl VERB ...` and `machinectl VERB ...`: machinectl's verbs and
// options, parsed with cac. (`spawnctl run` has its own parser: nspawn stops at
// the first non-option, which cac cannot do.) Everything prints through
// util/log.ts; errors are thrown for main.ts to print.
import cac from "cac";
import { SpawnctlError, usage } from "../util/errors.ts";
import { print, setQuiet, warn } from "../util/log.ts";
import { formatJson, formatTable } from "../util/table.ts";
import { parseSignal } from "../settings/parse.ts";

export const MACHINECTL_HELP = `spawnctl VERB [OPTIONS...]   (also: machinectl VERB [OPTIONS...])

Send control commands to or query the virtual machine and container
registration manager — spawnctl's own, no systemd-machined needed.

Machine Commands:
  list                        List running machines
  status NAME...              Show machine details
  show [NAME...]              Show properties of one or more machines
  start NAME...               Start a container in the background (boots it)
  login NAME                  Get a login prompt in a container
  shell [[USER@]NAME [COMMAND...]]
                              Invoke a shell (or other command) in a container
  console NAME                Attach to the console of a background machine
  enable NAME...              Start a container at boot
  disable NAME... [--now]     Don't start a container at boot
  autostart                   Start every enabled container (for any init system)
  poweroff NAME...            Power off one or more containers
  reboot NAME...              Reboot one or more containers
  terminate NAME...           Terminate one or more machines
  kill NAME...                Send signal to processes of a machine
  copy-to NAME PATH [PATH]    Copy files from the host to a container
  copy-from NAME PATH [PATH]  Copy files from a container to the host
  bind NAME PATH [PATH]       Bind mount a path from the host into a container
  set-property NAME KEY=VALUE...
                              Set resource limits (MemoryMax=, CPUQuota=, ...)

Image Commands:
  list-images                 Show available container images
  image-status [NAME...]      Show image details
  show-image [NAME...]        Show properties of image
  edit NAME|FILE...           Edit settings of one or more machines
  cat NAME|FILE...            Show settings of one or more machines
  clone NAME NAME             Clone an image
  rename NAME NAME            Rename an image
  read-only NAME [BOOL]       Mark or unmark image read-only
  remove NAME...              Remove an image
  set-limit [NAME] BYTES      Set image or pool size limit (disk quota)
  clean                       Remove hidden (or all) images

Image Transfer Commands:
  pull-tar URL [NAME]         Download a TAR container image
  pull-raw URL [NAME]         Download a RAW container or VM image
  import-tar FILE [NAME]      Import a local TAR container image
  import-raw FILE [NAME]      Import a local RAW container or VM image
  import-fs DIRECTORY [NAME]  Import a local directory container image
  export-tar NAME [FILE]      Export a TAR container image locally
  export-raw NAME [FILE]      Export a RAW container or VM image locally

Options:
  -h --help                   Show this help
  -p --property=NAME          Show only properties by this name
  -P NAME                     Equivalent to --value --property=NAME
     --value                  When showing properties, only print the value
  -a --all                    Show all properties, including empty ones
  -q --quiet                  Suppress output
     --no-legend              Do not show the headers and footers
     --no-pager               Do not pipe output into a pager (never done anyway)
     --json=pretty|short      Generate JSON output
  -s --signal=SIGNAL          Which signal to send
     --kill-whom=WHOM         Whom to send signal to (leader, all)
     --uid=USER               Specify user ID to invoke shell as
  -E --setenv=VAR[=VALUE]     Add an environment variable for shell
     --read-only              Create read-only bind mount or clone
     --mkdir                  Create directory before bind mounting, if missing
     --force                  Replace target file when copying, if necessary
     --now                    Start or power off container after enabling or disabling it
     --verify=MODE            Verification mode for downloaded images (no, checksum, signature)
     --format=FORMAT          Determine format for export (uncompressed, gzip, xz, zstd)
`;

export interface GlobalOptions {
  property: string[];
  value: boolean;
  all: boolean;
  quiet: boolean;
  legend: boolean;
  json?: string;
  signal?: number;
  killWhom: "leader" | "all";
  uid?: string;
  setenv: string[];
  readOnly: boolean;
  mkdir: boolean;
  force: boolean;
  now: boolean;
  verify: string;
  format?: string;
}

function list<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Split off what belongs to the payload of `shell [USER@]NAME CMD ...`: everything after NAME. */
function splitShell(argv: string[]): { head: string[]; command: string[] } {
  const i = argv.indexOf("shell");
  if (i < 0) return { head: argv, command: [] };
  let j = i + 1;
  const takesValue = new Set(["-p", "--property", "-P", "-s", "--signal", "--kill-whom", "--uid", "-E", "--setenv", "--verify", "--format", "--json", "-M", "--machine", "-H", "--host", "-n", "-o"]);
  for (; j < argv.length; j++) {
    const a = argv[j]!;
    if (a === "--") return { head: argv.slice(0, j), command: argv.slice(j + 1) };
    if (a.startsWith("-")) {
      if (takesValue.has(a)) j++;
      continue;
    }
    // the machine name; the command starts after it
    return { head: argv.slice(0, j + 1), command: argv.slice(j + 1).filter((x, k) => !(k === 0 && x === "--")) };
  }
  return { head: argv, command: [] };
}

export function parseMachinectl(argv: string[]): { verb: string; args: string[]; opts: GlobalOptions; command: string[] } {
  const { head, command } = splitShell(argv);
  const cli = cac("machinectl");
  for (const [flag, desc] of [
    ["-p, --property <name>", "property"], ["-P <name>", "value property"], ["--value", "value"], ["-a, --all", "all"],
    ["-q, --quiet", "quiet"], ["--no-legend", "legend"], ["--no-pager", "pager"], ["--json <mode>", "json"],
    ["-s, --signal <sig>", "signal"], ["--kill-whom <whom>", "whom"], ["--uid <user>", "uid"], ["-E, --setenv <var>", "env"],
    ["--read-only", "ro"], ["--mkdir", "mkdir"], ["--force", "force"], ["--now", "now"], ["--verify <mode>", "verify"],
    ["--format <fmt>", "format"], ["-h, --help", "help"], ["-l, --full", "full"], ["--max-addresses <n>", "max"],
    ["-n, --lines <n>", "lines"], ["-o, --output <mode>", "output"], ["--no-ask-password", "ask"], ["--keep-download", "keep"],
  ] as const) cli.option(flag, desc);
  const parsed = cli.parse(["spawnctl", "machinectl", ...head], { run: false });
  const o = parsed.options as Record<string, unknown>;
  const known = new Set(["property", "p", "P", "value", "all", "a", "quiet", "q", "legend", "pager", "json", "signal", "s", "killWhom", "uid", "setenv", "E",
    "readOnly", "mkdir", "force", "now", "verify", "format", "help", "h", "full", "l", "maxAddresses", "lines", "n", "output", "o", "askPassword", "keepDownload", "--"]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw usage(`Unknown option '${k.length === 1 ? "-" : "--"}${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}'.`);
  const props = [...list(o.property as string | string[]), ...list(o.P as string | string[])].flatMap((p) => String(p).split(","));
  let sig: number | undefined;
  if (o.signal !== undefined) {
    try {
      sig = parseSignal(String(o.signal));
    } catch {
      throw usage(`Failed to parse signal string ${o.signal}.`);
    }
  }
  const whom = (o.killWhom as string | undefined) ?? "all";
  if (whom !== "leader" && whom !== "all") throw usage(`Invalid --kill-whom= value: ${whom} (leader, all).`);
  if (o.json !== undefined && !["pretty", "short", "off"].includes(String(o.json))) throw usage(`Unknown argument to --json=: ${o.json}`);
  const opts: GlobalOptions = {
    property: props,
    value: !!o.value || o.P !== undefined,
    all: !!o.all,
    quiet: !!o.quiet,
    legend: o.legend !== false,
    json: o.json === undefined || o.json === "off" ? undefined : String(o.json),
    signal: sig,
    killWhom: whom,
    uid: o.uid === undefined ? undefined : String(o.uid),
    setenv: list(o.setenv as string | string[]).map(String),
    readOnly: !!o.readOnly,
    mkdir: !!o.mkdir,
    force: !!o.force,
    now: !!o.now,
    verify: o.verify === undefined ? "signature" : String(o.verify),
    format: o.format === undefined ? undefined : String(o.format),
  };
  const positional = parsed.args.map(String);
  if (o.help || positional.length === 0) return { verb: "help", args: [], opts, command };
  return { verb: positional[0]!, args: positional.slice(1), opts, command };
}

function need(args: string[], n: number, verb: string): void {
  if (args.length < n) throw usage(`Too few arguments for '${verb}'.`);
}

function printProperties(props: Array<[string, string]>, o: GlobalOptions): void {
  for (const [k, v] of props) {
    if (o.property.length && !o.property.includes(k)) continue;
    if (!o.all && v === "" && !o.property.length) continue;
    print(o.value ? v : `${k}=${v}`);
  }
}

export async function machinectlMain(argv: string[]): Promise<number> {
  const { verb, args, opts: o, command } = parseMachinectl(argv);
  setQuiet(o.quiet);
  if (verb === "help") {
    print(MACHINECTL_HELP);
    return 0;
  }
  const M = await import("../machine/verbs.ts");
  switch (verb) {
    case "list": {
      const infos = M.runningMachines().map(M.listInfo);
      if (o.json) {
        print(formatJson(infos, o.json));
        return 0;
      }
      const rows = infos.map((i) => [i.machine, i.class, i.service, i.os ?? "-", i.version ?? "-", i.addresses.length ? `${i.addresses[0]}${i.addresses.length > 1 ? "…" : ""}` : "-"]);
      print(formatTable(["MACHINE", "CLASS", "SERVICE", "OS", "VERSION", "ADDRESSES"], rows, { legend: o.legend, footer: `${rows.length} machines listed.` }));
      return 0;
    }
    case "status": {
      need(args, 1, verb);
      const texts = args.map((n) => M.statusText(M.runningMachine(n)));
      print(texts.join("\n\n"));
      return 0;
    }
    case "show": {
      if (args.length === 0) {
        printProperties(M.managerProperties(), o);
        return 0;
      }
      args.forEach((n, i) => {
        if (i > 0 && !o.value) print("");
        printProperties(M.machineProperties(M.runningMachine(n)), o);
      });
      return 0;
    }
    case "start": {
      need(args, 1, verb);
      const { startMachine } = await import("../machine/start.ts");
      for (const n of args) startMachine(n);
      return 0;
    }
    case "poweroff":
    case "stop":
      need(args, 1, verb);
      for (const n of args) M.poweroff(M.runningMachine(n));
      return 0;
    case "reboot":
    case "restart":
      need(args, 1, verb);
      for (const n of args) M.reboot(M.runningMachine(n));
      return 0;
    case "terminate":
      need(args, 1, verb);
      for (const n of args) {
        // a machine whose supervisor died is cleaned up here, not refused
        const { readState } = await import("../machine/registry.ts");
        const st = readState(n);
        if (st && !M.isRunning(st)) {
          M.reapStale(st);
          continue;
        }
        await M.terminate(M.runningMachine(n));
      }
      return 0;
    case "kill":
      need(args, 1, verb);
      for (const n of args) M.killMachine(M.runningMachine(n), o.killWhom, o.signal ?? 15);
      return 0;
    case "shell": {
      need(args, 1, verb);
      let target = args[0]!;
      let user = o.uid ?? "root";
      const at = target.indexOf("@");
      if (at >= 0) {
        if (o.uid !== undefined) throw usage("Cannot combine --uid= with USER@NAME.");
        user = target.slice(0, at) || "root";
        target = target.slice(at + 1);
      }
      if (target === "" || target === ".host") throw usage("A shell on the host itself is not supported; name a machine.");
      return M.shell(M.runningMachine(target), { user, env: o.setenv, command: [...args.slice(1), ...command] });
    }
    case "login":
      need(args, 1, verb);
      return M.login(M.runningMachine(args[0]!));
    case "console":
      need(args, 1, verb);
      return M.attachConsole(M.runningMachine(args[0]!));
    case "set-property": {
      need(args, 2, verb);
      const { setProperty } = await import("../machine/manage.ts");
      setProperty(args[0]!, args.slice(1));
      return 0;
    }
    case "enable":
    case "disable": {
      need(args, 1, verb);
      const A = await import("../machine/autostart.ts");
      for (const n of args) {
        if (verb === "enable") A.enable(n);
        else A.disable(n);
      }
      if (o.now) {
        for (const n of args) {
          if (verb === "enable") {
            const { startMachine } = await import("../machine/start.ts");
            startMachine(n);
          } else {
            try {
              M.poweroff(M.runningMachine(n));
            } catch (e) {
              warn((e as Error).message);
            }
          }
        }
      }
      return 0;
    }
    case "autostart": {
      const A = await import("../machine/autostart.ts");
      return A.autostart();
    }
    case "copy-to":
    case "copy-from": {
      need(args, 2, verb);
      const { copyTo, copyFrom } = await import("../machine/copy.ts");
      const st = M.runningMachine(args[0]!);
      if (verb === "copy-to") copyTo(st, args[1]!, args[2] ?? args[1]!, o.force);
      else copyFrom(st, args[1]!, args[2] ?? args[1]!, o.force);
      return 0;
    }
    case "bind": {
      need(args, 2, verb);
      const { bindInto } = await import("../machine/bind.ts");
      await bindInto(M.runningMachine(args[0]!), args[1]!, args[2] ?? args[1]!, { readOnly: o.readOnly, mkdir: o.mkdir });
      return 0;
    }
    default: {
      const { imageVerb } = await import("./images.ts");
      const r = await imageVerb(verb, args, o);
      if (r === undefined) throw new SpawnctlError(`Unknown command verb '${verb}'.`);
      return r;
    }
  }
}
