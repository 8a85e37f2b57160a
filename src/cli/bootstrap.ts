// `spawnctl bootstrap debian|ubuntu SUITE DEST [OPTIONS]` and
// `spawnctl bootstrap arch DEST [PKG...] [OPTIONS]`.
import { config } from "../settings/config.ts";
import { fullJit } from "../util/jit.ts";
import { readFileSync } from "node:fs";
import { usage } from "../util/errors.ts";
import { print, setQuiet } from "../util/log.ts";
import { parseArgv, type OptionSpec } from "./machinectl.ts";
import { isValidMachineName } from "../settings/parse.ts";

export const BOOTSTRAP_HELP = `spawnctl bootstrap debian|ubuntu SUITE DEST [OPTIONS...]
spawnctl bootstrap arch DEST [PACKAGE...] [OPTIONS...]

Create an OS tree from a package mirror, a package cache or a bundle, with
every signature and checksum verified. DEST is a directory, or a machine
name (a directory in /var/lib/machines).

Debian and Ubuntu:
     --mirror=URL            Archive to use (default: $SPAWNCTL_MIRROR, else the
                             host's apt sources; Ubuntu: $SPAWNCTL_UBUNTU_MIRROR)
     --variant=VARIANT       minbase (default), buildd, required, important, standard
     --include=PKG,...       Add packages
     --exclude=PKG,...       Leave packages out
     --components=C,...      Archive components (default: main)
     --arch=ARCH             Architecture (default: amd64)
     --merged-usr=BOOL       /bin, /sbin, /lib as links into /usr (default: yes)
     --check-valid-until=BOOL  Refuse an expired Release file (default: yes)
     --download-only --bundle=FILE
                             Fetch and verify everything into one file, install nothing
     --from-bundle=FILE      Install from a bundle, with no network; SUITE (may
                             be left out), --arch, --variant and --components
                             must be what it holds, --include what it has

Arch Linux:
     --mirror=URL            Repository base: URL/$repo/os/$arch, or a URL with
                             $repo and $arch in it; file:// too (default:
                             $SPAWNCTL_ARCH_MIRROR, else the host's mirrorlist)
     --cache-dir=DIR         With --mirror: where downloads are kept and reused.
                             Alone: install offline from a pacman cache DIR (the
                             packages and .sig files, with each repository's
                             database as DIR/REPO.db or DIR/sync/REPO.db)
     --repos=core,extra      Repositories to use, in this order
     --arch=ARCH             Architecture (default: x86_64)
     --keyring=FILE          Trusted signers; FILE minus .gpg plus -revoked, when
                             present, lists keys to refuse (pacman-key's layout)

Common:
     --keyring=FILE          Keyring to verify with (default: the embedded one)
     --no-verify             Skip the signature checks (loud; not recommended)
     --cache-dir=DIR         Where downloaded packages are kept
                             (default: /var/cache/spawnctl/packages)
     --root-password=PW      Set root's password ('' for none)
     --root-password-file=F  ... read from a file
     --hostname=NAME         Write /etc/hostname
  -q --quiet                 No progress output
  -h --help                  Show this help
`;

export const SPECS: OptionSpec[] = [
  { key: "mirror", long: "mirror", value: true },
  { key: "variant", long: "variant", value: true },
  { key: "include", long: "include", value: true },
  { key: "exclude", long: "exclude", value: true },
  { key: "components", long: "components", value: true },
  { key: "arch", long: "arch", value: true },
  { key: "keyring", long: "keyring", value: true },
  { key: "cacheDir", long: "cache-dir", value: true },
  { key: "mergedUsr", long: "merged-usr", value: true },
  { key: "rootPassword", long: "root-password", value: true },
  { key: "rootPasswordFile", long: "root-password-file", value: true },
  { key: "hostname", long: "hostname", value: true },
  { key: "checkValidUntil", long: "check-valid-until", value: true },
  { key: "noVerify", long: "no-verify", value: false },
  { key: "downloadOnly", long: "download-only", value: false },
  { key: "bundle", long: "bundle", value: true },
  { key: "fromBundle", long: "from-bundle", value: true },
  { key: "repos", long: "repos", value: true },
  { key: "quiet", long: "quiet", short: "q", value: false },
  { key: "help", long: "help", short: "h", value: false },
];

export const VARIANTS = ["minbase", "buildd", "required", "important", "standard", "essential"];

function bool(v: string | undefined, flag: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (/^(1|yes|y|true|t|on)$/i.test(v)) return true;
  if (/^(0|no|n|false|f|off)$/i.test(v)) return false;
  throw usage(`Failed to parse ${flag}= argument ${v}: Invalid argument`);
}

/** DEST: a path, or a machine name for /var/lib/machines/NAME */
export function destination(d: string): string {
  if (d.includes("/") || d === "." || d === "..") return d.startsWith("/") ? d : `${process.cwd()}/${d}`;
  if (!isValidMachineName(d)) throw usage(`Invalid machine name: ${d}`);
  return `/var/lib/machines/${d}`;
}

export async function bootstrapMain(argv: string[]): Promise<number> {
  fullJit();
  const { values, positional } = parseArgv(argv, SPECS);
  const last = (k: string) => values.get(k)?.at(-1);
  const list = (k: string) => (values.get(k) ?? []).flatMap((v) => v.split(/[,\s]+/)).filter(Boolean);
  if (values.has("help") || positional.length === 0) {
    print(BOOTSTRAP_HELP);
    return values.has("help") ? 0 : 1;
  }
  setQuiet(values.has("quiet"));
  if (process.getuid?.() !== 0) throw usage("Need to be root.");
  let rootPassword = last("rootPassword");
  const pwFile = last("rootPasswordFile");
  if (pwFile !== undefined) {
    if (rootPassword !== undefined) throw usage("--root-password= and --root-password-file= may not be combined.");
    rootPassword = readFileSync(pwFile, "utf8").replace(/\r?\n$/, "");
  }
  if (rootPassword !== undefined && rootPassword.includes("\n")) throw usage("The root password may not contain a newline.");
  const [distro, ...rest] = positional;
  const verify = !values.has("noVerify");
  const cacheDir = last("cacheDir") ?? config().bootstrap["cache-dir"] ?? "/var/cache/spawnctl/packages";
  switch (distro) {
    case "debian":
    case "ubuntu": {
      const fromBundle = last("fromBundle");
      const [suite, dest] = fromBundle && rest.length === 1 ? ["", rest[0]] : rest;
      const downloadOnly = values.has("downloadOnly");
      if (!suite && !fromBundle) throw usage(`Usage: spawnctl bootstrap ${distro} SUITE DEST`);
      if (!dest && !downloadOnly) throw usage(`Usage: spawnctl bootstrap ${distro} SUITE DEST`);
      // variant, arch and components left out stay undefined: the defaults
      // (minbase, amd64, main), or with --from-bundle what the bundle holds
      const variant = last("variant");
      if (variant !== undefined && !VARIANTS.includes(variant)) throw usage(`Unknown --variant=${variant}; one of ${VARIANTS.join(", ")}.`);
      if (fromBundle && values.has("mirror")) throw usage("--mirror= and --from-bundle= may not be combined: a bundle is its own mirror.");
      const { bootstrapDebian } = await import("../bootstrap/debian.ts");
      await bootstrapDebian({
        distro, suite: suite ?? "", dest: dest ? destination(dest) : "", mirror: last("mirror"), variant: variant as never,
        include: list("include"), exclude: list("exclude"), components: list("components").length ? list("components") : undefined,
        arch: last("arch"), keyring: last("keyring"), cacheDir: `${cacheDir}/${distro}`,
        mergedUsr: bool(last("mergedUsr"), "--merged-usr", true), rootPassword, hostname: last("hostname"),
        checkValidUntil: bool(last("checkValidUntil"), "--check-valid-until", true), verify, downloadOnly,
        bundle: last("bundle"), fromBundle,
      });
      return 0;
    }
    case "arch": {
      const [dest, ...pkgs] = rest;
      if (!dest) throw usage("Usage: spawnctl bootstrap arch DEST [PACKAGE...]");
      for (const k of ["downloadOnly", "bundle", "fromBundle", "variant", "include", "exclude", "components", "mergedUsr", "checkValidUntil"]) {
        if (values.has(k)) throw usage(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is not supported for Arch Linux (name the packages after DEST; use --cache-dir=DIR for offline installs).`);
      }
      const { bootstrapArch } = await import("../bootstrap/arch.ts");
      await bootstrapArch({
        dest: destination(dest), packages: pkgs.length ? pkgs : ["base"], mirror: last("mirror"), cacheDir: last("cacheDir"),
        repos: list("repos").length ? list("repos") : ["core", "extra"], keyring: last("keyring"), verify, rootPassword, hostname: last("hostname"),
        arch: last("arch") ?? "x86_64",
      });
      return 0;
    }
    default:
      throw usage(`Unknown distribution '${distro}': debian, ubuntu or arch.`);
  }
}
