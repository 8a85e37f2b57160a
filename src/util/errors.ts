// One error type for everything spawnctl reports. It carries what was being
// done to what (the message), and optionally the errno and system call; only
// src/main.ts prints it and turns it into an exit code.

export class SpawnctlError extends Error {
  readonly errno?: number;
  readonly syscall?: string;
  readonly exitCode: number;
  constructor(message: string, opts: { errno?: number; syscall?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = "SpawnctlError";
    this.errno = opts.errno;
    this.syscall = opts.syscall;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** A usage error: a bad flag, value or combination. */
export function usage(message: string): SpawnctlError {
  return new SpawnctlError(message, { exitCode: 1 });
}

/** Wrap an error with what we were doing ("removing cgroup X: ..."). */
export function wrap(what: string, e: unknown): SpawnctlError {
  if (e instanceof SpawnctlError) return new SpawnctlError(`${what}: ${e.message}`, { errno: e.errno, syscall: e.syscall, exitCode: e.exitCode, cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { errno?: number })?.errno;
  return new SpawnctlError(`${what}: ${msg}`, { errno: typeof code === "number" ? Math.abs(code) : undefined, cause: e });
}

/** Node-style fs errors → a short message without the "ENOENT: ..., open 'x'" noise. */
export function fsMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === "string") {
    const text = ERRNO_TEXT[err.code];
    if (text) return text;
  }
  return err instanceof Error ? err.message : String(e);
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EEXIST: "File exists",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EBUSY: "Device or resource busy",
  ENOTEMPTY: "Directory not empty",
  EROFS: "Read-only file system",
  ENOSPC: "No space left on device",
  EINVAL: "Invalid argument",
  ELOOP: "Too many levels of symbolic links",
  EXDEV: "Invalid cross-device link",
  EAGAIN: "Resource temporarily unavailable",
  EWOULDBLOCK: "Resource temporarily unavailable",
  ESRCH: "No such process",
};

/** What to do about an errno that the user or the host's set-up causes. */
function hint(code: string, path: string): string {
  switch (code) {
    case "EROFS":
      return path === "/run" || path.startsWith("/run/")
        ? " spawnctl keeps its runtime state (locks, running machines) under /run; give it a writable one, e.g.: mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run"
        : " Remount that file system read-write, or choose a path on a writable one.";
    case "ENOSPC":
    case "EDQUOT":
      return " Free some space on that file system (or raise its quota) and try again.";
    case "EACCES":
    case "EPERM":
      return " spawnctl must run as root (with CAP_SYS_ADMIN), and the path must be writable by root (not immutable, not on a read-only or restricted mount).";
    case "ENAMETOOLONG":
      return " Use a shorter name or path.";
    case "ENOENT":
    case "ENOTDIR":
      return " Check that the path and each of its parent directories exist.";
    case "EMFILE":
    case "ENFILE":
      return " Too many open files: raise the limit (ulimit -n).";
    case "ENOMEM":
      return " The system is out of memory.";
    default:
      return "";
  }
}

/**
 * A sentence for an error the kernel reported on a path (Node's fs errors:
 * code, syscall, path), naming the path and what to do; undefined for
 * anything else, which then is a bug.
 */
export function systemErrorMessage(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof err.code !== "string" || !/^E[A-Z0-9]+$/.test(err.code)) return undefined;
  const path = typeof err.path === "string" ? err.path : "";
  const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
  const call = err.syscall ? `${err.syscall} ` : "";
  const text = ERRNO_TEXT[err.code] ?? ERRNO_EXTRA[err.code] ?? err.code;
  return `Failed to ${call}${shown || "(no path)"}: ${text}.${hint(err.code, path)}`;
}

const ERRNO_EXTRA: Record<string, string> = {
  ENAMETOOLONG: "File name too long",
  EDQUOT: "Disk quota exceeded",
  EMFILE: "Too many open files",
  ENFILE: "Too many open files in system",
  ENOMEM: "Cannot allocate memory",
  ETXTBSY: "Text file busy",
  ENODEV: "No such device",
  ENXIO: "No such device or address",
  EIO: "Input/output error",
};
