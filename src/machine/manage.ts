// set-property NAME KEY=VALUE...: persisted for the next start and applied to
// the running machine's cgroup at once.
import { applyProperties, parseProperty } from "../cgroup/properties.ts";
import { hostFacts } from "../container/host.ts";
import { leaderAlive, readState } from "../container/registry.ts";
import { saveProperties } from "../image/properties-store.ts";

export function setProperty(name: string, assignments: string[]): void {
  const props = assignments.map(parseProperty);
  const st = readState(name);
  if (st && leaderAlive(st)) applyProperties(props, hostFacts().cgroup, st.name);
  saveProperties(st?.image ?? name, assignments);
}
