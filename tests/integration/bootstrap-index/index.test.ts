// The first stage against the real archive: fetch and verify InRelease, fetch
// the Packages index, resolve, and compare with debootstrap's package lists
// (tests/unit/bootstrap/fixtures/debootstrap/, from
// `debootstrap --print-debs --variant=V SUITE DIR MIRROR`; regenerate them if a
// point release changes the sets). Needs the network: skipped without it,
// failing in CI.
import { afterAll, describe, expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { fetchAll } from "../../../src/archive/download.ts";
import { fetchIndex, fetchRelease } from "../../../src/bootstrap/fetch.ts";
import { defaultMirror } from "../../../src/bootstrap/mirror.ts";
import { PackageIndex } from "../../../src/bootstrap/packages.ts";
import { parseKeyring } from "../../../src/archive/pgp.ts";
import { resolveDebian, type Variant } from "../../../src/bootstrap/resolve.ts";
import { needs } from "../../helpers.ts";

const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";
const LISTS = `${import.meta.dir}/../../unit/bootstrap/fixtures/debootstrap`;
const mirror = defaultMirror("bookworm");

async function reachable(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, "")}/dists/bookworm/InRelease`, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    return res.ok;
  } catch {
    return false;
  }
}

const missing = !mirror ? "a Debian mirror ($SPAWNCTL_MIRROR or an apt source)" : !(await reachable(mirror)) ? "network access to the Debian mirror" : !existsSync(KEYRING) ? KEYRING : undefined;
const netTest = needs(missing ?? "", missing === undefined);
const expected = (name: string) => readFileSync(`${LISTS}/${name}.txt`, "utf8").trim().split("\n");

function ms(t: number): string {
  return `${(performance.now() - t).toFixed(0)} ms`;
}

const cache = mkdtempSync("/tmp/spawnctl-bootstrap-index-");
afterAll(() => rmSync(cache, { recursive: true, force: true }));

async function loadSuite(suite: string): Promise<{ index: PackageIndex; codename: string }> {
  const keyring = parseKeyring(new Uint8Array(readFileSync(KEYRING)), KEYRING);
  let t = performance.now();
  const { release, goodSigners } = await fetchRelease(mirror!, suite, keyring);
  console.log(`${suite}: InRelease fetched and verified (${goodSigners.length} good signatures) in ${ms(t)}`);
  t = performance.now();
  const { text, url } = await fetchIndex(mirror!, suite, "main", "amd64", release);
  console.log(`${suite}: ${url.slice(url.indexOf("/dists/"))} fetched, checked and gunzipped in ${ms(t)}`);
  t = performance.now();
  const index = PackageIndex.fromPackagesFiles("amd64", [{ text, what: `${suite} main amd64 Packages` }]);
  console.log(`${suite}: ${(text.length / 1e6).toFixed(1)} MB parsed into ${index.size} packages in ${ms(t)}`);
  return { index, codename: release.codename ?? suite };
}

function resolveTimed(index: PackageIndex, suite: string, variant: Variant) {
  const t = performance.now();
  const r = resolveDebian(index, { variant, include: [], exclude: [], suite, arch: "amd64" });
  console.log(`${suite}: ${variant} resolved to ${r.all.length} packages (${r.essential.length} essential) in ${ms(t)}`);
  return r;
}

describe("bootstrap index against the real archive", () => {
  netTest("bookworm: minbase is debootstrap's 88 packages, buildd its 144, the default its 156; the .debs download and verify", async () => {
    const { index, codename } = await loadSuite("bookworm");
    expect(codename).toBe("bookworm");
    const minbase = resolveTimed(index, codename, "minbase");
    expect(minbase.all.map((p) => p.name)).toEqual(expected("debootstrap-bookworm-minbase"));
    expect(resolveTimed(index, codename, "buildd").all.map((p) => p.name)).toEqual(expected("debootstrap-bookworm-buildd"));
    expect(resolveTimed(index, codename, "important").all.map((p) => p.name)).toEqual(expected("debootstrap-bookworm-default"));

    const items = minbase.all.map((p) => ({ url: `${mirror!.replace(/\/+$/, "")}/${p.filename}`, size: p.size, sha256: p.sha256 }));
    let t = performance.now();
    const got = await fetchAll(items, { cacheDir: `${cache}/archives` });
    const bytes = got.reduce((n, g) => n + g.size, 0);
    console.log(`bookworm: ${got.length} .debs (${(bytes / 2 ** 20).toFixed(1)} MiB) downloaded and verified in ${ms(t)}`);
    t = performance.now();
    const again = await fetchAll(items, { cacheDir: `${cache}/archives` });
    console.log(`bookworm: the same ${again.length} .debs reused from the cache in ${ms(t)}`);
    expect(again.every((g) => g.cached)).toBe(true);
  }, 120_000);

  netTest("bookworm: Packages.xz, through the default xz decoder, is the same index", async () => {
    const keyring = parseKeyring(new Uint8Array(readFileSync(KEYRING)), KEYRING);
    const { release } = await fetchRelease(mirror!, "bookworm", keyring);
    const xzOnly = { ...release, files: new Map([...release.files].filter(([path]) => !path.endsWith("/Packages.gz"))) };
    const t = performance.now();
    const { text, url } = await fetchIndex(mirror!, "bookworm", "main", "amd64", xzOnly);
    console.log(`bookworm: ${url.slice(url.indexOf("/dists/"))} (xz) fetched, decompressed and checked in ${ms(t)}`);
    // fetchIndex has compared the result with the uncompressed Packages entry of the Release file
    expect(text.length).toBeGreaterThan(40e6);
  }, 120_000);

  netTest("trixie: minbase is debootstrap's 78 packages", async () => {
    const { index, codename } = await loadSuite("trixie");
    expect(resolveTimed(index, codename, "minbase").all.map((p) => p.name)).toEqual(expected("debootstrap-trixie-minbase"));
  }, 120_000);
});
