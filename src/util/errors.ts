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
