// `spawnctl run [OPTIONS...] [COMMAND [ARGS...]]`, also `systemd-nspawn`.
import { parseCommandLine } from "../settings/cli.ts";
import { resolveSettings } from "../settings/merge.ts";
import { setQuiet, print, trace } from "../util/log.ts";
import { mergeEnv } from "../container/host-env.ts";
import { usage } from "../util/errors.ts";

export const RUN_HELP = `spawnctl run [OPTIONS...] [COMMAND [ARGS...]]
(also invoked as: systemd-nspawn [OPTIONS...] [COMMAND [ARGS...]])

Spawn a command or OS in a light-weight container.

  -h --help                 Show this help
     --version              Print version string
  -q --quiet                Do not show status information
     --settings=BOOLEAN|override|trusted
                            Load additional settings from .nspawn file
     --print-plan           Print the container set-up plan and exit

Image:
  -D --directory=PATH       Root directory for the container
     --oci-bundle=PATH      OCI bundle directory: its config.json and root
                            directory in place of a .nspawn file
     --template=PATH        Initialize root directory from template directory,
                            if missing
  -i --image=PATH           Root file system disk image (or device node) for
                            the container
  -x --ephemeral            Run container with snapshot of root directory, and
                            remove it after exit (an overlay for a directory;
                            a throw-away copy for an image)
     --read-only            Mount the root directory read-only
     --volatile[=MODE]      Run the system in volatile mode (yes, state, overlay)
     --pivot-root=PATH[:PATH]
                            Pivot root to given directory in the container

Execution:
  -a --as-pid2              Maintain a stub init as PID1, invoke binary as PID2
  -b --boot                 Boot up full system (i.e. invoke init)
     --chdir=PATH           Set working directory in the container
  -E --setenv=NAME[=VALUE]  Pass an environment variable to PID 1
  -u --user=USER            Run the command under specified user or UID
     --kill-signal=SIGNAL   Select signal to use for shutting down PID 1
     --notify-ready=BOOLEAN Receive notifications from the child init process
     --suppress-sync=BOOLEAN
                            Suppress any form of disk data synchronization

System Identity:
  -M --machine=NAME         Set the machine name for the container
     --hostname=NAME        Override the hostname for the container
     --uuid=UUID            Set a specific machine UUID for the container

Properties:
  -S --slice=SLICE          Place the container in the specified slice
     --property=NAME=VALUE  Set scope unit property
     --register=BOOLEAN     Accepted for compatibility (no machined is needed)
     --keep-unit            Accepted; a reboot then exits with status 133

User Namespacing:
     --private-users=no|yes|pick|identity|UIDBASE[:NUIDS]
     --private-users-ownership=off|chown|map|auto
  -U                        Equivalent to --private-users=pick and
                            --private-users-ownership=auto

Networking:
     --private-network      Disable network in container
     --network-interface=HOSTIF[:CONTAINERIF]
     --network-macvlan=HOSTIF[:CONTAINERIF]
     --network-ipvlan=HOSTIF[:CONTAINERIF]
  -n --network-veth         Add a virtual Ethernet connection between host
                            and container
     --network-veth-extra=HOSTIF[:CONTAINERIF]
     --network-bridge=INTERFACE
     --network-zone=NAME
     --network-namespace-path=PATH
  -p --port=[PROTOCOL:]HOSTPORT[:CONTAINERPORT]

Security:
     --capability=CAP       In addition to the default, retain specified
                            capability
     --drop-capability=CAP  Drop the specified capability from the default set
     --ambient-capability=CAP
     --no-new-privileges=BOOLEAN
     --system-call-filter=LIST|~LIST
  -Z --selinux-context=SECLABEL
                            Set the SELinux security context to be used by
                            processes in the container
  -L --selinux-apifs-context=SECLABEL
                            Set the SELinux security context to be used by
                            API/tmpfs file systems in the container

Resources:
     --rlimit=NAME=LIMIT    Set a resource limit for the payload
     --oom-score-adjust=VALUE
     --cpu-affinity=CPUS
     --personality=ARCH     Pick personality for this container (x86, x86-64)

Integration:
     --resolv-conf=MODE     Select mode of /etc/resolv.conf initialization
     --timezone=MODE        Select mode of /etc/localtime initialization
     --link-journal=MODE    Link up guest journal, one of no, auto, guest,
                            host, try-guest, try-host
  -j                        Equivalent to --link-journal=try-guest

Mounts:
     --bind=PATH[:PATH[:OPTIONS]]
     --bind-ro=PATH[:PATH[:OPTIONS]]
     --inaccessible=PATH
     --tmpfs=PATH:[OPTIONS]
     --overlay=PATH[:PATH...]:PATH
     --overlay-ro=PATH[:PATH...]:PATH
     --bind-user=NAME       Bind user from host to container
     --x11[=DISPLAY]        Give the container the host's X display: binds
                            /tmp/.X11-unix, an Xauthority that matches any
                            host name, sets DISPLAY and XAUTHORITY
                            (spawnctl's own option; default: $DISPLAY)

Input/Output:
     --console=MODE         Select how stdin/stdout/stderr and /dev/console are
                            set up for the container (interactive, read-only,
                            passive, pipe, autopipe)
  -P --pipe                 Equivalent to --console=pipe

Credentials:
     --set-credential=ID:VALUE
     --load-credential=ID:PATH
`;

export async function runCommand(argv: string[]): Promise<number> {
  trace("runCommand");
  const cl = parseCommandLine(argv);
  trace("parsed");
  if (cl.meta.has("help")) {
    print(RUN_HELP);
    return 0;
  }
  if (cl.meta.has("version")) {
    const { versionText } = await import("../version.ts");
    print(versionText());
    return 0;
  }
  if (process.getuid?.() !== 0 && !cl.settings.printPlan) throw usage("Need to be root.");
  const env = mergeEnv();
  trace("env");
  // an OCI bundle's config.json takes the place of the .nspawn file
  let bundle;
  if (cl.settings.ociBundle) {
    const { loadBundle } = await import("../oci/bundle.ts");
    trace("imported bundle");
    bundle = loadBundle(cl.settings.ociBundle, env.warn);
    trace("bundle loaded");
  }
  const { settings } = resolveSettings(cl, env, bundle);
  // an OCI image: its config's command, environment, directory and user where nothing else says
  if (settings.directory.endsWith(".oci")) (await import("../oci/config-run.ts")).applyImageConfig(settings);
  trace("resolved");
  setQuiet(settings.quiet);
  if (!settings.printPlan) (await import("../machine/gc.ts")).collectStale();
  const { runContainer } = await import("../container/supervisor.ts");
  trace("imported supervisor");
  if (settings.image) return runContainer(settings, (await import("../image/disk/mount.ts")).diskSource(settings));
  return runContainer(settings);
}
