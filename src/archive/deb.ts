// Debian binary packages: an ar archive of
//   debian-binary      "2.0\n" (must come first)
//   control.tar[.xz|.zst|.gz]   control, md5sums, conffiles, maintainer scripts...
//   data.tar[.xz|.zst|.gz]      the files to install
// dpkg allows extra members whose names start with "_" (signatures) between
// and after these; anything else is refused, as dpkg-deb does.
import { SpawnctlError } from "../util/errors.ts";
import { readAr, type ArMember } from "./ar.ts";
import { decompress, decompressAsync, type DecompressOptions } from "./decompress.ts";
import { readTar, type TarEntry } from "./tar.ts";

export interface Deb {
  /** control.tar members by name without "./": control, preinst, postinst, conffiles, md5sums, ... */
  control: Map<string, Uint8Array>;
  /** the format version from debian-binary ("2.0") */
  format: string;
  /** the data member as stored ("data.tar.xz") and its compressed bytes, for callers that decompress elsewhere (Workers) */
  dataMember: ArMember;
  /** the uncompressed data.tar (decompressed on first use, then kept) */
  dataTar(): Uint8Array;
  /** the entries of data.tar, lazily */
  data(): Iterable<TarEntry>;
}

const MEMBER = /^(control|data)\.tar(\.(xz|zst|gz))?$/;

export function readDeb(bytes: Uint8Array, opts: DecompressOptions & { name?: string } = {}): Deb {
  const name = opts.name ?? "package";
  const fail = (msg: string) => new SpawnctlError(`reading ${name}: ${msg}`);
  let members: ArMember[];
  try {
    members = readAr(bytes);
  } catch (e) {
    throw fail(`not a valid .deb: ${e instanceof Error ? e.message.replace(/^reading an ar archive: /, "") : e}`);
  }
  const first = members[0];
  if (!first || first.name !== "debian-binary") throw fail(`not a .deb: the first member is ${JSON.stringify(first?.name ?? "(none)")}, not "debian-binary"`);
  const format = new TextDecoder().decode(first.data).trim();
  if (!/^2\.\d+$/.test(format)) throw fail(`unsupported .deb format version ${JSON.stringify(format)}`);
  let controlMember: ArMember | undefined;
  let dataMember: ArMember | undefined;
  for (const m of members.slice(1)) {
    if (m.name.startsWith("_")) continue;
    const match = MEMBER.exec(m.name);
    if (!match) throw fail(`unexpected member ${JSON.stringify(m.name)}`);
    if (match[1] === "control") {
      if (controlMember || dataMember) throw fail(`member ${JSON.stringify(m.name)} is duplicated or out of order`);
      controlMember = m;
    } else {
      if (!controlMember || dataMember) throw fail(`member ${JSON.stringify(m.name)} is duplicated or comes before control.tar`);
      dataMember = m;
    }
  }
  if (!controlMember) throw fail("the control.tar member is missing");
  if (!dataMember) throw fail("the data.tar member is missing");

  const control = new Map<string, Uint8Array>();
  const controlTar = decompress(controlMember.data, `${controlMember.name} of ${name}`, opts);
  for (const e of readTar(controlTar, { name: `control.tar of ${name}` })) {
    if (e.type === "file" && !e.path.includes("/")) control.set(e.path, e.data);
  }
  if (!control.has("control")) throw fail("control.tar has no control file");

  const dm = dataMember;
  let tar: Uint8Array | undefined;
  const dataTar = () => (tar ??= decompress(dm.data, `${dm.name} of ${name}`, opts));
  return {
    control,
    format,
    dataMember: dm,
    dataTar,
    data: () => readTar(dataTar(), { name: `data.tar of ${name}` }),
  };
}

/** readDeb() with data.tar decompressed up front, multi-block xz spread over Workers. */
export async function readDebAsync(bytes: Uint8Array, opts: DecompressOptions & { name?: string; workers?: number } = {}): Promise<Deb> {
  const deb = readDeb(bytes, opts);
  const tar = await decompressAsync(deb.dataMember.data, `${deb.dataMember.name} of ${opts.name ?? "package"}`, opts);
  return { ...deb, dataTar: () => tar, data: () => readTar(tar, { name: `data.tar of ${opts.name ?? "package"}` }) };
}
