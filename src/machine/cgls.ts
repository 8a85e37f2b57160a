// spawnctl cgls [NAME...] (systemd-cgls -M NAME): a machine's cgroup tree
// with its processes, as systemd-cgls draws it. Without a name, every
// running machine under one tree rooted at spawnctl's own group.
import { hostFacts } from "../container/host.ts";
import type { MachineState } from "../container/registry.ts";
import { CGROUP_PARENT, containerDir, machineCgroupRel } from "../cgroup/cgroup.ts";
import { drawCgroupTree, machineDirs, pickTree, procInfo, readCgroupTree, type CgNode, type DrawOptions } from "../cgroup/tree.ts";
import { isatty } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";
import { runningMachine, runningMachines } from "./verbs.ts";

export const CGLS_HELP = `spawnctl cgls [OPTIONS...] [NAME...]
systemd-cgls -M NAME [OPTIONS...]

Show a machine's control group tree and its processes (every running
machine's without a NAME).

  -h --help           Show this help
  -a --all            Show empty control groups too
  -l --full           Do not cut lines to the terminal's width
  -k                  Include kernel threads in the output
     --no-pager       Accepted (no pager is used)
`;

export interface CglsOptions extends DrawOptions {
  names: string[];
  help: boolean;
  full: boolean;
}

export function parseCglsArgs(args: string[]): CglsOptions {
  const o: CglsOptions = { names: [], help: false, full: false };
  let options = true;
  for (const a of args) {
    if (options && a === "--") options = false;
    else if (options && (a === "-h" || a === "--help")) o.help = true;
    else if (options && (a === "-a" || a === "--all")) o.all = true;
    else if (options && (a === "-l" || a === "--full")) o.full = true;
    else if (options && a === "-k") o.kernelThreads = true;
    else if (options && a === "--no-pager") continue;
    else if (options && /^-[alk]{2,}$/.test(a)) {
      for (const c of a.slice(1)) {
        if (c === "a") o.all = true;
        else if (c === "l") o.full = true;
        else o.kernelThreads = true;
      }
    } else if (options && a.startsWith("-") && a !== "-") throw new SpawnctlError(`cgls: unknown option '${a}' (see spawnctl cgls --help).`, { exitCode: 1 });
    else o.names.push(a);
  }
  return o;
}

/** The directories the machine's container runs in: its payload's, in the payload layout (see cgroup.ts PAYLOAD). */
export function containerDirs(st: MachineState): ReturnType<typeof machineDirs> {
  const facts = hostFacts().cgroup;
  const p = !!st.payload;
  return machineDirs(facts, st.cgroups.map((d) => containerDir(facts, d, p)), st.unifiedCgroup && containerDir(facts, st.unifiedCgroup, p));
}

/** The machine's tree (its container's): from the hierarchy whose processes sit in sub-groups (see pickTree). */
export function machineTree(st: MachineState): CgNode {
  const dirs = containerDirs(st);
  const candidates: Array<{ kind: "systemd" | "unified" | "other"; tree: CgNode }> = [];
  if (dirs.systemd) candidates.push({ kind: "systemd", tree: readCgroupTree(dirs.systemd) });
  if (dirs.unified) candidates.push({ kind: "unified", tree: readCgroupTree(dirs.unified) });
  for (const d of dirs.all) if (d !== dirs.systemd && d !== dirs.unified) candidates.push({ kind: "other", tree: readCgroupTree(d) });
  const t = pickTree(candidates);
  if (!t) throw new SpawnctlError(`Machine ${st.name} has no control group on this host.`);
  return t;
}

/** "/machine.slice/machine-NAME.scope": the machine's group as a path from the hierarchy's root, as systemd-cgls names it. */
export function machineCgroupPath(st: MachineState): string {
  return `/${machineCgroupRel(st.name)}`;
}

function guestRunsSystemd(st: MachineState): boolean {
  const i = procInfo(st.leader);
  return !!i && /(^|\/)systemd( |$)/.test(i.cmdline.split(" ")[0] ?? "");
}

export async function cglsMain(args: string[]): Promise<number> {
  const o = parseCglsArgs(args);
  if (o.help) {
    process.stdout.write(CGLS_HELP);
    return 0;
  }
  const width = !o.full && isatty(1) ? process.stdout.columns || 80 : undefined;
  const draw: DrawOptions = { all: o.all, kernelThreads: o.kernelThreads, width };
  const out: string[] = [];
  if (o.names.length) {
    // every name is checked before anything is printed
    const machines = o.names.map((n) => runningMachine(n));
    for (const st of machines) {
      out.push(`Control group ${machineCgroupPath(st)}:`);
      // a systemd guest's root is its -.slice, as systemd-cgls -M shows it
      if (guestRunsSystemd(st)) out.push("-.slice");
      out.push(...drawCgroupTree(machineTree(st), procInfo, draw));
    }
  } else {
    const machines = runningMachines();
    out.push(`Control group /${CGROUP_PARENT}:`);
    if (machines.length === 0) out.push("(no running machines)");
    machines.forEach((st, k) => {
      const last = k === machines.length - 1;
      out.push(`${last ? "└─" : "├─"}${st.name}`);
      out.push(...drawCgroupTree(machineTree(st), procInfo, draw, last ? "  " : "│ "));
    });
  }
  process.stdout.write(`${out.join("\n")}\n`);
  return 0;
}
