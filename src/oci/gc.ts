// What the image verbs need of the OCI store: the collection of what no
// image refers to any more (after remove and clean), and image-status lines.
import { existsSync } from "node:fs";
import { formatBytes } from "../util/table.ts";
import { readOsRelease } from "../util/tree.ts";
import { withTreeView } from "../container/stack.ts";
import { poolDir } from "../image/pool.ts";
import { poolRefs, readRecord } from "./image-dir.ts";
import { collectGarbage, storeAt, type GcResult } from "./store.ts";

/** Drop the blobs and layers of the pool's store that no OCI image uses. */
export function collectPool(): GcResult {
  const s = storeAt(poolDir());
  if (!existsSync(s.root)) return { blobs: 0, layers: 0, bytes: 0 };
  return collectGarbage(s, poolRefs(s));
}

/** The OS the image holds (its os-release, read through a view of its layers). */
function osLine(dir: string): Array<[string, string]> {
  try {
    const os = withTreeView(dir, `status-${process.pid}`, (view) => readOsRelease(view));
    const name = os?.PRETTY_NAME ?? [os?.NAME ?? os?.ID, os?.VERSION ?? os?.VERSION_ID].filter(Boolean).join(" ");
    return name ? [["OS", name]] : [];
  } catch {
    return [];
  }
}

/** image-status lines of an OCI image: where it came from, its digests and layers. */
export function ociStatus(dir: string): Array<[string, string]> {
  const r = readRecord(dir);
  const size = r.layers.reduce((n, l) => n + l.size, 0);
  return [
    ...(r.reference ? [["Reference", r.reference] as [string, string]] : []),
    ["Source", r.source],
    ["Digest", r.manifestDigest],
    ["Config", r.configDigest],
    ...(r.platform ? [["Platform", r.platform] as [string, string]] : []),
    ["Layers", `${r.layers.length} (${formatBytes(size)} compressed)`],
    ...osLine(dir),
  ];
}
