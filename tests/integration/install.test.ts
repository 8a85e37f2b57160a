// `make install DESTDIR=... PREFIX=/usr` puts the binary, its links, the man
// pages and the completion scripts where they belong; the installed bash
// completion completes verbs, options and live image names; every man page
// renders without warnings; `make uninstall` takes exactly those away.
import { expect } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { ROOT, IS_ROOT, needs, tempDir } from "../helpers.ts";

const has = (cmd: string) => Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).exitCode === 0;
const installTest = needs("root, make, groff and man (groff-base, man-db)", IS_ROOT && has("make") && has("groff") && has("man"));

const PAGES = ["spawnctl.1", "spawnctl-run.1", "spawnctl-machines.1", "spawnctl-bootstrap.1"];
const LINKS = ["systemd-nspawn", "machinectl", "journalctl", "systemd-cgls", "systemd-analyze", "systemd-cgtop", "systemd-run"];

function make(args: string[]): { code: number; out: string } {
  const p = Bun.spawnSync(["make", "-s", ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 600_000 });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

/** Every file and link under dir (directories left out), relative. */
function entries(dir: string, rel = ""): string[] {
  return readdirSync(`${dir}/${rel}`).flatMap((e) => {
    const r = rel ? `${rel}/${e}` : e;
    return lstatSync(`${dir}/${r}`).isDirectory() ? entries(dir, r) : [r];
  }).sort();
}

installTest("make install DESTDIR PREFIX=/usr: binary, links, man pages, completions; make uninstall removes them", () => {
  const dest = tempDir("spawnctl-install-");
  try {
    const inst = make(["install", `DESTDIR=${dest}`, "PREFIX=/usr", "LINKS=1"]);
    expect({ code: inst.code, out: inst.out }).toEqual({ code: 0, out: expect.any(String) });
    const files = entries(dest);
    expect(files).toEqual([
      ...LINKS.map((l) => `usr/bin/${l}`), "usr/bin/spawnctl",
      "usr/share/bash-completion/completions/machinectl", "usr/share/bash-completion/completions/spawnctl", "usr/share/bash-completion/completions/systemd-nspawn",
      "usr/share/fish/vendor_completions.d/machinectl.fish", "usr/share/fish/vendor_completions.d/spawnctl.fish", "usr/share/fish/vendor_completions.d/systemd-nspawn.fish",
      ...PAGES.map((p) => `usr/share/man/man1/${p}`),
      "usr/share/zsh/site-functions/_spawnctl",
    ].sort());
    for (const l of LINKS) expect(readlinkSync(`${dest}/usr/bin/${l}`)).toBe("spawnctl");
    expect(statSync(`${dest}/usr/bin/spawnctl`).mode & 0o777).toBe(0o755);

    // the installed bash completion, with an image directory of our own for the live names
    mkdirSync(`${dest}/images/comptest-alpha`, { recursive: true });
    mkdirSync(`${dest}/images/comptest-beta`, { recursive: true });
    writeFileSync(`${dest}/spawnctl.toml`, `[images]\npath = ["${dest}/images"]\n`);
    const complete = (words: string[]): string[] => {
      const prog = [
        `source ${dest}/usr/share/bash-completion/completions/spawnctl`,
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}`,
        `_spawnctl; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ].join("\n");
      const p = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", prog], {
        env: { ...process.env, PATH: `${dest}/usr/bin:${process.env.PATH}`, SPAWNCTL_CONFIG: `${dest}/spawnctl.toml` },
        stdout: "pipe", stderr: "pipe",
      });
      expect({ words, code: p.exitCode, stderr: p.stderr.toString() }).toEqual({ words, code: 0, stderr: "" });
      return p.stdout.toString().split("\n").filter(Boolean).sort();
    };
    expect(complete(["spawnctl", "sta"])).toEqual(["start", "status"]);
    expect(complete(["spawnctl", "run", "--priv"])).toEqual(["--private-network", "--private-users", "--private-users-chown", "--private-users-ownership"]);
    expect(complete(["spawnctl", "start", "comptest-"])).toEqual(["comptest-alpha", "comptest-beta"]);
    expect(complete(["spawnctl", "clone", "comptest-a"])).toEqual(["comptest-alpha"]);
    // through the links: machinectl's verbs, systemd-nspawn's options, -M's images (listed by spawnctl)
    expect(complete(["machinectl", "remove", "comptest-b"])).toEqual(["comptest-beta"]);
    expect(complete(["systemd-nspawn", "-M", "comptest-"])).toEqual(["comptest-alpha", "comptest-beta"]);
    expect(complete(["systemd-nspawn", "--private-users-o"])).toEqual(["--private-users-ownership"]);
    // the script registers itself for the links that are spawnctl
    const reg = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", `source ${dest}/usr/share/bash-completion/completions/spawnctl; complete -p spawnctl machinectl systemd-nspawn`], {
      env: { ...process.env, PATH: `${dest}/usr/bin:${process.env.PATH}` }, stdout: "pipe",
    });
    expect(reg.stdout.toString().trim().split("\n")).toEqual(["complete -F _spawnctl spawnctl", "complete -F _spawnctl machinectl", "complete -F _spawnctl systemd-nspawn"]);

    // every page renders without a warning, with groff and with man
    for (const page of PAGES) {
      const file = `${dest}/usr/share/man/man1/${page}`;
      const g = Bun.spawnSync(["groff", "-man", "-ww", "-z", file], { stdout: "pipe", stderr: "pipe" });
      expect({ page, code: g.exitCode, stderr: g.stderr.toString() }).toEqual({ page, code: 0, stderr: "" });
      const m = Bun.spawnSync(["man", "--warnings", "-l", file], { stdout: "pipe", stderr: "pipe", env: { ...process.env, MANPAGER: "cat", PAGER: "cat", MANWIDTH: "80" } });
      expect({ page, code: m.exitCode, stderr: m.stderr.toString() }).toEqual({ page, code: 0, stderr: "" });
      expect(m.stdout.toString()).toContain(page.replace(/\.1$/, "").toUpperCase());
    }

    // uninstall: nothing of ours is left; what else is there stays
    const un = make(["uninstall", `DESTDIR=${dest}`, "PREFIX=/usr"]);
    expect({ code: un.code, out: un.out }).toEqual({ code: 0, out: expect.any(String) });
    expect(entries(dest)).toEqual(["spawnctl.toml"]);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});

installTest("make install leaves a file of a link's name that is not spawnctl's alone, and uninstall keeps it", () => {
  const dest = tempDir("spawnctl-install-");
  try {
    mkdirSync(`${dest}/usr/bin`, { recursive: true });
    writeFileSync(`${dest}/usr/bin/machinectl`, "#!/bin/sh\necho systemd's\n");
    const inst = make(["install", `DESTDIR=${dest}`, "PREFIX=/usr", "LINKS=1"]);
    expect(inst.code).toBe(0);
    expect(inst.out).toContain("machinectl exists and is not a link to spawnctl; left alone");
    expect(lstatSync(`${dest}/usr/bin/machinectl`).isSymbolicLink()).toBe(false);
    expect(readlinkSync(`${dest}/usr/bin/systemd-nspawn`)).toBe("spawnctl");
    expect(make(["uninstall", `DESTDIR=${dest}`, "PREFIX=/usr"]).code).toBe(0);
    expect(entries(dest)).toEqual(["usr/bin/machinectl"]);
    // LINKS=0: no links at all
    expect(make(["install", `DESTDIR=${dest}`, "PREFIX=/usr", "LINKS=0"]).code).toBe(0);
    expect(existsSync(`${dest}/usr/bin/systemd-nspawn`)).toBe(false);
    expect(existsSync(`${dest}/usr/share/bash-completion/completions/machinectl`)).toBe(false);
    expect(existsSync(`${dest}/usr/bin/spawnctl`)).toBe(true);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});

const shellsTest = needs("zsh and fish", has("zsh") && has("fish"));

shellsTest("the zsh and fish scripts load and complete verbs and run's options", () => {
  const dir = tempDir("spawnctl-shells-");
  try {
    const bin = `${ROOT}/dist/spawnctl`;
    const env = { ...process.env, PATH: `${ROOT}/dist:${process.env.PATH}` };
    // fish: its own completion query
    writeFileSync(`${dir}/spawnctl.fish`, Bun.spawnSync([bin, "completion", "fish"]).stdout);
    const fish = Bun.spawnSync(["fish", "-c", `source ${dir}/spawnctl.fish; complete -C "spawnctl sta"; echo ---; complete -C "spawnctl run --priv"`], { env, stdout: "pipe", stderr: "pipe" });
    expect(fish.stderr.toString()).toBe("");
    const [verbs, opts] = fish.stdout.toString().split("---\n");
    expect(verbs!.split("\n").map((l) => l.split("\t")[0]).filter(Boolean).sort()).toEqual(["start", "status"]);
    expect(opts).toContain("--private-network");
    expect(opts).toContain("--private-users-ownership");
    // zsh: the function, through stand-ins for the completion system's builtins
    mkdirSync(`${dir}/zsh`);
    writeFileSync(`${dir}/zsh/_spawnctl`, Bun.spawnSync([bin, "completion", "zsh"]).stdout);
    expect(Bun.spawnSync(["zsh", "-n", `${dir}/zsh/_spawnctl`]).exitCode).toBe(0);
    writeFileSync(`${dir}/t.zsh`, [
      `fpath=(${dir}/zsh $fpath)`,
      `autoload -Uz compinit && compinit -u -d ${dir}/zcompdump`,
      'compadd() { print -r -- "ADD: $*"; }',
      '_describe() { print -r -- "DESCRIBE: $*"; }',
      'words=(spawnctl sta); CURRENT=2',
      "autoload -Uz _spawnctl; _spawnctl",
    ].join("\n"));
    const zsh = Bun.spawnSync(["zsh", "-f", `${dir}/t.zsh`], { env, stdout: "pipe", stderr: "pipe" });
    const offered = zsh.stdout.toString();
    expect(offered).toMatch(/\bstart\b/);
    expect(offered).toMatch(/\bstatus\b/);
    expect(offered).toMatch(/\bjournal\b/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
