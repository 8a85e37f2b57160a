// A Packages stanza for tests, with the fields an index requires filled in.

export const SHA = "ab".repeat(32);

export function stanza(name: string, version: string, fields: Record<string, string> = {}): string {
  const f: Record<string, string> = { Package: name, Version: version, Architecture: "amd64", Priority: "optional", Filename: `pool/main/${name}_${version}_amd64.deb`, Size: "100", SHA256: SHA, ...fields };
  return Object.entries(f).map(([k, v]) => `${k}: ${v}\n`).join("") + "\n";
}
