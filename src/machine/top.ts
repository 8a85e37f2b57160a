// spawnctl top: see src/cli/day2.ts. (Being written.)
import { SpawnctlError } from "../util/errors.ts";

export async function topMain(_args: string[]): Promise<number> {
  throw new SpawnctlError("spawnctl top is not implemented yet.");
}
