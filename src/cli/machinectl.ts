// `spawnctl VERB ...` and `machinectl VERB ...`: machinectl's verbs and
// options. Everything prints through util/log.ts; errors are thrown for
// main.ts to print.
import { SpawnctlError, usage } from "../util/errors.ts";
import { print, setQuiet, warn } from "../util/log.ts";
import { formatJson, formatTable } from "../util/table.ts";
import { didYouMean, programName, unrecognizedOption } from "../util/suggest.ts";
import { isValidMachineName, parseSignal } from "../settings/parse.ts";
import { isValidImageName } from "../image/names.ts";
import { VERBS, verbHelp } from "./verb-help.ts";

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
  poweroff NAME...            Power off one or more containers (also: stop)
  reboot NAME...              Reboot one or more containers (also: restart)
  terminate NAME...           Terminate one or more machines
  kill NAME...                Send signal to processes of a machine
  copy-to NAME PATH [PATH]    Copy files from the host to a container
  copy-from NAME PATH [PATH]  Copy files from a container to the host
  bind NAME PATH [PATH]       Bind mount a path from the host into a container
  set-property NAME KEY=VALUE...
                              Set resource limits (MemoryMax=, CPUQuota=, ...)

Day-2 Commands (journalctl, systemd-cgls, systemd-analyze, systemd-cgtop, systemd-run -M):
  journal NAME [OPTIONS...]   Show a machine's journal (or console log)
  cgls [NAME...]              Show a machine's cgroup tree and processes
  analyze NAME [time|blame|critical-chain]
                              Show how a machine booted
  top [-b] [-n N] [-d SEC]    Show every machine's CPU, memory, tasks and IO
  run-in NAME [OPTIONS...] COMMAND...
                              Run a command in a machine in a unit of its own

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
  pull-oci REF [NAME]         Download an OCI image from a registry
  import-oci FILE|DIR [NAME]  Import an OCI layout, oci-archive or docker-archive
  export-oci NAME FILE        Export an OCI image as an oci-archive

Options:
  -h --help                   Show this help (VERB --help or help VERB: that verb's)
     --version                Show package version
  -M --machine=CONTAINER      Operate on local container (shell USER@ runs in it)
  -o --output=MODE            Change journal output mode (json, json-pretty, json-short
                              make the tables JSON too)
  -n --lines=INTEGER          Number of journal entries status shows
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
     --platform=OS/ARCH[/V]   Which image of a multi-platform OCI image (default: the host's)
     --creds=USER:PASS        Credentials for pull-oci's registry
     --insecure-registry=HOST Allow plain HTTP to this registry (pull-oci)
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
  /** import: allow device nodes in archives */
  devices: boolean;
  /** OCI: os/arch[/variant] of a multi-platform image */
  platform?: string;
  /** pull-oci: USER:PASS */
  creds?: string;
  /** pull-oci: registries that may be plain HTTP */
  insecureRegistry: string[];
  /** -M/--machine=: the machine `shell USER@` runs in */
  machine?: string;
  /** -o/--output=: the journal's output mode in status */
  output?: string;
  /** -n/--lines=: how many journal lines status ends with */
  lines?: string;
}

/** Split off what belongs to the payload of `shell [USER@]NAME CMD ...`: everything after NAME. */
function splitShell(argv: string[]): { head: string[]; command: string[] } {
  const i = argv.indexOf("shell");
  if (i < 0) return { head: argv, command: [] };
  let j = i + 1;
  const takesValue = new Set(["-p", "--property", "-P", "-s", "--signal", "--kill-whom", "--uid", "-E", "--setenv", "--verify", "--format", "--platform", "--creds", "--insecure-registry", "--json", "-M", "--machine", "-H", "--host", "-n", "-o"]);
  for (; j < argv.length; j++) {
    const a = argv[j]!;
    // `shell -- NAME CMD...`: the name comes after the "--", as with getopt
    if (a === "--") return j + 1 < argv.length ? { head: [...argv.slice(0, j + 2)], command: argv.slice(j + 2) } : { head: argv.slice(0, j), command: [] };
    if (a.startsWith("-")) {
      if (takesValue.has(a)) j++;
      continue;
    }
    // the machine name; the command starts after it
    return { head: argv.slice(0, j + 1), command: argv.slice(j + 1).filter((x, k) => !(k === 0 && x === "--")) };
  }
  return { head: argv, command: [] };
}

export interface OptionSpec { key: string; long?: string; short?: string; value: boolean }

// Options are accepted anywhere among the verb's arguments, as getopt_long
// permutes them. (cac was tried first: its parser takes the word after a
// hyphenated boolean such as --read-only as that option's value and turns
// numeric strings into numbers, which breaks `bind --read-only NAME ...`.)
export const OPTIONS: OptionSpec[] = [
  { key: "property", long: "property", short: "p", value: true },
  { key: "P", short: "P", value: true },
  { key: "value", long: "value", value: false },
  { key: "all", long: "all", short: "a", value: false },
  { key: "quiet", long: "quiet", short: "q", value: false },
  { key: "noLegend", long: "no-legend", value: false },
  { key: "noPager", long: "no-pager", value: false },
  { key: "json", long: "json", value: true },
  { key: "signal", long: "signal", short: "s", value: true },
  { key: "killWhom", long: "kill-whom", value: true },
  { key: "uid", long: "uid", value: true },
  { key: "setenv", long: "setenv", short: "E", value: true },
  { key: "readOnly", long: "read-only", value: false },
  { key: "mkdir", long: "mkdir", value: false },
  { key: "force", long: "force", value: false },
  { key: "now", long: "now", value: false },
  { key: "verify", long: "verify", value: true },
  { key: "format", long: "format", value: true },
  { key: "help", long: "help", short: "h", value: false },
  { key: "full", long: "full", short: "l", value: false },
  { key: "maxAddresses", long: "max-addresses", value: true },
  { key: "lines", long: "lines", short: "n", value: true },
  { key: "output", long: "output", short: "o", value: true },
  { key: "noAskPassword", long: "no-ask-password", value: false },
  { key: "keepDownload", long: "keep-download", value: false },
  { key: "devices", long: "devices", value: false },
  { key: "platform", long: "platform", value: true },
  { key: "creds", long: "creds", value: true },
  { key: "insecureRegistry", long: "insecure-registry", value: true },
  { key: "version", long: "version", value: false },
  { key: "machine", long: "machine", short: "M", value: true },
  { key: "host", long: "host", short: "H", value: true },
];

/** An option error as getopt prints it: the program as invoked first. */
function optionError(text: string): SpawnctlError {
  return usage(`${programName()}: ${text}`);
}

/** machinectl's -o/--output= modes; the JSON ones make tables JSON too, as machinectl's do. */
const OUTPUT_MODES: Record<string, "pretty" | "short" | undefined> = {
  short: undefined, "short-full": undefined, "short-iso": undefined, "short-iso-precise": undefined, "short-precise": undefined,
  "short-monotonic": undefined, "short-delta": undefined, "short-unix": undefined, "with-unit": undefined, verbose: undefined,
  export: undefined, cat: undefined, json: "short", "json-pretty": "pretty", "json-short": "short", "json-sse": "short", "json-seq": "short",
};

/** getopt_long with permutation: options anywhere, "--" ends them. */
export function parseArgv(argv: string[], specs: OptionSpec[] = OPTIONS): { values: Map<string, string[]>; positional: string[] } {
  const values = new Map<string, string[]>();
  const positional: string[] = [];
  const add = (o: OptionSpec, v: string) => values.set(o.key, [...(values.get(o.key) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = specs.find((x) => x.long === name);
      if (!o) throw usage(unrecognizedOption(name, specs.flatMap((x) => (x.long ? [x.long] : []))));
      if (!o.value) {
        if (eq >= 0) throw optionError(`option '--${name}' doesn't allow an argument`);
        add(o, "");
      } else if (eq >= 0) add(o, a.slice(eq + 1));
      else {
        if (i + 1 >= argv.length) throw optionError(`option '--${name}' requires an argument`);
        add(o, argv[++i]!);
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const o = specs.find((x) => x.short === a[k]);
        if (!o) throw optionError(`invalid option -- '${a[k]}'`);
        if (!o.value) {
          add(o, "");
          continue;
        }
        let v = a.slice(k + 1);
        if (!v) {
          if (i + 1 >= argv.length) throw optionError(`option requires an argument -- '${a[k]}'`);
          v = argv[++i]!;
        }
        add(o, v);
        break;
      }
      continue;
    }
    positional.push(a);
  }
  return { values, positional };
}

export function parseMachinectl(argv: string[]): { verb: string; args: string[]; opts: GlobalOptions; command: string[] } {
  const { head, command } = splitShell(argv);
  const { values, positional } = parseArgv(head);
  const last = (k: string) => values.get(k)?.at(-1);
  const has = (k: string) => values.has(k);
  const props = [...(values.get("property") ?? []), ...(values.get("P") ?? [])].flatMap((p) => p.split(","));
  let sig: number | undefined;
  if (has("signal")) {
    try {
      sig = parseSignal(last("signal")!);
    } catch {
      throw usage(`Failed to parse signal string ${last("signal")}.`);
    }
  }
  const whom = last("killWhom") ?? "all";
  if (whom !== "leader" && whom !== "all") throw usage(`Invalid --kill-whom= value: ${whom} (leader, all).`);
  let json = last("json");
  if (json !== undefined && !["pretty", "short", "off"].includes(json)) throw usage(`Unknown argument to --json=: ${json}`);
  const output = last("output");
  if (output !== undefined) {
    if (!(output in OUTPUT_MODES)) throw usage(`Unknown output '${output}'.`);
    // -o json* makes the tables JSON (and drops the legend), as machinectl's does
    if (OUTPUT_MODES[output] && json === undefined) json = OUTPUT_MODES[output];
  }
  if (has("host")) throw usage(`${programName()}: -H/--host= is not supported: run spawnctl on that host (over ssh).`);
  const opts: GlobalOptions = {
    property: props,
    value: has("value") || has("P"),
    all: has("all"),
    quiet: has("quiet"),
    legend: !has("noLegend"),
    json: json === undefined || json === "off" ? undefined : json,
    signal: sig,
    killWhom: whom,
    uid: last("uid"),
    setenv: values.get("setenv") ?? [],
    readOnly: has("readOnly"),
    mkdir: has("mkdir"),
    force: has("force"),
    now: has("now"),
    verify: last("verify") ?? "signature",
    format: last("format"),
    devices: has("devices"),
    platform: last("platform"),
    creds: last("creds"),
    insecureRegistry: values.get("insecureRegistry") ?? [],
    machine: last("machine"),
    output,
    lines: last("lines"),
  };
  if (has("version")) return { verb: "--version", args: [], opts, command };
  // `help VERB` and `VERB --help`: that verb's help
  if (positional[0] === "help") return { verb: "help", args: positional.slice(1, 2), opts, command };
  if (has("help") || positional.length === 0) return { verb: "help", args: positional.slice(0, 1), opts, command };
  return { verb: positional[0]!, args: positional.slice(1), opts, command };
}

function unknownVerb(verb: string): SpawnctlError {
  const meant = didYouMean(verb, Object.keys(VERBS));
  return usage(`Unknown command verb '${verb}'.${meant ? ` Did you mean '${meant}'?` : ""}`);
}

function need(args: string[], n: number, verb: string): void {
  if (args.length < n) throw usage(`Too few arguments for '${verb}'.`);
}

function propertiesObject(props: Array<[string, string]>, o: GlobalOptions): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of props) {
    if (o.property.length && !o.property.includes(k)) continue;
    if (!o.all && v === "" && !o.property.length) continue;
    out[k] = /^(Leader|TimestampMonotonic|Supervisor)$/.test(k) && /^\d+$/.test(v) ? Number(v) : v;
  }
  return out;
}

function printProperties(props: Array<[string, string]>, o: GlobalOptions): void {
  for (const [k, v] of props) {
    if (o.property.length && !o.property.includes(k)) continue;
    if (!o.all && v === "" && !o.property.length) continue;
    print(o.value ? v : `${k}=${v}`);
  }
}

// Which arguments of a verb name a machine or an image, checked before
// anything touches the file system, so that a name like "a/b", "../x" or 300
// characters never becomes a path. Machines follow systemd's machine-name
// (hostname) rules; images its image_name_is_valid(), which also takes hidden
// images (".old") and ".host".
//   "all": every argument; a number: the first N; "shell": [USER@]NAME
type NameRule = { kind: "machine" | "image"; args: "all" | number | "shell" };
const mach = (args: NameRule["args"]): NameRule => ({ kind: "machine", args });
const img = (args: NameRule["args"]): NameRule => ({ kind: "image", args });
export const NAME_ARGS: Record<string, NameRule> = {
  status: mach("all"), show: mach("all"), start: mach("all"), poweroff: mach("all"), stop: mach("all"), reboot: mach("all"), restart: mach("all"),
  terminate: mach("all"), kill: mach("all"), login: mach(1), console: mach(1), "set-property": mach(1), enable: mach("all"), disable: mach("all"),
  "copy-to": mach(1), "copy-from": mach(1), bind: mach(1), shell: mach("shell"),
  "image-status": img("all"), "show-image": img("all"), clone: img(2), rename: img(2), "read-only": img(1), remove: img("all"),
  "export-tar": img(1), "export-raw": img(1), "export-oci": img(1),
};

/** A printable form of a hostile name: control characters escaped, long ones cut. */
function shown(name: string): string {
  const t = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  return /[\x00-\x1f\x7f]/.test(t) ? JSON.stringify(t) : t;
}

export function checkNameArgs(verb: string, args: string[]): void {
  const rule = NAME_ARGS[verb];
  if (rule === undefined) return;
  let names: string[];
  if (rule.args === "shell") {
    const t = args[0] ?? "";
    const name = t.slice(t.indexOf("@") + 1);
    names = name === "" || name === ".host" ? [] : [name];
  } else names = rule.args === "all" ? args : args.slice(0, rule.args);
  for (const n of names) {
    if (rule.kind === "image") {
      if (!isValidImageName(n)) throw usage(`Invalid image name '${shown(n)}'.`);
    } else if (!isValidMachineName(n)) {
      throw usage(`Invalid machine name: ${shown(n)} (a machine name is at most 64 letters, digits, "-", "_" and "."; no "/", no leading "-" or ".").`);
    }
  }
}

export async function machinectlMain(argv: string[]): Promise<number> {
  const { verb, args, opts: o, command } = parseMachinectl(argv);
  setQuiet(o.quiet);
  if (verb === "--version") {
    const { versionText } = await import("../version.ts");
    print(versionText());
    return 0;
  }
  if (verb === "help") {
    if (args[0]) {
      const text = verbHelp(args[0], programName());
      if (!text) throw unknownVerb(args[0]);
      print(text);
    } else print(MACHINECTL_HELP);
    return 0;
  }
  checkNameArgs(verb, args);
  const M = await import("../machine/verbs.ts");
  switch (verb) {
    case "list": {
      const infos = M.runningMachines().map(M.listInfo);
      if (o.json) {
        // machinectl's keys and types: an empty cell is null, the addresses one string, newline-joined
        print(formatJson(infos.map((i) => ({ ...i, addresses: i.addresses.length ? i.addresses.join("\n") : null })), o.json));
        return 0;
      }
      const rows = infos.map((i) => [i.machine, i.class, i.service, i.os ?? "-", i.version ?? "-", i.addresses.length ? `${i.addresses[0]}${i.addresses.length > 1 ? "…" : ""}` : "-"]);
      print(formatTable(["MACHINE", "CLASS", "SERVICE", "OS", "VERSION", "ADDRESSES"], rows, { legend: o.legend, footer: `${rows.length} machines listed.` }));
      return 0;
    }
    case "status": {
      need(args, 1, verb);
      // each ends with the last lines of its journal (or console log), as machinectl's does
      const { journalTail } = await import("../machine/journal.ts");
      const lines = o.lines === undefined ? 10 : Number(o.lines);
      if (!Number.isInteger(lines) || lines < 0) throw usage(`Failed to parse --lines= value: ${o.lines}`);
      if (o.json) {
        // what status shows, as the properties show names them, with its OS and addresses
        const objs = args.map((n) => {
          const st = M.runningMachine(n);
          const os = M.machineOs(st);
          return { ...propertiesObject(M.machineProperties(st), { ...o, all: true, property: [] }), OS: os.PRETTY_NAME ?? os.NAME ?? null, Addresses: M.machineAddresses(st) };
        });
        print(formatJson(args.length === 1 ? objs[0] : objs, o.json));
        return 0;
      }
      for (const [i, name] of args.entries()) {
        const st = M.runningMachine(name);
        if (i > 0) print("");
        print(M.statusText(st));
        if (lines > 0) {
          print("");
          await journalTail(st, lines);
        }
      }
      return 0;
    }
    case "show": {
      if (args.length === 0) {
        printProperties(M.managerProperties(), o);
        return 0;
      }
      if (o.json) {
        // one object per machine, systemd's property names; numbers as numbers
        const objs = args.map((n) => propertiesObject(M.machineProperties(M.runningMachine(n)), o));
        print(formatJson(args.length === 1 ? objs[0] : objs, o.json));
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
      const { startMachines } = await import("../machine/start.ts");
      startMachines(args);
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
        // also a machine whose supervisor died (cleaned up here, not refused)
        // or is cleaning up after it (waited for)
        const { readState } = await import("../container/registry.ts");
        const st = readState(n);
        await M.terminate(st ?? M.runningMachine(n));
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
      // `shell -M NAME USER@ CMD` (Ansible's machinectl become method): the machine comes from -M
      if ((target === "" || target === ".host") && o.machine) target = o.machine;
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
      if (r === undefined) throw unknownVerb(verb);
      return r;
    }
  }
}
