// Everything spawnctl reads back from disk (machine state, network plans and
// allocations, run marks, bundle manifests) is checked with a zod schema
// before it is used: a file that a crash cut short, an older spawnctl wrote
// or someone edited by hand is reported naming the file and the field, never
// used half-valid. zod/mini, loaded only when a file is read (its import and
// first parse cost a cold process ~2 ms, which `run` does not pay unless a
// machine's state is there to read).
import type * as Z from "zod/mini";
import { SpawnctlError } from "./errors.ts";

let zod: typeof Z | undefined;

/** zod/mini, loaded on first use. */
export function z(): typeof Z {
  // biome-ignore lint: a synchronous, lazy load of a bundled module
  if (!zod) {
    zod = require("zod/mini") as typeof Z;
    // messages that say what was expected ("expected number, received string")
    zod.config(zod.locales.en());
  }
  return zod;
}

/** A schema made on first use (so that importing a module costs nothing). */
export function lazySchema<T>(make: (zz: typeof Z) => Z.ZodMiniType<T>): () => Z.ZodMiniType<T> {
  let s: Z.ZodMiniType<T> | undefined;
  return () => (s ??= make(z()));
}

/** The issues of a failed parse, as "field: message; ...". */
function issues(e: Z.core.$ZodError): string {
  return e.issues.slice(0, 4).map((i) => `${i.path.length ? i.path.join(".") : "(the whole file)"}: ${i.message}`).join("; ");
}

/** `text` (JSON) checked against `schema`; a SpawnctlError naming `what` (the file) and the field otherwise. */
export function parseState<T>(schema: Z.ZodMiniType<T>, text: string, what: string): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new SpawnctlError(`${what}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const r = schema.safeParse(data);
  if (!r.success) throw new SpawnctlError(`${what}: not a valid state file: ${issues(r.error)}`);
  return r.data;
}
