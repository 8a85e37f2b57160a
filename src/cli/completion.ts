// `spawnctl completion bash|zsh|fish`: shell completion scripts for spawnctl
// and its links machinectl and systemd-nspawn, generated from the tables the
// parsers use (settings/table.ts ROWS for run, machinectl.ts OPTIONS, its help
// text and NAME_ARGS for the verbs, bootstrap.ts SPECS, day2.ts DAY2_VERBS),
// so an option or verb added there is completed without touching this file.
// The man pages (man.ts) are made from the same model.
import { usage } from "../util/errors.ts";
import { print } from "../util/log.ts";
import { META_OPTIONS, ROWS, VOLATILE, RESOLV, TIMEZONE, JOURNAL, CONSOLE, SETTINGS, OWNERSHIP, type Row } from "../settings/table.ts";
import { CAPS } from "../settings/caps.ts";
import { MACHINECTL_HELP, NAME_ARGS, OPTIONS as MACHINECTL_OPTIONS, type OptionSpec } from "./machinectl.ts";
import { BOOTSTRAP_HELP, SPECS as BOOTSTRAP_OPTIONS, VARIANTS } from "./bootstrap.ts";
import { RUN_HELP } from "./run.ts";
import { DAY2_VERBS } from "./day2.ts";
import { JOURNAL_HELP } from "../machine/journal.ts";
import { RUN_IN_HELP } from "../machine/run-in.ts";

// ---------------------------------------------------------------- help text

export interface HelpEntry { head: string; text: string }
export interface HelpSection { title: string; entries: HelpEntry[] }
export interface ParsedHelp { prologue: string[]; sections: HelpSection[] }

/**
 * The help texts' layout: unindented lines ending in ":" are section titles;
 * a line indented by at most 6 columns starts an entry (its head, then two or
 * more spaces, then its text); a line indented deeper continues the text.
 * Entries before any title go into a section titled "".
 */
export function parseHelp(help: string): ParsedHelp {
  const out: ParsedHelp = { prologue: [], sections: [] };
  let sec: HelpSection | undefined;
  let cur: HelpEntry | undefined;
  for (const line of help.split("\n")) {
    if (!line.trim()) {
      cur = undefined;
      if (!sec) out.prologue.push("");
      continue;
    }
    const indent = line.length - line.trimStart().length;
    if (indent === 0) {
      cur = undefined;
      if (line.endsWith(":")) {
        sec = { title: line.slice(0, -1), entries: [] };
        out.sections.push(sec);
      } else if (!sec) out.prologue.push(line);
      continue;
    }
    if (indent <= 6) {
      const m = /^(\S+(?: \S+)*)(?: {2,}(.*))?$/.exec(line.trim())!;
      if (!sec) {
        sec = { title: "", entries: [] };
        out.sections.push(sec);
      }
      cur = { head: m[1]!, text: m[2] ?? "" };
      sec.entries.push(cur);
    } else if (cur) cur.text = cur.text ? `${cur.text} ${line.trim()}` : line.trim();
  }
  while (out.prologue.at(-1) === "") out.prologue.pop();
  return out;
}

/** The option spellings in an entry head: "-D --directory=PATH" → ["-D", "--directory"]. */
export function flagsIn(head: string): string[] {
  return [...head.matchAll(/(?:^|[\s,\[(])(--?[A-Za-z0-9][\w-]*)/g)].map((m) => m[1]!);
}

// ---------------------------------------------------------------- the model

/**
 * What a word is completed with: names from the live lists, paths, a fixed
 * set of words, the shell's default (commands, files), or nothing.
 */
export type ValueKind = "none" | "files" | "dirs" | "machines" | "images" | "default" | readonly string[];

export interface CliOption {
  long: string[];
  short?: string;
  arg: "none" | "required" | "optional";
  values: ValueKind;
}

export type OptionSet = "spawnctl" | "run" | "machinectl" | "bootstrap" | "journal" | "run-in" | "none";

export interface Verb {
  name: string;
  summary: string;
  /** the help section it is listed under (man page grouping) */
  group: string;
  /** what its options are */
  options: OptionSet;
  /** its positional arguments: the first ones, then `rest` for any further */
  args: ValueKind[];
  rest: ValueKind;
  /** a verb of machinectl (also completed for the machinectl link) */
  machinectl: boolean;
}

export interface CommandModel {
  options: Record<OptionSet, CliOption[]>;
  verbs: Verb[];
}

const BOOL = ["yes", "no"] as const;

/** Values of the run options that take one, by long name (checked against ROWS by the unit test). */
export const RUN_VALUES: Record<string, ValueKind> = {
  directory: "dirs", template: "dirs", "oci-bundle": "dirs", image: "files", machine: "images", "network-namespace-path": "files",
  volatile: VOLATILE, "resolv-conf": RESOLV, timezone: TIMEZONE, "link-journal": JOURNAL, console: CONSOLE,
  settings: SETTINGS, "private-users-ownership": OWNERSHIP, "private-users": ["no", "yes", "pick", "identity"],
  capability: ["all", ...CAPS.map((c) => `CAP_${c}`)], "drop-capability": ["all", ...CAPS.map((c) => `CAP_${c}`)],
  "ambient-capability": CAPS.map((c) => `CAP_${c}`),
  register: BOOL, "notify-ready": BOOL, "suppress-sync": BOOL, "no-new-privileges": BOOL,
  personality: ["x86", "x86-64"],
};

/** Values of machinectl's options, by long name (checked against OPTIONS by the unit test). */
export const MACHINECTL_VALUES: Record<string, ValueKind> = {
  json: ["pretty", "short", "off"], "kill-whom": ["leader", "all"], verify: ["no", "checksum", "signature"],
  format: ["uncompressed", "gzip", "xz", "zstd"], signal: ["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGRTMIN+3", "SIGRTMIN+4"],
};

/** Values of bootstrap's options, by long name (checked against SPECS by the unit test). */
export const BOOTSTRAP_VALUES: Record<string, ValueKind> = {
  variant: VARIANTS, keyring: "files", "cache-dir": "dirs", "root-password-file": "files", bundle: "files",
  "from-bundle": "files", "merged-usr": BOOL, "check-valid-until": BOOL,
};

function rowOption(r: Row): CliOption {
  const long = r.long ?? [];
  return { long, short: r.short, arg: r.arg, values: long.map((l) => RUN_VALUES[l]).find(Boolean) ?? "none" };
}

function specOptions(specs: OptionSpec[], values: Record<string, ValueKind>): CliOption[] {
  return specs
    .filter((s) => s.long || s.short)
    .map((s) => ({ long: s.long ? [s.long] : [], short: s.short, arg: s.value ? "required" : "none", values: (s.long && values[s.long]) || "none" }));
}

/**
 * Options named in a help text (the day-2 tools, which have no option table
 * of their own): "-p, --property=NAME=VALUE" and "--wait" entries, and the
 * "-n N, -f, --since T" lists of journal's prose. -M is the systemd tool's
 * machine option, which the verb takes as its NAME argument.
 */
function helpOptions(help: string): CliOption[] {
  const out: CliOption[] = [];
  const seen = new Set<string>(["M"]);
  for (const m of help.matchAll(/(?:^|[\s,(])(?:-([A-Za-z]), )?(--?[A-Za-z][\w-]*)(=|\s[A-Z]+\b)?/g)) {
    const [short, flag, value] = [m[1], m[2]!, m[3]];
    const long = flag.startsWith("--") ? flag.slice(2) : undefined;
    const s = short ?? (long ? undefined : flag.slice(1));
    if (seen.has(long ?? s!)) continue;
    seen.add(long ?? s!);
    out.push({ long: long ? [long] : [], short: s, arg: value ? "required" : "none", values: "none" });
  }
  return out;
}

/** A word of a verb's synopsis in machinectl's help ("NAME...", "[PATH]", "KEY=VALUE...") as what completes it. */
function synopsisKind(word: string, names: "machines" | "images"): ValueKind {
  const w = word.replace(/[\[\].]/g, "");
  if (/NAME$/.test(w)) return w.includes("|FILE") ? "default" : names;
  if (/^(PATH|FILE|DIRECTORY)$/.test(w)) return "files";
  if (w === "COMMAND") return "default";
  if (w === "BOOL") return BOOL;
  return "none";
}

// machinectl checks the names of these with the machine-name rule (NAME_ARGS),
// but they start (or mark for starting) images, so images are what to offer,
// as machinectl's own completion does
const NAMES_ARE_IMAGES = new Set(["start", "enable", "disable"]);

function machinectlVerbs(): Verb[] {
  const verbs: Verb[] = [];
  for (const sec of parseHelp(MACHINECTL_HELP).sections) {
    if (!sec.title.endsWith("Commands")) continue;
    for (const e of sec.entries) {
      const [name, ...syn] = e.head.split(" ");
      const rule = NAME_ARGS[name!];
      const names = NAMES_ARE_IMAGES.has(name!) ? "images" : rule ? (rule.kind === "image" ? "images" : "machines") : sec.title.startsWith("Machine") ? "machines" : "images";
      const words = syn.join(" ").split(/\s+/).filter(Boolean);
      const args = words.map((w) => synopsisKind(w, names));
      const repeats = words.at(-1)?.replace(/\]+$/, "").endsWith("...") ?? false;
      verbs.push({ name: name!, summary: e.text, group: sec.title, options: "machinectl", args, rest: repeats ? args.at(-1)! : "none", machinectl: true });
    }
  }
  // verbs the parser takes that the help does not list (stop, restart): as the verb they stand for
  const listed = new Set(verbs.map((v) => v.name));
  for (const [name, rule] of Object.entries(NAME_ARGS)) {
    if (listed.has(name)) continue;
    const kind: ValueKind = rule.kind === "image" ? "images" : "machines";
    verbs.push({ name, summary: `Same as ${name === "stop" ? "poweroff" : name === "restart" ? "reboot" : name}`, group: "Machine Commands", options: "machinectl", args: [kind], rest: rule.args === "all" ? kind : "none", machinectl: true });
  }
  return verbs;
}

function day2Verbs(): Verb[] {
  return Object.entries(DAY2_VERBS).map(([name, tool]): Verb => ({
    name,
    summary: `${tool} for machines (${tool}${name === "top" ? "" : " -M NAME"})`,
    group: "Day-2 Commands",
    options: name === "journal" ? "journal" : name === "run-in" ? "run-in" : "none",
    args: name === "top" ? [] : [name === "analyze" ? "machines" : "machines"],
    rest: name === "run-in" || name === "analyze" || name === "journal" ? "default" : "none",
    machinectl: false,
  }));
}

/** debian|ubuntu|arch: the distributions bootstrap's usage lines name. */
export function bootstrapDistros(): string[] {
  const out = new Set<string>();
  for (const m of BOOTSTRAP_HELP.matchAll(/^spawnctl bootstrap (\S+)/gm)) for (const d of m[1]!.split("|")) out.add(d);
  return [...out];
}

export function commandModel(): CommandModel {
  const run: CliOption[] = [
    ...ROWS.filter((r) => r.long || r.short).map(rowOption),
    ...[...META_OPTIONS].map((m): CliOption => ({ long: [m], short: m === "help" ? "h" : undefined, arg: "none", values: "none" })),
  ];
  const verbs: Verb[] = [
    { name: "run", summary: "Run a command or boot an OS tree in a container (= systemd-nspawn)", group: "Container Commands", options: "run", args: [], rest: "default", machinectl: false },
    { name: "bootstrap", summary: "Create an OS tree from a package mirror (= debootstrap, pacstrap)", group: "Container Commands", options: "bootstrap", args: [bootstrapDistros(), "dirs"], rest: "default", machinectl: false },
    ...machinectlVerbs(),
    ...day2Verbs(),
    { name: "machinectl", summary: "Run machinectl's VERB (the same as spawnctl VERB)", group: "Other Commands", options: "machinectl", args: [], rest: "none", machinectl: false },
    { name: "completion", summary: "Print a completion script for bash, zsh or fish", group: "Other Commands", options: "none", args: [["bash", "zsh", "fish"]], rest: "none", machinectl: false },
    { name: "help", summary: "Show the usage", group: "Other Commands", options: "none", args: [], rest: "none", machinectl: false },
  ];
  return {
    options: {
      spawnctl: [{ long: ["help"], short: "h", arg: "none", values: "none" }, { long: ["version"], arg: "none", values: "none" }],
      run,
      machinectl: specOptions(MACHINECTL_OPTIONS, MACHINECTL_VALUES),
      bootstrap: specOptions(BOOTSTRAP_OPTIONS, BOOTSTRAP_VALUES),
      journal: helpOptions(JOURNAL_HELP),
      "run-in": helpOptions(RUN_IN_HELP),
      none: [],
    },
    verbs,
  };
}

/** Every spelling of an option: --long (each name) and -s. */
export function spellings(o: CliOption): string[] {
  return [...o.long.map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])];
}

// ---------------------------------------------------------------- shell-neutral parts (bash and zsh)

const SETS: OptionSet[] = ["spawnctl", "run", "machinectl", "bootstrap", "journal", "run-in"];

function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function kindWord(k: ValueKind): string {
  return typeof k === "string" ? k : `w:${k.join(" ")}`;
}

/** case-statement functions holding the tables; the same text is valid bash and zsh */
function dataFunctions(m: CommandModel): string {
  const L: string[] = [];
  L.push("# every option of a set (spawnctl's own, run = systemd-nspawn, machinectl, bootstrap, the day-2 tools)");
  L.push("_spawnctl_opts() {", "    case $1 in");
  for (const s of SETS) L.push(`        ${s}) printf '%s\\n' ${sq(m.options[s].flatMap(spellings).join(" "))} ;;`);
  L.push("    esac", "}");
  L.push("# the options that take the next word as their value (the others take one only as --OPT=VALUE)");
  L.push("_spawnctl_argopts() {", "    case $1 in");
  for (const s of SETS) L.push(`        ${s}) printf '%s\\n' ${sq(m.options[s].filter((o) => o.arg === "required").flatMap(spellings).join(" "))} ;;`);
  L.push("    esac", "}");
  L.push("# what completes the value of option $2 of set $1");
  L.push("_spawnctl_value_kind() {", "    case $1:$2 in");
  for (const s of SETS) {
    for (const o of m.options[s]) {
      if (o.arg === "none" || o.values === "none") continue;
      L.push(`        ${spellings(o).map((f) => `${s}:${f}`).join("|")}) printf '%s\\n' ${sq(kindWord(o.values))} ;;`);
    }
  }
  L.push("        *) printf '%s\\n' none ;;", "    esac", "}");
  L.push("# the verbs: spawnctl's, and machinectl's (for the machinectl link)");
  L.push("_spawnctl_verbs() {", "    case $1 in");
  L.push(`        machinectl) printf '%s\\n' ${sq(m.verbs.filter((v) => v.machinectl).map((v) => v.name).join(" "))} ;;`);
  L.push(`        *) printf '%s\\n' ${sq(m.verbs.map((v) => v.name).join(" "))} ;;`);
  L.push("    esac", "}");
  L.push("# the option set of verb $1");
  L.push("_spawnctl_verb_set() {", "    case $1 in");
  const bySet = new Map<string, string[]>();
  for (const v of m.verbs) bySet.set(v.options, [...(bySet.get(v.options) ?? []), v.name]);
  for (const [s, names] of bySet) L.push(`        ${names.join("|")}) echo ${s} ;;`);
  L.push("        *) printf '%s\\n' none ;;", "    esac", "}");
  L.push("# what completes positional argument $2 (0 = the first after the verb) of verb $1");
  L.push("_spawnctl_arg_kind() {", "    case $1 in");
  for (const v of m.verbs) {
    const cases = v.args.map((k, i) => `${i}) printf '%s\\n' ${sq(kindWord(k))} ;;`);
    L.push(`        ${v.name}) case $2 in ${[...cases, `*) printf '%s\\n' ${sq(kindWord(v.rest))} ;;`].join(" ")} esac ;;`);
  }
  L.push("        *) printf '%s\\n' default ;;", "    esac", "}");
  return L.join("\n");
}

/**
 * The walk over the words before the cursor, in the subset of shell that bash
 * and zsh (with KSH_ARRAYS) share. In: _sc_words (0-based, words[0] is the
 * command), _sc_cword. Out: _sc_kind (opts:SET, verbs:SET or a value kind),
 * _sc_cur (the text to complete), _sc_eqopt (OPT when the word is OPT=VALUE).
 */
const ANALYZE = `# does word $2 of option set $1 take the next word as its value?
_spawnctl_takes_arg() {
    local list=" $(_spawnctl_argopts "$1") " w=$2 i
    [[ $w == --*=* ]] && return 1
    if [[ $w == --* ]]; then
        [[ $list == *" $w "* ]]
        return
    fi
    for ((i = 1; i < \${#w}; i++)); do
        if [[ $list == *" -\${w:i:1} "* ]]; then
            (( i == \${#w} - 1 ))
            return
        fi
    done
    return 1
}

_spawnctl_analyze() {
    local prog=\${_sc_words[0]##*/} oset=spawnctl verb= k w npos=-1 skip=0 optsdone=0 payload=0 opt=
    _sc_cur=\${_sc_words[_sc_cword]} _sc_eqopt= _sc_kind=none
    case $prog in
        systemd-nspawn*) oset=run verb=run ;;
        machinectl*) oset=machinectl ;;
    esac
    for ((k = 1; k < _sc_cword; k++)); do
        w=\${_sc_words[k]}
        if (( skip )); then skip=0; continue; fi
        if (( ! optsdone )) && [[ $w == -- ]]; then optsdone=1; continue; fi
        if (( ! optsdone )) && [[ $w == -?* ]]; then
            _spawnctl_takes_arg "$oset" "$w" && skip=1
            continue
        fi
        if [[ -z $verb ]]; then
            verb=$w npos=-1
            if [[ $oset == spawnctl ]]; then
                oset=$(_spawnctl_verb_set "$w")
                # spawnctl machinectl VERB ...: machinectl's verb comes next
                [[ $w == machinectl ]] && verb=
            fi
            continue
        fi
        npos=$((npos + 1))
        # systemd-nspawn's options end at the first word that is none: the payload's command
        if [[ $oset == run ]]; then payload=1; optsdone=1; fi
    done
    if (( payload )); then _sc_kind=default; return; fi
    # the value of an option: --OPT=VALUE, or the word after an option that takes one
    if (( ! optsdone )) && [[ $_sc_cur == --*=* ]]; then
        _sc_eqopt=\${_sc_cur%%=*} _sc_cur=\${_sc_cur#*=}
        _sc_kind=$(_spawnctl_value_kind "$oset" "$_sc_eqopt")
        return
    fi
    if (( skip )); then
        opt=\${_sc_words[_sc_cword - 1]}
        [[ $opt == --* ]] || opt=-\${opt: -1}
        _sc_kind=$(_spawnctl_value_kind "$oset" "$opt")
        return
    fi
    if (( ! optsdone )) && [[ $_sc_cur == -* ]]; then
        _sc_kind=opts:$oset
        return
    fi
    if [[ -z $verb ]]; then
        _sc_kind=verbs:$oset
        return
    fi
    [[ $oset == run ]] && { _sc_kind=default; return; }
    _sc_kind=$(_spawnctl_arg_kind "$verb" $((npos + 1)))
}

# the first column of "list --no-legend" (machines) or "list-images --no-legend" (images)
# of the command being completed (spawnctl for its systemd-nspawn link)
_spawnctl_names() {
    local cmd=$2 name rest
    case \${cmd##*/} in
        systemd-nspawn*) cmd=\${cmd%systemd-nspawn*}spawnctl ;;
    esac
    "$cmd" "$1" --no-legend 2>/dev/null | while IFS=$' \\t' read -r name rest; do [[ -n $name ]] && printf '%s\\n' "$name"; done
}`;

function header(shell: string): string {
  return `# ${shell} completion for spawnctl and its links machinectl and systemd-nspawn.
# Generated by 'spawnctl completion ${shell}' from spawnctl's option and verb tables;
# machine and image names come live from 'spawnctl list' and 'spawnctl list-images'.`;
}

export function bashCompletion(m = commandModel()): string {
  return `${header("bash")}

${dataFunctions(m)}

${ANALYZE}

_spawnctl() {
    local -a _sc_words=()
    local _sc_cword=0 _sc_kind _sc_cur _sc_eqopt k w join=0
    # bash splits --OPT=VALUE at "=" (COMP_WORDBREAKS): join the pieces again
    for ((k = 0; k <= COMP_CWORD && k < \${#COMP_WORDS[@]}; k++)); do
        w=\${COMP_WORDS[k]}
        if (( \${#_sc_words[@]} > 0 )) && [[ $w == = && \${_sc_words[\${#_sc_words[@]} - 1]} == --* && \${_sc_words[\${#_sc_words[@]} - 1]} != *=* ]]; then
            _sc_words[\${#_sc_words[@]} - 1]+='='
            join=1
        elif (( join )); then
            _sc_words[\${#_sc_words[@]} - 1]+=$w
            join=0
        else
            _sc_words+=("$w")
        fi
        (( k == COMP_CWORD )) && _sc_cword=$(( \${#_sc_words[@]} - 1 ))
    done
    (( _sc_cword >= \${#_sc_words[@]} )) && _sc_words+=("")
    _spawnctl_analyze
    local cur=$_sc_cur IFS=$'\\n'
    COMPREPLY=()
    case $_sc_kind in
        opts:*) COMPREPLY=($(IFS=' '; compgen -W "$(_spawnctl_opts "\${_sc_kind#opts:}")" -- "$cur")) ;;
        verbs:*) COMPREPLY=($(IFS=' '; compgen -W "$(_spawnctl_verbs "\${_sc_kind#verbs:}")" -- "$cur")) ;;
        w:*) COMPREPLY=($(IFS=' '; compgen -W "\${_sc_kind#w:}" -- "$cur")) ;;
        machines) COMPREPLY=($(compgen -W "$(_spawnctl_names list "\${_sc_words[0]}")" -- "$cur")) ;;
        images) COMPREPLY=($(compgen -W "$(_spawnctl_names list-images "\${_sc_words[0]}")" -- "$cur")) ;;
        dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        default) compopt -o bashdefault -o default 2>/dev/null ;;
    esac
    # without "=" in COMP_WORDBREAKS the word being replaced is the whole --OPT=VALUE
    if [[ -n $_sc_eqopt && $COMP_WORDBREAKS != *=* ]]; then
        COMPREPLY=("\${COMPREPLY[@]/#/$_sc_eqopt=}")
    fi
    return 0
}

complete -F _spawnctl spawnctl
# the links, where they are spawnctl: a host with systemd keeps its own tools' completions
for _spawnctl_link in machinectl systemd-nspawn; do
    _spawnctl_path=$(type -P "$_spawnctl_link") && [[ $(readlink -f "$_spawnctl_path") == "$(readlink -f "$(type -P spawnctl)")" ]] &&
        complete -F _spawnctl "$_spawnctl_link"
done
unset _spawnctl_link _spawnctl_path
`;
}

export function zshCompletion(m = commandModel()): string {
  return `#compdef spawnctl machinectl systemd-nspawn
${header("zsh")}

${dataFunctions(m)}

${ANALYZE}

_spawnctl_zanalyze() {
    setopt localoptions ksharrays
    _sc_words=("\${words[@]}")
    _sc_cword=$((CURRENT - 1))
    _spawnctl_analyze
}

_spawnctl() {
    local -a _sc_words
    local _sc_cword _sc_kind _sc_cur _sc_eqopt
    _spawnctl_zanalyze
    [[ -n $_sc_eqopt ]] && compset -P '*='
    case $_sc_kind in
        opts:*) compadd -- \${=$(_spawnctl_opts "\${_sc_kind#opts:}")} ;;
        verbs:*) compadd -- \${=$(_spawnctl_verbs "\${_sc_kind#verbs:}")} ;;
        w:*) compadd -- \${=_sc_kind#w:} ;;
        machines) compadd -- \${(f)"$(_spawnctl_names list "\${words[1]}")"} ;;
        images) compadd -- \${(f)"$(_spawnctl_names list-images "\${words[1]}")"} ;;
        dirs) _files -/ ;;
        files) _files ;;
        default) _default ;;
    esac
}

if [[ "\${funcstack[1]}" == _spawnctl ]]; then
    _spawnctl "$@"
else
    compdef _spawnctl spawnctl machinectl systemd-nspawn
fi
`;
}

function fishValues(k: ValueKind): string {
  if (typeof k !== "string") return `-x -a ${sq(k.join(" "))}`;
  switch (k) {
    case "machines": return "-x -a '(__spawnctl_names list)'";
    case "images": return "-x -a '(__spawnctl_names list-images)'";
    case "dirs": return "-x -a '(__fish_complete_directories)'";
    case "files": return "-r -F";
    default: return "-r";
  }
}

function fishOption(cmd: string, cond: string | undefined, o: CliOption): string[] {
  const c = cond ? ` -n ${sq(cond)}` : "";
  const val = o.arg === "none" ? "" : ` ${fishValues(o.values)}`;
  const lines: string[] = [];
  o.long.forEach((l, i) => lines.push(`complete -c ${cmd}${c} -l ${l}${i === 0 && o.short ? ` -s ${o.short}` : ""}${val}`));
  if (o.long.length === 0 && o.short) lines.push(`complete -c ${cmd}${c} -s ${o.short}${val}`);
  return lines;
}

export function fishCompletion(m = commandModel()): string {
  const L: string[] = [header("fish"), ""];
  L.push(String.raw`# the first column of "list --no-legend" or "list-images --no-legend" of the command being completed
function __spawnctl_names --argument-names what
    set -l cmd (commandline -opc)[1]
    string match -q -- '*systemd-nspawn' $cmd; and set cmd (string replace -r 'systemd-nspawn$' spawnctl -- $cmd)
    $cmd $what --no-legend 2>/dev/null | string replace -r '\s.*' ''
end

# the verb on the command line (the first word that is no option), if any
function __spawnctl_verb
    set -l words (commandline -opc)
    for w in $words[2..-1]
        string match -q -- '-*' $w; and continue
        test "$w" = machinectl; and continue
        echo $w
        return 0
    end
    return 1
end
`);
  for (const cmd of ["spawnctl", "machinectl"] as const) {
    const verbs = cmd === "spawnctl" ? m.verbs : m.verbs.filter((v) => v.machinectl);
    L.push(`# ${cmd}`);
    L.push(`complete -c ${cmd} -f`);
    for (const v of verbs) L.push(`complete -c ${cmd} -n 'not __spawnctl_verb' -a ${sq(v.name)} -d ${sq(v.summary.replace(/\s+/g, " "))}`);
    if (cmd === "spawnctl") for (const o of m.options.spawnctl) L.push(...fishOption(cmd, "not __spawnctl_verb", o));
    const bySet = new Map<OptionSet, Verb[]>();
    for (const v of verbs) bySet.set(v.options, [...(bySet.get(v.options) ?? []), v]);
    for (const [set, vs] of bySet) {
      const cond = `__spawnctl_verb | string match -q -r -- '^(${vs.map((v) => v.name).join("|")})$'`;
      for (const o of m.options[set]) L.push(...fishOption(cmd, cmd === "machinectl" ? undefined : cond, o));
    }
    for (const v of verbs) {
      const kinds = new Set([...v.args, v.rest].filter((k) => k !== "none" && k !== "default"));
      for (const k of kinds) L.push(`complete -c ${cmd} -n ${sq(`__spawnctl_verb | string match -q -- ${v.name}`)} ${fishValues(k).replace(/^-[xr] /, "")}`);
    }
    L.push("");
  }
  L.push("# systemd-nspawn (spawnctl run)");
  for (const o of m.options.run) L.push(...fishOption("systemd-nspawn", undefined, o));
  return `${L.join("\n")}\n`;
}

export async function completionMain(argv: string[]): Promise<number> {
  const [shell, ...rest] = argv;
  if (shell === "-h" || shell === "--help") {
    print("spawnctl completion bash|zsh|fish\n\nPrint a completion script for spawnctl, machinectl and systemd-nspawn:\n  source <(spawnctl completion bash)");
    return 0;
  }
  if (rest.length) throw usage("Too many arguments for 'completion'.");
  switch (shell) {
    case "bash":
      print(bashCompletion().trimEnd());
      return 0;
    case "zsh":
      print(zshCompletion().trimEnd());
      return 0;
    case "fish":
      print(fishCompletion().trimEnd());
      return 0;
    case undefined:
      throw usage("Too few arguments for 'completion': bash, zsh or fish.");
    default:
      throw usage(`Unknown shell '${shell}': bash, zsh or fish.`);
  }
}
