// Resource-control properties in systemd's spelling (MemoryMax=, CPUQuota=,
// TasksMax=, ...), written to the machine's cgroup: cgroup v2 files where the
// controller is enabled there, the v1 controller hierarchy otherwise (hybrid
// hosts such as this one keep the controllers in v1).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { CgroupFacts } from "../container/host.ts";
import { EINVAL, ERANGE, ParseError, displayValue, formatCpuList, parseCpuSet, parsePermyriad, parseSize, readCpuList, safeAtou64 } from "../settings/parse.ts";
import { CGROUP_PARENT } from "./cgroup.ts";

export type PropertyName = "MemoryMax" | "MemoryHigh" | "MemoryLow" | "MemorySwapMax" | "CPUQuota" | "CPUWeight" | "IOWeight" | "TasksMax" | "AllowedCPUs";

const ALIASES: Record<string, PropertyName> = {
  MemoryLimit: "MemoryMax",
  CPUShares: "CPUWeight",
  BlockIOWeight: "IOWeight",
  CPUSetCPUs: "AllowedCPUs",
};

/**
 * A parsed property. value: bytes (bigint) or "max" for the memory limits;
 * tasks (bigint) or "max" for TasksMax; 1/10000 of a CPU (number) or "max"
 * for CPUQuota; a weight 1…10000 for CPUWeight and IOWeight; a CPU list
 * ("0-3,5"), or "" for all of the parent's, for AllowedCPUs. An empty
 * assignment resets to the default, as in systemd ("MemoryMax=" is no limit).
 */
export interface Property { name: PropertyName; raw: string; value: bigint | "max" | number | string }

const PROPERTIES = new Set<string>(["MemoryMax", "MemoryHigh", "MemoryLow", "MemorySwapMax", "CPUQuota", "CPUWeight", "IOWeight", "TasksMax", "AllowedCPUs"]);

/** Every name parseProperty() takes, its own and systemd's older aliases */
export const PROPERTY_NAMES: readonly string[] = [...PROPERTIES, ...Object.keys(ALIASES)];

/** the kernel's PID_MAX_LIMIT on 64-bit: pids.max takes 0…4194304 or "max" */
export const PID_MAX_LIMIT = 4194304n;
/** systemd's CGROUP_WEIGHT_DEFAULT */
const WEIGHT_DEFAULT = 100;

function totalMemory(): bigint {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? BigInt(m[1]!) * 1024n : 0n;
}

function pidMax(): bigint {
  return BigInt(readFileSync("/proc/sys/kernel/pid_max", "utf8").trim());
}

/** "NAME=VALUE" → a property, or an error naming it and the value ("Failed to parse MemoryMax=…: Numerical result out of range"). */
export function parseProperty(assignment: string): Property {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw new SpawnctlError(`Invalid property assignment: ${displayValue(assignment)}`);
  const given = assignment.slice(0, eq);
  const raw = assignment.slice(eq + 1).trim();
  const name = Object.hasOwn(ALIASES, given) ? ALIASES[given]! : given;
  if (!PROPERTIES.has(name)) throw new SpawnctlError(`Unknown or unsupported property: ${displayValue(given)}`);
  const n = name as PropertyName;
  const bad = (reason: string, e?: unknown): never => {
    throw new SpawnctlError(`Failed to parse ${given}=${displayValue(raw)}: ${reason}`, e === undefined ? {} : { cause: e });
  };
  const reason = (e: unknown) => (e instanceof ParseError ? e.message : (e as Error).message);
  try {
    switch (n) {
      case "MemoryMax":
      case "MemoryHigh":
      case "MemoryLow":
      case "MemorySwapMax": {
        if (raw === "") return { name: n, raw, value: n === "MemoryLow" ? 0n : "max" };
        if (raw === "infinity") return { name: n, raw, value: "max" };
        const pm = parsePermyriad(raw);
        if (pm !== undefined) return { name: n, raw, value: (totalMemory() * BigInt(pm)) / 10000n };
        // bytes with K, M, G, T, P, E (1024-based) as systemd's parse_size(); at most 2^64-1
        return { name: n, raw, value: parseSize(raw) };
      }
      case "TasksMax": {
        if (raw === "" || raw === "infinity") return { name: n, raw, value: "max" };
        const pm = parsePermyriad(raw);
        const v = pm !== undefined ? (pidMax() * BigInt(pm)) / 10000n : safeAtou64(raw);
        if (v > PID_MAX_LIMIT) return bad(`${ERANGE} (the kernel's maximum is ${PID_MAX_LIMIT})`);
        return { name: n, raw, value: v };
      }
      case "CPUQuota": {
        if (raw === "") return { name: n, raw, value: "max" };
        const pm = parsePermyriad(raw, false);
        if (pm === undefined) return bad(`${EINVAL} (expected a percentage, e.g. 50%)`);
        if (pm === 0) return bad("CPU quota too small");
        return { name: n, raw, value: pm };
      }
      case "CPUWeight":
      case "IOWeight": {
        if (raw === "") return { name: n, raw, value: WEIGHT_DEFAULT };
        if (raw === "idle") return bad("Operation not supported (no CPUWeight=idle here)");
        const v = safeAtou64(raw);
        // the v1 names carry v1 units; they become weights as systemd converts them
        if (given === "CPUShares") {
          if (v < 2n || v > 262144n) return bad(ERANGE);
          return { name: n, raw, value: clampWeight(Number((v * 100n) / 1024n)) };
        }
        if (given === "BlockIOWeight") {
          if (v < 10n || v > 1000n) return bad(ERANGE);
          return { name: n, raw, value: clampWeight(Number((v * 100n) / 500n)) };
        }
        if (v < 1n || v > 10000n) return bad(ERANGE);
        return { name: n, raw, value: Number(v) };
      }
      case "AllowedCPUs": {
        if (raw === "") return { name: n, raw, value: "" };
        const cpus = parseCpuSet(raw);
        // cpuset.cpus takes only CPUs its parent has (EINVAL otherwise)
        const online = readCpuList("/sys/devices/system/cpu/online");
        const missing = online && online.size > 0 ? cpus.filter((c) => !online.has(c)) : [];
        if (missing.length > 0) return bad(`${EINVAL} (CPU ${formatCpuList(missing)} not online; online: ${formatCpuList(online!)})`);
        return { name: n, raw, value: formatCpuList(cpus) };
      }
    }
  } catch (e) {
    if (e instanceof SpawnctlError) throw e;
    return bad(reason(e), e);
  }
}

function clampWeight(w: number): number {
  return Math.max(1, Math.min(10000, w));
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
      // 1/10000 of a CPU per period of 100 ms is 10 µs; the kernel's minimum quota is 1 ms
      const quota = p.value === "max" ? undefined : Math.max(1000, (p.value as number) * 10);
      if (use2("cpu")) return [{ file: `${v2}/cpu.max`, data: `${quota ?? "max"} ${period}` }];
      const d = v1Dir(facts, "cpu", machine);
      return d ? [{ file: `${d}/cpu.cfs_period_us`, data: String(period) }, { file: `${d}/cpu.cfs_quota_us`, data: String(quota ?? -1) }] : [];
    }
    case "CPUWeight": {
      if (use2("cpu")) return [{ file: `${v2}/cpu.weight`, data: String(p.value) }];
      const d = v1Dir(facts, "cpu", machine);
      return d ? [{ file: `${d}/cpu.shares`, data: String(Math.max(2, Math.round(((p.value as number) * 1024) / 100))) }] : [];
    }
    case "IOWeight": {
      if (use2("io")) return [{ file: `${v2}/io.weight`, data: `default ${p.value}` }];
      const d = v1Dir(facts, "blkio", machine);
      // blkio.weight is 10…1000, 500 the default (systemd's cgroup_weight_io_to_blkio())
      return d ? [{ file: `${d}/blkio.weight`, data: String(Math.max(10, Math.min(1000, Math.floor(((p.value as number) * 500) / 100)))) }] : [];
    }
    case "AllowedCPUs": {
      // "" on v2 is the parent's set; a v1 cpuset needs it written out
      if (use2("cpuset")) return [{ file: `${v2}/cpuset.cpus`, data: String(p.value) }];
      const d = v1Dir(facts, "cpuset", machine);
      if (!d) return [];
      let data = String(p.value);
      if (data === "") {
        try {
          data = readFileSync(`${d.slice(0, d.lastIndexOf("/"))}/cpuset.cpus`, "utf8").trim();
        } catch {
          return [];
        }
      }
      return [{ file: `${d}/cpuset.cpus`, data }];
    }
  }
}

/** Write the properties to the machine's cgroup; an unavailable controller is an error naming it. */
export function applyProperties(props: Property[], facts: CgroupFacts, machine: string): void {
  for (const p of props) {
    const targets = propertyTargets(p, facts, machine);
    const shown = `${p.name}=${displayValue(p.raw)}`;
    if (targets.length === 0) throw new SpawnctlError(`${shown}: the controller it needs is not available on this host.`);
    for (const t of targets) {
      if (!existsSync(t.file)) throw new SpawnctlError(`${shown}: ${t.file} does not exist (controller not enabled?)`);
      try {
        writeFileSync(t.file, t.data);
      } catch (e) {
        throw new SpawnctlError(`setting ${shown} (${t.file}): ${fsMessage(e)}`, { cause: e });
      }
    }
  }
}

/** Read back the current value of a property, as systemd would show it. */
export function readProperty(name: PropertyName, facts: CgroupFacts, machine: string): string | undefined {
  const t = propertyTargets({ name, raw: "", value: name === "CPUQuota" ? 10000 : name === "CPUWeight" || name === "IOWeight" ? 100 : name === "AllowedCPUs" ? "0" : 0n }, facts, machine);
  const f = t[t.length - 1]?.file;
  if (!f) return undefined;
  try {
    return readFileSync(f, "utf8").trim();
  } catch {
    return undefined;
  }
}
