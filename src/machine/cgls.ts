// spawnctl cgls: see src/cli/day2.ts. (Being written.)
import { SpawnctlError } from "../util/errors.ts";

export async function cglsMain(_args: string[]): Promise<number> {
  throw new SpawnctlError("spawnctl cgls is not implemented yet.");
}
