// fwknop's cryptography, as its lib/ does it: OpenSSL-compatible salted AES-256-CBC
// (lib/cipher_funcs.c) and HMAC/digests written as unpadded base64 (lib/fko_hmac.c, base64.c).
import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { MessageDigest } from '../core/spa.ts';

/**
 * base64 of "Salted__" as far as it is fixed: OpenSSL's salted format starts every ciphertext
 * with it, so the client strips these 10 characters before sending and the server puts them back.
 */
export const SALTED_B64 = 'U2FsdGVkX1';
export const SALT_LEN = 8;
export const AES_BLOCK = 16;

const NODE_NAME: Readonly<Record<MessageDigest, string>> = {
  md5: 'md5', sha1: 'sha1', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512', sha3_256: 'sha3-256', sha3_512: 'sha3-512',
};
const DIGEST_BYTES: Readonly<Record<MessageDigest, number>> = {
  md5: 16, sha1: 20, sha256: 32, sha384: 48, sha512: 64, sha3_256: 32, sha3_512: 64,
};

/** Length of an unpadded base64 digest: 22 (md5), 27 (sha1), 43 (sha256), 64 (sha384), 86 (sha512). */
export function b64DigestLength(d: MessageDigest): number {
  return Math.ceil((DIGEST_BYTES[d] * 4) / 3);
}

/** base64 with the trailing "=" removed, as fwknop writes every field (strip_b64_eq). */
export function b64Unpadded(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

/** Strict decode of fwknop base64 (padding optional); undefined when it is not base64. */
export function b64Decode(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const body = text.replace(/=+$/, '');
  // A lone 6-bit tail cannot be a byte: fwknop's decoder would drop it, so it is not a valid encoding.
  if (body.length % 4 === 1) return undefined;
  return Buffer.from(body, 'base64');
}

export function digestB64(d: MessageDigest, text: string): string {
  return b64Unpadded(createHash(NODE_NAME[d]).update(text, 'latin1').digest());
}

export function hmacB64(d: MessageDigest, key: KeyObject | Uint8Array, text: string): string {
  return b64Unpadded(createHmac(NODE_NAME[d], key).update(text, 'latin1').digest());
}

const SALTED_B64_BYTES = Buffer.from(SALTED_B64, 'latin1');

/**
 * Does `tag` (unpadded base64 text) hold the HMAC of SALTED_B64 + `body` (ciphertext text)? On
 * the packet's own bytes, in constant time: what every packet that passed the kernel costs, so
 * it allocates only the digest and its base64.
 */
export function hmacMatches(d: MessageDigest, key: KeyObject | Uint8Array, body: Uint8Array, tag: Uint8Array): boolean {
  const mac = b64Unpadded(createHmac(NODE_NAME[d], key).update(SALTED_B64_BYTES).update(body).digest());
  return mac.length === tag.length && timingSafeEqual(Buffer.from(mac, 'latin1'), tag);
}

/** Constant-time comparison of two ASCII strings (false at once when the lengths differ). */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'latin1');
  const y = Buffer.from(b, 'latin1');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * OpenSSL's EVP_BytesToKey with MD5 and one round, as rij_salt_and_iv() does it: D1 = MD5(key‖salt),
 * Di = MD5(Di-1‖key‖salt); key = first 32 bytes, IV = next 16. The key bytes are used as given,
 * whatever their length (fwknopd accepts 1-32 bytes; CBC mode pads nothing).
 */
export function deriveKeyIv(key: Uint8Array, salt: Uint8Array): { key: Buffer; iv: Buffer } {
  const blocks: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  while (blocks.length * 16 < 48) {
    prev = createHash('md5').update(prev).update(key).update(salt).digest();
    blocks.push(prev);
  }
  const all = Buffer.concat(blocks);
  return { key: all.subarray(0, 32), iv: all.subarray(32, 48) };
}

/** "Salted__" + salt + AES-256-CBC(PKCS#7) ciphertext, as rij_encrypt() produces. */
export function encryptSalted(plaintext: Buffer, key: Uint8Array, salt: Uint8Array): Buffer {
  const k = deriveKeyIv(key, salt);
  const cipher = createCipheriv('aes-256-cbc', k.key, k.iv);
  return Buffer.concat([Buffer.from('Salted__', 'latin1'), salt, cipher.update(plaintext), cipher.final()]);
}

/**
 * Decrypts "Salted__" + salt + ciphertext (a whole number of blocks); undefined when the PKCS#7
 * padding is wrong, which after a good HMAC means a wrong KEY or a mode other than CBC.
 */
export function decryptSalted(data: Buffer, key: Uint8Array): Buffer | undefined {
  const salt = data.subarray(SALT_LEN, 2 * SALT_LEN);
  const k = deriveKeyIv(key, salt);
  const decipher = createDecipheriv('aes-256-cbc', k.key, k.iv).setAutoPadding(false);
  const plain = Buffer.concat([decipher.update(data.subarray(2 * SALT_LEN)), decipher.final()]);
  const pad = plain[plain.length - 1] ?? 0;
  if (pad < 1 || pad > AES_BLOCK || pad > plain.length) return undefined;
  for (let i = plain.length - pad; i < plain.length; i++) if (plain[i] !== pad) return undefined;
  return plain.subarray(0, plain.length - pad);
}
