// systemd's named system call groups ("@name" sets, as used by SystemCallFilter= and by
// systemd-nspawn) and nspawn's default seccomp policy, written down as plain data.
//
// Facts taken from systemd v257.13 (the newest v257 stable tag available to us):
// syscall_filter_sets[] in src/shared/seccomp-util.c and the allow list in
// src/nspawn/nspawn-seccomp.c. Differences to other versions in the v252..v257 range are
// summarised below and above NSPAWN_ALLOW. Lists are our own layout: members sorted by
// code point, group references ("@name") first; the caller expands references.
//
// "@known" is deliberately absent: systemd defines it as @obsolete plus every system call
// name the kernel knows, which the caller derives from the syscall tables.
//
// Names with no number on an architecture are expected here: the groups cover all
// architectures systemd supports (arm, ppc, s390, riscv, mips, ...) and both 32- and
// 64-bit ABIs, so e.g. "cacheflush", "set_tls", "fstatat", "llseek" or "getuid32" appear
// even though x86_64 has no such call. The filter compiler skips names without a number
// on the target arch. With the tables in syscalls.ts, 109 member names have no x86_64
// number and 32 have no i386 number.
//
// Changes across v252..v257 that matter for the groups:
// - v254 added the @sandbox group; futex_waitv and riscv_hwprobe joined @default;
//   quotactl_fd joined @privileged; set_mempolicy_home_node joined @resources;
//   arm_fadvise64_64 joined @system-service.
// - v255 added fchmodat2 to @file-system.
// - v257 put @sandbox, mseal and uretprobe into @default, llseek into @basic-io, and
//   fstatat, newfstat, statmount, listmount and the *xattrat calls into @file-system.
// - v257 point releases added file_getattr/file_setattr to @file-system (v257.9) and
//   lsm_get_self_attr/lsm_list_modules to @default (v257.11).
// (v258 later moved open_tree from @mount to @file-system and added open_tree_attr to
// @mount; nspawn allows both groups, so that does not change its policy.)
import { SYSCALLS_I386, SYSCALLS_X86_64 } from "../sys/syscalls.ts";
import { SYSCALLS_AARCH64 } from "../sys/syscalls-aarch64.ts";

export const SYSCALL_GROUPS: Record<string, readonly string[]> = {
  // Needed by practically every program: exit/exec, identity and time queries, sleeping, futexes,
  // thread setup, basic memory mapping. Pulls in @sandbox.
  "@default": [
    "@sandbox", "arch_prctl", "brk", "cacheflush", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "execve",
    "exit", "exit_group", "futex", "futex_time64", "futex_waitv", "get_robust_list",
    "get_thread_area", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid", "getppid", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "getsid", "gettid", "gettimeofday",
    "getuid", "getuid32", "lsm_get_self_attr", "lsm_list_modules", "membarrier", "mmap", "mmap2",
    "mprotect", "mseal", "munmap", "nanosleep", "pause", "prlimit64", "restart_syscall",
    "riscv_flush_icache", "riscv_hwprobe", "rseq", "rt_sigreturn", "sched_getaffinity",
    "sched_yield", "set_robust_list", "set_thread_area", "set_tid_address", "set_tls", "sigreturn",
    "time", "ugetrlimit", "uretprobe",
  ],
  // Kernel asynchronous I/O: the io_* calls and io_uring.
  "@aio": [
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
  ],
  // Reading, writing, seeking and closing/duplicating file descriptors.
  "@basic-io": [
    "_llseek", "close", "close_range", "dup", "dup2", "dup3", "llseek", "lseek", "pread64",
    "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readv", "write", "writev",
  ],
  // Changing file owner and group.
  "@chown": [
    "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
  ],
  // Setting or slewing the system clock.
  "@clock": [
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
    "settimeofday",
  ],
  // Legacy CPU mode emulation (vm86, LDT editing and similar arch oddities).
  "@cpu-emulation": [
    "modify_ldt", "subpage_prot", "switch_endian", "vm86", "vm86old",
  ],
  // Tracing, profiling and poking at other processes.
  "@debug": [
    "lookup_dcookie", "perf_event_open", "pidfd_getfd", "ptrace", "rtas", "s390_runtime_instr",
    "sys_debug_setcontext",
  ],
  // Path and file operations: open/stat, directories, links, xattrs, inotify, fs-level mmap.
  "@file-system": [
    "access", "chdir", "chmod", "close", "creat", "faccessat", "faccessat2", "fallocate", "fchdir",
    "fchmod", "fchmodat", "fchmodat2", "fcntl", "fcntl64", "fgetxattr", "file_getattr",
    "file_setattr", "flistxattr", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat",
    "fstatat64", "fstatfs", "fstatfs64", "ftruncate", "ftruncate64", "futimesat", "getcwd",
    "getdents", "getdents64", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "lgetxattr", "link", "linkat", "listmount", "listxattr",
    "listxattrat", "llistxattr", "lremovexattr", "lsetxattr", "lstat", "lstat64", "mkdir",
    "mkdirat", "mknod", "mknodat", "newfstat", "newfstatat", "oldfstat", "oldlstat", "oldstat",
    "open", "openat", "openat2", "readlink", "readlinkat", "removexattr", "removexattrat", "rename",
    "renameat", "renameat2", "rmdir", "setxattr", "setxattrat", "stat", "stat64", "statfs",
    "statfs64", "statmount", "statx", "symlink", "symlinkat", "truncate", "truncate64", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
  ],
  // Event loops: poll/select/epoll and eventfd.
  "@io-event": [
    "_newselect", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "poll", "ppoll",
    "ppoll_time64", "pselect6", "pselect6_time64", "select",
  ],
  // SysV IPC, POSIX message queues, pipes, memfd and cross-process memory access.
  "@ipc": [
    "ipc", "memfd_create", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
    "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "process_madvise", "process_vm_readv",
    "process_vm_writev", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat",
    "shmctl", "shmdt", "shmget",
  ],
  // The kernel key retention service.
  "@keyring": [
    "add_key", "keyctl", "request_key",
  ],
  // Locking pages in RAM.
  "@memlock": [
    "mlock", "mlock2", "mlockall", "munlock", "munlockall",
  ],
  // Loading and removing kernel modules.
  "@module": [
    "delete_module", "finit_module", "init_module",
  ],
  // Mounting, unmounting and root switching, including the new mount API.
  "@mount": [
    "chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount",
    "open_tree", "pivot_root", "umount", "umount2",
  ],
  // Sockets: create, connect, accept, send and receive.
  "@network-io": [
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
    "sendto", "setsockopt", "shutdown", "socket", "socketcall", "socketpair",
  ],
  // Calls that are obsolete, rare or were never implemented.
  "@obsolete": [
    "_sysctl", "afs_syscall", "bdflush", "break", "create_module", "ftime", "get_kernel_syms",
    "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil", "putpmsg", "query_module",
    "security", "sgetmask", "ssetmask", "stime", "stty", "sysfs", "tuxcall", "ulimit", "uselib",
    "ustat", "vserver",
  ],
  // Memory protection keys.
  "@pkey": [
    "pkey_alloc", "pkey_free", "pkey_mprotect",
  ],
  // Calls that only make sense with superuser capabilities.
  "@privileged": [
    "@chown", "@clock", "@module", "@raw-io", "@reboot", "@swap", "_sysctl", "acct", "bpf",
    "capset", "chroot", "fanotify_init", "fanotify_mark", "nfsservctl", "open_by_handle_at",
    "pivot_root", "quotactl", "quotactl_fd", "setdomainname", "setfsuid", "setfsuid32", "setgroups",
    "setgroups32", "sethostname", "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid",
    "setuid32", "vhangup",
  ],
  // Creating, signalling, waiting for and namespacing processes.
  "@process": [
    "capget", "clone", "clone3", "execveat", "fork", "getrusage", "kill", "pidfd_open",
    "pidfd_send_signal", "prctl", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "setns", "swapcontext",
    "tgkill", "times", "tkill", "unshare", "vfork", "wait4", "waitid", "waitpid",
  ],
  // Direct I/O port and PCI config space access.
  "@raw-io": [
    "ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "s390_pci_mmio_read",
    "s390_pci_mmio_write",
  ],
  // Rebooting and loading a new kernel.
  "@reboot": [
    "kexec_file_load", "kexec_load", "reboot",
  ],
  // Changing scheduling, priority, CPU/NUMA placement and resource limits.
  "@resources": [
    "ioprio_set", "mbind", "migrate_pages", "move_pages", "nice", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "set_mempolicy",
    "set_mempolicy_home_node", "setpriority", "setrlimit",
  ],
  // Self-sandboxing: installing seccomp filters and Landlock rulesets.
  "@sandbox": [
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "seccomp",
  ],
  // Changing user and group credentials.
  "@setuid": [
    "setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32", "setresgid",
    "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
  ],
  // Signal handlers, masks, waiting for signals and signalfd.
  "@signal": [
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "sigaction", "sigaltstack", "signal", "signalfd", "signalfd4",
    "sigpending", "sigprocmask", "sigsuspend",
  ],
  // Turning swap areas on and off.
  "@swap": [
    "swapoff", "swapon",
  ],
  // Flushing file data and memory mappings to storage.
  "@sync": [
    "fdatasync", "fsync", "msync", "sync", "sync_file_range", "sync_file_range2", "syncfs",
  ],
  // A broad set for ordinary services: the groups listed plus a few extra calls.
  "@system-service": [
    "@aio", "@basic-io", "@chown", "@default", "@file-system", "@io-event", "@ipc", "@keyring",
    "@memlock", "@network-io", "@process", "@resources", "@setuid", "@signal", "@sync", "@timer",
    "arm_fadvise64_64", "capget", "capset", "copy_file_range", "fadvise64", "fadvise64_64", "flock",
    "get_mempolicy", "getcpu", "getpriority", "ioctl", "ioprio_get", "kcmp", "madvise", "mremap",
    "name_to_handle_at", "oldolduname", "olduname", "personality", "readahead", "readdir",
    "remap_file_pages", "sched_get_priority_max", "sched_get_priority_min", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_yield", "sendfile", "sendfile64", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
    "setpgid", "setsid", "splice", "sysinfo", "tee", "umask", "uname", "userfaultfd", "vmsplice",
  ],
  // Interval timers, POSIX timers and timerfd.
  "@timer": [
    "alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
  ],
};

// systemd-nspawn's default policy: the container may use everything listed here (groups
// expanded recursively); "cap" means the entry is only added when that capability is in
// the container's retained capability set. Anything else is refused: with EPERM if the
// name is in @known, with ENOSYS otherwise (so that new syscalls look unimplemented and
// libcs fall back). nspawn also installs a second filter that makes
// socket(AF_NETLINK, *, NETLINK_AUDIT) fail with EAFNOSUPPORT, since audit does not work
// inside containers. Per-container allow/deny settings are applied on top of this list.
//
// Version notes (v252..v257):
// - v252..v256 listed "seccomp" here explicitly; v257 dropped it because @default now
//   includes @sandbox, which contains it.
// - sched_rr_get_interval_time64 was added in v253, arm_fadvise64_64 in v257.
// - bpf (with CAP_BPF) and cachestat were added in v257 point releases (v257.8 and
//   v257.12). Later, v258 also started allowing @keyring.
//
// Not allowed by default (refused with EPERM), notably:
// - the groups @cpu-emulation, @keyring (kernel keyrings are not namespaced), @obsolete,
//   @pkey and @swap; also @debug and @reboot except for the few members listed below
//   with a capability;
// - fanotify_init, fanotify_mark, kexec_load, kexec_file_load, lookup_dcookie,
//   nfsservctl, open_by_handle_at, perf_event_open, quotactl, quotactl_fd,
//   pidfd_getfd, and bpf when CAP_BPF is not kept.
//
// Quirk worth knowing: process_vm_readv/process_vm_writev are gated on CAP_SYS_PTRACE
// below, but they are also members of @ipc, which is always allowed, so in effect they
// are always permitted (same as in systemd).
export const NSPAWN_ALLOW: readonly { name: string; cap?: string }[] = [
  // Groups that are always allowed.
  { name: "@aio" },
  { name: "@basic-io" },
  { name: "@chown" },
  { name: "@default" },
  { name: "@file-system" },
  { name: "@io-event" },
  { name: "@ipc" },
  { name: "@mount" },
  { name: "@network-io" },
  { name: "@process" },
  { name: "@resources" },
  { name: "@setuid" },
  { name: "@signal" },
  { name: "@sync" },
  { name: "@timer" },
  // Groups allowed only while the container keeps the named capability.
  { name: "@clock", cap: "CAP_SYS_TIME" },
  { name: "@memlock", cap: "CAP_IPC_LOCK" },
  { name: "@module", cap: "CAP_SYS_MODULE" },
  { name: "@raw-io", cap: "CAP_SYS_RAWIO" },
  // Single calls outside the groups above that are always allowed.
  { name: "arm_fadvise64_64" },
  { name: "brk" },
  { name: "cachestat" },
  { name: "capget" },
  { name: "capset" },
  { name: "copy_file_range" },
  { name: "fadvise64" },
  { name: "fadvise64_64" },
  { name: "flock" },
  { name: "get_mempolicy" },
  { name: "getcpu" },
  { name: "getpriority" },
  { name: "getrandom" },
  { name: "ioctl" },
  { name: "ioprio_get" },
  { name: "kcmp" },
  { name: "madvise" },
  { name: "mincore" },
  { name: "mprotect" },
  { name: "mremap" },
  { name: "name_to_handle_at" },
  { name: "oldolduname" },
  { name: "olduname" },
  { name: "personality" },
  { name: "readahead" },
  { name: "readdir" },
  { name: "remap_file_pages" },
  { name: "sched_get_priority_max" },
  { name: "sched_get_priority_min" },
  { name: "sched_getaffinity" },
  { name: "sched_getattr" },
  { name: "sched_getparam" },
  { name: "sched_getscheduler" },
  { name: "sched_rr_get_interval" },
  { name: "sched_rr_get_interval_time64" },
  { name: "sched_yield" },
  { name: "sendfile" },
  { name: "sendfile64" },
  { name: "setdomainname" },
  { name: "setfsgid" },
  { name: "setfsgid32" },
  { name: "setfsuid" },
  { name: "setfsuid32" },
  { name: "sethostname" },
  { name: "setpgid" },
  { name: "setsid" },
  { name: "splice" },
  { name: "sysinfo" },
  { name: "tee" },
  { name: "umask" },
  { name: "uname" },
  { name: "userfaultfd" },
  { name: "vmsplice" },
  // Single calls allowed only while the container keeps the named capability.
  { name: "acct", cap: "CAP_SYS_PACCT" },
  { name: "bpf", cap: "CAP_BPF" },
  { name: "process_vm_readv", cap: "CAP_SYS_PTRACE" },
  { name: "process_vm_writev", cap: "CAP_SYS_PTRACE" },
  { name: "ptrace", cap: "CAP_SYS_PTRACE" },
  { name: "reboot", cap: "CAP_SYS_BOOT" },
  { name: "syslog", cap: "CAP_SYSLOG" },
  { name: "vhangup", cap: "CAP_SYS_TTY_CONFIG" },
];

/** Whether `name` is a system call (of x86-64 or i386) or one of the groups. */
export function isKnownName(name: string): boolean {
  // own properties only: "constructor" or "__proto__" are no system calls
  if (name.startsWith("@")) return name === "@known" || Object.hasOwn(SYSCALL_GROUPS, name);
  return Object.hasOwn(SYSCALLS_X86_64, name) || Object.hasOwn(SYSCALLS_I386, name) || Object.hasOwn(SYSCALLS_AARCH64, name);
}
