// --print-plan shows what a start would do and does none of it: no
// temporary directory, work directory, journal directory or link, no UID
// range lock, no chown of the tree, no runtime directories.
import { expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { busyboxFixture } from "../fixture.ts";
import { rootTest as test, run } from "../helpers.ts";

let base = "";
let tree = "";
busyboxFixture({ machineId: "fedcba9876543210fedcba9876543210" }, (b, t) => {
  base = b;
  tree = t;
});

function snapshot(): string {
  const list = (d: string) => (existsSync(d) ? readdirSync(d).sort().join(",") : "-");
  const owners = (p: string) => {
    const st = statSync(p);
    return `${st.uid}:${st.gid}`;
  };
  return [
    list("/var/tmp"), list(`${base}/upper-parent`), list("/run/spawnctl"), list("/run/spawnctl/uid-range"),
    list("/var/log/journal"), list(`${tree}/var/log`), owners(tree), owners(`${tree}/etc/passwd`), list("/run/systemd/nspawn/locks"),
  ].join("\n");
}

test("nothing is made or changed, with every option that would make something", () => {
  mkdirSync(`${base}/upper-parent/upper`, { recursive: true });
  mkdirSync(`${base}/lower`, { recursive: true });
  writeFileSync(`${base}/lower/f`, "x");
  rmSync("/var/log/journal/fedcba9876543210fedcba9876543210", { recursive: true, force: true });
  const before = snapshot();
  const common = ["--print-plan", "-D", tree, "--bind=:/scratch", `--overlay=${base}/lower::/o`, `--overlay=${base}/lower:${base}/upper-parent/upper:/o2`];
  for (const extra of [["--link-journal=try-host"], ["--link-journal=try-guest"], ["-U"], ["--private-users=pick", "--private-users-ownership=chown"]]) {
    const r = run(["run", ...common, ...extra, "/bin/true"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("exec");
    expect(snapshot()).toBe(before);
  }
});
