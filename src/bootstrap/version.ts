// Debian version comparison, with dpkg's rules (deb-version(7)):
//
//   [epoch:]upstream_version[-debian_revision]
//
// The epoch is compared as a number. Upstream version and revision are each
// compared as alternating runs of non-digits and digits: non-digit runs
// character by character where '~' sorts before everything (even the end of
// the string), then the end, then letters, then all other characters; digit
// runs as numbers of any length. A missing revision equals "0", so "1.0" and
// "1.0-0" are the same version, and "1.0~rc1" < "1.0" < "1.0+b1".

/** dpkg's lib/dpkg/version.c order(): the weight of one character of a non-digit run. */
function weight(s: string, i: number): number {
  if (i >= s.length) return 0;
  const c = s.charCodeAt(i);
  if (c === 126) return -1; // '~'
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return c;
  if (c >= 48 && c <= 57) return 0; // a digit ends the non-digit run
  return c + 256;
}

function isDigit(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 48 && c <= 57;
}

/** Compare an upstream version or a revision. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a, i)) || (j < b.length && !isDigit(b, j))) {
      const d = weight(a, i) - weight(b, j);
      if (d !== 0) return d < 0 ? -1 : 1;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    // Digit runs of any length: the first differing digit decides unless one
    // run is longer, in which case the longer number is bigger.
    let first = 0;
    while (i < a.length && isDigit(a, i) && j < b.length && isDigit(b, j)) {
      if (first === 0) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a, i)) return 1;
    if (j < b.length && isDigit(b, j)) return -1;
    if (first !== 0) return first < 0 ? -1 : 1;
  }
  return 0;
}

interface Parts { epoch: number; upstream: string; revision: string }

function split(v: string): Parts {
  const s = v.trim();
  const colon = s.indexOf(":");
  // dpkg rejects a non-numeric epoch; a comparison must still be total, so it
  // counts as 0 here and validation is left to whoever reads the version.
  const epoch = colon > 0 ? Number.parseInt(s.slice(0, colon), 10) || 0 : 0;
  const rest = colon >= 0 ? s.slice(colon + 1) : s;
  const dash = rest.lastIndexOf("-");
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: "" };
}

/** dpkg --compare-versions: negative if a < b, 0 if equal, positive if a > b (always -1, 0 or 1). */
export function compareVersions(a: string, b: string): number {
  if (a === b) return 0;
  const x = split(a);
  const y = split(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision);
}

export type VersionOp = "<<" | "<=" | "=" | ">=" | ">>";

/** Does `version` satisfy the relation `op wanted`, as in "Depends: foo (>= 1.2)"? */
export function satisfiesVersion(version: string, op: VersionOp, wanted: string): boolean {
  const c = compareVersions(version, wanted);
  switch (op) {
    case "<<":
      return c < 0;
    case "<=":
      return c <= 0;
    case "=":
      return c === 0;
    case ">=":
      return c >= 0;
    case ">>":
      return c > 0;
  }
}
