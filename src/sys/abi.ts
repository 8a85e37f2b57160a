import type { FFIFunction } from "bun:ffi";
// The one source of truth for the wire format between TypeScript and the C shim.
// build.ts generates shim/nsh_abi.h from this module; a unit test compares the
// numbers the built shim reports with the ones here.
//
// A plan is one flat buffer:
//   header  (HEADER_SIZE bytes)
//   ops     (nops * OP_SIZE bytes, fixed records)
//   strings (a string table; ops refer to it by byte offset; offset 0 is "")
// Strings are NUL-terminated. Binary payloads (file contents, BPF programs,
// argv blocks) are stored the same way and carry their length in a number slot.

export const ABI_MAGIC = 0x4e534831; // "NSH1"
export const ABI_VERSION = 8;

/** Header layout: u32 magic, u32 version, u32 nops, u32 strtab_len, u64 clone_flags, i32 cgroup_fd, u32 reserved.
 * cgroup_fd >= 0: start the child in that cgroup2 directory (clone3 CLONE_INTO_CGROUP). */
export const HEADER_SIZE = 32;
/** Op layout: u32 kind, u32 flags, u32 s[4], u64 n[4]. */
export const OP_SIZE = 56;
/** Message from the child: u32 type, u32 op, i32 errno, u32 arg. */
export const MSG_SIZE = 16;
/** "no string" marker in an op's string slot. */
export const NO_STRING = 0xffffffff;
/** fd slots an op may fill and use (fd-passing, detached mounts). */
export const FD_SLOTS = 16;

/** Operation kinds. Comments say which slots each one reads. */
export const OP = {
  NOP: 0,
  /** tell the parent we reached barrier n0, wait for its go-ahead */
  BARRIER: 1,
  /** setns(open(s1), n0); s1 is a host path (/proc/PID/ns/x) */
  SETNS: 2,
  /** unshare(n0) */
  UNSHARE: 3,
  /** fork; the parent waits and exits with the child's status; the child goes on */
  FORK_WAIT: 4,
  /** fork; the parent becomes a minimal init (reap, forward signals): if n1, by exec'ing the fd n0 (closed in the child); the child goes on as PID 2 */
  STUB_INIT: 5,
  /** prctl(n0, n1, n2) */
  PRCTL: 6,
  /** mount(s0, s1, s2, n0, s3) */
  MOUNT: 7,
  /** change mount attributes of s1: set n0, clear n1 (MOUNT_ATTR_*); n2 = propagation (MS_*) */
  SETATTR: 8,
  /** umount2(s1, n0) */
  UMOUNT: 9,
  /** mkdir -p s1 with mode n0 */
  MKDIR: 10,
  /** mknod(s1, n0 mode, n1 dev) */
  MKNOD: 11,
  /** symlink(s0 -> s1) */
  SYMLINK: 12,
  /** write s0 (n1 bytes) to s1, mode n0 */
  WRITE: 13,
  /** lchown(s1, n0, n1) */
  CHOWN: 14,
  /** chmod(s1, n0) */
  CHMOD: 15,
  /** pivot_root into s1 (a host path), drop the old root */
  PIVOT: 16,
  /** open s1 as the root every IN_ROOT path is resolved in */
  SET_ROOT: 17,
  /** sethostname(s0) */
  HOSTNAME: 18,
  /** allocate a pty from ptmx s1, symlink s2 -> pts/N, send the master to the parent, keep the slave;
   * n0/n1 (when both are set): its rows and columns */
  CONSOLE: 19,
  /** setsid(); with F_CTTY also make the console (or fd 0) the controlling tty and put it on 0,1,2 */
  SETSID: 20,
  /** setrlimit(n0, {n1, n2}) */
  RLIMIT: 21,
  /** personality(n0) */
  PERSONALITY: 22,
  /** sched_setaffinity(0, n0 bytes at s0) */
  AFFINITY: 23,
  /** install the seccomp BPF program at s0 (n0 instructions) */
  SECCOMP: 24,
  /** drop every capability not in n0 from the bounding set */
  CAPBSET: 25,
  /** setgroups(n0 gids at s0) */
  SETGROUPS: 26,
  /** setresgid(n0, n0, n0) */
  SETGID: 27,
  /** setresuid(n0, n0, n0) */
  SETUID: 28,
  /** capset effective=permitted=inheritable=n0, ambient=n1 */
  CAPS: 29,
  /** chdir(s1); F_OPTIONAL falls back to "/" */
  CHDIR: 30,
  /** close every fd >= n0 except the sync socket (which is close-on-exec) and, if n2, fd n1 */
  CLOSE_FROM: 31,
  /** unblock all signals and reset their handlers */
  SIGRESET: 32,
  /** execve(s0, argv block s1 (n0 entries), envp block s2 (n1 entries)); F_SEARCH_PATH, F_FALLBACK */
  EXEC: 33,
  /** receive an fd from the parent into slot n2 */
  RECV_FD: 34,
  /** send the fd in slot n2 to the parent, tagged n0 */
  SEND_FD: 35,
  /** open s1 (flags n0, mode n1) into slot n2 */
  OPEN: 36,
  /** move_mount the detached mount in slot n2 onto s1 */
  MOVE_MOUNT: 37,
  /** open_tree(s1, n0) into slot n2 (a detached copy of a mount tree) */
  OPEN_TREE: 38,
  /** rmdir(s1) */
  RMDIR: 39,
  /** setdomainname(s0) */
  DOMAINNAME: 40,
  /** send our pid as seen from the parent's pid namespace to the parent (SCM_CREDENTIALS) */
  SEND_PID: 41,
  /** unlink(s1), a file or symlink */
  UNLINK: 42,
  /** _exit(n0): the end of a plan that runs no program (bind into a running machine) */
  EXIT: 43,
  /** bring the link named s1 up in our network namespace (loopback) */
  IFUP: 44,
  /** a datagram unix socket bound at s1 (inside the root with DST_IN_ROOT), into slot n2 (the notify socket) */
  BIND_SOCKET: 45,
  /** the umask the exec'd payload gets: n0 (the plan's own ops run with 0; without this op, 022) */
  UMASK: 46,
} as const;
export type OpKind = (typeof OP)[keyof typeof OP];

/**
 * The parent's side of a plan: steps the spawning process runs while the
 * child works through its ops, in order, each tied to where it stands among
 * the go-aheads (GO answers the child's BARRIER with the same id). The shim
 * runs them (nsh_parent_run) in the same record format as the child's ops,
 * with these kinds (numbered apart from OP: the child refuses them), until a
 * STEP, which TypeScript runs. Fds of user namespaces live in registers
 * (n0), detached mounts queue up until the next GO sends them, in order.
 */
export const POP = {
  /** write the child's uid_map s0 and gid_map s1; its user namespace into register n0 */
  MAP_USERNS: 100,
  /** a new user namespace with uid_map s0 and gid_map s1 into register n0 */
  MAKE_USERNS: 101,
  /** a detached copy of the mount at s1 (recursive if n1), idmapped through register n0; queued */
  IDMAP_TREE: 102,
  /** a detached copy of the mount at s1 (recursive if n1); queued */
  CLONE_TREE: 103,
  /** a tmpfs with options s0 holding n0 device nodes (names block s1, u64 device numbers at s2), owned by n1:n2; queued */
  MAKE_DEVFS: 104,
  /** lchown each of the n0 paths (block s1) to n1:n2 */
  CHOWN_PATHS: 105,
  /** close register n0 */
  CLOSE_REG: 106,
  /** the go-ahead for barrier n0, then the queued mounts (closed once sent) */
  GO: 107,
  /** a step TypeScript runs (n0 names it, see plan.ts PARENT_STEPS): the shim stops here */
  STEP: 108,
} as const;
/** registers and queue of nsh_parent_run's state (an i32 array the caller keeps across calls) */
export const PARENT_REGS = 8;
export const PARENT_QUEUE = 16;
/** state: PARENT_REGS registers, then the queue's length, then PARENT_QUEUE fds */
export const PARENT_STATE_SIZE = PARENT_REGS + 1 + PARENT_QUEUE;

/** Op flags (the u32 flags field). */
export const F = {
  /** the target path (s1) is resolved inside the root (openat2 RESOLVE_IN_ROOT) */
  DST_IN_ROOT: 1 << 0,
  /** the source path (s0) is resolved inside the root */
  SRC_IN_ROOT: 1 << 1,
  /** a failure with ENOENT (or EEXIST for creation ops) is not an error */
  OPTIONAL: 1 << 2,
  /** create the target as a directory first (mkdir -p) */
  MKDIR: 1 << 3,
  /** create the target as an empty regular file first (parents too) */
  MKFILE: 1 << 4,
  /** SETATTR/MOUNT: apply recursively */
  RECURSIVE: 1 << 5,
  /** SETSID: acquire a controlling tty */
  CTTY: 1 << 6,
  /** EXEC: look the name up in PATH from the new environment */
  SEARCH_PATH: 1 << 7,
  /** EXEC: on ENOENT/ENOTDIR/EACCES go on with the next op instead of failing */
  FALLBACK: 1 << 8,
  /** WRITE: create the file (O_CREAT) */
  CREATE: 1 << 9,
  /** WRITE: truncate (O_TRUNC) */
  TRUNC: 1 << 10,
  /** any failure at all is ignored */
  IGNORE_ERRORS: 1 << 11,
  /** do not follow a symlink in the final component */
  NOFOLLOW: 1 << 12,
  /** SETATTR: n3 holds an fd slot with a user namespace for MOUNT_ATTR_IDMAP */
  IDMAP_SLOT: 1 << 13,
  /** CONSOLE: put the pty on fds 0,1,2 right away */
  STDIO: 1 << 14,
  /** SETSID: only make fd 0 (already a tty) the controlling terminal */
  CTTY_STDIN: 1 << 15,
  /** MOUNT: bind the inaccessible node matching the target's type (s0 is the directory holding them) */
  INACCESSIBLE: 1 << 16,
  /** MOUNT: once mounted, set the attributes n1 (MOUNT_ATTR_*) on the new mount (recursively with RECURSIVE) */
  SETATTR_AFTER: 1 << 17,
} as const;

/** Message types from the child to the parent. */
export const MSG = {
  ERROR: 1,
  BARRIER: 2,
  FD: 3,
  PID: 4,
} as const;

/**
 * Control bytes, one per message, the parent sends: to a child at a barrier
 * (the go-ahead, and fds for its RECV_FD ops) and to a machine's supervisor
 * over its control socket (the container's netns, its console, "the links
 * exist", the go-ahead), and the supervisor's replies.
 */
export const CTL = {
  /** go on (a child at a barrier; a supervisor once the set-up is done) */
  GO: 0x67, // 'g'
  /** here is an fd (for the child's next RECV_FD op) */
  FD: 0x66, // 'f'
  /** supervisor: the container's network namespace */
  NETNS: 0x73, // 's'
  /** supervisor: the container's console (pty master) */
  CONSOLE: 0x63, // 'c'
  /** supervisor: the links exist, start answering DHCP */
  LINKS: 0x6e, // 'n'
  /** reply to LINKS: listening */
  LINKS_OK: 0x4e, // 'N'
  /** reply to LINKS: no DHCP socket */
  LINKS_ERROR: 0x45, // 'E'
  /** console socket, both ways: console data follows (to a client: type, u16 LE length, data; see the supervisor's sup_client_send) */
  CONSOLE_DATA: 0x64, // 'd'
  /** console socket, to a client once it connects: the console's recent output follows; an empty one ends it */
  CONSOLE_HISTORY: 0x68, // 'h'
  /** console socket, to the supervisor: the window size follows (rows, cols; u16 each) */
  CONSOLE_WINSIZE: 0x77, // 'w'
} as const;

/** fd tags for MSG.FD */
export const FD_TAG = {
  CONSOLE: 1,
  SLOT: 2,
  /** the container's notify socket (/run/host/notify), for --notify-ready */
  NOTIFY: 3,
} as const;

/** What the shim exports, with their bun:ffi signatures (kept next to the ABI they speak). */
export const SHIM_SYMBOLS = {
  nsh_abi_version: { args: [], returns: "u32" },
  nsh_op_size: { args: [], returns: "u32" },
  nsh_header_size: { args: [], returns: "u32" },
  nsh_msg_size: { args: [], returns: "u32" },
  // (plan, len, fds_out[2]) -> pid or -errno; fds_out[0] = the parent's end of the sync socket
  nsh_spawn: { args: ["ptr", "u64", "ptr"], returns: "i32" },
  // (fd, msg_out[16], fd_out[1]) -> bytes (0 = EOF) or -errno
  nsh_recv: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  // (fd, byte, fd_to_pass or -1) -> 0 or -errno
  nsh_send: { args: ["i32", "u8", "i32"], returns: "i32" },
  // (pid, pipe write fd) -> 0 or -errno; a thread waits for pid and writes its wait status (i32)
  nsh_wait_async: { args: ["i32", "i32"], returns: "i32" },
  // (pid, timeout ms) -> wait status, or -errno (-ETIMEDOUT)
  nsh_wait: { args: ["i32", "i32"], returns: "i32" },
  // (path, recursive) -> a detached copy of the mount(s) at path (open_tree OPEN_TREE_CLONE), or -errno
  nsh_clone_tree: { args: ["cstring", "i32"], returns: "i32" },
  // shim/shift.c, linked into the same shared object:
  // (path, shift, stats_out u64[2]: visited, changed) -> 0 or -errno
  nsh_shift_tree: { args: ["cstring", "u32", "ptr"], returns: "i32" },
  // () -> the path the last nsh_shift_tree failed on
  nsh_shift_error_path: { args: [], returns: "cstring" },
  // (uid_map, gid_map) -> user namespace fd or -errno
  nsh_make_userns: { args: ["cstring", "cstring"], returns: "i32" },
  // (plan, len, fds_out[2], parent program, len, state, result i32[4]) -> as nsh_spawn, then the
  // parent program from its start: result[3] is where it stopped (see nsh_parent_run)
  nsh_spawn_parent: { args: ["ptr", "u64", "ptr", "ptr", "u64", "ptr", "ptr"], returns: "i32" },
  // (pid, sync fd, parent program, len, from, state, result i32[3]) -> the index of the STEP it
  // stopped at (nops: done), or -1: result[0] the op that failed, [1] errno, [2] which part of it
  nsh_parent_run: { args: ["i32", "i32", "ptr", "u64", "u32", "ptr", "ptr"], returns: "i32" },
  // (state) -> closes its registers and queued fds
  nsh_parent_release: { args: ["ptr"], returns: "void" },
  // (path, userns fd, recursive) -> detached idmapped mount fd or -errno
  nsh_idmapped_tree: { args: ["cstring", "i32", "i32"], returns: "i32" },
  // (iface, port) -> a UDP socket on INADDR_ANY:port bound to iface, or -errno
  nsh_udp_on_device: { args: ["cstring", "u32"], returns: "i32" },
  // (fsuid, fsgid) -> 0 or -errno: this thread's file system ids, effective capabilities kept
  nsh_set_fsids: { args: ["u32", "u32"], returns: "i32" },
  // (fd, on) -> 0 or -errno
  nsh_set_nonblock: { args: ["i32", "i32"], returns: "i32" },
  // (fd, on) -> 0 or -errno: whether the fd survives exec
  nsh_set_cloexec: { args: ["i32", "i32"], returns: "i32" },
  // (dirfd, path, flags, mode, resolve) -> fd or -errno: openat2(2)
  nsh_openat2: { args: ["i32", "cstring", "u64", "u32", "u64"], returns: "i32" },
  // (pty master) -> a new fd for its slave, or -errno
  nsh_pty_peer: { args: ["i32"], returns: "i32" },
  // (fd, rows, cols) -> 0 or -errno
  nsh_set_winsize: { args: ["i32", "u16", "u16"], returns: "i32" },
  // (fd, out u16[2] rows, cols) -> 0 or -errno
  nsh_get_winsize: { args: ["i32", "ptr"], returns: "i32" },
  // (fd, saved termios out (256 bytes)) -> 0 or -errno; puts the terminal in raw mode
  nsh_tty_raw: { args: ["i32", "ptr"], returns: "i32" },
  // (fd, saved termios) -> 0 or -errno
  nsh_tty_restore: { args: ["i32", "ptr"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

/** Render the C header. Called by build.ts; the output is not checked in. */
export function renderHeader(): string {
  const lines: string[] = [
    "/* Generated by build.ts from src/sys/abi.ts. Do not edit. */",
    "#ifndef NSH_ABI_H",
    "#define NSH_ABI_H",
    "#include <stdint.h>",
    "",
    `#define NSH_ABI_MAGIC 0x${ABI_MAGIC.toString(16)}u`,
    `#define NSH_ABI_VERSION ${ABI_VERSION}u`,
    `#define NSH_HEADER_SIZE ${HEADER_SIZE}u`,
    `#define NSH_OP_SIZE ${OP_SIZE}u`,
    `#define NSH_MSG_SIZE ${MSG_SIZE}u`,
    `#define NSH_NO_STRING 0x${NO_STRING.toString(16)}u`,
    `#define NSH_FD_SLOTS ${FD_SLOTS}`,
    "",
  ];
  for (const [k, v] of Object.entries(OP)) lines.push(`#define NSH_OP_${k} ${v}u`);
  for (const [k, v] of Object.entries(POP)) lines.push(`#define NSH_POP_${k} ${v}u`);
  lines.push(`#define NSH_PARENT_REGS ${PARENT_REGS}`, `#define NSH_PARENT_QUEUE ${PARENT_QUEUE}`);
  lines.push("");
  for (const [k, v] of Object.entries(F)) lines.push(`#define NSH_F_${k} 0x${v.toString(16)}u`);
  lines.push("");
  for (const [k, v] of Object.entries(MSG)) lines.push(`#define NSH_MSG_${k} ${v}u`);
  for (const [k, v] of Object.entries(FD_TAG)) lines.push(`#define NSH_FD_TAG_${k} ${v}u`);
  for (const [k, v] of Object.entries(CTL)) lines.push(`#define NSH_CTL_${k} 0x${v.toString(16)}`);
  lines.push(
    "",
    "struct nsh_header { uint32_t magic, version, nops, strtab_len; uint64_t clone_flags; int32_t cgroup_fd; uint32_t reserved; };",
    "struct nsh_op { uint32_t kind, flags; uint32_t s[4]; uint64_t n[4]; };",
    "struct nsh_msg { uint32_t type, op; int32_t err; uint32_t arg; };",
    "",
    "#endif",
    "",
  );
  return lines.join("\n");
}
