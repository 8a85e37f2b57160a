// e2e with a real engine: Debian's Ansible, with community.general's
// machinectl become method, runs modules (fact gathering, lineinfile) inside
// a running spawnctl machine, through a link named machinectl, exactly as it
// drives systemd's machinectl.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT, SPAWNCTL, leftovers, needs, run, tempDir } from "../helpers.ts";
import { CACHE, haveMirror } from "./debian.ts";

const ok = IS_ROOT && haveMirror() && existsSync("/usr/bin/ansible-playbook");
const test = needs("root, a Debian mirror and ansible-playbook (Debian's ansible package)", ok);
const NAME = "sctest-ansible";
/** a Debian tree with systemd and python3 (what Ansible's modules need), made once by spawnctl bootstrap */
const TREE = `${CACHE}/debian-bookworm-ansible-v1`;
const before = ok ? leftovers() : [];
let tmp = "";

beforeAll(() => {
  if (!ok) return;
  tmp = tempDir();
  if (!existsSync(`${TREE}/usr/bin/python3`)) {
    mkdirSync(CACHE, { recursive: true });
    const b = Bun.spawnSync([SPAWNCTL, "bootstrap", "debian", "bookworm", TREE, "--include=systemd-sysv,dbus,python3", "--root-password="], { stdout: "inherit", stderr: "inherit" });
    if (b.exitCode !== 0) throw new Error(`spawnctl bootstrap failed (${b.exitCode})`);
  }
  mkdirSync("/var/lib/machines", { recursive: true });
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  symlinkSync(TREE, `/var/lib/machines/${NAME}`);
  mkdirSync("/etc/systemd/nspawn", { recursive: true });
  // the cached tree stays pristine; start returns once systemd said READY=1
  writeFileSync(`/etc/systemd/nspawn/${NAME}.nspawn`, "[Exec]\nEphemeral=yes\nNotifyReady=yes\n");
  symlinkSync(SPAWNCTL, `${tmp}/machinectl`);
}, 600_000);

afterAll(() => {
  if (!ok) return;
  run(["terminate", NAME]);
  rmSync(`/var/lib/machines/${NAME}`, { force: true });
  rmSync(`/etc/systemd/nspawn/${NAME}.nspawn`, { force: true });
  rmSync(`/var/log/spawnctl/${NAME}.console`, { force: true });
  rmSync(tmp, { recursive: true, force: true });
  expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
});

describe("Ansible", () => {
  test("a playbook with become_method community.general.machinectl runs its modules in the machine", async () => {
    expect(run(["start", NAME], { netns: true }).code).toBe(0);
    // --notify-ready: booted by the time start returns
    expect(run(["shell", NAME, "/bin/systemctl", "is-system-running"]).stdout).toMatch(/^(running|degraded)$/m);
    const end = Date.now() + 120_000;
    while (!/^(running|degraded)$/m.test(run(["shell", NAME, "/bin/systemctl", "is-system-running"]).stdout)) {
      if (Date.now() > end) throw new Error("the machine did not come up");
      await Bun.sleep(200);
    }
    writeFileSync(`${tmp}/play.yml`, `- hosts: localhost
  gather_facts: true
  become: true
  become_method: community.general.machinectl
  become_user: root
  become_flags: "-M ${NAME}"
  vars:
    ansible_become_exe: ${tmp}/machinectl
    ansible_python_interpreter: /usr/bin/python3
  tasks:
    - name: a line in a file of the guest
      ansible.builtin.lineinfile:
        path: /root/from-ansible.txt
        line: written by ansible
        create: true
    - name: the facts it gathered in the guest
      ansible.builtin.debug:
        msg: "FACTS host={{ ansible_hostname }} virt={{ ansible_virtualization_type }} init={{ ansible_service_mgr }}"
`);
    const p = Bun.spawnSync(["ansible-playbook", "-i", "localhost,", "-c", "local", `${tmp}/play.yml`], {
      cwd: tmp, stdout: "pipe", stderr: "pipe",
      // pipelining: the module goes to the guest's python3 on stdin (the host's
      // temporary files are not in the machine); become for root as root too
      env: { ...process.env, ANSIBLE_PIPELINING: "1", ANSIBLE_BECOME_ALLOW_SAME_USER: "1", ANSIBLE_NOCOLOR: "1", ANSIBLE_LOCAL_TEMP: `${tmp}/ansible-local`, HOME: tmp },
    });
    const out = p.stdout.toString();
    expect(p.exitCode, `${out}\n${p.stderr}`).toBe(0);
    expect(out).toContain(`FACTS host=${NAME} virt=container init=systemd`);
    expect(out).toMatch(/ok=3 +changed=1 +unreachable=0 +failed=0/);
    // written in the machine, not on the host
    expect(run(["shell", NAME, "/bin/cat", "/root/from-ansible.txt"]).stdout).toBe("written by ansible\n");
    expect(existsSync("/root/from-ansible.txt")).toBe(false);
    expect(run(["poweroff", NAME]).code).toBe(0);
    const gone = Date.now() + 60_000;
    while (run(["list", "--no-legend"]).stdout.includes(NAME) && Date.now() < gone) await Bun.sleep(200);
  }, 600_000);
});
