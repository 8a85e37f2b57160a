// The day-2 tools of the seed, for machines, on hosts with or without
// systemd: as spawnctl verbs (journal, cgls, analyze, top, run-in) and,
// invoked through a link named after the systemd tool they replace
// (journalctl, systemd-cgls, systemd-analyze, systemd-cgtop, systemd-run),
// with that tool's -M NAME / --machine=NAME command lines.
import { SpawnctlError } from "../util/errors.ts";

/** The verbs, and the systemd tool each one stands for. */
export const DAY2_VERBS = {
  journal: "journalctl",
  cgls: "systemd-cgls",
  analyze: "systemd-analyze",
  top: "systemd-cgtop",
  "run-in": "systemd-run",
} as const;
export type Day2Verb = keyof typeof DAY2_VERBS;

/** The verb for a program name a link may have (journalctl → journal), if any. */
export function day2VerbFor(program: string): Day2Verb | undefined {
  for (const [verb, tool] of Object.entries(DAY2_VERBS)) if (tool === program) return verb as Day2Verb;
  return undefined;
}

/**
 * A systemd tool's command line with -M NAME / --machine=NAME / --machine
 * NAME (and -MNAME) in it: the verb's, with the machine first. Without one
 * (for a tool that needs it) the link says clearly what it can do.
 */
export function fromToolArgs(verb: Day2Verb, argv: string[]): string[] {
  const tool = DAY2_VERBS[verb];
  const rest: string[] = [];
  let machine: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "-M" || a === "--machine") {
      machine = argv[++i];
      if (machine === undefined) throw new SpawnctlError(`${tool}: option '${a}' requires an argument`, { exitCode: 1 });
    } else if (a.startsWith("--machine=")) machine = a.slice(10);
    else if (a.startsWith("-M") && a.length > 2 && !a.startsWith("--")) machine = a.slice(2);
    else rest.push(a);
  }
  // systemd-cgtop shows every machine's cgroup without -M too; the others need one
  if (machine === undefined) {
    if (verb === "top" || (verb === "cgls" && rest.every((a) => a.startsWith("-")))) return rest;
    throw new SpawnctlError(`${tool} (spawnctl): only machines are supported here; use ${tool} -M NAME (or spawnctl ${verb} NAME).`, { exitCode: 1 });
  }
  // the machine may be "user@name" for systemd-run; the verbs take it first
  return [machine, ...rest];
}

export async function day2Main(verb: Day2Verb, args: string[]): Promise<number> {
  switch (verb) {
    case "journal": {
      const { journalMain } = await import("../machine/journal.ts");
      return journalMain(args);
    }
    case "cgls": {
      const { cglsMain } = await import("../machine/cgls.ts");
      return cglsMain(args);
    }
    case "analyze": {
      const { analyzeMain } = await import("../machine/analyze.ts");
      return analyzeMain(args);
    }
    case "top": {
      const { topMain } = await import("../machine/top.ts");
      return topMain(args);
    }
    case "run-in": {
      const { runInMain } = await import("../machine/run-in.ts");
      return runInMain(args);
    }
  }
}
