// Each machinectl verb's own help: `spawnctl VERB --help`, `spawnctl help
// VERB`, `machinectl VERB --help`. One table, also what the did-you-mean
// suggestion for an unknown verb is made from (util/suggest.ts).

export interface VerbHelp {
  /** the arguments after the verb */
  args: string;
  summary: string;
  /** the options it takes (long names, as in machinectl --help) */
  options?: string[];
  example: string;
  /** another name machinectl has for it */
  alias?: string;
}

export const VERBS: Record<string, VerbHelp> = {
  list: { args: "", summary: "List running machines", options: ["--no-legend", "--json=pretty|short", "-o json|json-pretty|json-short", "--max-addresses=N"], example: "spawnctl list -o json" },
  status: { args: "NAME...", summary: "Show machine details, ending with the last lines of its journal (or console log)", options: ["-n N", "-o MODE"], example: "spawnctl status web" },
  show: { args: "[NAME...]", summary: "Show properties of one or more machines (without NAME: the manager's)", options: ["-p NAME", "-P NAME", "--value", "-a/--all", "--json=pretty|short"], example: "spawnctl show web -p Leader --value" },
  start: { args: "NAME...", summary: "Boot the image NAME in the background (a no-op for a machine that runs)", example: "spawnctl start web" },
  login: { args: "NAME", summary: "Get a login prompt in a machine, on a pty of the machine's own", example: "spawnctl login web" },
  shell: { args: "[[USER]@NAME [COMMAND...]]", summary: "Invoke a shell (or other command) in a machine; -M NAME with USER@ names the machine", options: ["--uid=USER", "-E/--setenv=VAR[=VALUE]", "-M/--machine=NAME", "-q"], example: "spawnctl shell admin@web /usr/bin/uptime" },
  console: { args: "NAME", summary: "Attach to the console of a background machine (its current screen, then live)", example: "spawnctl console web" },
  enable: { args: "NAME...", summary: "Start a machine at boot", options: ["--now"], example: "spawnctl enable --now web" },
  disable: { args: "NAME...", summary: "Don't start a machine at boot", options: ["--now"], example: "spawnctl disable web" },
  autostart: { args: "", summary: "Start every enabled machine (for any init system)", example: "spawnctl autostart" },
  poweroff: { args: "NAME...", summary: "Power off one or more machines", example: "spawnctl poweroff web", alias: "stop" },
  stop: { args: "NAME...", summary: "Power off one or more machines (as poweroff)", example: "spawnctl stop web" },
  reboot: { args: "NAME...", summary: "Reboot one or more machines", example: "spawnctl reboot web", alias: "restart" },
  restart: { args: "NAME...", summary: "Reboot one or more machines (as reboot)", example: "spawnctl restart web" },
  terminate: { args: "NAME...", summary: "Terminate one or more machines (kill every process)", example: "spawnctl terminate web" },
  kill: { args: "NAME...", summary: "Send a signal to processes of a machine", options: ["-s/--signal=SIGNAL", "--kill-whom=leader|all"], example: "spawnctl kill -s HUP --kill-whom=leader web" },
  "copy-to": { args: "NAME PATH [PATH]", summary: "Copy files from the host to a machine", options: ["--force"], example: "spawnctl copy-to web ./site /srv/site" },
  "copy-from": { args: "NAME PATH [PATH]", summary: "Copy files from a machine to the host", options: ["--force"], example: "spawnctl copy-from web /var/log/syslog ./web.log" },
  bind: { args: "NAME PATH [PATH]", summary: "Bind mount a path from the host into a machine (idmapped into a -U machine)", options: ["--read-only", "--mkdir"], example: "spawnctl bind --mkdir web /srv/data /data" },
  "set-property": { args: "NAME KEY=VALUE...", summary: "Set resource limits (MemoryMax=, CPUQuota=, TasksMax=, ...), live and for later starts", example: "spawnctl set-property web MemoryMax=512M" },
  "list-images": { args: "", summary: "Show available container images", options: ["--no-legend", "-a/--all", "--json=pretty|short"], example: "spawnctl list-images" },
  "image-status": { args: "[NAME...]", summary: "Show image details", example: "spawnctl image-status web" },
  "show-image": { args: "[NAME...]", summary: "Show properties of an image", options: ["-p NAME", "--value", "-a/--all"], example: "spawnctl show-image web -p Usage --value" },
  edit: { args: "NAME|FILE...", summary: "Edit settings of one or more machines (their .nspawn files)", example: "spawnctl edit web" },
  cat: { args: "NAME|FILE...", summary: "Show settings of one or more machines", example: "spawnctl cat web" },
  clone: { args: "NAME NAME", summary: "Clone an image (the copy gets its own machine ID)", options: ["--read-only"], example: "spawnctl clone web web2" },
  rename: { args: "NAME NAME", summary: "Rename an image", example: "spawnctl rename web www" },
  "read-only": { args: "NAME [BOOL]", summary: "Mark or unmark an image read-only", example: "spawnctl read-only web yes" },
  remove: { args: "NAME...", summary: "Remove an image, with its settings, autostart, console log and journal link", example: "spawnctl remove web2" },
  "set-limit": { args: "[NAME] BYTES", summary: "Set an image's or the pool's size limit (disk quota)", example: "spawnctl set-limit web 10G" },
  clean: { args: "", summary: "Remove hidden images (with --all, every image)", options: ["-a/--all"], example: "spawnctl clean" },
  "pull-tar": { args: "URL [NAME]", summary: "Download a TAR container image", options: ["--verify=no|checksum|signature", "--force", "--read-only"], example: "spawnctl pull-tar --verify=checksum https://example.org/image.tar.xz arch" },
  "pull-raw": { args: "URL [NAME]", summary: "Download a RAW container or VM image", options: ["--verify=no|checksum|signature", "--force", "--read-only"], example: "spawnctl pull-raw --verify=no https://example.org/disk.raw.xz vm" },
  "import-tar": { args: "FILE [NAME]", summary: "Import a local TAR container image (the image gets its own machine ID)", options: ["--force", "--read-only", "--devices"], example: "spawnctl import-tar web.tar.zst web3" },
  "import-raw": { args: "FILE [NAME]", summary: "Import a local RAW container or VM image", options: ["--force", "--read-only"], example: "spawnctl import-raw disk.raw vm" },
  "import-fs": { args: "DIRECTORY [NAME]", summary: "Import a local directory container image", options: ["--force", "--read-only"], example: "spawnctl import-fs /srv/tree web4" },
  "export-tar": { args: "NAME [FILE]", summary: "Export a TAR container image locally", options: ["--format=uncompressed|gzip|xz|zstd"], example: "spawnctl export-tar web web.tar.zst" },
  "export-raw": { args: "NAME [FILE]", summary: "Export a RAW container or VM image locally", options: ["--format=uncompressed|gzip|xz|zstd"], example: "spawnctl export-raw vm vm.raw" },
  "pull-oci": { args: "REF [NAME]", summary: "Download an OCI image from a registry ([REGISTRY[:PORT]/]REPO[:TAG|@sha256:DIGEST]); layers are stored once", options: ["--platform=OS/ARCH[/VARIANT]", "--creds=USER:PASS", "--insecure-registry=HOST", "--force", "--read-only"], example: "spawnctl pull-oci localhost:5000/app:1 app" },
  "import-oci": { args: "FILE|DIR [NAME]", summary: "Import an OCI image layout, oci-archive or docker-archive (docker save) without network", options: ["--platform=OS/ARCH[/VARIANT]", "--force", "--read-only"], example: "spawnctl import-oci app.oci.tar app" },
  "export-oci": { args: "NAME FILE", summary: "Export an OCI image (its layers and its own changes as one more layer) as an oci-archive (FILE \"-\": standard output)", example: "spawnctl export-oci app app.oci.tar" },
  "list-transfers": { args: "", summary: "Show running image transfers", example: "spawnctl list-transfers" },
  "cancel-transfer": { args: "ID...", summary: "Cancel an image transfer", example: "spawnctl cancel-transfer 1" },
  journal: { args: "NAME [OPTIONS...]", summary: "A machine's journal (journalctl -M NAME), or its console log", example: "spawnctl journal web -n 50 -u nginx" },
  cgls: { args: "[NAME...]", summary: "A machine's cgroup tree with its processes (systemd-cgls -M NAME)", example: "spawnctl cgls web" },
  analyze: { args: "NAME [time|blame|critical-chain]", summary: "How the machine booted (systemd-analyze -M NAME)", example: "spawnctl analyze web blame" },
  top: { args: "[NAME] [-b] [-n N] [-d SECONDS]", summary: "Every machine's CPU, memory, tasks and IO (systemd-cgtop)", example: "spawnctl top -b -n 2" },
  "run-in": { args: "[USER@]NAME [OPTIONS...] COMMAND...", summary: "A command in a machine in a unit of its own (systemd-run -M NAME)", example: "spawnctl run-in web -p MemoryMax=200M --wait /usr/bin/make" },
  run: { args: "[NSPAWN OPTIONS...] [COMMAND...]", summary: "Run a container in the foreground (systemd-nspawn); see spawnctl run --help", example: "spawnctl run -D /var/lib/machines/web -b" },
  bootstrap: { args: "debian|ubuntu SUITE DEST | arch DEST [PACKAGE...]", summary: "Make an OS tree (debootstrap, pacstrap); see spawnctl bootstrap --help", example: "spawnctl bootstrap debian bookworm /var/lib/machines/web" },
};

/** `spawnctl VERB --help`. */
export function verbHelp(verb: string, program = "spawnctl"): string | undefined {
  const h = VERBS[verb];
  if (!h) return undefined;
  const lines = [`${program} ${verb}${h.args ? ` ${h.args}` : ""}`, "", h.summary + (h.alias ? ` (also: ${h.alias})` : "") + "."];
  if (h.options?.length) lines.push("", "Options:", ...h.options.map((o) => `  ${o}`));
  lines.push("", "Example:", `  ${h.example.replace(/^spawnctl /, `${program} `)}`);
  return lines.join("\n");
}
