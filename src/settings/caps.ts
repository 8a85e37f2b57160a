// Linux capabilities: names and numbers (include/uapi/linux/capability.h), and
// the set a container keeps by default, as systemd-nspawn does.

export const CAPS: readonly string[] = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
  "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
  "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
  "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
  "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
  "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
];

export const ALL_CAPS = (1n << BigInt(CAPS.length)) - 1n;

/** The bounding set a container keeps: 26 capabilities, 0xfdecafff. */
export const DEFAULT_CAPS: readonly string[] = [
  "AUDIT_CONTROL", "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
  "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MKNOD", "NET_BIND_SERVICE", "NET_BROADCAST",
  "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT",
  "SYS_NICE", "SYS_PTRACE", "SYS_RESOURCE", "SYS_TTY_CONFIG",
];

export function capNumber(name: string): number | undefined {
  const u = name.toUpperCase();
  const n = u.startsWith("CAP_") ? u.slice(4) : u;
  const i = CAPS.indexOf(n);
  return i < 0 ? undefined : i;
}

export function capBit(name: string): bigint {
  const n = capNumber(name);
  if (n === undefined) throw new Error(`unknown capability ${name}`);
  return 1n << BigInt(n);
}

export function maskOf(names: readonly string[]): bigint {
  let m = 0n;
  for (const n of names) m |= capBit(n);
  return m;
}

/** maskOf(DEFAULT_CAPS), written out: every start needs it (a unit test checks the two agree). */
export const DEFAULT_CAP_MASK = 0xfdecafffn;

export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < CAPS.length; i++) if ((mask >> BigInt(i)) & 1n) out.push(`CAP_${CAPS[i]}`);
  return out;
}

/** Parse a comma-separated capability list as nspawn does ("all" is every capability). */
export function parseCapList(value: string): bigint | undefined {
  let m = 0n;
  for (const part of value.split(/[,\s]+/)) {
    if (!part) continue;
    if (part.toLowerCase() === "all") {
      m |= ALL_CAPS;
      continue;
    }
    const n = capNumber(part);
    if (n === undefined) return undefined;
    m |= 1n << BigInt(n);
  }
  return m;
}
