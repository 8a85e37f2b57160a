// Running one command in a tree as a container, for spawnctl's own use
// (bootstrap's second stage): the normal run machinery with settings that
// change nothing in the tree besides what the command does.
import { parseCommandLine } from "../settings/cli.ts";
import { resolveSettings } from "../settings/merge.ts";
import { mergeEnv } from "./host-env.ts";
import { runContainer } from "./supervisor.ts";
import { randomHex } from "./prepare.ts";
import { isQuiet, setQuiet } from "../util/log.ts";

export interface TreeCommand {
  env?: string[];
  /** read-only binds, "SRC:DST" */
  bindsRo?: string[];
  /** the container's name (default: a random one) */
  name?: string;
}

export async function runInTree(tree: string, argv: string[], o: TreeCommand = {}): Promise<number> {
  const cl = parseCommandLine([
    "-q", "--console=pipe", "--settings=no", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
    "-M", o.name ?? `spawnctl-${randomHex(4)}`, "-D", tree,
    ...(o.env ?? []).flatMap((e) => ["-E", e]),
    ...(o.bindsRo ?? []).map((b) => `--bind-ro=${b}`),
    "--", ...argv,
  ]);
  const { settings } = resolveSettings(cl, { ...mergeEnv(), isTty: false });
  // the container's own status lines are not the caller's business
  const wasQuiet = isQuiet();
  setQuiet(true);
  try {
    return await runContainer(settings);
  } finally {
    setQuiet(wasQuiet);
  }
}
