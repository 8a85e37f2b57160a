// spawnctl analyze: see src/cli/day2.ts. (Being written.)
import { SpawnctlError } from "../util/errors.ts";

export async function analyzeMain(_args: string[]): Promise<number> {
  throw new SpawnctlError("spawnctl analyze is not implemented yet.");
}
