// Entry point: dispatch on the name we were invoked as (spawnctl,
// systemd-nspawn, machinectl) and on the subcommand. The only place that
// prints errors and picks the exit status.
import { SpawnctlError } from "./util/errors.ts";
import { error, print, trace } from "./util/log.ts";

const HELP = `spawnctl — systemd-nspawn, machinectl and debootstrap in one executable

Usage:
  spawnctl run [NSPAWN OPTIONS...] [COMMAND [ARGS...]]   run a container (= systemd-nspawn)
  spawnctl --version
  spawnctl help

Invoked through a link named systemd-nspawn it behaves as systemd-nspawn.
See 'spawnctl run --help' for the container options.`;

function invokedAs(): string {
  const a = process.argv0 || "spawnctl";
  return a.slice(a.lastIndexOf("/") + 1);
}

async function dispatch(argv: string[]): Promise<number> {
  const name = invokedAs();
  if (name === "systemd-nspawn") {
    const { runCommand } = await import("./cli/run.ts");
    return runCommand(argv);
  }
  const [verb, ...rest] = argv;
  switch (verb) {
    case "run": {
      const { runCommand } = await import("./cli/run.ts");
      return runCommand(rest);
    }
    case undefined:
    case "help":
    case "-h":
    case "--help":
      print(HELP);
      return verb === undefined ? 1 : 0;
    case "--version": {
      const { VERSION } = await import("./version.ts");
      print(`spawnctl ${VERSION}`);
      return 0;
    }
    default:
      throw new SpawnctlError(`Unknown command '${verb}'. See 'spawnctl help'.`);
  }
}

async function main(): Promise<void> {
  // argv[0] is the runtime, argv[1] the script (or the embedded entry point)
  trace("main");
  const argv = process.argv.slice(2);
  let code: number;
  try {
    code = await dispatch(argv);
  } catch (e) {
    if (e instanceof SpawnctlError) {
      error(e.message);
      code = e.exitCode;
    } else {
      error(`spawnctl: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      code = 1;
    }
  }
  trace("exit");
  process.exit(code);
}

void main();
