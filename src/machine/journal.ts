// spawnctl journal NAME [journalctl options] (and `journalctl -M NAME`): a
// machine's journal without systemd on the host.
//  - A guest with journald and journalctl: the guest's own journalctl reads
//    it, inside the running machine (its persistent /var/log/journal or
//    volatile /run/log/journal), or, for a stopped machine, in a read-only
//    container of its tree with --directory=/var/log/journal.
//  - A guest without (busybox, an init of its own): its console log
//    (/var/log/spawnctl/IMAGE.console), which the machine's supervisor
//    writes, with -n, -f and -o cat/short; escape sequences are stripped
//    when the output is not a terminal.
import { closeSync, existsSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { print } from "../util/log.ts";
import { isatty } from "../sys/ffi.ts";
import { hostFacts } from "../container/host.ts";
import { consoleLog, leaderAlive, readState, type MachineState } from "../container/registry.ts";
import { findImagePath } from "../settings/merge.ts";
import { mergeEnv } from "../container/host-env.ts";
import { runInMachine, treeHas } from "./enter.ts";
import { self } from "../util/self.ts";

const JOURNALCTL = ["/usr/bin/journalctl", "/bin/journalctl"];

export const JOURNAL_HELP = `spawnctl journal NAME [OPTIONS...]

Show a machine's journal, as journalctl -M NAME does. With a guest that has
journald, the guest's own journalctl reads it and takes journalctl's options
(-n N, -f, -b, -u UNIT, -p PRIO, --since T, -o short|json|cat, --no-pager, ...).
A guest without one shows its console log: -n N, -f, -o short|cat.`;

interface LogOptions {
  lines?: number;
  follow: boolean;
  output: "short" | "cat";
}

/** The options the console log understands; anything else needs the guest's journal. */
function logOptions(args: string[], name: string): LogOptions {
  const o: LogOptions = { follow: false, output: "short" };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (flag: string) => {
      const eq = a.indexOf("=");
      if (eq > 0) return a.slice(eq + 1);
      if (a.length > 2 && !a.startsWith("--")) return a.slice(2);
      const v = args[++i];
      if (v === undefined) throw new SpawnctlError(`journal: option '${flag}' requires an argument`);
      return v;
    };
    if (a === "--no-pager" || a === "-q" || a === "--quiet") continue;
    if (a === "-f" || a === "--follow") o.follow = true;
    else if (a === "-e" || a === "--pager-end") o.lines ??= 1000;
    else if (a === "-n" || a.startsWith("-n") || a === "--lines" || a.startsWith("--lines=")) {
      const v = value("--lines");
      if (v === "all" || v === "+0") o.lines = undefined;
      else if (!/^\d+$/.test(v)) throw new SpawnctlError(`journal: --lines=${v}: not a number`);
      else o.lines = Number(v);
    } else if (a === "-o" || a.startsWith("-o") || a === "--output" || a.startsWith("--output=")) {
      const v = value("--output");
      if (v !== "short" && v !== "cat") throw new SpawnctlError(`journal: --output=${v}: machine ${name} has no journal, only a console log (short or cat)`);
      o.output = v;
    } else {
      throw new SpawnctlError(`journal: ${a}: machine ${name} has no journal (its guest runs no journald), only a console log, which takes -n, -f and -o short|cat`);
    }
  }
  return o;
}

/** Text without terminal escape sequences and carriage returns (what a file or pipe should get). */
export function stripEscapes(s: string): string {
  return s
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "")
    .replace(/\x1b[()*+#%]./g, "")
    .replace(/\x1b[@-_]/g, "")
    .replace(/\r+\n/g, "\n")
    .replace(/[^\n]*\r(?!\n)/g, "")
    .replace(/[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g, "");
}

/** Text with every escape sequence but colours (SGR) and every control character but newline and tab removed. */
export function colorsOnly(s: string): string {
  const parts = s.split(/(\x1b\[[0-9;]*m)/);
  return parts.map((p, i) => (i % 2 === 1 ? p : stripEscapes(p))).join("");
}

/** The last n lines of a text (all of it without n). */
export function lastLines(text: string, n: number | undefined): string {
  if (n === undefined) return text;
  if (n === 0) return "";
  const lines = text.split("\n");
  const trailing = lines[lines.length - 1] === "" ? lines.pop() : undefined;
  return lines.slice(-n).join("\n") + (trailing !== undefined ? "\n" : "");
}

async function showConsoleLog(image: string, name: string, o: LogOptions): Promise<number> {
  const path = consoleLog(image);
  if (!existsSync(path)) throw new SpawnctlError(`Machine ${name} has no journal and no console log (${path}).`);
  const tty = isatty(1);
  // a guest's output is hostile: on a terminal only its colours pass (no
  // title, cursor or mode sequences), elsewhere no escape sequence at all
  const clean = (s: string) => (tty ? colorsOnly(s) : stripEscapes(s));
  const rotated = `${path}.1`;
  let text = "";
  if (o.lines === undefined && existsSync(rotated)) text = await Bun.file(rotated).text();
  text += await Bun.file(path).text();
  const out = lastLines(clean(text), o.lines ?? (o.follow ? 10 : undefined));
  if (out) writeSync(1, out);
  if (!o.follow) return 0;
  // follow: what is appended from now on (a rotation starts over at the new file)
  let pos = statSync(path).size;
  let fd = openSync(path, "r");
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n > 0) {
      pos += n;
      writeSync(1, clean(buf.subarray(0, n).toString("utf8")));
      continue;
    }
    try {
      if (statSync(path).size < pos) {
        closeSync(fd);
        fd = openSync(path, "r");
        pos = 0;
      }
    } catch {
      /* between rename and reopen */
    }
    await Bun.sleep(200);
  }
}

export async function journalMain(args: string[]): Promise<number> {
  if (args[0] === "-h" || args[0] === "--help") {
    print(JOURNAL_HELP);
    return 0;
  }
  const name = args[0];
  if (!name || name.startsWith("-")) throw new SpawnctlError("journal: which machine? (spawnctl journal NAME [OPTIONS...])");
  const rest = args.slice(1);
  const st: MachineState | undefined = readState(name);
  const running = st && leaderAlive(st) ? st : undefined;
  if (running) {
    const root = `/proc/${running.leader}/root`;
    const jc = treeHas(root, JOURNALCTL);
    if (jc) return runInMachine(running, hostFacts().cgroup, "root", [jc, ...rest]);
    return showConsoleLog(running.image ?? name, name, logOptions(rest, name));
  }
  // a stopped machine: its image
  const found = findImagePath(name, mergeEnv());
  if (!found) throw new SpawnctlError(`No machine or image '${name}' known.`);
  // a disk image's journal is not read without mounting it: its console log is
  if (found.raw) return showConsoleLog(name, name, logOptions(rest, name));
  const dir = found.path;
  const jc = treeHas(dir, JOURNALCTL);
  if (jc && existsSync(`${dir}/var/log/journal`)) {
    // the tree's own journalctl, in a read-only container of it (no network, no registration)
    const p = Bun.spawn([...self().argv, "run", "-q", "--read-only", "--private-network", "--register=no", "--console=pipe", "-D", dir, "--", jc, "--directory=/var/log/journal", ...rest], {
      stdio: ["inherit", "inherit", "inherit"],
    });
    return p.exited;
  }
  return showConsoleLog(name, name, logOptions(rest, name));
}

/** The last n lines of a running machine's journal (or console log), for `status`. */
export async function journalTail(st: MachineState, n: number): Promise<void> {
  const jc = treeHas(`/proc/${st.leader}/root`, JOURNALCTL);
  if (jc) {
    await runInMachine(st, hostFacts().cgroup, "root", [jc, "-n", String(n), "--no-pager", "-q"]);
    return;
  }
  const path = consoleLog(st.image ?? st.name);
  if (!existsSync(path)) return;
  const text = lastLines(stripEscapes(await Bun.file(path).text()).replace(/\n+$/, "\n"), n);
  if (text) writeSync(1, text);
}
