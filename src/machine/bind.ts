// bind NAME SRC [DST]: a host path into a running machine with the new mount
// API: a detached copy of SRC (open_tree), made read-only if asked, moved by
// a child that has joined the leader's mount namespace onto DST, resolved
// inside the container's root. Into a machine with a user namespace (-U,
// start's default) the copy is idmapped the machine's way, so the host's
// owners show as themselves inside (the host's root as the guest's root):
// made by the parent, which sends it to the child at barrier 1.
import { statSync } from "node:fs";
import { AT_RECURSIVE, CLONE, MOUNT_ATTR, OPEN_TREE_CLONE, PR } from "../sys/consts.ts";
import type { Op, ParentOp } from "../sys/plan.ts";
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
  const mapped = m.uidShift !== undefined;
  const ops: Op[] = [
    { kind: "prctl", option: PR.SET_DUMPABLE, arg2: 0, what: "making the process non-dumpable" },
    // it joins the machine's namespaces with nothing of spawnctl's open
    { kind: "closeFrom", fd: 3 },
  ];
  let parent: ParentOp[] | undefined;
  if (mapped) {
    // the machine's mapping, in a namespace of its own (the machine's own
    // would serve as well, but its maps are what matter, and this needs no
    // handle on the machine's namespaces)
    const line = `0 ${m.uidShift} ${m.uidRange ?? 65536}\n`;
    parent = [
      { kind: "makeUserns", uidMap: line, gidMap: line, reg: 0 },
      { kind: "idmapTree", path: src, reg: 0, recursive: true, flatRetry: true, context: `Failed to bind ${src} into machine ${m.name}` },
      { kind: "closeReg", reg: 0 },
      { kind: "go", barrier: 1 },
    ];
    ops.push({ kind: "barrier", id: 1 }, { kind: "recvFd", slot: 0 });
  } else {
    ops.push({ kind: "openTree", path: src, flags: OPEN_TREE_CLONE | AT_RECURSIVE, slot: 0, inRoot: false });
  }
  if (o.readOnly) ops.push({ kind: "setattr", slot: 0, set: MOUNT_ATTR.RDONLY, recursive: true });
  if (mapped) {
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
  let child;
  try {
    child = spawnPlan({ cloneFlags: 0, ops, parent, root: `machine ${m.name}:` });
  } catch (e) {
    if (e instanceof SpawnctlError && e.errno === 2 && e.syscall === "move_mount" && !o.mkdir) {
      throw new SpawnctlError(`Failed to bind ${src} into machine ${m.name}: ${dst} does not exist in the machine (--mkdir creates it).`, { errno: 2 });
    }
    throw e;
  }
  const status = await waitExit(child.pid);
  if (status !== 0) throw new SpawnctlError(`binding ${src} into machine ${m.name} failed (status ${status}).`);
}
