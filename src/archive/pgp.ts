// A small OpenPGP verifier (RFC 4880 / RFC 9580, v4 keys and signatures) on
// node:crypto, for Release files and detached signatures. It reads keyrings
// (binary or ASCII-armored), and checks what gpgv checks before it calls a
// signature good: the signing (sub)key is bound to its primary key, neither
// is revoked or expired, a signing subkey is cross-certified, the key may
// sign, and the signature itself has not expired.
//
// Supported: RSA (algorithms 1 and 3) and legacy EdDSA on Ed25519
// (algorithm 22) keys; SHA-224/256/384/512. Not supported, so such keys and
// signatures never count as good: v3/v5/v6 keys, DSA, ECDSA, Ed448, SHA-1 and
// MD5 signatures, revocations by designated revokers, User ID revocations.
import { createHash, createPublicKey, createVerify, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { SpawnctlError } from "../util/errors.ts";
import { concat } from "../util/bytes.ts";

// ---------------------------------------------------------------------------
// Packets

export interface Packet {
  tag: number;
  body: Uint8Array;
  /** byte offset of the packet header in the input, for error messages */
  offset: number;
}

export const TAG = { SIGNATURE: 2, SECRET_KEY: 5, PUBLIC_KEY: 6, SECRET_SUBKEY: 7, MARKER: 10, USER_ID: 13, PUBLIC_SUBKEY: 14, USER_ATTRIBUTE: 17 } as const;

/** Split binary OpenPGP data into packets (old and new header formats, partial body lengths). */
export function readPackets(bytes: Uint8Array, what: string): Packet[] {
  const out: Packet[] = [];
  let pos = 0;
  const need = (n: number, at: number) => {
    if (pos + n > bytes.length) throw new SpawnctlError(`reading ${what}: the packet at byte ${at} is truncated`);
  };
  while (pos < bytes.length) {
    const offset = pos;
    const ctb = bytes[pos++]!;
    if ((ctb & 0x80) === 0) throw new SpawnctlError(`reading ${what}: byte ${offset} (0x${ctb.toString(16)}) is not an OpenPGP packet header`);
    let tag: number;
    let body: Uint8Array;
    if (ctb & 0x40) {
      tag = ctb & 0x3f;
      // New format: a length octet of 224..254 announces a partial body of
      // 2^n bytes followed by another length; only the last one is definite.
      const chunks: Uint8Array[] = [];
      for (;;) {
        need(1, offset);
        const o1 = bytes[pos++]!;
        let len: number;
        let partial = false;
        if (o1 < 192) len = o1;
        else if (o1 < 224) {
          need(1, offset);
          len = ((o1 - 192) << 8) + bytes[pos++]! + 192;
        } else if (o1 === 255) {
          need(4, offset);
          len = readU32(bytes, pos);
          pos += 4;
        } else {
          len = 1 << (o1 & 0x1f);
          partial = true;
        }
        need(len, offset);
        chunks.push(bytes.subarray(pos, pos + len));
        pos += len;
        if (!partial) break;
      }
      body = chunks.length === 1 ? chunks[0]! : concat(chunks);
    } else {
      tag = (ctb >> 2) & 0x0f;
      const lenType = ctb & 3;
      let len: number;
      if (lenType === 3) len = bytes.length - pos; // indeterminate: to the end of the input
      else {
        const n = 1 << lenType;
        need(n, offset);
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + bytes[pos++]!;
      }
      need(len, offset);
      body = bytes.subarray(pos, pos + len);
      pos += len;
    }
    out.push({ tag, body, offset });
  }
  return out;
}

// ---------------------------------------------------------------------------
// ASCII armor (RFC 4880 §6, RFC 9580 §6.2)

/** CRC-24 of the armor checksum line ("=XXXX"). */
export function crc24(data: Uint8Array): number {
  let crc = 0xb704ce;
  for (let i = 0; i < data.length; i++) {
    crc ^= data[i]! << 16;
    for (let b = 0; b < 8; b++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decode the armored block(s) of type `type` ("PUBLIC KEY BLOCK", "SIGNATURE")
 * in `lines`, starting at line `from`. Returns the concatenated data and the
 * line after the last END line read. The checksum line is optional (RFC 9580
 * made it so), but when present it must match.
 */
function dearmor(lines: string[], from: number, type: string, what: string, multiple: boolean): { data: Uint8Array; next: number } {
  const begin = `-----BEGIN PGP ${type}-----`;
  const end = `-----END PGP ${type}-----`;
  const blocks: Uint8Array[] = [];
  let i = from;
  for (;;) {
    while (i < lines.length && lines[i]!.trim() === "") i++;
    if (i >= lines.length) break;
    if (lines[i]!.trim() !== begin) {
      if (blocks.length > 0) break;
      throw new SpawnctlError(`reading ${what}: expected "${begin}" on line ${i + 1}`);
    }
    i++;
    // Armor headers ("Comment: ...") up to a blank line. Some writers omit
    // the blank line when there are no headers; then the data starts at once.
    if (i < lines.length && /^[A-Za-z-]+: /.test(lines[i]!)) {
      while (i < lines.length && lines[i]!.trim() !== "") i++;
    }
    let b64 = "";
    let checksum: string | undefined;
    for (;;) {
      if (i >= lines.length) throw new SpawnctlError(`reading ${what}: missing "${end}"`);
      const line = lines[i]!.trim();
      i++;
      if (line === end) break;
      if (line === "") continue;
      if (line.startsWith("=") && line.length === 5) {
        checksum = line.slice(1);
        continue;
      }
      if (checksum !== undefined || !BASE64_LINE.test(line)) throw new SpawnctlError(`reading ${what}: line ${i} is not base64 armor data`);
      b64 += line;
    }
    const data = new Uint8Array(Buffer.from(b64, "base64"));
    if (checksum !== undefined) {
      const want = Buffer.from(checksum, "base64");
      const got = crc24(data);
      if (want.length !== 3 || ((want[0]! << 16) | (want[1]! << 8) | want[2]!) !== got) {
        throw new SpawnctlError(`reading ${what}: the armor checksum (CRC-24) does not match: the data is corrupt`);
      }
    }
    blocks.push(data);
    if (!multiple) break;
  }
  return { data: concat(blocks), next: i };
}

function isArmored(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 32 || bytes[i] === 9 || bytes[i] === 10 || bytes[i] === 13)) i++;
  return Buffer.from(bytes.subarray(i, i + 15)).toString("latin1") === "-----BEGIN PGP ";
}

// ---------------------------------------------------------------------------
// Keys

const ALGO_NAME: Record<number, string> = { 1: "RSA", 2: "RSA (encrypt-only)", 3: "RSA (sign-only)", 16: "ElGamal", 17: "DSA", 18: "ECDH", 19: "ECDSA", 22: "EdDSA", 25: "X25519", 26: "X448", 27: "Ed25519", 28: "Ed448" };
const HASH_NAME: Record<number, string> = { 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224" };
const HASH_LABEL: Record<number, string> = { 1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 8: "SHA-256", 9: "SHA-384", 10: "SHA-512", 11: "SHA-224" };
// 1.3.6.1.4.1.11591.15.1, the curve OID of legacy EdDSA keys on Ed25519
const ED25519_OID = "2b06010401da470f01";

export interface PublicKey {
  fingerprint: string;
  keyId: string;
  /** creation time, seconds since the epoch */
  created: number;
  algo: number;
  /** the packet body: what fingerprints and key signatures are computed over */
  body: Uint8Array;
  /** undefined when the algorithm is not supported; `unsupported` says why */
  verifier?: KeyObject;
  unsupported?: string;
}

function parsePublicKey(body: Uint8Array, what: string): PublicKey | undefined {
  // v3 keys (MD5 fingerprints) and v5/v6 keys are not supported: skipped.
  if (body[0] !== 4 || body.length < 6) return undefined;
  const fingerprint = createHash("sha1").update(keyHashPrefix(body)).update(body).digest("hex").toUpperCase();
  const key: PublicKey = { fingerprint, keyId: fingerprint.slice(-16), created: readU32(body, 1), algo: body[5]!, body };
  try {
    const r = new Reader(body, 6, `${what}: key ${fingerprint}`);
    if (key.algo === 1 || key.algo === 3) {
      const n = r.mpi();
      const e = r.mpi();
      key.verifier = createPublicKey({ key: { kty: "RSA", n: b64url(n), e: b64url(e) }, format: "jwk" });
    } else if (key.algo === 22) {
      const oid = Buffer.from(r.bytes(r.u8())).toString("hex");
      const q = r.mpi();
      // The point is stored with a 0x40 prefix ("native" encoding).
      if (oid !== ED25519_OID || q.length !== 33 || q[0] !== 0x40) key.unsupported = "EdDSA on a curve other than Ed25519";
      else key.verifier = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(q.subarray(1)) }, format: "jwk" });
    } else {
      key.unsupported = `public-key algorithm ${ALGO_NAME[key.algo] ?? key.algo} is not supported`;
    }
  } catch (e) {
    key.unsupported = `its key material is malformed (${e instanceof Error ? e.message : e})`;
  }
  return key;
}

/** 0x99 || two-octet length: what precedes a v4 key body in fingerprints and key signatures. */
function keyHashPrefix(body: Uint8Array): Uint8Array {
  return new Uint8Array([0x99, body.length >> 8, body.length & 0xff]);
}

// ---------------------------------------------------------------------------
// Signatures

const SIG = { BINARY: 0x00, TEXT: 0x01, CERT_GENERIC: 0x10, CERT_POSITIVE: 0x13, SUBKEY_BINDING: 0x18, PRIMARY_BINDING: 0x19, DIRECT_KEY: 0x1f, KEY_REVOCATION: 0x20, SUBKEY_REVOCATION: 0x28 } as const;

// Hashed subpackets a reader may not ignore when their critical bit is set
// unless it understands them (RFC 4880 §5.2.3.1). Preferences and the like
// are harmless to "understand" by ignoring; notations, trust and regular
// expression subpackets are not.
const UNDERSTOOD_SUBPACKETS = new Set([2, 3, 4, 7, 9, 11, 12, 16, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 39]);

interface Signature {
  version: number;
  type: number;
  pkAlgo: number;
  hashAlgo: number;
  /** the signature packet's version..hashed-subpackets bytes: hashed as the trailer */
  hashedPart: Uint8Array;
  left16: number;
  mpis: Uint8Array[];
  /** from the hashed area only: these are what the signature vouches for */
  created?: number;
  expiresAfter?: number;
  keyExpiresAfter?: number;
  keyFlags?: number;
  primaryUserId?: boolean;
  revocationReason?: string;
  unknownCritical?: number;
  /** issuer hints from either area: only used to find the key */
  issuerKeyId?: string;
  issuerFingerprint?: string;
  /** embedded signatures (primary key binding signatures of signing subkeys) */
  embedded: Signature[];
}

function parseSignature(body: Uint8Array, what: string): Signature {
  const r = new Reader(body, 0, what);
  const version = r.u8();
  if (version !== 4) return { version, type: -1, pkAlgo: 0, hashAlgo: 0, hashedPart: body, left16: 0, mpis: [], embedded: [] };
  const type = r.u8();
  const pkAlgo = r.u8();
  const hashAlgo = r.u8();
  const hashed = r.bytes(r.u16());
  const hashedPart = body.subarray(0, r.pos);
  const unhashed = r.bytes(r.u16());
  const left16 = r.u16();
  const mpis: Uint8Array[] = [];
  while (r.pos < body.length) mpis.push(r.mpi());
  const sig: Signature = { version, type, pkAlgo, hashAlgo, hashedPart, left16, mpis, embedded: [] };
  readSubpackets(hashed, sig, true, what);
  readSubpackets(unhashed, sig, false, what);
  return sig;
}

function readSubpackets(area: Uint8Array, sig: Signature, hashed: boolean, what: string): void {
  const r = new Reader(area, 0, `${what}: signature subpackets`);
  while (r.pos < area.length) {
    const o1 = r.u8();
    let len: number;
    if (o1 < 192) len = o1;
    else if (o1 < 255) len = ((o1 - 192) << 8) + r.u8() + 192;
    else len = r.u32();
    if (len === 0) throw new SpawnctlError(`reading ${what}: empty signature subpacket`);
    const typeByte = r.u8();
    const data = r.bytes(len - 1);
    const type = typeByte & 0x7f;
    const critical = (typeByte & 0x80) !== 0;
    if (type === 16 && data.length === 8) sig.issuerKeyId ??= Buffer.from(data).toString("hex").toUpperCase();
    else if (type === 33 && data[0] === 4 && data.length === 21) sig.issuerFingerprint ??= Buffer.from(data.subarray(1)).toString("hex").toUpperCase();
    else if (type === 32) sig.embedded.push(parseSignature(data, `${what}: embedded signature`));
    if (!hashed) continue;
    if (type === 2 && data.length === 4) sig.created = readU32(data, 0);
    else if (type === 3 && data.length === 4) sig.expiresAfter = readU32(data, 0);
    else if (type === 9 && data.length === 4) sig.keyExpiresAfter = readU32(data, 0);
    else if (type === 27 && data.length >= 1) sig.keyFlags = data[0]!;
    else if (type === 25 && data.length === 1) sig.primaryUserId = data[0] !== 0;
    else if (type === 29 && data.length >= 1) sig.revocationReason = Buffer.from(data.subarray(1)).toString("utf8");
    if (critical && !UNDERSTOOD_SUBPACKETS.has(type)) sig.unknownCritical = type;
  }
}

/** Why a signature cannot be checked at all (it then counts neither as good nor as bad). */
function unsupportedReason(sig: Signature, key: PublicKey): string | undefined {
  if (sig.version !== 4) return `version ${sig.version} signatures are not supported`;
  if (!HASH_NAME[sig.hashAlgo]) return `hash algorithm ${HASH_LABEL[sig.hashAlgo] ?? sig.hashAlgo} is not accepted`;
  if (!key.verifier) return `key ${key.fingerprint} cannot be used: ${key.unsupported}`;
  const rsa = (a: number) => a === 1 || a === 3;
  if (sig.pkAlgo !== key.algo && !(rsa(sig.pkAlgo) && rsa(key.algo))) return `the signature's algorithm (${sig.pkAlgo}) is not the key's (${key.algo})`;
  if (sig.unknownCritical !== undefined) return `it has an unknown critical subpacket (type ${sig.unknownCritical})`;
  if (sig.created === undefined) return "it has no signature creation time";
  return undefined;
}

/**
 * The cryptographic check: hash(parts || hashed part || trailer) and verify
 * it with `key`. Call only when unsupportedReason() is undefined. Returns
 * undefined when the signature is correct, else why not.
 */
function cryptoCheck(sig: Signature, key: PublicKey, parts: Uint8Array[]): string | undefined {
  const hashName = HASH_NAME[sig.hashAlgo]!;
  const trailer = new Uint8Array(6);
  trailer[0] = 4;
  trailer[1] = 0xff;
  writeU32(trailer, 2, sig.hashedPart.length);
  const all = [...parts, sig.hashedPart, trailer];
  const h = createHash(hashName);
  for (const p of all) h.update(p);
  const digest = h.digest();
  // The two leftmost digest bytes are stored in clear: a mismatch means the
  // data is not what was signed, without needing the public-key operation.
  if (((digest[0]! << 8) | digest[1]!) !== sig.left16) return "the signed data does not match the signature";
  let ok: boolean;
  try {
    if (key.algo === 22) {
      // Legacy EdDSA signs the digest itself, as (r, s) MPIs of up to 32 bytes.
      if (sig.mpis.length !== 2) return "malformed EdDSA signature";
      ok = cryptoVerify(null, digest, key.verifier!, concat([leftPad(sig.mpis[0]!, 32), leftPad(sig.mpis[1]!, 32)]));
    } else {
      if (sig.mpis.length !== 1) return "malformed RSA signature";
      // OpenSSL wants the signature as long as the modulus; the MPI drops leading zeros.
      const modulusBytes = (key.verifier!.asymmetricKeyDetails?.modulusLength ?? 0) >> 3;
      const v = createVerify(hashName);
      for (const p of all) v.update(p);
      ok = v.verify(key.verifier!, leftPad(sig.mpis[0]!, modulusBytes));
    }
  } catch (e) {
    return `the signature is malformed (${e instanceof Error ? e.message : e})`;
  }
  return ok ? undefined : "the signature does not verify with the key";
}

/** A signature that is correct and made by `key`, when `parts` is what it signs. */
function validBy(sig: Signature, key: PublicKey, parts: Uint8Array[]): boolean {
  return unsupportedReason(sig, key) === undefined && cryptoCheck(sig, key, parts) === undefined;
}

function issuedBy(sig: Signature, key: PublicKey): boolean {
  if (sig.issuerFingerprint) return sig.issuerFingerprint === key.fingerprint;
  return sig.issuerKeyId === undefined || sig.issuerKeyId === key.keyId;
}

// ---------------------------------------------------------------------------
// Keyring: certificates (a primary key with its User IDs and subkeys)

interface UserId { tag: number; body: Uint8Array; sigs: Signature[] }
interface Subkey { key: PublicKey; sigs: Signature[] }

interface Cert {
  primary: PublicKey;
  userIds: UserId[];
  /** signatures directly on the primary key: direct-key (0x1F) and key revocations (0x20) */
  direct: Signature[];
  subkeys: Subkey[];
  state?: CertState;
}

/** The verified, time-independent facts about a certificate, worked out on first use. */
interface CertState {
  revocation?: Signature;
  /**
   * valid self-signatures, which say until when the primary key is valid and
   * what it may do: its User ID certifications, or, for a key without any,
   * its direct-key signatures
   */
  selfSigs: Signature[];
  subkeys: Map<string, { revocation?: Signature; bindings: Array<{ sig: Signature; crossCertified: boolean }> }>;
}

export class Keyring {
  private readonly byKeyId = new Map<string, Array<{ cert: Cert; key: PublicKey }>>();

  /** `name` is the keyring's file name or description, for error messages. */
  constructor(
    readonly name: string,
    readonly certs: Cert[],
  ) {
    for (const cert of certs) {
      for (const key of [cert.primary, ...cert.subkeys.map((s) => s.key)]) {
        const list = this.byKeyId.get(key.keyId);
        if (list) list.push({ cert, key });
        else this.byKeyId.set(key.keyId, [{ cert, key }]);
      }
    }
  }

  /** primary key fingerprints, in keyring order */
  get fingerprints(): string[] {
    return this.certs.map((c) => c.primary.fingerprint);
  }

  /** the keys a signature names as its issuer (a key ID may, rarely, match several) */
  candidates(sig: Signature): Array<{ cert: Cert; key: PublicKey }> {
    const id = sig.issuerFingerprint?.slice(-16) ?? sig.issuerKeyId;
    const found = id ? (this.byKeyId.get(id) ?? []) : [];
    return sig.issuerFingerprint ? found.filter((c) => c.key.fingerprint === sig.issuerFingerprint) : found;
  }
}

/**
 * Read a keyring: binary OpenPGP packets (like /usr/share/keyrings/*.gpg) or
 * one or more ASCII-armored public key blocks. Keys of unsupported versions
 * are skipped with their User IDs, subkeys and signatures; keys with
 * unsupported algorithms are kept but never verify anything. A key that
 * appears twice (keyrings concatenated) is merged into one, as gpg does, so
 * a newer self-signature in the second copy counts.
 */
export function parseKeyring(bytes: Uint8Array, what = "OpenPGP keyring"): Keyring {
  let data = bytes;
  if (isArmored(bytes)) {
    data = dearmor(Buffer.from(bytes).toString("utf8").split("\n"), 0, "PUBLIC KEY BLOCK", what, true).data;
  } else if (bytes.length >= 12 && Buffer.from(bytes.subarray(8, 12)).toString("latin1") === "KBXf") {
    throw new SpawnctlError(`reading ${what}: this is a GnuPG keybox (pubring.kbx), not a keyring; export one with "gpg --export KEY > FILE"`);
  }
  const certs = new Map<string, Cert>();
  let cert: Cert | undefined;
  // where the next signature packet belongs: the primary key, a User ID or a subkey
  let target: { sigs: Signature[] } | undefined;
  for (const p of readPackets(data, what)) {
    switch (p.tag) {
      case TAG.PUBLIC_KEY: {
        const key = parsePublicKey(p.body, what);
        cert = key && (certs.get(key.fingerprint) ?? { primary: key, userIds: [], direct: [], subkeys: [] });
        if (cert) certs.set(cert.primary.fingerprint, cert);
        target = cert && { sigs: cert.direct };
        break;
      }
      case TAG.USER_ID:
      case TAG.USER_ATTRIBUTE:
        if (!cert) break; // belongs to a skipped key
        cert.userIds.push({ tag: p.tag, body: p.body, sigs: [] });
        target = cert.userIds[cert.userIds.length - 1];
        break;
      case TAG.PUBLIC_SUBKEY: {
        const key = cert && parsePublicKey(p.body, what);
        let sub = key && cert!.subkeys.find((s) => s.key.fingerprint === key.fingerprint);
        if (key && !sub) cert!.subkeys.push((sub = { key, sigs: [] }));
        target = sub;
        break;
      }
      case TAG.SIGNATURE:
        if (!target) break;
        try {
          target.sigs.push(parseSignature(p.body, `${what}: signature at byte ${p.offset}`));
        } catch {
          // A malformed signature on a key (often a third party's
          // certification) is skipped, as gpg does: that is what its failing
          // verification would have meant anyway.
        }
        break;
      case TAG.SECRET_KEY:
      case TAG.SECRET_SUBKEY:
        throw new SpawnctlError(`reading ${what}: it contains secret key material; use a public keyring (gpg --export)`);
      // Marker and trust packets (GnuPG's old keyrings) carry nothing to verify.
    }
  }
  if (certs.size === 0) throw new SpawnctlError(`reading ${what}: it contains no usable (version 4) public key`);
  return new Keyring(what, [...certs.values()]);
}

function certState(cert: Cert): CertState {
  if (cert.state) return cert.state;
  const p = cert.primary;
  const onPrimary = [keyHashPrefix(p.body), p.body];
  const selfSigs: Signature[] = [];
  for (const uid of cert.userIds) {
    // User IDs are hashed as 0xB4 and user attributes as 0xD1, then a four-octet length.
    const head = new Uint8Array(5);
    head[0] = uid.tag === TAG.USER_ID ? 0xb4 : 0xd1;
    writeU32(head, 1, uid.body.length);
    const parts = [...onPrimary, head, uid.body];
    for (const s of uid.sigs) {
      if (s.type >= SIG.CERT_GENERIC && s.type <= SIG.CERT_POSITIVE && issuedBy(s, p) && validBy(s, p, parts)) selfSigs.push(s);
    }
  }
  const direct = cert.direct.filter((s) => s.type === SIG.DIRECT_KEY && issuedBy(s, p) && validBy(s, p, onPrimary));
  const subkeys: CertState["subkeys"] = new Map();
  for (const sub of cert.subkeys) {
    const parts = [...onPrimary, keyHashPrefix(sub.key.body), sub.key.body];
    subkeys.set(sub.key.fingerprint, {
      revocation: sub.sigs.find((s) => s.type === SIG.SUBKEY_REVOCATION && issuedBy(s, p) && validBy(s, p, parts)),
      bindings: sub.sigs
        .filter((s) => s.type === SIG.SUBKEY_BINDING && issuedBy(s, p) && validBy(s, p, parts))
        // A signing subkey proves it agrees to the binding with an embedded
        // "primary key binding" signature (0x19) made by the subkey itself.
        .map((sig) => ({ sig, crossCertified: sig.embedded.some((e) => e.type === SIG.PRIMARY_BINDING && issuedBy(e, sub.key) && validBy(e, sub.key, parts)) })),
    });
  }
  cert.state = {
    revocation: cert.direct.find((s) => s.type === SIG.KEY_REVOCATION && issuedBy(s, p) && validBy(s, p, onPrimary)),
    selfSigs: selfSigs.length > 0 ? selfSigs : direct,
    subkeys,
  };
  return cert.state;
}

function sigExpiry(sig: Signature): number | undefined {
  return sig.expiresAfter ? sig.created! + sig.expiresAfter : undefined;
}

function newest<T extends { created?: number }>(list: T[]): T | undefined {
  let best: T | undefined;
  for (const x of list) if (!best || x.created! > best.created!) best = x;
  return best;
}

function keyExpiry(key: PublicKey, selfSig: Signature): number | undefined {
  return selfSig.keyExpiresAfter ? key.created + selfSig.keyExpiresAfter : undefined;
}

/**
 * Why `key` (the primary key of `cert` or one of its subkeys) may not have
 * made the data signature `sig`, judged at `now`; undefined if it may. A key
 * must be valid both when it signed and now.
 */
function keyProblem(cert: Cert, key: PublicKey, sig: Signature, now: number): string | undefined {
  const p = cert.primary;
  if (!p.verifier) return `key ${p.fingerprint} cannot be used: ${p.unsupported}`;
  const state = certState(cert);
  if (state.revocation) {
    const why = state.revocation.revocationReason ? ` ("${state.revocation.revocationReason}")` : "";
    return `key ${p.fingerprint} was revoked on ${formatTime(state.revocation.created!)}${why}`;
  }
  const live = (s: Signature) => (sigExpiry(s) ?? Infinity) > now;
  const selfSigs = state.selfSigs.filter(live);
  const self = newest(selfSigs.filter((s) => s.primaryUserId)) ?? newest(selfSigs);
  if (!self) return `key ${p.fingerprint} has no valid self-signature`;
  const signedAt = sig.created!;
  const expired = (k: PublicKey, at: number | undefined) => {
    if (at === undefined || (signedAt < at && now < at)) return undefined;
    return `key ${k.fingerprint} expired on ${formatTime(at)}${signedAt >= at ? `, before the signature was made (${formatTime(signedAt)})` : ""}`;
  };
  const primaryExpired = expired(p, keyExpiry(p, self));
  if (primaryExpired) return primaryExpired;
  if (key === p) {
    if (self.keyFlags !== undefined && !(self.keyFlags & 0x02)) return `key ${p.fingerprint} is not marked for signing (key flags 0x${self.keyFlags.toString(16)})`;
  } else {
    const sub = state.subkeys.get(key.fingerprint)!;
    if (sub.revocation) return `subkey ${key.fingerprint} of key ${p.fingerprint} was revoked on ${formatTime(sub.revocation.created!)}`;
    const binding = newest(sub.bindings.filter((b) => live(b.sig)).map((b) => ({ ...b, created: b.sig.created })));
    if (!binding) return `subkey ${key.fingerprint} has no valid binding signature from its primary key ${p.fingerprint}`;
    const flags = binding.sig.keyFlags;
    if (flags !== undefined && !(flags & 0x02)) return `subkey ${key.fingerprint} is not bound for signing (key flags 0x${flags.toString(16)})`;
    if (!binding.crossCertified) return `signing subkey ${key.fingerprint} is not cross-certified (its binding has no valid primary key binding signature)`;
    const subExpired = expired(key, keyExpiry(key, binding.sig));
    if (subExpired) return subExpired;
  }
  if (signedAt < key.created) return `the signature (made ${formatTime(signedAt)}) predates key ${key.fingerprint} (created ${formatTime(key.created)})`;
  return undefined;
}

// ---------------------------------------------------------------------------
// Data signatures

export interface SignatureCheck {
  /** "good"; "bad": does not verify (tampered data or signature); "rejected": the key or signature may not be used; "unknown": not made by a key in the keyring */
  status: "good" | "bad" | "rejected" | "unknown";
  /** the issuer as the signature names it (fingerprint, else key ID) */
  issuer: string;
  /** the signing key (a primary key or subkey) and its primary key, when known */
  key?: string;
  primary?: string;
  created?: Date;
  reason?: string;
}

export interface VerifyResult {
  /** primary key fingerprints of the good signatures */
  goodSigners: string[];
  signatures: SignatureCheck[];
}

export interface VerifyOptions {
  /** the time against which expiry is judged; default: the current time */
  now?: Date;
  /** what is being verified, for error messages ("bookworm InRelease") */
  what?: string;
}

function checkSignature(sig: Signature, keyring: Keyring, parts: Uint8Array[], now: number, allowedTypes: number[]): SignatureCheck {
  const issuer = sig.issuerFingerprint ?? sig.issuerKeyId ?? "(no issuer)";
  const created = sig.created !== undefined ? new Date(sig.created * 1000) : undefined;
  const candidates = keyring.candidates(sig);
  if (candidates.length === 0) return { status: "unknown", issuer, created };
  let outcome: SignatureCheck | undefined;
  for (const { cert, key } of candidates) {
    const ids = { issuer, created, key: key.fingerprint, primary: cert.primary.fingerprint };
    const unsupported = unsupportedReason(sig, key);
    if (unsupported) {
      outcome ??= { status: "rejected", ...ids, reason: `signature by key ${key.fingerprint}: ${unsupported}` };
      continue;
    }
    const bad = cryptoCheck(sig, key, parts);
    if (bad) {
      outcome = { status: "bad", ...ids, reason: bad };
      continue;
    }
    if (!allowedTypes.includes(sig.type)) {
      const kind = allowedTypes.includes(SIG.BINARY) ? "document" : "text";
      return { status: "rejected", ...ids, reason: `signature by key ${key.fingerprint}: type 0x${sig.type.toString(16).padStart(2, "0")} is not a ${kind} signature` };
    }
    const expires = sigExpiry(sig);
    if (expires !== undefined && now >= expires) return { status: "rejected", ...ids, reason: `signature by key ${key.fingerprint} expired on ${formatTime(expires)}` };
    const problem = keyProblem(cert, key, sig, now);
    if (problem) return { status: "rejected", ...ids, reason: problem };
    return { status: "good", ...ids };
  }
  return outcome!;
}

/**
 * apt's rule: any signature that does not verify with a key we know is an
 * error; otherwise at least one must be good. Signatures by unknown keys are
 * ignored, and so are known keys that may not sign (expired, revoked, ...)
 * as long as another signature is good.
 */
function conclude(checks: SignatureCheck[], keyring: Keyring, what: string): VerifyResult {
  const bad = checks.find((c) => c.status === "bad");
  if (bad) throw new SpawnctlError(`verifying ${what}: BAD signature by key ${bad.key}: ${bad.reason}`);
  const good = checks.filter((c) => c.status === "good");
  if (good.length === 0) {
    const why = checks.map((c) => (c.status === "unknown" ? `signature by unknown key ${c.issuer}` : c.reason!));
    throw new SpawnctlError(`verifying ${what}: no good signature from the keyring ${keyring.name}${why.length ? ` (${why.join("; ")})` : " (it has no signatures)"}`);
  }
  return { goodSigners: [...new Set(good.map((c) => c.primary!))], signatures: checks };
}

function readSignatures(bytes: Uint8Array, what: string): Signature[] {
  const sigs: Signature[] = [];
  for (const p of readPackets(bytes, what)) {
    if (p.tag === TAG.SIGNATURE) sigs.push(parseSignature(p.body, `${what}: signature at byte ${p.offset}`));
    else if (p.tag !== TAG.MARKER) throw new SpawnctlError(`reading ${what}: expected signature packets, found packet type ${p.tag} at byte ${p.offset}`);
  }
  return sigs;
}

const BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----";

/**
 * Verify a cleartext-signed message (an InRelease file). Returns the signed
 * text with dash-escaping undone, "\n" line ends and a final newline.
 *
 * The returned text is exactly what the signature covers: since signers
 * ignore trailing spaces and tabs (RFC 4880 §7.1), they are removed here
 * too, so nothing unsigned reaches the caller. Like apt, anything but
 * whitespace before or after the signed message is refused, as are headers
 * other than "Hash:".
 */
export function verifyClearsigned(text: string, keyring: Keyring, opts: VerifyOptions = {}): VerifyResult & { signedText: string } {
  const what = opts.what ?? "the clearsigned message";
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  let i = 0;
  while (i < lines.length && lines[i]!.trim() === "") i++;
  if (lines[i] !== BEGIN_SIGNED) throw new SpawnctlError(`verifying ${what}: it does not start with "${BEGIN_SIGNED}"`);
  i++;
  for (; i < lines.length && lines[i] !== ""; i++) {
    if (!/^Hash: [A-Za-z0-9-]+(, ?[A-Za-z0-9-]+)*$/.test(lines[i]!)) throw new SpawnctlError(`verifying ${what}: unexpected armor header on line ${i + 1}: ${JSON.stringify(lines[i]!.slice(0, 60))}`);
  }
  i++;
  const body: string[] = [];
  for (;; i++) {
    if (i >= lines.length) throw new SpawnctlError(`verifying ${what}: there is no "${BEGIN_SIGNATURE}" line`);
    const line = lines[i]!;
    if (line === BEGIN_SIGNATURE) break;
    // Dash-escaping: the signer prefixed every line starting with "-" by "- ".
    if (line.startsWith("- ")) body.push(line.slice(2));
    else if (line.startsWith("-")) throw new SpawnctlError(`verifying ${what}: line ${i + 1} starts with "-" but is not dash-escaped`);
    else body.push(line);
  }
  const { data, next } = dearmor(lines, i, "SIGNATURE", what, false);
  for (let j = next; j < lines.length; j++) {
    if (lines[j]!.trim() !== "") throw new SpawnctlError(`verifying ${what}: unexpected text after the signature on line ${j + 1}`);
  }
  const stripped = body.map((l) => l.replace(/[ \t]+$/, ""));
  // The signed form: lines joined with CRLF, no line end after the last one.
  const canonical = new TextEncoder().encode(stripped.join("\r\n"));
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const checks = readSignatures(data, what).map((s) => checkSignature(s, keyring, [canonical], now, [SIG.TEXT]));
  return { ...conclude(checks, keyring, what), signedText: stripped.join("\n") + "\n" };
}

/**
 * Verify a detached signature (binary or armored) over `data`, like
 * Release.gpg over Release. Binary (0x00) signatures cover the bytes as
 * they are; text (0x01) signatures cover them with line ends made CRLF.
 */
export function verifyDetached(data: Uint8Array, signature: Uint8Array, keyring: Keyring, opts: VerifyOptions = {}): VerifyResult {
  const what = opts.what ?? "the detached signature";
  const raw = isArmored(signature) ? dearmor(Buffer.from(signature).toString("utf8").split("\n"), 0, "SIGNATURE", what, false).data : signature;
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  let text: Uint8Array | undefined;
  const checks = readSignatures(raw, what).map((s) => {
    const parts = s.type === SIG.TEXT ? [(text ??= crlf(data))] : [data];
    return checkSignature(s, keyring, parts, now, [SIG.BINARY, SIG.TEXT]);
  });
  return conclude(checks, keyring, what);
}

/** Text-signature canonical form: every LF not already preceded by CR becomes CRLF. */
function crlf(data: Uint8Array): Uint8Array {
  let extra = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 10 && (i === 0 || data[i - 1] !== 13)) extra++;
  if (extra === 0) return data;
  const out = new Uint8Array(data.length + extra);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 10 && (i === 0 || data[i - 1] !== 13)) out[o++] = 13;
    out[o++] = data[i]!;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Bytes

class Reader {
  constructor(
    private readonly buf: Uint8Array,
    public pos: number,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new SpawnctlError(`reading ${this.what}: unexpected end of data`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = readU32(this.buf, this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** a multiprecision integer: a two-octet bit count, then the big-endian bytes */
  mpi(): Uint8Array {
    return this.bytes((this.u16() + 7) >> 3);
  }
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}


function leftPad(b: Uint8Array, len: number): Uint8Array {
  if (b.length >= len) return b;
  const out = new Uint8Array(len);
  out.set(b, len - b.length);
  return out;
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString("base64url");
}

function formatTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
