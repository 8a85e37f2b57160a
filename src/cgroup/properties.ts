// Resource-control properties in systemd's spelling (MemoryMax=, CPUQuota=,
// TasksMax=, ...), written to the machine's cgroup: cgroup v2 files where the
// controller is enabled there, the v1 controller hierarchy otherwise (hybrid
// hosts such as this one keep the controllers in v1).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { CgroupFacts } from "../container/host.ts";
import { CGROUP_PARENT } from "./cgroup.ts";

export type PropertyName = "MemoryMax" | "MemoryHigh" | "MemoryLow" | "MemorySwapMax" | "CPUQuota" | "CPUWeight" | "IOWeight" | "TasksMax" | "AllowedCPUs";

const ALIASES: Record<string, PropertyName> = {
  MemoryLimit: "MemoryMax",
  CPUShares: "CPUWeight",
  BlockIOWeight: "IOWeight",
  CPUSetCPUs: "AllowedCPUs",
};

export interface Property { name: PropertyName; raw: string; value: bigint | "max" | number | string }

const PROPERTIES = new Set<string>(["MemoryMax", "MemoryHigh", "MemoryLow", "MemorySwapMax", "CPUQuota", "CPUWeight", "IOWeight", "TasksMax", "AllowedCPUs"]);

function totalMemory(): bigint {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? BigInt(m[1]!) * 1024n : 0n;
}

function parseBytes(v: string, percentOf?: () => bigint): bigint | "max" {
  if (v === "infinity") return "max";
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(v);
  if (pct && percentOf) return (percentOf() * BigInt(Math.round(Number(pct[1]) * 100))) / 10000n;
  const m = /^(\d+)([KMGTPE]?)$/.exec(v);
  if (!m) throw new SpawnctlError(`Invalid size: ${v}`);
  const shift: Record<string, bigint> = { "": 0n, K: 10n, M: 20n, G: 30n, T: 40n, P: 50n, E: 60n };
  return BigInt(m[1]!) << shift[m[2]!]!;
}

/** "NAME=VALUE" → a property, or an error naming it. */
export function parseProperty(assignment: string): Property {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw new SpawnctlError(`Invalid property assignment: ${assignment}`);
  let name = assignment.slice(0, eq);
  const raw = assignment.slice(eq + 1).trim();
  name = ALIASES[name] ?? name;
  if (!PROPERTIES.has(name)) throw new SpawnctlError(`Unknown or unsupported property: ${assignment.slice(0, eq)}`);
  const n = name as PropertyName;
  switch (n) {
    case "MemoryMax":
    case "MemoryHigh":
    case "MemoryLow":
    case "MemorySwapMax":
      return { name: n, raw, value: parseBytes(raw, totalMemory) };
    case "TasksMax": {
      if (raw === "infinity") return { name: n, raw, value: "max" };
      const pct = /^(\d+)%$/.exec(raw);
      if (pct) {
        const max = BigInt(readFileSync("/proc/sys/kernel/pid_max", "utf8").trim());
        return { name: n, raw, value: (max * BigInt(pct[1]!)) / 100n };
      }
      if (!/^\d+$/.test(raw)) throw new SpawnctlError(`Invalid TasksMax= value: ${raw}`);
      return { name: n, raw, value: BigInt(raw) };
    }
    case "CPUQuota": {
      const m = /^(\d+(?:\.\d+)?)%$/.exec(raw);
      if (!m || Number(m[1]) <= 0) throw new SpawnctlError(`Invalid CPUQuota= value: ${raw} (expected a percentage, e.g. 50%)`);
      return { name: n, raw, value: Number(m[1]) };
    }
    case "CPUWeight":
    case "IOWeight": {
      const v = Number(raw);
      const shares = assignment.startsWith("CPUShares=") || assignment.startsWith("BlockIOWeight=");
      if (!Number.isInteger(v) || v < 1 || v > (shares ? 262144 : 10000)) throw new SpawnctlError(`Invalid ${n}= value: ${raw} (1…10000)`);
      // the old v1-style names carry v1 units; convert to weights
      const w = shares ? (assignment.startsWith("CPUShares=") ? Math.max(1, Math.min(10000, Math.round((v * 100) / 1024))) : Math.max(1, Math.min(10000, v * 10))) : v;
      return { name: n, raw, value: w };
    }
    case "AllowedCPUs":
      if (!/^[\d,\s-]+$/.test(raw)) throw new SpawnctlError(`Invalid AllowedCPUs= value: ${raw}`);
      return { name: n, raw, value: raw.replace(/\s+/g, ",") };
  }
}

interface Target { file: string; data: string }

function v2Enabled(dir: string, controller: string): boolean {
  try {
    return readFileSync(`${dir}/cgroup.controllers`, "utf8").split(/\s+/).includes(controller);
  } catch {
    return false;
  }
}

function v1Dir(facts: CgroupFacts, controller: string, machine: string): string | undefined {
  const h = facts.v1.find((x) => x.controllers.includes(controller));
  return h ? `${h.mountpoint}/${CGROUP_PARENT}/${machine}` : undefined;
}

/** Which file gets what for a property, on this host's layout. */
export function propertyTargets(p: Property, facts: CgroupFacts, machine: string): Target[] {
  const v2 = facts.unified ? `${facts.unified}/${CGROUP_PARENT}/${machine}` : undefined;
  const use2 = (c: string) => v2 !== undefined && v2Enabled(v2, c);
  const val = (v: Property["value"]) => (v === "max" ? "max" : String(v));
  const v1max = (v: Property["value"]) => (v === "max" ? "-1" : String(v));
  switch (p.name) {
    case "MemoryMax":
    case "MemoryHigh":
    case "MemoryLow":
    case "MemorySwapMax": {
      const file2 = { MemoryMax: "memory.max", MemoryHigh: "memory.high", MemoryLow: "memory.low", MemorySwapMax: "memory.swap.max" }[p.name];
      if (use2("memory")) return [{ file: `${v2}/${file2}`, data: val(p.value) }];
      const d = v1Dir(facts, "memory", machine);
      if (!d) return [];
      const file1 = { MemoryMax: "memory.limit_in_bytes", MemoryHigh: "memory.soft_limit_in_bytes", MemoryLow: "memory.soft_limit_in_bytes", MemorySwapMax: "memory.memsw.limit_in_bytes" }[p.name];
      return [{ file: `${d}/${file1}`, data: v1max(p.value) }];
    }
    case "TasksMax": {
      if (use2("pids")) return [{ file: `${v2}/pids.max`, data: val(p.value) }];
      const d = v1Dir(facts, "pids", machine);
      return d ? [{ file: `${d}/pids.max`, data: val(p.value) }] : [];
    }
    case "CPUQuota": {
      const period = 100000;
      const quota = Math.max(1000, Math.round((p.value as number) * 1000));
      if (use2("cpu")) return [{ file: `${v2}/cpu.max`, data: `${quota} ${period}` }];
      const d = v1Dir(facts, "cpu", machine);
      return d ? [{ file: `${d}/cpu.cfs_period_us`, data: String(period) }, { file: `${d}/cpu.cfs_quota_us`, data: String(quota) }] : [];
    }
    case "CPUWeight": {
      if (use2("cpu")) return [{ file: `${v2}/cpu.weight`, data: String(p.value) }];
      const d = v1Dir(facts, "cpu", machine);
      return d ? [{ file: `${d}/cpu.shares`, data: String(Math.max(2, Math.round(((p.value as number) * 1024) / 100))) }] : [];
    }
    case "IOWeight": {
      if (use2("io")) return [{ file: `${v2}/io.weight`, data: `default ${p.value}` }];
      const d = v1Dir(facts, "blkio", machine);
      // blkio.weight is 10…1000
      return d ? [{ file: `${d}/blkio.weight`, data: String(Math.max(10, Math.min(1000, Math.round((p.value as number) / 10)))) }] : [];
    }
    case "AllowedCPUs": {
      if (use2("cpuset")) return [{ file: `${v2}/cpuset.cpus`, data: String(p.value) }];
      const d = v1Dir(facts, "cpuset", machine);
      return d ? [{ file: `${d}/cpuset.cpus`, data: String(p.value) }] : [];
    }
  }
}

/** Write the properties to the machine's cgroup; an unavailable controller is an error naming it. */
export function applyProperties(props: Property[], facts: CgroupFacts, machine: string): void {
  for (const p of props) {
    const targets = propertyTargets(p, facts, machine);
    if (targets.length === 0) throw new SpawnctlError(`${p.name}=${p.raw}: the controller it needs is not available on this host.`);
    for (const t of targets) {
      if (!existsSync(t.file)) throw new SpawnctlError(`${p.name}=${p.raw}: ${t.file} does not exist (controller not enabled?)`);
      try {
        writeFileSync(t.file, t.data);
      } catch (e) {
        throw new SpawnctlError(`setting ${p.name}=${p.raw} (${t.file}): ${fsMessage(e)}`, { cause: e });
      }
    }
  }
}

/** Read back the current value of a property, as systemd would show it. */
export function readProperty(name: PropertyName, facts: CgroupFacts, machine: string): string | undefined {
  const t = propertyTargets({ name, raw: "", value: name === "CPUQuota" ? 100 : name === "CPUWeight" || name === "IOWeight" ? 100 : name === "AllowedCPUs" ? "" : 0n }, facts, machine);
  const f = t[t.length - 1]?.file;
  if (!f) return undefined;
  try {
    return readFileSync(f, "utf8").trim();
  } catch {
    return undefined;
  }
}
