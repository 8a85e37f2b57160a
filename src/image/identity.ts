// A new image made from another (clone, import-tar, import-fs, pull-tar) is
// a new machine: it must not share the source's machine ID (journal
// directories, DHCP client IDs, D-Bus, anything keyed by it would clash).
// As distributions ship their images, /etc/machine-id is left empty (it
// exists, zero length, mode 0444), so the guest's systemd initialises a
// fresh ID at its first boot (see machine-id(5)). A tree without the file is
// left without; raw disk images are not changed (nothing mounts them).
//
// The tree is untrusted (an archive's /etc may be a symlink to the host's):
// /etc is resolved inside the tree, and machine-id itself is never followed.
import { closeSync, fstatSync } from "node:fs";
import { O } from "../sys/consts.ts";
import { RESOLVE, chmodFd, lchownat, openat2, tryOpenat2, unlinkat } from "../sys/at.ts";
import { strerror } from "../sys/ffi.ts";
import { SpawnctlError } from "../util/errors.ts";

const ENOENT = 2;
const ENOTDIR = 20;
const ELOOP = 40;

/** Empty the tree's /etc/machine-id if it is a regular file; true if it was. The owner is kept (a shifted tree's root). */
export function resetMachineId(tree: string, doing: string): boolean {
  const what = `${doing}: resetting /etc/machine-id in ${tree}`;
  const root = openat2(-100, tree, O.PATH | O.DIRECTORY | O.CLOEXEC, 0, 0, what);
  let etc = -1;
  try {
    etc = tryOpenat2(root, "etc", O.PATH | O.DIRECTORY | O.CLOEXEC, 0, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS);
    // no /etc, or none that resolves inside the tree (a link to itself, "/etc")
    if (etc === -ENOENT || etc === -ENOTDIR || etc === -ELOOP) return false;
    if (etc < 0) throw new SpawnctlError(`${what}: ${strerror(-etc)}`, { errno: -etc });
    // the entry itself (a symlink is not followed, and is left as it is)
    const old = tryOpenat2(etc, "machine-id", O.PATH | O.NOFOLLOW | O.CLOEXEC, 0, RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS);
    if (old === -ENOENT) return false;
    if (old < 0) throw new SpawnctlError(`${what}: ${strerror(-old)}`, { errno: -old });
    let uid: number;
    let gid: number;
    try {
      const st = fstatSync(old);
      if (!st.isFile()) return false;
      uid = st.uid;
      gid = st.gid;
    } finally {
      closeSync(old);
    }
    // a new inode: a hard link of the old one elsewhere in the tree keeps its content
    const e = unlinkat(etc, "machine-id", false);
    if (e && e !== ENOENT) throw new SpawnctlError(`${what}: ${strerror(e)}`, { errno: e });
    const fd = openat2(etc, "machine-id", O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o444, RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS, what);
    try {
      lchownat(fd, "", uid, gid, what);
      chmodFd(fd, 0o444, what);
    } finally {
      closeSync(fd);
    }
    return true;
  } finally {
    if (etc >= 0) closeSync(etc);
    closeSync(root);
  }
}
