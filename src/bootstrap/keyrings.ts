// The archive keyrings embedded in the binary (build.ts puts them in
// build/keyrings); --keyring=FILE replaces them.
import { readFileSync } from "node:fs";
import debian from "../../build/keyrings/debian.gpg" with { type: "file" };
import ubuntu from "../../build/keyrings/ubuntu.gpg" with { type: "file" };
import archlinux from "../../build/keyrings/archlinux.gpg" with { type: "file" };
import { SpawnctlError } from "../util/errors.ts";
import { parseKeyring, type Keyring } from "../archive/pgp.ts";

const EMBEDDED: Record<string, string> = { debian, ubuntu, archlinux };

export function loadKeyring(distro: "debian" | "ubuntu" | "archlinux", file?: string): Keyring {
  if (file) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new SpawnctlError(`reading the keyring ${file}: ${(e as Error).message}`);
    }
    return parseKeyring(bytes, file);
  }
  const bytes = readFileSync(EMBEDDED[distro]!);
  if (bytes.length === 0) throw new SpawnctlError(`This build of spawnctl has no ${distro} keyring embedded; pass --keyring=FILE (or --no-verify).`);
  return parseKeyring(bytes, `the embedded ${distro} keyring`);
}
