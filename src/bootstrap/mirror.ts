// Where Debian packages come from when no --mirror is given: an environment
// variable, else the host's own apt sources. No mirror is ever hard-coded.
import { config } from "../settings/config.ts";
import { existsSync, readdirSync, readFileSync } from "node:fs";

export interface AptSource { uri: string; suites: string[]; components: string[] }

/** deb822 .sources stanzas and one-line "deb URI SUITE COMPONENTS" entries */
export function parseAptSources(text: string, deb822: boolean): AptSource[] {
  const out: AptSource[] = [];
  if (deb822) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const f: Record<string, string> = {};
      for (const line of stanza.split("\n")) {
        if (line.startsWith("#")) continue;
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m) f[m[1]!.toLowerCase()] = m[2]!.trim();
      }
      if (!f.uris || !(f.types ?? "deb").split(/\s+/).includes("deb") || f.enabled === "no") continue;
      for (const uri of f.uris.split(/\s+/)) out.push({ uri, suites: (f.suites ?? "").split(/\s+/).filter(Boolean), components: (f.components ?? "").split(/\s+/).filter(Boolean) });
    }
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ uri: m[1]!, suites: [m[2]!], components: m[3]!.split(/\s+/).filter(Boolean) });
  }
  return out;
}

export function hostAptSources(root = "/etc/apt"): AptSource[] {
  const out: AptSource[] = [];
  const read = (p: string, deb822: boolean) => {
    try {
      out.push(...parseAptSources(readFileSync(p, "utf8"), deb822));
    } catch {
      /* unreadable */
    }
  };
  if (existsSync(`${root}/sources.list`)) read(`${root}/sources.list`, false);
  try {
    for (const f of readdirSync(`${root}/sources.list.d`).sort()) {
      if (f.endsWith(".list")) read(`${root}/sources.list.d/${f}`, false);
      else if (f.endsWith(".sources")) read(`${root}/sources.list.d/${f}`, true);
    }
  } catch {
    /* no directory */
  }
  return out;
}

/**
 * The Debian (or Ubuntu) archive to use for a suite: $SPAWNCTL_MIRROR, else
 * the host's apt source that carries the suite itself (not -security or
 * -updates), else one that carries a sibling suite of the same archive.
 */
export function defaultMirror(suite: string, env = process.env, sources = hostAptSources()): string | undefined {
  if (env.SPAWNCTL_MIRROR) return env.SPAWNCTL_MIRROR;
  const configured = config().bootstrap.mirror;
  if (configured) return configured;
  const main = sources.filter((s) => /^(https?|file):/.test(s.uri) && s.components.includes("main"));
  const exact = main.find((s) => s.suites.includes(suite));
  if (exact) return exact.uri;
  const archive = main.find((s) => s.suites.some((x) => !/-(security|updates|backports)$/.test(x) && !x.includes("/")));
  return archive?.uri;
}
