// Image verbs (list-images, clone, import-tar, ...), called by machinectl.ts
// for the verbs it does not handle itself. Returns undefined for a verb it
// does not know. Parsing and output only; the work is in src/image/.
//
// Beyond machinectl: --devices lets import-tar and pull-tar create the device
// nodes an archive holds (by default they fail the import; see transfer.ts).
// Environment: SPAWNCTL_IMPORT_KEYRING=FILE, the keyring for
// --verify=signature; SPAWNCTL_IMAGE_PATH=DIR[:DIR...], the image search path
// (its first directory is then the pool).
import type { GlobalOptions } from "./machinectl.ts";
import { SpawnctlError, usage } from "../util/errors.ts";
import { info, print } from "../util/log.ts";
import { formatBytes, formatJson, formatTable, formatTimestamp, formatAgo } from "../util/table.ts";
import { parseBoolean } from "../settings/parse.ts";
import type { Image } from "../image/pool.ts";

const IMAGE_VERBS = new Set([
  "list-images", "image-status", "show-image", "clone", "rename", "read-only", "remove", "set-limit", "clean", "cat", "edit",
  "import-tar", "import-raw", "import-fs", "export-tar", "export-raw", "pull-tar", "pull-raw", "list-transfers", "cancel-transfer",
  "pull-oci", "import-oci", "export-oci",
]);

function need(args: string[], min: number, max: number, verb: string): void {
  if (args.length < min) throw usage(`Too few arguments for '${verb}'.`);
  if (args.length > max) throw usage(`Too many arguments for '${verb}'.`);
}

const dash = (v: string | undefined) => (v === undefined || v === "" ? "-" : v);
const ts = (us: number | undefined) => (us === undefined ? "" : formatTimestamp(us));

function listRow(i: Image): string[] {
  return [i.name, i.type, i.readOnly ? "yes" : "no", i.usage === undefined ? "-" : formatBytes(i.usage), dash(ts(i.crtime)), dash(ts(i.mtime))];
}

function imageJson(i: Image): Record<string, unknown> {
  return { name: i.name, type: i.type, ro: i.readOnly, usage: i.usage ?? null, created: i.crtime ?? null, modified: i.mtime ?? null };
}

export function imageProperties(i: Image): Array<[string, string]> {
  const n = (v: number | undefined) => (v === undefined ? "" : String(v));
  return [
    ["Name", i.name],
    ["Path", i.path],
    ["Type", i.type],
    ["ReadOnly", i.readOnly ? "yes" : "no"],
    ["CreationTimestamp", ts(i.crtime)],
    ["ModificationTimestamp", ts(i.mtime)],
    ["Usage", n(i.usage)],
    ["UsageExclusive", n(i.usageExclusive)],
    ["Limit", n(i.limit)],
    ["LimitExclusive", n(i.limitExclusive)],
  ];
}

function printProperties(props: Array<[string, string]>, o: GlobalOptions): void {
  for (const [k, v] of props) {
    if (o.property.length && !o.property.includes(k)) continue;
    if (!o.all && v === "" && !o.property.length) continue;
    print(o.value ? v : `${k}=${v}`);
  }
}

async function collectOci(): Promise<void> {
  const { collectPool } = await import("../oci/gc.ts");
  const r = collectPool();
  if (r.blobs || r.layers) info(`Removed ${r.layers} unused layers and ${r.blobs} unused blobs (${formatBytes(r.bytes)}).`);
}

async function statusText(i: Image): Promise<string> {
  const { readInRoot, readOsRelease } = await import("../util/tree.ts");
  const lines = [i.name];
  const row = (k: string, v: string) => lines.push(`${k.padStart(12)}: ${v}`);
  row("Type", i.type);
  row("Path", i.path);
  if (i.type === "oci") {
    const { ociStatus } = await import("../oci/gc.ts");
    for (const [k, v] of ociStatus(i.path)) row(k, v);
  }
  if (i.type === "directory" || i.type === "subvolume") {
    const hostname = readInRoot(i.path, "/etc/hostname")?.trim();
    if (hostname) row("Hostname", hostname);
    const id = readInRoot(i.path, "/etc/machine-id")?.trim();
    if (id) row("Machine ID", id);
    const os = readOsRelease(i.path);
    if (os) row("OS", os.PRETTY_NAME ?? ([os.NAME ?? os.ID, os.VERSION ?? os.VERSION_ID].filter(Boolean).join(" ") || "-"));
    const mi = readInRoot(i.path, "/etc/machine-info");
    if (mi) {
      const pretty = /^PRETTY_HOSTNAME=(.*)$/m.exec(mi)?.[1]?.replace(/^"(.*)"$/, "$1");
      if (pretty) row("Pretty name", pretty);
    }
  }
  row("RO", i.readOnly ? "read-only" : "writable");
  if (i.crtime !== undefined) row("Created", `${formatTimestamp(i.crtime)}; ${formatAgo(i.crtime)}`);
  if (i.mtime !== undefined) row("Modified", `${formatTimestamp(i.mtime)}; ${formatAgo(i.mtime)}`);
  if (i.usage !== undefined) row("Usage", i.usageExclusive !== undefined && i.usageExclusive !== i.usage ? `${formatBytes(i.usage)} (exclusive: ${formatBytes(i.usageExclusive)})` : formatBytes(i.usage));
  if (i.limit !== undefined) row("Limit", formatBytes(i.limit));
  return lines.join("\n");
}

export async function imageVerb(verb: string, args: string[], o: GlobalOptions): Promise<number | undefined> {
  if (!IMAGE_VERBS.has(verb)) return undefined;
  const pool = await import("../image/pool.ts");
  const names = await import("../image/names.ts");
  switch (verb) {
    case "list-images": {
      need(args, 0, 0, verb);
      const images = pool.listImages().filter((i) => o.all || !names.isHiddenImage(i.name));
      if (o.json) {
        print(formatJson(images.map(imageJson), o.json));
        return 0;
      }
      if (images.length === 0) {
        if (o.legend) print("No images.");
        return 0;
      }
      print(formatTable(["NAME", "TYPE", "RO", "USAGE", "CREATED", "MODIFIED"], images.map(listRow), { legend: o.legend, footer: `${images.length} images listed.` }));
      return 0;
    }
    case "image-status": {
      const list = args.length ? args.map(pool.requireImage) : pool.listImages().filter((i) => !names.isHiddenImage(i.name));
      const texts = await Promise.all(list.map(statusText));
      if (texts.length) print(texts.join("\n\n"));
      return 0;
    }
    case "show-image": {
      if (args.length === 0) {
        printProperties([["PoolPath", pool.poolDir()], ["PoolUsage", ""], ["PoolLimit", ""]], o);
        return 0;
      }
      const list = args.map(pool.requireImage);
      if (o.json) {
        print(formatJson(list.map((i) => Object.fromEntries(imageProperties(i))), o.json));
        return 0;
      }
      list.forEach((i, k) => {
        if (k > 0 && !o.value) print("");
        printProperties(imageProperties(i), o);
      });
      return 0;
    }
    case "clone": {
      need(args, 2, 2, verb);
      const { cloneImage } = await import("../image/ops.ts");
      await cloneImage(args[0]!, args[1]!, o.readOnly);
      return 0;
    }
    case "rename": {
      need(args, 2, 2, verb);
      const { renameImage } = await import("../image/ops.ts");
      renameImage(args[0]!, args[1]!);
      return 0;
    }
    case "read-only": {
      need(args, 1, 2, verb);
      let ro = true;
      if (args[1] !== undefined) {
        try {
          ro = parseBoolean(args[1]);
        } catch {
          throw usage(`Failed to parse read-only boolean: ${args[1]}`);
        }
      }
      const { markReadOnly } = await import("../image/ops.ts");
      markReadOnly(args[0]!, ro);
      return 0;
    }
    case "remove": {
      need(args, 1, Number.POSITIVE_INFINITY, verb);
      const { removeImage } = await import("../image/ops.ts");
      const oci = args.some((n) => pool.findImage(n)?.type === "oci");
      for (const n of args) removeImage(n);
      // the layers and blobs no image uses any more
      if (oci) await collectOci();
      return 0;
    }
    case "set-limit": {
      need(args, 1, 2, verb);
      let bytes: bigint | undefined;
      try {
        bytes = names.parseLimit(args[args.length - 1]!);
      } catch (e) {
        throw usage(`set-limit: ${(e as Error).message} (the limit is bytes with an optional K, M, G, T, P or E suffix, or "-" for none)`);
      }
      const { setLimit } = await import("../image/ops.ts");
      setLimit(args.length === 2 ? args[0] : undefined, bytes);
      return 0;
    }
    case "clean": {
      need(args, 0, 0, verb);
      const { cleanPool } = await import("../image/ops.ts");
      const r = cleanPool(o.all);
      for (const n of r.removed) info(`Removed image '${n}'.`);
      for (const k of r.kept) info(`Kept image '${k.name}': ${k.reason}`);
      for (const l of r.leftovers) info(`Removed ${l}, left behind by an interrupted operation.`);
      info(`Removed ${r.removed.length} images in total.`);
      await collectOci();
      return 0;
    }
    case "cat": {
      need(args, 1, Number.POSITIVE_INFINITY, verb);
      const { catSettings } = await import("../image/settings-files.ts");
      catSettings(args);
      return 0;
    }
    case "edit": {
      need(args, 1, Number.POSITIVE_INFINITY, verb);
      const { editSettings } = await import("../image/settings-files.ts");
      editSettings(args);
      return 0;
    }
    case "import-tar":
    case "import-raw":
    case "import-fs": {
      need(args, 1, 2, verb);
      const T = await import("../image/transfer.ts");
      const io = { readOnly: o.readOnly, force: o.force, devices: o.devices };
      if (verb === "import-tar") await T.importTar(args[0]!, args[1], io);
      else if (verb === "import-raw") await T.importRaw(args[0]!, args[1], io);
      else await T.importFs(args[0]!, args[1], io);
      return 0;
    }
    case "export-tar":
    case "export-raw": {
      need(args, 1, 2, verb);
      const T = await import("../image/transfer.ts");
      if (verb === "export-tar") await T.exportTar(args[0]!, args[1], o.format);
      else await T.exportRaw(args[0]!, args[1], o.format);
      return 0;
    }
    case "pull-tar":
    case "pull-raw": {
      need(args, 1, 2, verb);
      const T = await import("../image/transfer.ts");
      await T.pull(verb === "pull-tar" ? "tar" : "raw", args[0]!, args[1], {
        readOnly: o.readOnly, force: o.force, devices: o.devices, verify: names.parseVerify(o.verify),
      });
      return 0;
    }
    case "import-oci": {
      need(args, 1, 2, verb);
      const { importOci } = await import("../oci/import.ts");
      await importOci(args[0]!, args[1], { force: o.force, readOnly: o.readOnly, platform: o.platform });
      return 0;
    }
    case "pull-oci": {
      need(args, 1, 2, verb);
      const { pullOci } = await import("../oci/pull.ts");
      await pullOci(args[0]!, args[1], { force: o.force, readOnly: o.readOnly, platform: o.platform, creds: o.creds, insecure: o.insecureRegistry });
      return 0;
    }
    case "export-oci": {
      need(args, 2, 2, verb);
      const { exportOci } = await import("../oci/export.ts");
      await exportOci(args[0]!, args[1]!);
      return 0;
    }
    case "list-transfers":
      if (o.legend) print("No transfers.");
      return 0;
    case "cancel-transfer":
      throw new SpawnctlError("Transfers run in the foreground of the spawnctl that started them; interrupt it (^C, or kill PID) and it removes what it had done.");
  }
  return undefined;
}
