#!/usr/bin/env bun
// OCI images side by side with what a user would otherwise do. Not a test.
//   bun bench/oci.ts [--runs N]
//
// pull: a multi-layer image (the busybox fixture and four layers of 12 MiB)
//   from a docker-registry on 127.0.0.1, paired and alternating, each into
//   an empty pool / directory:
//     dist/spawnctl pull-oci REF NAME
//     skopeo copy docker://REF oci:DIR:x && umoci unpack --image DIR:x BUNDLE
//   goal: ratio ≤ 1×.
// disk: ten images from one base (each adds a small layer of its own),
//   imported into one pool: du of the pool against one flattened copy and
//   against ten; goal ≤ 1.2× one copy.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { makeBusyboxTree, removeTree, tempDir, SPAWNCTL } from "../tests/helpers.ts";

const args = process.argv.slice(2);
const runsArg = args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 5;

function sh(...cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stderr: "pipe", env: process.env });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString().slice(0, 400)}`);
  return p.stdout.toString();
}

function timed(cmds: string[][], env: Record<string, string> = {}): number {
  const t0 = performance.now();
  for (const c of cmds) {
    const p = Bun.spawnSync(c, { stdout: "ignore", stderr: "pipe", env: { ...process.env, ...env } });
    if (p.exitCode !== 0) throw new Error(`${c.join(" ")}: ${p.stderr.toString().slice(0, 400)}`);
  }
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const du = (p: string) => Number(sh("du", "-sk", p).split("\t")[0]) * 1024;
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

const base = tempDir("sctest-bench-oci-");
try {
  const port = 20000 + Math.floor(Math.random() * 20000);
  writeFileSync(`${base}/reg.yml`, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${base}/reg\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const registry = Bun.spawn(["docker-registry", "serve", `${base}/reg.yml`], { stdout: "ignore", stderr: "ignore" });
  try {
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/v2/`);
        break;
      } catch {
        await Bun.sleep(50);
      }
    }
    // the image: the busybox tree, then four layers of 4 MiB random and 8 MiB text each
    const lay = `${base}/layout`;
    const tree = makeBusyboxTree(`${base}/tree`);
    sh("umoci", "init", "--layout", lay);
    sh("umoci", "new", "--image", `${lay}:big`);
    sh("umoci", "unpack", "--image", `${lay}:big`, `${base}/b`);
    cpSync(`${tree}/`, `${base}/b/rootfs`, { recursive: true, verbatimSymlinks: true });
    sh("umoci", "repack", "--image", `${lay}:big`, `${base}/b`);
    for (let l = 0; l < 4; l++) {
      removeTree(`${base}/b`);
      sh("umoci", "unpack", "--image", `${lay}:big`, `${base}/b`);
      mkdirSync(`${base}/b/rootfs/data${l}`);
      writeFileSync(`${base}/b/rootfs/data${l}/random`, crypto.getRandomValues(new Uint8Array(4 << 20)).map((x) => x) as Uint8Array);
      writeFileSync(`${base}/b/rootfs/data${l}/text`, Array.from({ length: 8 << 14 }, (_, i) => `line ${i} of layer ${l}: ${"abcdefghij".repeat(4)}`).join("\n").slice(0, 8 << 20));
      sh("umoci", "repack", "--image", `${lay}:big`, `${base}/b`);
    }
    const ref = `127.0.0.1:${port}/bench/big:1`;
    sh("skopeo", "copy", "-q", "--dest-tls-verify=false", `oci:${lay}:big`, `docker://${ref}`);

    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const pool = `${base}/pool`;
      const oci = `${base}/oci`;
      const bundle = `${base}/bundle`;
      for (const order of i % 2 ? [0, 1] : [1, 0]) {
        if (order === 0) {
          removeTree(pool);
          mkdirSync(pool);
          ours.push(timed([[SPAWNCTL, "pull-oci", "-q", ref, "big"]], { SPAWNCTL_IMAGE_PATH: pool }));
        } else {
          removeTree(oci);
          removeTree(bundle);
          theirs.push(timed([["skopeo", "copy", "-q", "--src-tls-verify=false", `docker://${ref}`, `oci:${oci}:x`], ["umoci", "unpack", "--image", `${oci}:x`, bundle]], { HOME: `${base}/home` }));
        }
      }
    }
    console.log(`pull of a 5-layer image (${mib(du(`${base}/reg`))} in the registry), ${RUNS} paired runs:`);
    console.log(`  spawnctl pull-oci       ${median(ours).toFixed(0).padStart(6)} ms (median)`);
    console.log(`  skopeo copy + umoci     ${median(theirs).toFixed(0).padStart(6)} ms (median)`);
    console.log(`  ratio                   ${(median(ours) / median(theirs)).toFixed(2)}× (goal ≤ 1×)`);

    // disk: ten images from one base
    const pool = `${base}/pool10`;
    mkdirSync(pool);
    process.env.SPAWNCTL_IMAGE_PATH = pool;
    for (let i = 0; i < 10; i++) {
      removeTree(`${base}/v`);
      sh("umoci", "unpack", "--image", `${lay}:big`, `${base}/v`);
      writeFileSync(`${base}/v/rootfs/etc/variant`, `variant ${i}\n`);
      sh("umoci", "repack", "--image", `${lay}:v${i}`, `${base}/v`);
      sh(SPAWNCTL, "import-oci", "-q", `${lay}:v${i}`, `v${i}`);
    }
    void pool;
    const poolBytes = du(`${base}/pool10`);
    removeTree(`${base}/flat`);
    sh("umoci", "unpack", "--image", `${lay}:v0`, `${base}/flat`);
    const one = du(`${base}/flat/rootfs`);
    console.log(`disk: ten images from one base in one pool: ${mib(poolBytes)}; one flattened copy ${mib(one)}, ten ${mib(10 * one)}`);
    console.log(`  pool / one copy         ${(poolBytes / one).toFixed(2)}× (goal ≤ 1.2×)`);
    console.log(`  pool / ten copies       ${(poolBytes / (10 * one)).toFixed(2)}×`);
  } finally {
    registry.kill();
    await registry.exited;
  }
} finally {
  removeTree(base);
}
