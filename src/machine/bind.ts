// bind NAME SRC [DST]: a host path into a running machine with the new mount
// API: a detached copy of SRC (open_tree), made read-only if asked, moved by
// a child that has joined the leader's mount namespace onto DST, resolved
// inside the container's root.
import { statSync } from "node:fs";
import { AT_RECURSIVE, CLONE, MOUNT_ATTR, OPEN_TREE_CLONE, PR } from "../sys/consts.ts";
import type { Op } from "../sys/plan.ts";
import { spawnPlan } from "../container/spawn.ts";
import { waitExit } from "../container/supervisor.ts";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { MachineState } from "../container/registry.ts";

export async function bindInto(m: MachineState, src: string, dst: string, o: { readOnly: boolean; mkdir: boolean }): Promise<void> {
  let isDir: boolean;
  try {
    isDir = statSync(src).isDirectory();
  } catch (e) {
    throw new SpawnctlError(`Failed to bind ${src}: ${fsMessage(e)}`);
  }
  const ops: Op[] = [
    { kind: "prctl", option: PR.SET_DUMPABLE, arg2: 0, what: "making the process non-dumpable" },
    // it joins the machine's namespaces with nothing of spawnctl's open
    { kind: "closeFrom", fd: 3 },
    { kind: "openTree", path: src, flags: OPEN_TREE_CLONE | AT_RECURSIVE, slot: 0, inRoot: false },
  ];
  if (o.readOnly) ops.push({ kind: "setattr", slot: 0, set: MOUNT_ATTR.RDONLY, recursive: true });
  if (m.uidShift !== undefined) {
    // a user-namespaced machine's root cannot hold what the host's root
    // creates (the --mkdir target): become the machine's root first
    ops.push(
      { kind: "setns", path: `/proc/${m.leader}/ns/user`, nstype: CLONE.NEWUSER },
      { kind: "setgroups", gids: [] }, { kind: "setgid", gid: 0 }, { kind: "setuid", uid: 0 },
    );
  }
  ops.push(
    { kind: "setns", path: `/proc/${m.leader}/ns/mnt`, nstype: CLONE.NEWNS },
    { kind: "setRoot", path: "/" },
    { kind: "moveMount", slot: 0, dst, dstInRoot: true, mkdir: o.mkdir && isDir, mkfile: o.mkdir && !isDir },
    { kind: "exit", code: 0 },
  );
  const child = spawnPlan({ cloneFlags: 0, ops, root: `machine ${m.name}:` });
  const status = await waitExit(child.pid);
  if (status !== 0) throw new SpawnctlError(`binding ${src} into machine ${m.name} failed (status ${status}).`);
}
