// The completion scripts and man pages are made from the parsers' tables: every
// verb and option in those tables must be in each script, so that a new option
// cannot be left out. Also: the bash script's behaviour, without installing it.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { META_OPTIONS, ROWS } from "../../src/settings/table.ts";
import { MACHINECTL_HELP, NAME_ARGS, OPTIONS } from "../../src/cli/machinectl.ts";
import { SPECS } from "../../src/cli/bootstrap.ts";
import { DAY2_VERBS } from "../../src/cli/day2.ts";
import {
  BOOTSTRAP_VALUES, MACHINECTL_VALUES, RUN_VALUES, bashCompletion, commandModel, fishCompletion, parseHelp, zshCompletion, type CliOption,
} from "../../src/cli/completion.ts";
import { manPages } from "../../src/cli/man.ts";

/** The verbs and option spellings straight from the tables (not from the completion model). */
function fromTables(): { verbs: string[]; run: string[]; machinectl: string[]; bootstrap: string[] } {
  const helpVerbs = parseHelp(MACHINECTL_HELP).sections.filter((s) => s.title.endsWith("Commands")).flatMap((s) => s.entries.map((e) => e.head.split(" ")[0]!));
  const flags = (o: { long?: string | string[]; short?: string }) => [...[o.long ?? []].flat().map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])];
  return {
    verbs: [...new Set(["run", "bootstrap", "machinectl", "completion", ...helpVerbs, ...Object.keys(NAME_ARGS), ...Object.keys(DAY2_VERBS)])],
    run: [...ROWS.flatMap(flags), ...[...META_OPTIONS].map((m) => `--${m}`)],
    machinectl: OPTIONS.flatMap(flags),
    bootstrap: SPECS.flatMap(flags),
  };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** What of the tables a bash or zsh script does not mention (options and verbs are whole words in its lists). */
function missingFromShell(script: string, t = fromTables()): string[] {
  const has = (w: string) => new RegExp(`(^|[\\s'|(])${esc(w)}($|[\\s'|)])`, "m").test(script);
  return [...t.verbs, ...t.run, ...t.machinectl, ...t.bootstrap].filter((w) => !has(w));
}

/** The same for fish, where an option is "-l NAME" or "-s C" and a verb "-a 'VERB'". */
function missingFromFish(script: string, t = fromTables()): string[] {
  const has = (w: string) =>
    w.startsWith("--") ? script.includes(` -l ${w.slice(2)}\n`) || script.includes(` -l ${w.slice(2)} `)
      : w.startsWith("-") ? new RegExp(` -s ${esc(w.slice(1))}( |$)`, "m").test(script)
        : script.includes(`-a '${w}'`);
  return [...t.verbs, ...t.run, ...t.machinectl, ...t.bootstrap].filter((w) => !has(w));
}

test("the tables are not empty (the checks below check something)", () => {
  const t = fromTables();
  expect(t.verbs.length).toBeGreaterThan(40);
  expect(t.run.length).toBeGreaterThan(60);
  expect(t.machinectl).toContain("--no-legend");
  expect(t.bootstrap).toContain("--from-bundle");
  expect(t.verbs).toEqual(expect.arrayContaining(["list", "shell", "copy-to", "import-fs", "journal", "run-in", "stop"]));
});

test("the bash script has every verb and option of the tables", () => {
  expect(missingFromShell(bashCompletion())).toEqual([]);
});

test("the zsh script has every verb and option of the tables", () => {
  expect(missingFromShell(zshCompletion())).toEqual([]);
});

test("the fish script has every verb and option of the tables", () => {
  expect(missingFromFish(fishCompletion())).toEqual([]);
});

test("the checks fail for an option or verb the script lacks (they can fail)", () => {
  const t = fromTables();
  const extra = { ...t, run: [...t.run, "--not-an-option-yet"], verbs: [...t.verbs, "frobnicate"] };
  expect(missingFromShell(bashCompletion(), extra)).toEqual(["frobnicate", "--not-an-option-yet"]);
  expect(missingFromFish(fishCompletion(), extra)).toEqual(["frobnicate", "--not-an-option-yet"]);
  // and a model missing a row's option gives a script the check rejects
  const m = commandModel();
  m.options.run = m.options.run.filter((o: CliOption) => !o.long.includes("private-network"));
  expect(missingFromShell(bashCompletion(m))).toEqual(["--private-network"]);
});

test("the value tables name real options", () => {
  const runLongs = new Set(ROWS.flatMap((r) => r.long ?? []));
  expect(Object.keys(RUN_VALUES).filter((k) => !runLongs.has(k))).toEqual([]);
  expect(Object.keys(MACHINECTL_VALUES).filter((k) => !OPTIONS.some((o) => o.long === k))).toEqual([]);
  expect(Object.keys(BOOTSTRAP_VALUES).filter((k) => !SPECS.some((o) => o.long === k))).toEqual([]);
});

test("options that take a value are completed as such in bash (required: next word; optional: only --OPT=)", () => {
  const s = bashCompletion();
  const argopts = /_spawnctl_argopts\(\) \{[\s\S]*?run\) printf '%s\\n' '([^']*)'/.exec(s)![1]!.split(" ");
  for (const r of ROWS) {
    for (const l of r.long ?? []) expect({ opt: l, takes: argopts.includes(`--${l}`) }).toEqual({ opt: l, takes: r.arg === "required" });
  }
});

function bashComplete(script: string, words: string[], env: Record<string, string> = {}): string[] {
  const dir = mkdtempSync(`${tmpdir()}/spawnctl-comp-`);
  try {
    writeFileSync(`${dir}/c.bash`, script);
    const prog = `source ${dir}/c.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _spawnctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const p = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", prog], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`bash: ${p.stderr.toString()}`);
    return p.stdout.toString().split("\n").filter(Boolean).sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("bash: verbs, options, option values, and the links' own command lines", () => {
  const s = bashCompletion();
  expect(Bun.spawnSync(["bash", "-n", "-c", s]).exitCode).toBe(0);
  expect(bashComplete(s, ["spawnctl", "sta"])).toEqual(["start", "status"]);
  expect(bashComplete(s, ["spawnctl", "run", "--priv"])).toEqual(["--private-network", "--private-users", "--private-users-chown", "--private-users-ownership"]);
  expect(bashComplete(s, ["systemd-nspawn", "--priv"])).toEqual(["--private-network", "--private-users", "--private-users-chown", "--private-users-ownership"]);
  // bash splits "--volatile=st" into "--volatile" "=" "st"
  expect(bashComplete(s, ["spawnctl", "run", "--volatile", "=", "st"])).toEqual(["state"]);
  expect(bashComplete(s, ["systemd-nspawn", "--console", "=", ""])).toEqual(["autopipe", "interactive", "passive", "pipe", "read-only"]);
  // the payload's own options are not nspawn's
  expect(bashComplete(s, ["spawnctl", "run", "-D", "/", "/bin/ls", "--priv"])).toEqual([]);
  expect(bashComplete(s, ["spawnctl", "run", "-bD", "/", "-", "--bo"])).toEqual([]);
  expect(bashComplete(s, ["machinectl", "sh"])).toEqual(["shell", "show", "show-image"]);
  expect(bashComplete(s, ["machinectl", "r"])).not.toContain("run");
  expect(bashComplete(s, ["spawnctl", "machinectl", "--no-l"])).toEqual(["--no-legend"]);
  expect(bashComplete(s, ["spawnctl", "bootstrap", ""])).toEqual(["arch", "debian", "ubuntu"]);
  expect(bashComplete(s, ["spawnctl", "bootstrap", "debian", "--variant", "min"])).toEqual(["minbase"]);
  expect(bashComplete(s, ["spawnctl", "completion", ""])).toEqual(["bash", "fish", "zsh"]);
  expect(bashComplete(s, ["spawnctl", "--v"])).toEqual(["--version"]);
});

test("the man pages describe every option of the tables", () => {
  const pages = manPages();
  const roff = (f: string) => f.replace(/-/g, "\\-");
  const t = fromTables();
  expect(t.run.filter((f) => !pages["spawnctl-run.1"]!.includes(`\\fB${roff(f)}`))).toEqual([]);
  expect(t.machinectl.filter((f) => !pages["spawnctl-machines.1"]!.includes(`\\fB${roff(f)}`))).toEqual([]);
  expect(t.bootstrap.filter((f) => !pages["spawnctl-bootstrap.1"]!.includes(`\\fB${roff(f)}`))).toEqual([]);
  const verbs = t.verbs.filter((v) => !["machinectl", "completion", "stop", "restart"].includes(v));
  expect(verbs.filter((v) => !pages["spawnctl-machines.1"]!.includes(`\\fB${roff(v)}\\fR`) && !["run", "bootstrap"].includes(v))).toEqual([]);
  expect(t.verbs.filter((v) => !pages["spawnctl.1"]!.includes(`\\fB${roff(v)}\\fR`))).toEqual([]);
  for (const [name, text] of Object.entries(pages)) {
    expect({ name, nonAscii: /[^\x00-\x7f]/.test(text), badLineStart: text.split("\n").some((l) => /^'/.test(l)) }).toEqual({ name, nonAscii: false, badLineStart: false });
  }
});

test("help text parsing: sections, entries, continuation lines", () => {
  const h = parseHelp("usage line\n\nProse.\n\nA:\n  -x --ex=V   does x\n                 and more\n     --y\nB Commands:\n  verb NAME...   text\n");
  expect(h.prologue).toEqual(["usage line", "", "Prose."]);
  expect(h.sections).toEqual([
    { title: "A", entries: [{ head: "-x --ex=V", text: "does x and more" }, { head: "--y", text: "" }] },
    { title: "B Commands", entries: [{ head: "verb NAME...", text: "text" }] },
  ]);
});
