// SHA-512-crypt ("$6$", Ulrich Drepper's specification), the password hash
// every glibc and PAM accepts, so spawnctl can set a root password without
// running chpasswd in the guest (which a small variant may not have).
import { createHash } from "node:crypto";

const B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function sha512(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function repeat(src: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = src[i % src.length]!;
  return out;
}

export function sha512crypt(password: string, salt: string, rounds = 5000): string {
  const P = new TextEncoder().encode(password);
  const S = new TextEncoder().encode(salt.slice(0, 16));
  const B = sha512(P, S, P);
  const a: Uint8Array[] = [P, S, repeat(B, P.length)];
  for (let n = P.length; n > 0; n >>= 1) a.push(n & 1 ? B : P);
  let A = sha512(...a);
  const dp: Uint8Array[] = [];
  for (let i = 0; i < P.length; i++) dp.push(P);
  const DP = sha512(...dp);
  const Pseq = repeat(DP, P.length);
  const ds: Uint8Array[] = [];
  for (let i = 0; i < 16 + A[0]!; i++) ds.push(S);
  const DS = sha512(...ds);
  const Sseq = repeat(DS, S.length);
  for (let r = 0; r < rounds; r++) {
    const c: Uint8Array[] = [];
    c.push(r & 1 ? Pseq : A);
    if (r % 3) c.push(Sseq);
    if (r % 7) c.push(Pseq);
    c.push(r & 1 ? A : Pseq);
    A = sha512(...c);
  }
  const order = [
    [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29],
    [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16],
    [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
  ];
  let out = "";
  const enc = (v: number, n: number) => {
    for (let i = 0; i < n; i++) {
      out += B64[v & 63];
      v >>= 6;
    }
  };
  for (const [x, y, z] of order) enc((A[x!]! << 16) | (A[y!]! << 8) | A[z!]!, 4);
  enc(A[63]!, 2);
  const roundsPart = rounds === 5000 ? "" : `rounds=${rounds}$`;
  return `$6$${roundsPart}${salt.slice(0, 16)}$${out}`;
}

export function randomSalt(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => B64[b & 63]).join("");
}
