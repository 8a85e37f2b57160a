// Image verbs (list-images, clone, import-tar, ...). Returns undefined for a
// verb it does not know.
import type { GlobalOptions } from "./machinectl.ts";

export async function imageVerb(verb: string, args: string[], o: GlobalOptions): Promise<number | undefined> {
  void args;
  void o;
  switch (verb) {
    default:
      return undefined;
  }
}
