// set-property NAME KEY=VALUE...: persisted for the next start and applied to
// the running machine's cgroup at once. NAME is a machine or an image: the
// running machine of an image (an ephemeral one runs as NAME-<suffix>) gets
// the properties live, and the image's file keeps them for later starts. A
// stopped machine (an image, nothing running) only gets the file, and is
// told so; a name that is neither is an error and nothing is written.
import { applyProperties, parseProperty } from "../cgroup/properties.ts";
import { hostFacts } from "../container/host.ts";
import { runningFor } from "../container/registry.ts";
import { saveProperties } from "../image/properties-store.ts";
import { info } from "../util/log.ts";

export function setProperty(name: string, assignments: string[]): void {
  // every assignment is checked before anything is changed
  const props = assignments.map(parseProperty);
  const st = runningFor(name);
  if (st) {
    applyProperties(props, hostFacts().cgroup, st.name);
    saveProperties(st.image ?? name, assignments);
    return;
  }
  // refuses a name that is no machine and no image ("No machine 'NAME' known.")
  saveProperties(name, assignments);
  info(`Machine '${name}' is not running; the properties were saved and apply at its next start.`);
}
