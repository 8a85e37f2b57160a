// spawnctl run-in: see src/cli/day2.ts. (Being written.)
import { SpawnctlError } from "../util/errors.ts";

export async function runInMain(_args: string[]): Promise<number> {
  throw new SpawnctlError("spawnctl run-in is not implemented yet.");
}
