// renameNoReplace is renameat2(RENAME_NOREPLACE) as a raw system call (musl
// has no wrapper): it renames, and refuses to replace a file or a directory.
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { EEXIST, ENOENT, renameNoReplace } from "../../../src/image/sys.ts";

test("renames, and never replaces a file or an empty directory", () => {
  const d = mkdtempSync("/tmp/spawnctl-rename-");
  try {
    writeFileSync(`${d}/a`, "a");
    writeFileSync(`${d}/b`, "b");
    mkdirSync(`${d}/empty`);
    expect(renameNoReplace(`${d}/a`, `${d}/b`)).toBe(EEXIST);
    expect(readFileSync(`${d}/b`, "utf8")).toBe("b");
    mkdirSync(`${d}/dir`);
    expect(renameNoReplace(`${d}/dir`, `${d}/empty`)).toBe(EEXIST);
    expect(renameNoReplace(`${d}/a`, `${d}/c`)).toBe(0);
    expect(existsSync(`${d}/a`)).toBe(false);
    expect(readFileSync(`${d}/c`, "utf8")).toBe("a");
    expect(renameNoReplace(`${d}/missing`, `${d}/x`)).toBe(ENOENT);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
