// Resource-control properties in systemd's spelling (MemoryMax=, CPUQuota=,
// TasksMax=, ...), written to the machine's cgroup: cgroup v2 files where the
// controller is enabled there, the v1 controller hierarchy otherwise (hybrid
// hosts such as this one keep the controllers in v1).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { SpawnctlError, fsMessage } from "../util/errors.ts";
import type { CgroupFacts } from "./facts.ts";
import { clampWeight, type Property, type PropertyName } from "../settings/properties.ts";
import { displayValue } from "../settings/parse.ts";
export { PROPERTY_NAMES, parseProperty, type Property, type PropertyName } from "../settings/properties.ts";
import { machineCgroupRel } from "./cgroup.ts";


interface Target { file: string; data: string }

function v2Enabled(dir: string, controller: string): boolean {
  try {
    return readFileSync(`${dir}/cgroup.controllers`, "utf8").split(/\s+/).includes(controller);
  } catch {
    return false;
  }
}

function v1Dir(facts: CgroupFacts, controller: string, machine: string, sub: string): string | undefined {
  const h = facts.v1.find((x) => x.controllers.includes(controller));
  return h ? `${h.mountpoint}/${machineCgroupRel(machine)}${sub}` : undefined;
}

/** A unit's path below a machine in a v1 controller hierarchy: never in the payload (only the managed hierarchies have one). */
function v1Sub(unit: string | undefined, payload: boolean): string {
  if (!unit) return "";
  return `/${payload && unit.startsWith("payload/") ? unit.slice(8) : unit}`;
}

/** Which file gets what for a property, on this host's layout. */
export function propertyTargets(p: Property, facts: CgroupFacts, machine: string, unit?: string, payload = false): Target[] {
  const v2 = facts.unified ? `${facts.unified}/${machineCgroupRel(machine)}${unit ? `/${unit}` : ""}` : undefined;
  const sub = v1Sub(unit, payload);
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
      const d = v1Dir(facts, "memory", machine, sub);
      if (!d) return [];
      const file1 = { MemoryMax: "memory.limit_in_bytes", MemoryHigh: "memory.soft_limit_in_bytes", MemoryLow: "memory.soft_limit_in_bytes", MemorySwapMax: "memory.memsw.limit_in_bytes" }[p.name];
      return [{ file: `${d}/${file1}`, data: v1max(p.value) }];
    }
    case "TasksMax": {
      if (use2("pids")) return [{ file: `${v2}/pids.max`, data: val(p.value) }];
      const d = v1Dir(facts, "pids", machine, sub);
      return d ? [{ file: `${d}/pids.max`, data: val(p.value) }] : [];
    }
    case "CPUQuota": {
      const period = 100000;
      // 1/10000 of a CPU per period of 100 ms is 10 µs; the kernel's minimum quota is 1 ms
      const quota = p.value === "max" ? undefined : Math.max(1000, (p.value as number) * 10);
      if (use2("cpu")) return [{ file: `${v2}/cpu.max`, data: `${quota ?? "max"} ${period}` }];
      const d = v1Dir(facts, "cpu", machine, sub);
      return d ? [{ file: `${d}/cpu.cfs_period_us`, data: String(period) }, { file: `${d}/cpu.cfs_quota_us`, data: String(quota ?? -1) }] : [];
    }
    case "CPUWeight": {
      if (use2("cpu")) return [{ file: `${v2}/cpu.weight`, data: String(p.value) }];
      const d = v1Dir(facts, "cpu", machine, sub);
      return d ? [{ file: `${d}/cpu.shares`, data: String(Math.max(2, Math.round(((p.value as number) * 1024) / 100))) }] : [];
    }
    case "IOWeight": {
      if (use2("io")) return [{ file: `${v2}/io.weight`, data: `default ${p.value}` }];
      const d = v1Dir(facts, "blkio", machine, sub);
      // blkio.weight is 10…1000, 500 the default (systemd's cgroup_weight_io_to_blkio())
      return d ? [{ file: `${d}/blkio.weight`, data: String(Math.max(10, Math.min(1000, Math.floor(((p.value as number) * 500) / 100)))) }] : [];
    }
    case "AllowedCPUs": {
      // "" on v2 is the parent's set; a v1 cpuset needs it written out
      if (use2("cpuset")) return [{ file: `${v2}/cpuset.cpus`, data: String(p.value) }];
      const d = v1Dir(facts, "cpuset", machine, sub);
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
export function applyProperties(props: Property[], facts: CgroupFacts, machine: string, unit?: string, payload = false): void {
  for (const p of props) {
    const targets = propertyTargets(p, facts, machine, unit, payload);
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
