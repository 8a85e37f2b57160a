// "did you mean" for unknown options and verbs, and the program name that
// getopt-style messages start with ("systemd-nspawn: unrecognized option
// '--bnd'; did you mean '--bind'?").

/** The name the binary was invoked by (a link named systemd-nspawn or machinectl), as getopt prints it. */
export function programName(argv0 = process.argv0): string {
  const name = (argv0 || "spawnctl").slice((argv0 || "").lastIndexOf("/") + 1);
  // the names spawnctl answers to; anything else (spawnctl itself, a copy
  // renamed, bun running the source or the tests) is spawnctl
  return LINK_NAMES.includes(name) ? name : "spawnctl";
}

const LINK_NAMES = ["systemd-nspawn", "machinectl", "journalctl", "systemd-cgls", "systemd-analyze", "systemd-cgtop", "systemd-run"];

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate `given` most likely meant: the closest by edit distance
 * within a third of its length (at least 1, at most 3), else the only
 * candidate it is a prefix of (getopt_long accepts those itself, so this
 * is for a prefix too short to be unique... then none is suggested).
 * Undefined when nothing is close.
 */
export function didYouMean(given: string, candidates: Iterable<string>): string | undefined {
  const all = [...new Set(candidates)];
  if (given === "" || all.length === 0) return undefined;
  const limit = Math.min(3, Math.max(1, Math.floor(given.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of all) {
    const dist = editDistance(given, c);
    if (dist < bestD || (dist === bestD && best !== undefined && c < best)) {
      best = c;
      bestD = dist;
    }
  }
  if (best !== undefined && bestD <= limit) return best;
  const prefixed = all.filter((c) => c.startsWith(given));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** "PROGRAM: unrecognized option '--NAME'" and, when one is close, "; did you mean '--OTHER'?" */
export function unrecognizedOption(name: string, longOptions: Iterable<string>, program = programName()): string {
  const guess = didYouMean(name, longOptions);
  return `${program}: unrecognized option '--${name}'${guess ? `; did you mean '--${guess}'?` : ""}`;
}

/** "PROGRAM: invalid option -- 'X'" */
export function invalidShortOption(ch: string, program = programName()): string {
  return `${program}: invalid option -- '${ch}'`;
}
