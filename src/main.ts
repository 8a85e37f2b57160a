// Entry point: dispatch on the name we were invoked as (spawnctl,
// systemd-nspawn, machinectl) and on the subcommand. The only place that
// prints errors and picks the exit status.
import { SpawnctlError, systemErrorMessage } from "./util/errors.ts";
import { error, print, trace } from "./util/log.ts";

const HELP = `spawnctl — systemd-nspawn, machinectl and debootstrap in one executable

Usage:
  spawnctl run [NSPAWN OPTIONS...] [COMMAND [ARGS...]]   run a container (= systemd-nspawn)
  spawnctl VERB [OPTIONS...] [NAME...]                    machinectl's verbs: list, start, shell, ...
  spawnctl bootstrap debian|ubuntu SUITE DEST [OPTIONS]   debootstrap in the binary
  spawnctl bootstrap arch DEST [PACKAGE...] [OPTIONS]     pacstrap in the binary
  spawnctl journal|cgls|analyze|top|run-in [NAME] ...     journalctl, systemd-cgls, systemd-analyze,
                                                          systemd-cgtop, systemd-run for machines
  spawnctl --version
  spawnctl help

Invoked through a link named systemd-nspawn, machinectl, journalctl,
systemd-cgls, systemd-analyze, systemd-cgtop or systemd-run it behaves as
that program (the last five for machines: -M NAME). 'spawnctl run --help'
lists the container options, 'spawnctl machinectl --help' the verbs, and
'spawnctl help VERB' (or 'spawnctl VERB --help') one verb's.`;

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
  if (name === "machinectl") {
    const { machinectlMain } = await import("./cli/machinectl.ts");
    return machinectlMain(argv);
  }
  // journalctl, systemd-cgls, systemd-analyze, systemd-cgtop, systemd-run
  if (name.startsWith("journalctl") || name.startsWith("systemd-")) {
    const { day2VerbFor, day2Main, fromToolArgs } = await import("./cli/day2.ts");
    const v = day2VerbFor(name);
    if (v) return day2Main(v, fromToolArgs(v, argv));
  }
  const [verb, ...rest] = argv;
  switch (verb) {
    case "journal":
    case "cgls":
    case "analyze":
    case "top":
    case "run-in": {
      const { day2Main } = await import("./cli/day2.ts");
      return day2Main(verb, rest);
    }
    case "run": {
      const { runCommand } = await import("./cli/run.ts");
      return runCommand(rest);
    }
    case "bootstrap": {
      const { bootstrapMain } = await import("./cli/bootstrap.ts");
      return bootstrapMain(rest);
    }
    case "__machine-exited": {
      // exec'd by a machine's supervisor once the container has ended
      const { machineExited } = await import("./machine/start.ts");
      return machineExited(rest[0]!, Number(rest[1]), Number(rest[2] ?? -1));
    }
    case "__forward": {
      // a machine's userspace port forwarder, where the kernel has no nf_tables
      const { forwardMain } = await import("./net/forward.ts");
      return forwardMain(rest);
    }
    case "machinectl": {
      const { machinectlMain } = await import("./cli/machinectl.ts");
      return machinectlMain(rest);
    }
    case "completion": {
      const { completionMain } = await import("./cli/completion.ts");
      return completionMain(rest);
    }
    case "help":
      // help VERB: that verb's
      if (rest[0] === "run") {
        const { runCommand } = await import("./cli/run.ts");
        return runCommand(["--help"]);
      }
      if (rest[0] === "bootstrap") {
        const { bootstrapMain } = await import("./cli/bootstrap.ts");
        return bootstrapMain(["--help"]);
      }
      if (rest[0]) {
        const { machinectlMain } = await import("./cli/machinectl.ts");
        return machinectlMain(["help", rest[0]]);
      }
      print(HELP);
      return 0;
    case undefined:
    case "-h":
    case "--help":
      print(HELP);
      return verb === undefined ? 1 : 0;
    case "--version":
    case "version": {
      const { versionText } = await import("./version.ts");
      print(versionText());
      return 0;
    }
    default: {
      const { machinectlMain } = await import("./cli/machinectl.ts");
      return machinectlMain(argv);
    }
  }
}

async function main(): Promise<void> {
  // argv[0] is the runtime, argv[1] the script (or the embedded entry point)
  trace("main");
  const argv = process.argv.slice(2);
  let code: number;
  try {
    // what the caller left open (a host file, a socket) reaches no child of
    // ours and no container: every fd from 3 up becomes close-on-exec
    (await import("./sys/ffi.ts")).cloexecInherited();
    code = await dispatch(argv);
  } catch (e) {
    const sys = e instanceof SpawnctlError ? undefined : systemErrorMessage(e);
    if (e instanceof SpawnctlError) {
      error(e.message);
      code = e.exitCode;
    } else if (sys) {
      // what the host or the user's input caused (a read-only /run, a full
      // disk, a name too long): a sentence, not a stack trace
      error(sys);
      if (process.env.SPAWNCTL_DEBUG) error(String((e as Error).stack));
      code = 1;
    } else {
      error(`spawnctl: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      code = 1;
    }
  }
  trace("exit");
  process.exit(code);
}

void main();
