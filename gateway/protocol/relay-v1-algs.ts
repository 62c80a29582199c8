// The signature algorithms of relay protocol v1, as node:crypto keys. hmac-sha256 and ed25519 are
// the base protocol; ecdsa-p256 is the v1.1 extension for browsers whose WebCrypto has no Ed25519:
// the public key is the raw uncompressed point (65 bytes, 0x04 ‖ X ‖ Y, WebCrypto's exportKey
// 'raw'), the signature ECDSA with SHA-256 over the same canonical string, as r ‖ s (64 bytes,
// IEEE P1363: what WebCrypto's sign() returns; not DER).
import { createECDH, createHmac, createPrivateKey, createPublicKey, createSecretKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { kgwError } from '../core/errors.ts';

export const KEY_ALGS = ['hmac-sha256', 'ed25519', 'ecdsa-p256'] as const;
export type KeyAlg = (typeof KEY_ALGS)[number];
/** Which protocol revision added each algorithm (GET /v1/config lists the extensions a relay speaks). */
export const ALG_SINCE: Readonly<Record<KeyAlg, string>> = { 'hmac-sha256': '1.0', ed25519: '1.0', 'ecdsa-p256': '1.1' };
/** Raw public key sizes: Ed25519 32 bytes, P-256 an uncompressed point of 65. */
export const PUBLIC_KEY_BYTES = { ed25519: 32, 'ecdsa-p256': 65 } as const;

export function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** A P-256 public key from its raw uncompressed point; throws KGW_CONFIG_INVALID when it is not one. */
export function p256PublicKey(raw: Buffer): KeyObject {
  if (raw.length !== 65 || raw[0] !== 0x04) throw kgwError('KGW_CONFIG_INVALID', 'an ecdsa-p256 publicKey must be the 65-byte uncompressed point (0x04 ‖ X ‖ Y)');
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, format: 'jwk' });
  } catch (err) {
    throw kgwError('KGW_CONFIG_INVALID', 'the ecdsa-p256 publicKey is not a point on P-256', {}, err);
  }
}

/** The raw uncompressed point of a P-256 key (public or private). */
export function p256RawPublic(key: KeyObject): Buffer {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw kgwError('KGW_INTERNAL', 'node:crypto did not export a P-256 public key');
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}

/** A P-256 private key from its raw 32-byte scalar (the key file format; the point is derived). */
export function p256PrivateKey(d: Buffer): KeyObject {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey();
  return createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: d.toString('base64url'), x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33).toString('base64url') }, format: 'jwk' });
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410), so raw keys stay the file format.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function ed25519PrivateKey(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of an Ed25519 private key. */
export function ed25519RawPublic(priv: KeyObject): Buffer {
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw kgwError('KGW_INTERNAL', 'node:crypto did not export an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** The verifying key of a keys-file entry: the shared secret, or the public key of its algorithm. */
export function verifyingKey(alg: KeyAlg, material: string): KeyObject {
  const raw = Buffer.from(material, 'base64');
  if (alg === 'hmac-sha256') return createSecretKey(raw);
  return alg === 'ed25519' ? ed25519PublicKey(raw) : p256PublicKey(raw);
}

export function signBytes(alg: KeyAlg, key: KeyObject, msg: Buffer): string {
  if (alg === 'hmac-sha256') return createHmac('sha256', key).update(msg).digest('base64');
  if (alg === 'ed25519') return sign(null, msg, key).toString('base64');
  return sign('sha256', msg, { key, dsaEncoding: 'ieee-p1363' }).toString('base64');
}

export function verifyBytes(alg: KeyAlg, key: KeyObject, msg: Buffer, sig: Buffer): boolean {
  if (alg === 'hmac-sha256') {
    const want = createHmac('sha256', key).update(msg).digest();
    return sig.length === want.length && timingSafeEqual(sig, want);
  }
  if (alg === 'ed25519') return sig.length === 64 && verify(null, msg, key, sig);
  // r ‖ s, 32 bytes each; a DER signature is refused rather than guessed at.
  return sig.length === 64 && verify('sha256', msg, { key, dsaEncoding: 'ieee-p1363' }, sig);
}
