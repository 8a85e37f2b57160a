// spawnctl journal: see src/cli/day2.ts. (Being written.)
import { SpawnctlError } from "../util/errors.ts";

export async function journalMain(_args: string[]): Promise<number> {
  throw new SpawnctlError("spawnctl journal is not implemented yet.");
}
