// A test file's busybox tree: made before its tests in a fresh temporary
// directory and removed after them, when the file must also have left nothing
// behind (mounts, cgroups, links, state files, processes, forwarding).
// Separate from helpers.ts, which the benchmarks import outside `bun test`.
import { afterAll, beforeAll, expect } from "bun:test";
import { IS_ROOT, leftovers, makeBusyboxTree, removeTree, tempDir, type TreeOptions } from "./helpers.ts";

export interface FixtureHooks {
  /** more set-up once the tree exists */
  setup?: (base: string, tree: string) => void;
  /** more checks before the directory goes */
  teardown?: () => void;
}

/** Register the hooks; `got` receives the directory and the tree (at `base/bb`). Call it at the top level of a test file. */
export function busyboxFixture(opts: TreeOptions, got: (base: string, tree: string) => void, hooks: FixtureHooks = {}): void {
  const before = IS_ROOT ? leftovers() : [];
  let base = "";
  beforeAll(() => {
    if (!IS_ROOT) return;
    base = tempDir();
    const tree = makeBusyboxTree(`${base}/bb`, opts);
    got(base, tree);
    hooks.setup?.(base, tree);
  });
  afterAll(() => {
    if (!IS_ROOT) return;
    removeTree(base);
    hooks.teardown?.();
    expect(leftovers().filter((l) => !before.includes(l))).toEqual([]);
  });
}
