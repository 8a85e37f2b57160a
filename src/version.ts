export const VERSION = "0.1.0";

/**
 * The systemd release whose systemd-nspawn and machinectl command-line
 * interface spawnctl implements: Debian 12's, the one its behaviour was
 * checked against (reference-nspawn.md). A few options of later releases are
 * there too (--background); none of 252's is missing from `run`.
 */
export const SYSTEMD_INTERFACE = 252;

/**
 * What this build has, in systemd's feature-string style: + for what works
 * without anything else installed, - for what systemd has and spawnctl does
 * not (no D-Bus, machined or PAM), then the cgroup hierarchy it prefers.
 */
export const FEATURES = [
  "+SECCOMP", "+USERNS", "+IDMAP", "+NFTABLES", "+NETLINK", "+DHCP", "+OVERLAYFS", "+OPENPGP",
  "+XZ", "+ZSTD", "+ZLIB", "-BZIP2", "-DBUS", "-MACHINED", "-IMPORTD", "-PAM", "-SELINUX", "-APPARMOR", "-TPM2",
  "default-hierarchy=unified",
];

/** `--version` under every name: systemd's two lines, spawnctl's own version in the first. */
export function versionText(): string {
  return `systemd ${SYSTEMD_INTERFACE} (spawnctl ${VERSION})\n${FEATURES.join(" ")}`;
}
