// What a release checks in an ELF file, read from its headers (64-bit little
// endian, the only kind spawnctl ships): the CPU, the program interpreter,
// the libraries it needs and the symbol versions it needs of them
// (.gnu.version_r). Independent of the CPU the file is for, unlike the
// host's objdump.
import { readFileSync } from "node:fs";

export interface ElfFacts {
  machine: "x86-64" | "aarch64" | string;
  /** PT_INTERP: the dynamic loader the kernel starts, absent for a static executable */
  interp?: string;
  /** DT_NEEDED */
  needed: string[];
  /** every (file, version) of .gnu.version_r */
  versions: Array<{ file: string; version: string }>;
}

const SHT_DYNAMIC = 6;
const SHT_GNU_VERNEED = 0x6ffffffe;
const PT_INTERP = 3;
const DT_NEEDED = 1;

export function readElf(path: string): ElfFacts {
  return parseElf(readFileSync(path), path);
}

export function parseElf(b: Buffer, what = "the file"): ElfFacts {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${what}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${what}: not a 64-bit little-endian ELF file`);
  const em = b.readUInt16LE(18);
  const machine = em === 62 ? "x86-64" : em === 183 ? "aarch64" : `machine ${em}`;
  const phoff = Number(b.readBigUInt64LE(32));
  const shoff = Number(b.readBigUInt64LE(40));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  const shentsize = b.readUInt16LE(58);
  const shnum = b.readUInt16LE(60);
  const cstr = (off: number) => b.toString("latin1", off, b.indexOf(0, off));

  let interp: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (b.readUInt32LE(p) !== PT_INTERP) continue;
    interp = cstr(Number(b.readBigUInt64LE(p + 8)));
  }

  const sections = Array.from({ length: shnum }, (_, i) => {
    const s = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(s + 4),
      offset: Number(b.readBigUInt64LE(s + 24)),
      size: Number(b.readBigUInt64LE(s + 32)),
      link: b.readUInt32LE(s + 40),
      info: b.readUInt32LE(s + 44),
    };
  });
  const needed: string[] = [];
  const versions: ElfFacts["versions"] = [];
  for (const s of sections) {
    const strtab = sections[s.link]?.offset ?? 0;
    if (s.type === SHT_DYNAMIC) {
      for (let o = s.offset; o + 16 <= s.offset + s.size; o += 16) {
        const tag = Number(b.readBigInt64LE(o));
        if (tag === 0) break;
        if (tag === DT_NEEDED) needed.push(cstr(strtab + Number(b.readBigUInt64LE(o + 8))));
      }
    } else if (s.type === SHT_GNU_VERNEED) {
      // Verneed {u16 version, u16 cnt, u32 file, u32 aux, u32 next}
      // Vernaux {u32 hash, u16 flags, u16 other, u32 name, u32 next}
      let vn = s.offset;
      for (let n = 0; n < s.info; n++) {
        const file = cstr(strtab + b.readUInt32LE(vn + 4));
        let aux = vn + b.readUInt32LE(vn + 8);
        for (let k = 0; k < b.readUInt16LE(vn + 2); k++) {
          versions.push({ file, version: cstr(strtab + b.readUInt32LE(aux + 8)) });
          aux += b.readUInt32LE(aux + 12);
        }
        const next = b.readUInt32LE(vn + 12);
        if (!next) break;
        vn += next;
      }
    }
  }
  return { machine, interp, needed, versions };
}

/** The highest GLIBC_x.y a file needs, as "2.17", or undefined when it needs none (static, or musl). */
export function highestGlibc(f: ElfFacts): string | undefined {
  let best: number[] | undefined;
  for (const { version } of f.versions) {
    const m = /^GLIBC_(\d+(?:\.\d+)*)$/.exec(version);
    if (!m) continue;
    const v = m[1]!.split(".").map(Number);
    if (!best || compareVersions(v, best) > 0) best = v;
  }
  return best?.join(".");
}

export function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d;
  }
  return 0;
}
