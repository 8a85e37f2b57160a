// The seed's follow-ups after a bootstrap, done from outside so that they
// need nothing in the guest: root's password (a SHA-512-crypt hash written to
// /etc/shadow, or to /etc/passwd where the tree has no shadow file; an empty
// password makes the field empty) and the hostname. The tree holds the
// packages' symlinks ("etc/hostname -> /etc/hostname" is fine inside the
// container): every path is resolved inside the tree (target.ts).
import { SpawnctlError } from "../util/errors.ts";
import { treeRead, treeWrite } from "./target.ts";
import { randomSalt, sha512crypt } from "../util/crypt.ts";

function setField(tree: string, file: string, user: string, value: string): boolean {
  const text = treeRead(tree, file);
  if (text === undefined) return false;
  const lines = text.split("\n");
  let found = false;
  const out = lines.map((l) => {
    const f = l.split(":");
    if (f[0] !== user || f.length < 2) return l;
    found = true;
    f[1] = value;
    return f.join(":");
  });
  if (!found) return false;
  treeWrite(tree, file, out.join("\n"));
  return true;
}

export function setRootPassword(tree: string, password: string): void {
  const hash = password === "" ? "" : sha512crypt(password, randomSalt());
  if (setField(tree, "etc/shadow", "root", hash)) {
    // a shadow entry's "last changed" field stays as the package wrote it
    setField(tree, "etc/passwd", "root", "x");
    return;
  }
  if (!setField(tree, "etc/passwd", "root", hash)) throw new SpawnctlError(`setting root's password: the tree has no root entry in /etc/passwd`);
}

export function setHostname(tree: string, name: string): void {
  treeWrite(tree, "etc/hostname", `${name}\n`);
  const hosts = treeRead(tree, "etc/hosts") ?? "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n";
  if (!new RegExp(`\\s${name.replace(/\./g, "\\.")}(\\s|$)`, "m").test(hosts)) treeWrite(tree, "etc/hosts", `${hosts.trimEnd()}\n127.0.1.1\t${name}\n`);
}
