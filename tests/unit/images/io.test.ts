// The image I/O pieces without root: jobs and their undo steps, sparse raw
// copies, compressed sinks, and a tree -> tar -> tree round trip through
// writeTreeAsTar and the batched extractTarBytes.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { readTar } from "../../../src/archive/tar.ts";
import { openSink } from "../../../src/image/compress.ts";
import { Job, runJob } from "../../../src/image/job.ts";
import { copyRawFile, isQcow2, SparseWriter } from "../../../src/image/raw.ts";
import { extractTarBytes, writeTreeAsTar } from "../../../src/image/tar-io.ts";
import { SpawnctlError } from "../../../src/util/errors.ts";

const dir = mkdtempSync(`${tmpdir()}/spawnctl-images-io-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("jobs", () => {
  test("undo steps run newest first on failure, not at all on success", async () => {
    const log: string[] = [];
    await expect(
      runJob("doing a thing", async (job) => {
        job.onUndo("first", () => log.push("undo first"));
        job.onUndo("second", () => log.push("undo second"));
        throw new SpawnctlError("it broke");
      }),
    ).rejects.toThrow("it broke");
    expect(log).toEqual(["undo second", "undo first"]);
    log.length = 0;
    expect(await runJob("doing it right", async (job) => {
      job.onUndo("x", () => log.push("undo"));
      return 42;
    })).toBe(42);
    expect(log).toEqual([]);
  });

  test("a cancelled job fails at its next tick and in a race, with the signal's exit status", async () => {
    const job = new Job("importing x");
    job.cancel("SIGINT");
    expect(() => job.check()).toThrow("importing x: cancelled by SIGINT");
    try {
      await job.tick();
    } catch (e) {
      expect((e as SpawnctlError).exitCode).toBe(130);
    }
    const j2 = new Job("pulling y");
    const never = new Promise<number>(() => {});
    const raced = j2.race(never);
    j2.cancel("SIGTERM");
    await expect(raced).rejects.toThrow("pulling y: cancelled by SIGTERM");
    expect(await new Job("z").race(Promise.resolve(7))).toBe(7);
  });

  test("a temporary file registered for removal is gone after a failure", async () => {
    const p = `${dir}/partial`;
    await expect(
      runJob("writing", async (job) => {
        job.removeOnFailure(p);
        writeFileSync(p, "half");
        throw new Error("disk full");
      }),
    ).rejects.toThrow("disk full");
    expect(() => lstatSync(p)).toThrow();
  });
});

describe("raw images", () => {
  test("zero blocks become holes; the size is kept", () => {
    const p = `${dir}/sparse.raw`;
    const fd = openSync(p, "wx");
    const w = new SparseWriter(fd, p);
    w.write(new Uint8Array(4 << 20));
    w.write(new Uint8Array(65536).fill(9));
    w.write(new Uint8Array(4 << 20));
    w.finish();
    closeSync(fd);
    const st = statSync(p);
    expect(st.size).toBe((8 << 20) + 65536);
    expect(st.blocks * 512).toBeLessThanOrEqual(256 * 1024);
    expect(readFileSync(p)[(4 << 20) + 5]).toBe(9);
  });

  test("copyRawFile keeps contents and holes", async () => {
    const src = `${dir}/src.raw`;
    const fd = openSync(src, "w");
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
    writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 32 << 20);
    closeSync(fd);
    const dst = `${dir}/dst.raw`;
    await copyRawFile(src, dst, new Job("copying"));
    expect(Buffer.compare(readFileSync(src), readFileSync(dst))).toBe(0);
    expect(statSync(dst).blocks * 512).toBeLessThan(1 << 20);
  });

  test("qcow2 is recognised by its magic", () => {
    expect(isQcow2(new Uint8Array([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]))).toBe(true);
    expect(isQcow2(new Uint8Array([0x51, 0x46, 0x49]))).toBe(false);
    expect(isQcow2(new Uint8Array(8))).toBe(false);
  });
});

describe("compressed output", () => {
  const payload = new Uint8Array(3 << 20).map((_, i) => (i * 7) % 251);
  for (const format of ["uncompressed", "gzip", "zstd"] as const) {
    test(`${format} sink`, async () => {
      const p = `${dir}/out.${format}`;
      const fd = openSync(p, "w");
      const sink = openSink(format, fd, "writing a test file");
      for (let off = 0; off < payload.length; off += 100_000) await sink.write(payload.subarray(off, off + 100_000));
      await sink.end();
      closeSync(fd);
      const raw = new Uint8Array(readFileSync(p));
      const back = format === "gzip" ? Bun.gunzipSync(raw) : format === "zstd" ? Bun.zstdDecompressSync(raw) : raw;
      expect(Buffer.compare(Buffer.from(back), Buffer.from(payload))).toBe(0);
    });
  }

  test("bzip2 is refused by name", () => {
    expect(() => openSink("bzip2", 1, "exporting x")).toThrow("exporting x: bzip2 compression is not supported");
  });
});

describe("tree -> tar -> tree", () => {
  test("files, directories, symlinks and hardlinks survive, in batches", async () => {
    const src = `${dir}/tree`;
    mkdirSync(`${src}/many`, { recursive: true });
    for (let i = 0; i < 700; i++) writeFileSync(`${src}/many/f${i}`, `file ${i}\n`);
    writeFileSync(`${src}/big`, new Uint8Array(20 << 20).fill(3));
    symlinkSync("many/f1", `${src}/link`);
    linkSync(`${src}/many/f2`, `${src}/hard`);
    mkdirSync(`${src}/locked`, { mode: 0o555 });

    const tar = `${dir}/tree.tar`;
    const fd = openSync(tar, "w");
    const sink = openSink("uncompressed", fd, "exporting");
    const st = await writeTreeAsTar(src, sink, new Job("exporting"));
    closeSync(fd);
    expect(st.entries).toBe(1 + 1 + 700 + 1 + 1 + 1 + 1);
    const entries = [...readTar(readFileSync(tar))];
    expect(entries[0]!.path).toBe(".");
    // the first name in walk order ("hard" sorts before "many/") holds the data
    expect(entries.find((e) => e.path === "hard")).toMatchObject({ type: "file" });
    expect(entries.find((e) => e.path === "many/f2")).toMatchObject({ type: "hardlink", linkname: "./hard" });

    const out = `${dir}/out`;
    mkdirSync(out);
    const x = await extractTarBytes(readFileSync(tar), out, new Job("importing"), { devices: false, name: "tree.tar" });
    expect(x.files).toBe(701);
    expect(readFileSync(`${out}/many/f699`, "utf8")).toBe("file 699\n");
    expect(readlinkSync(`${out}/link`)).toBe("many/f1");
    expect(statSync(`${out}/hard`).ino).toBe(statSync(`${out}/many/f2`).ino);
    expect(statSync(`${out}/locked`).mode & 0o777).toBe(0o555);
    expect(statSync(`${out}/big`).size).toBe(20 << 20);
    // directory times are those of the archive, although later batches wrote into them
    expect(Math.floor(statSync(`${out}/many`).mtimeMs / 1000)).toBe(Math.floor(statSync(`${src}/many`).mtimeMs / 1000));
  });

  test("an empty archive is an error", async () => {
    await expect(extractTarBytes(new Uint8Array(1024), `${dir}`, new Job("importing"), { devices: false, name: "empty.tar" })).rejects.toThrow("the archive holds no entries");
  });
});
