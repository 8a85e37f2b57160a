// -i/--image= in the settings: the machine name from the image file, the
// pool's NAME.raw found by -M, .nspawn beside the image, the refusals.
import { afterEach, describe, expect, test } from "bun:test";
import { parseCommandLine } from "../../../src/settings/cli.ts";
import { resolveSettings, type MergeEnv } from "../../../src/settings/merge.ts";

const files = new Map<string, string>();
const env = (over: Partial<MergeEnv> = {}): MergeEnv => ({
  cwd: "/work", isRoot: true, isTty: false, hostname: () => "h", isDir: (p) => p === "/pool/dir", readFile: (p) => files.get(p),
  isFile: (p) => p === "/pool/web.raw" || p === "/pool/dir.raw", random64: () => "0000000000000001", warn: () => {}, boundingSet: (1n << 41n) - 1n, ...over,
});
const resolve = (argv: string[], e = env()) => resolveSettings(parseCommandLine(argv, "/work"), e).settings;
const refusal = (argv: string[]): string => {
  try {
    resolve(argv);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("accepted");
};

afterEach(() => {
  files.clear();
  delete process.env.SPAWNCTL_IMAGE_PATH;
});

describe("--image=", () => {
  test("the machine is named after the image file without .raw; the path is made absolute", () => {
    const s = resolve(["-i", "imgs/web.raw"]);
    expect(s.image).toBe("/work/imgs/web.raw");
    expect(s.machine).toBe("web");
    expect(s.directory).toBe("");
    expect(resolve(["-i", "/x/disk.img"]).machine).toBe("disk.img");
    // -x: a random suffix, as for a directory
    expect(resolve(["-x", "-i", "/x/web.raw"]).machine).toBe("web-0000000000000001");
  });

  test("-M NAME finds NAME.raw in the pool when there is no directory NAME; a directory comes first", () => {
    process.env.SPAWNCTL_IMAGE_PATH = "/pool";
    const s = resolve(["-M", "web"]);
    expect([s.image, s.directory]).toEqual(["/pool/web.raw", ""]);
    const d = resolve(["-M", "dir"]);
    expect([d.image, d.directory]).toEqual(["", "/pool/dir"]);
    expect(refusal(["-M", "nothing"])).toBe("No image for machine 'nothing'.");
  });

  test("NAME.nspawn beside the image is read", () => {
    files.set("/x/web.nspawn", "[Exec]\nHostname=fromfile\n");
    expect(resolve(["-i", "/x/web.raw"]).hostname).toBe("fromfile");
  });

  test("combinations nspawn refuses, and dm-verity", () => {
    expect(refusal(["-i", "/x/web.raw", "-D", "/t"])).toBe("--directory= and --image= may not be combined.");
    expect(refusal(["-i", "/x/web.raw", "--template=/t"])).toBe("--template= and --image= may not be combined.");
    expect(refusal(["-i", "/x/web.raw", "--root-hash=0123"])).toBe(
      "--root-hash= is not supported (nor --root-hash-sig=, --verity-data=): spawnctl does not set up dm-verity; run the image without it.",
    );
  });
});
