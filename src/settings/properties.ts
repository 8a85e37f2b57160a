// Resource properties (MemoryMax=, CPUQuota=, ...) as systemd parses them:
// names, aliases and bounded values. Applying them to a machine's cgroup is
// src/cgroup/properties.ts.
import { existsSync, readFileSync } from "node:fs";
import { SpawnctlError } from "../util/errors.ts";
import { EINVAL, ERANGE, ParseError, displayValue, formatCpuList, parseCpuSet, parsePermyriad, parseSize, readCpuList, safeAtou64 } from "./parse.ts";

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
/** a weight within cgroup v2's 1…10000 */
export function clampWeight(w: number): number {
  return Math.max(1, Math.min(10000, w));
}

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
        try {
          return { name: n, raw, value: parseSize(raw) };
        } catch (e) {
          if (e instanceof ParseError && e.message === EINVAL) return bad(`${EINVAL} (not a size: give bytes with an optional K, M, G, T, P or E suffix, a percentage of the RAM, or infinity)`, e);
          throw e;
        }
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

