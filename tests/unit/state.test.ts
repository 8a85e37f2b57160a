// What is read back from disk is checked with zod schemas (src/util/state.ts):
// a state file cut short, of another version or edited by hand is refused,
// naming the file and the field.
import { expect, test } from "bun:test";
import { lazySchema, parseState } from "../../src/util/state.ts";
import { stateFromText, type MachineState } from "../../src/container/registry.ts";

const good: MachineState = {
  name: "web", class: "container", service: "spawnctl", leader: 42, leaderStart: "1234", supervisor: 41, supervisorStart: "1200",
  root: "/var/lib/machines/web", uuid: "0123456789abcdef0123456789abcdef", since: 1, cgroups: ["/sys/fs/cgroup/unified/spawnctl/web"],
  killSignal: 15, capability: "fdecafff", privateNetwork: true, boot: true, locks: [{ fd: 8, path: "/run/spawnctl/machines/web.lock" }],
};

test("a machine state round-trips", () => {
  expect(stateFromText(JSON.stringify(good), "web.json")).toEqual(good);
});

test("a state cut short, a wrong type or a missing field is refused, naming the file and the field", () => {
  expect(() => stateFromText(JSON.stringify(good).slice(0, 40), "/run/spawnctl/machines/web.json")).toThrow("/run/spawnctl/machines/web.json: not valid JSON");
  expect(() => stateFromText(JSON.stringify({ ...good, leader: "42" }), "web.json")).toThrow(/^web\.json: not a valid state file: leader: /);
  const { uuid: _, ...noUuid } = good;
  expect(() => stateFromText(JSON.stringify(noUuid), "web.json")).toThrow(/uuid: /);
  expect(() => stateFromText(JSON.stringify({ ...good, locks: [{ fd: "8" }] }), "web.json")).toThrow(/locks\.0\.fd: .*; locks\.0\.path: /);
  expect(() => stateFromText("[]", "web.json")).toThrow(/\(the whole file\)/);
});

test("schemas are made on first use only", () => {
  let made = 0;
  const s = lazySchema((z) => {
    made++;
    return z.object({ a: z.number() });
  });
  expect(made).toBe(0);
  expect(parseState(s(), '{"a":1}', "x")).toEqual({ a: 1 });
  expect(parseState(s(), '{"a":2}', "x")).toEqual({ a: 2 });
  expect(made).toBe(1);
});
