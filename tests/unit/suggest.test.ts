// did-you-mean for unknown options, and the program name the message starts with.
import { describe, expect, test } from "bun:test";
import { didYouMean, editDistance, programName, unrecognizedOption } from "../../src/util/suggest.ts";
import { parseCommandLine } from "../../src/settings/cli.ts";
import { parseArgv } from "../../src/cli/machinectl.ts";

describe("did you mean", () => {
  test("edit distance counts swaps as one", () => {
    expect(editDistance("bind", "bind")).toBe(0);
    expect(editDistance("bnd", "bind")).toBe(1);
    expect(editDistance("bnid", "bind")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });
  test("the closest candidate, or none when nothing is close", () => {
    const opts = ["bind", "bind-ro", "boot", "directory", "private-network", "machine"];
    expect(didYouMean("bnd", opts)).toBe("bind");
    expect(didYouMean("privte-network", opts)).toBe("private-network");
    expect(didYouMean("direcotry", opts)).toBe("directory");
    expect(didYouMean("frobnicate", opts)).toBeUndefined();
    expect(didYouMean("x", opts)).toBeUndefined();
    // a unique prefix too far by distance
    expect(didYouMean("priv", opts)).toBe("private-network");
  });
  test("the message starts with the program name as invoked", () => {
    expect(programName("/usr/bin/systemd-nspawn")).toBe("systemd-nspawn");
    expect(programName("machinectl")).toBe("machinectl");
    expect(programName("/usr/local/bin/bun")).toBe("spawnctl");
    expect(unrecognizedOption("bnd", ["bind"], "systemd-nspawn")).toBe("systemd-nspawn: unrecognized option '--bnd'; did you mean '--bind'?");
    expect(unrecognizedOption("zzz", ["bind"], "machinectl")).toBe("machinectl: unrecognized option '--zzz'");
  });
  test("nspawn's and machinectl's parsers use it", () => {
    expect(() => parseCommandLine(["--bnd=/x"])).toThrow("spawnctl: unrecognized option '--bnd'; did you mean '--bind'?");
    expect(() => parseCommandLine(["--read-onyl"])).toThrow("did you mean '--read-only'?");
    expect(() => parseArgv(["list", "--no-legnd"])).toThrow("spawnctl: unrecognized option '--no-legnd'; did you mean '--no-legend'?");
  });
});
