// Throw-away OpenPGP keys and signatures for the verifier's tests, made with
// the host's gpg in a temporary GNUPGHOME. All times are faked from
// 2020-01-01 00:00 UTC (T0) so the expected dates in error messages do not
// depend on when the fixtures were made.
//
// The tests run against a fresh set when gpg is installed and always against
// the copy checked in under fixtures/pgp, which was made by
//   bun tests/unit/bootstrap/pgp-fixtures.ts tests/unit/bootstrap/fixtures/pgp
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";

export const T0 = Date.UTC(2020, 0, 1) / 1000;

/** data.bin: bytes with CR, LF and CRLF in them, so a text signature over them differs from a binary one */
export const DATA = new Uint8Array([...new TextEncoder().encode("binary\r\ndata\nwith\rline ends\n"), 0, 1, 2, 255]);
/** text.txt: a line with trailing blanks, lines that need dash-escaping, no final newline */
export const TEXT = "Origin: Test   \n- a dash line\n-----not armor\nFrom here\ttab\t\nlast line";

/** Release: a Release file for a mirror without InRelease, signed in Release.gpg */
export const RELEASE = `Suite: testing\nCodename: test\nDate: Wed, 01 Jan 2020 00:00:00 UTC\nValid-Until: Thu, 02 Jan 2020 00:00:00 UTC\nArchitectures: amd64\nComponents: main\nSHA256:\n ${"0".repeat(64)} 0 main/binary-amd64/Packages\n`;

export interface Manifest {
  /** scenario -> fingerprints as gpg prints them: the primary key first, then subkeys */
  keys: Record<string, string[]>;
}

export function haveGpg(): boolean {
  return Bun.spawnSync(["gpg", "--version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

/** gpg's --faked-system-time for T0 + hours; the "!" freezes the clock there */
function at(hours: number): string {
  return `${new Date((T0 + hours * 3600) * 1000).toISOString().replace(/[-:]/g, "").slice(0, 15)}!`;
}

export function makePgpFixtures(out: string): void {
  mkdirSync(out, { recursive: true });
  const home = mkdtempSync("/tmp/spawnctl-gpg-");
  const gpg = (hours: number, args: string[], input?: string): string => {
    const p = Bun.spawnSync(["gpg", "--homedir", home, "--batch", "--no-tty", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--faked-system-time", at(hours), ...args], {
      stdin: input !== undefined ? Buffer.from(input) : "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    if (p.exitCode !== 0) throw new Error(`gpg ${args.join(" ")}: ${p.stderr.toString()}`);
    return p.stdout.toString();
  };
  const fingerprints = (uid: string) =>
    gpg(0, ["--with-colons", "--list-keys", uid])
      .split("\n")
      .filter((l) => l.startsWith("fpr:"))
      .map((l) => l.split(":")[9]!);
  const newKey = (name: string, algo: string, usage: string, expire: string) => {
    gpg(0, ["--quick-gen-key", `${name} <${name}@example.invalid>`, algo, usage, expire]);
    return fingerprints(`${name}@example.invalid`)[0]!;
  };
  const exportBinary = (file: string, fpr: string) => {
    const p = Bun.spawnSync(["gpg", "--homedir", home, "--batch", "--export", fpr], { stdout: "pipe", stderr: "pipe" });
    writeFileSync(`${out}/${file}`, p.stdout);
  };
  // Signs data.bin, or text.txt for text and cleartext signatures, or `input`.
  const sign = (hours: number, signer: string, file: string, mode: string[], extra: string[] = [], input?: string) =>
    gpg(hours, ["-u", `${signer}!`, ...extra, ...mode, "-o", `${out}/${file}`, `${out}/${input ?? (mode.includes("--textmode") || mode.includes("--clearsign") ? "text.txt" : "data.bin")}`]);
  const editKey = (hours: number, fpr: string, commands: string[]) => gpg(hours, ["--expert", "--command-fd", "0", "--edit-key", fpr], commands.join("\n") + "\n");

  try {
    writeFileSync(`${out}/data.bin`, DATA);
    writeFileSync(`${out}/text.txt`, TEXT);
    writeFileSync(`${out}/Release`, RELEASE);
    const keys: Record<string, string[]> = {};

    // ed: an Ed25519 primary key that signs; every signature form.
    const ed = newKey("ed", "ed25519", "sign", "never");
    sign(1, ed, "ed-clear.asc", ["--clearsign"]);
    sign(1, ed, "ed-binary.sig", ["--detach-sign"]);
    sign(1, ed, "ed-binary.asc", ["--detach-sign", "--armor"]);
    sign(1, ed, "ed-text.sig", ["--detach-sign", "--textmode"]);
    sign(1, ed, "Release.gpg", ["--detach-sign", "--armor"], [], "Release");
    exportBinary("ed.gpg", ed);
    writeFileSync(`${out}/ed.asc`, gpg(0, ["--export", "--armor", ed]));
    keys.ed = fingerprints(ed);

    // rsa: a certify-only RSA primary key with an RSA signing subkey; SHA-512,
    // and once SHA-1, which is not accepted.
    const rsa = newKey("rsa", "rsa2048", "cert", "never");
    gpg(0, ["--quick-add-key", rsa, "rsa2048", "sign", "never"]);
    const rsaSub = fingerprints(rsa)[1]!;
    sign(1, rsaSub, "rsa-clear.asc", ["--clearsign"], ["--digest-algo", "SHA512"]);
    sign(1, rsaSub, "rsa-binary.sig", ["--detach-sign"], ["--digest-algo", "SHA512"]);
    sign(1, rsaSub, "rsa-sha1.sig", ["--detach-sign"], ["--digest-algo", "SHA1"]);
    exportBinary("rsa.gpg", rsa);
    keys.rsa = fingerprints(rsa);

    // expired: expires at T0 + 1 day; signed at T0 + 1 hour.
    const expired = newKey("expired", "ed25519", "sign", "1d");
    sign(1, expired, "expired.sig", ["--detach-sign"]);
    exportBinary("expired.gpg", expired);
    keys.expired = fingerprints(expired);

    // late: signed at T0 + 5 days; then its newest self-signature (T0 + 1 hour)
    // gives it an expiry of T0 + 1 day 1 hour, before that signature.
    const late = newKey("late", "ed25519", "sign", "never");
    sign(120, late, "late.sig", ["--detach-sign"]);
    gpg(1, ["--quick-set-expire", late, "1d"]);
    exportBinary("late.gpg", late);
    keys.late = fingerprints(late);

    // subexp: the signing subkey expires at T0 + 1 day, the primary key never.
    const subexp = newKey("subexp", "ed25519", "cert", "never");
    gpg(0, ["--quick-add-key", subexp, "ed25519", "sign", "1d"]);
    sign(1, fingerprints(subexp)[1]!, "subexp.sig", ["--detach-sign"]);
    exportBinary("subexp.gpg", subexp);
    keys.subexp = fingerprints(subexp);

    // revoked: signed at T0 + 1 hour, then revoked with the revocation
    // certificate gpg stored at creation (armor lines prefixed by ":").
    const revoked = newKey("revoked", "ed25519", "sign", "never");
    sign(1, revoked, "revoked.sig", ["--detach-sign"]);
    const cert = readFileSync(`${home}/openpgp-revocs.d/${revoked}.rev`, "utf8").replace(/^:/gm, "");
    gpg(2, ["--import"], cert);
    exportBinary("revoked.gpg", revoked);
    keys.revoked = fingerprints(revoked);

    // subrevoked: the signing subkey is revoked at T0 + 2 hours.
    const subrevoked = newKey("subrevoked", "ed25519", "cert", "never");
    gpg(0, ["--quick-add-key", subrevoked, "ed25519", "sign", "never"]);
    sign(1, fingerprints(subrevoked)[1]!, "subrevoked.sig", ["--detach-sign"]);
    editKey(2, subrevoked, ["key 1", "revkey", "y", "0", "", "y", "save"]);
    exportBinary("subrevoked.gpg", subrevoked);
    keys.subrevoked = fingerprints(subrevoked);

    // sub: a good signing subkey (the tests break its binding in several
    // ways); sub-auth.gpg is the same key after its binding was replaced at
    // T0 + 2 hours by one that only allows authentication.
    const sub = newKey("sub", "ed25519", "cert", "never");
    gpg(0, ["--quick-add-key", sub, "ed25519", "sign", "never"]);
    sign(1, fingerprints(sub)[1]!, "sub.sig", ["--detach-sign"]);
    exportBinary("sub.gpg", sub);
    editKey(2, sub, ["key 1", "change-usage", "S", "A", "Q", "save"]);
    exportBinary("sub-auth.gpg", sub);
    keys.sub = fingerprints(sub);

    // sigexp: the signature (made at T0 + 1 hour) expires one day later.
    const sigexp = newKey("sigexp", "ed25519", "sign", "never");
    sign(1, sigexp, "sigexp.sig", ["--detach-sign"], ["--default-sig-expire", "1d"]);
    exportBinary("sigexp.gpg", sigexp);
    keys.sigexp = fingerprints(sigexp);

    writeFileSync(`${out}/manifest.json`, JSON.stringify({ keys } satisfies Manifest, null, 1) + "\n");
  } finally {
    Bun.spawnSync(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], { stdout: "ignore", stderr: "ignore" });
    rmSync(home, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const out = process.argv[2];
  if (!out) throw new Error("usage: bun tests/unit/bootstrap/pgp-fixtures.ts OUTDIR");
  makePgpFixtures(out);
}
