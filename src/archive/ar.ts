// The Unix "ar" archive, as .deb files use it:
//   "!<arch>\n", then per member a 60-byte header
//     name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\n"
//   and the data, padded with "\n" to an even offset.
// Name quirks handled here:
//   GNU: "name/" (the slash ends the name), "/" = symbol table,
//        "//" = long-name table, "/123" = name at offset 123 in that table
//        (entries end with "/\n").
//   BSD: "#1/23" = a 23-byte name stored before the data and counted in size.
// dpkg writes plain short names, sometimes with the GNU "/" terminator.
import { SpawnctlError } from "../util/errors.ts";

export interface ArMember {
  name: string;
  data: Uint8Array;
}

const MAGIC = "!<arch>\n";
const HEADER = 60;
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

function arError(message: string): SpawnctlError {
  return new SpawnctlError(`reading an ar archive: ${message}`);
}

function field(b: Uint8Array, off: number, len: number): string {
  return latin1.decode(b.subarray(off, off + len)).replace(/ +$/, "");
}

function decimal(b: Uint8Array, off: number, len: number, what: string, member: string): number {
  const s = field(b, off, len);
  if (!/^\d+$/.test(s)) throw arError(`member ${JSON.stringify(member)} has an invalid ${what} field ${JSON.stringify(s)}`);
  return Number(s);
}

export function isAr(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && latin1.decode(bytes.subarray(0, 8)) === MAGIC;
}

/** All members in order; the symbol table and the GNU long-name table are consumed, not returned. */
export function readAr(bytes: Uint8Array): ArMember[] {
  if (!isAr(bytes)) throw arError("the \"!<arch>\" magic is missing (not an ar archive / .deb)");
  const out: ArMember[] = [];
  let longNames: Uint8Array | undefined;
  let off = 8;
  while (off < bytes.length) {
    // Some writers pad the final member and leave a stray "\n".
    if (off === bytes.length - 1 && bytes[off] === 0x0a) break;
    if (off + HEADER > bytes.length) throw arError(`a member header at offset ${off} is truncated`);
    const rawName = field(bytes, off, 16);
    if (bytes[off + 58] !== 0x60 || bytes[off + 59] !== 0x0a) throw arError(`the member header at offset ${off} (${JSON.stringify(rawName)}) does not end with "\`\\n"`);
    const size = decimal(bytes, off + 48, 10, "size", rawName);
    let start = off + HEADER;
    let end = start + size;
    if (end > bytes.length) throw arError(`member ${JSON.stringify(rawName)} claims ${size} bytes but only ${bytes.length - start} remain (truncated file?)`);
    let name: string;
    if (rawName === "/" || rawName === "/SYM64/") {
      name = ""; // symbol table
    } else if (rawName === "//") {
      longNames = bytes.subarray(start, end);
      name = "";
    } else if (/^\/\d+$/.test(rawName)) {
      if (!longNames) throw arError(`member ${JSON.stringify(rawName)} refers to a long-name table that is missing`);
      const at = Number(rawName.slice(1));
      if (at >= longNames.length) throw arError(`member ${JSON.stringify(rawName)} points past the long-name table`);
      let stop = longNames.indexOf(0x0a, at);
      if (stop < 0) stop = longNames.length;
      name = utf8.decode(longNames.subarray(at, stop)).replace(/\/$/, "");
    } else if (rawName.startsWith("#1/")) {
      const len = Number(rawName.slice(3));
      if (!Number.isInteger(len) || len > size) throw arError(`member ${JSON.stringify(rawName)} has an invalid BSD long-name length`);
      name = utf8.decode(bytes.subarray(start, start + len)).replace(/\0+$/, "");
      start += len;
    } else {
      name = rawName.endsWith("/") ? rawName.slice(0, -1) : rawName;
    }
    if (name !== "") out.push({ name, data: bytes.subarray(start, end) });
    end = off + HEADER + size;
    off = end + (end & 1);
  }
  return out;
}
