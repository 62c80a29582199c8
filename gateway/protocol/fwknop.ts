// fwknop 2.x SPA packets (wire-compatible with the fwknop client and fwknopd 2.6): decoding for
// the intake, the replay-cache key, and encoding for tests, the bench and clients.
//
// The UDP payload is unpadded base64 text: ciphertext, then the HMAC of the ciphertext text with
// "U2FsdGVkX1" (base64 of OpenSSL's "Salted__") put back in front. The HMAC is checked first, in
// constant time, so nothing an unauthenticated sender controls reaches the cipher or the parser.
// Decoding never throws on packet data: every failure is a stable reason code and a detail.
import { createHash, createSecretKey, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { kgwError } from '../core/errors.ts';
import { formatPort, type PortSpec } from '../core/grant.ts';
import { parseIp } from '../core/ip.ts';
import { SPA_TYPE, type MessageDigest, type SpaDecoded, type SpaKeys } from '../core/spa.ts';
import { AES_BLOCK, SALT_LEN, SALTED_B64, b64Decode, b64DigestLength, b64Unpadded, decryptSalted, encryptSalted, hmacB64, hmacMatches } from './fwknop-crypto.ts';
import { formatPlaintext, parsePlaintext } from './fwknop-message.ts';

/** fwknopd's bounds on the UDP payload (server/fwknopd_common.h MIN_SPA_DATA_SIZE, MAX_SPA_PACKET_LEN). */
export const MIN_SPA_PACKET = 140;
export const MAX_SPA_PACKET = 1500;
/** libfko reads ciphertext text this long as GnuPG, never as Rijndael (fko_encryption_type()). */
const MIN_GPG_TEXT = 400;
/** libfko's MIN_SPA_ENCODED_MSG_SIZE. */
const MIN_ENCODED = 36;
/** A-Z a-z 0-9 + / (unpadded base64 text). */
const isBase64Byte = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
const SALTED = Buffer.from('Salted__', 'latin1');

interface PreparedKeys { readonly key: Buffer; readonly hmacKey: KeyObject }
// Keys are base64 in the (frozen) config; decode them once per stanza, not once per packet.
const prepared = new WeakMap<SpaKeys, PreparedKeys>();
function keyBytes(keys: SpaKeys): PreparedKeys {
  let p = prepared.get(keys);
  if (!p) {
    p = { key: Buffer.from(keys.keyBase64, 'base64'), hmacKey: createSecretKey(Buffer.from(keys.hmacKeyBase64, 'base64')) };
    prepared.set(keys, p);
  }
  return p;
}

const failure = (reason: Extract<SpaDecoded, { ok: false }>['reason'], detail: string): SpaDecoded => ({ ok: false, reason, detail });

/** The replay-cache key: SHA-256 (hex) of the payload exactly as received. */
export function spaPacketDigest(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

/** Authenticates, decrypts and parses one SPA payload with one stanza's keys. */
export function decodeSpa(payload: Uint8Array, keys: SpaKeys): SpaDecoded {
  try {
    return decode(payload, keys);
  } catch (err) {
    // Unreachable by design (every check returns); a daemon must still never die on a packet.
    return failure('format', `unexpected decoder error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function decode(payload: Uint8Array, keys: SpaKeys): SpaDecoded {
  if (payload.length < MIN_SPA_PACKET || payload.length > MAX_SPA_PACKET) {
    return failure('size', `${payload.length} bytes is outside fwknop's ${MIN_SPA_PACKET}-${MAX_SPA_PACKET}`);
  }
  // Byte by byte on the packet itself: garbage costs no copy and no string.
  for (const c of payload) if (!isBase64Byte(c)) return failure('not-base64', 'the payload is not unpadded base64 text');
  // A client never sends the prefix; one tacked on would give a replayed packet a new digest.
  if (Buffer.from(payload.buffer, payload.byteOffset, SALTED_B64.length).toString('latin1') === SALTED_B64) return failure('salted-prefix', 'the payload starts with the "Salted__" prefix a client strips');

  const hmacLen = b64DigestLength(keys.hmacDigest);
  const bodyLen = payload.length - hmacLen;
  if (bodyLen < MIN_ENCODED) return failure('size', 'too short for a ciphertext and its HMAC');
  const k = keyBytes(keys);
  if (!hmacMatches(keys.hmacDigest, k.hmacKey, payload.subarray(0, bodyLen), payload.subarray(bodyLen))) {
    return failure('hmac', `the ${keys.hmacDigest} HMAC does not verify (wrong HMAC key or digest type, or not an SPA packet)`);
  }
  const cipherText = SALTED_B64 + Buffer.from(payload.buffer, payload.byteOffset, bodyLen).toString('latin1');

  if (cipherText.length >= MIN_GPG_TEXT) return failure('ciphertext', `${cipherText.length} characters of ciphertext is GnuPG's format, not Rijndael's`);
  const data = b64Decode(cipherText);
  if (!data || data.length % AES_BLOCK !== 0 || data.length < 2 * AES_BLOCK || !data.subarray(0, SALT_LEN).equals(SALTED)) {
    return failure('ciphertext', 'the ciphertext is not salt plus whole AES blocks');
  }
  const plain = decryptSalted(data, k.key);
  // The 16-digit random value and its colon are how fwknop tells a good decryption.
  if (!plain || !/^\d{16}:/.test(plain.subarray(0, 17).toString('latin1'))) {
    return failure('decrypt', 'decryption gives no SPA message (wrong KEY, or an ENCRYPTION_MODE other than CBC)');
  }
  const parsed = parsePlaintext(plain.toString('latin1'));
  if (!parsed.ok) return parsed;
  return { ok: true, message: parsed.message, packetDigest: spaPacketDigest(payload) };
}

export interface SpaRequest {
  /** USE_SOURCE_IP ("0.0.0.0") for fwknop -s. */
  readonly allowIp: string;
  /** Access messages: what to open. */
  readonly ports?: readonly PortSpec[];
  /** Type 0 only (fwknop -C). */
  readonly command?: string;
  /** Default: 3 with a client timeout, 1 otherwise. */
  readonly type?: number;
  /** Seconds (fwknop -f). */
  readonly clientTimeout?: number;
  /** "host,port" for NAT types. */
  readonly natAccess?: string;
  /** Unix seconds. */
  readonly timestamp: number;
  readonly user?: string;
  readonly digest?: MessageDigest;
  /** 16 digits; random by default. */
  readonly rand?: string;
  /** 8 bytes; random by default. */
  readonly salt?: Uint8Array;
  readonly version?: string;
}

function requestError(message: string, request: SpaRequest): never {
  throw kgwError('KGW_SPA_REQUEST', message, { allowIp: request.allowIp, type: request.type });
}

/** Builds a packet exactly as the fwknop client does (encrypt, HMAC, strip the prefix, append). */
export function encodeSpa(request: SpaRequest, keys: SpaKeys): string {
  const type = request.type ?? (request.clientTimeout === undefined ? SPA_TYPE.access : SPA_TYPE.clientTimeoutAccess);
  const ip = parseIp(request.allowIp) ?? requestError(`allowIp "${request.allowIp}" is not an IP address`, request);
  const what = type === SPA_TYPE.command ? request.command : request.ports?.map((p) => `${p.proto}/${p.port}`).join(',');
  if (!what) requestError(type === SPA_TYPE.command ? 'a command message needs a command' : 'an access message needs at least one port', request);
  if (request.ports?.some((p) => !(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535))) {
    requestError(`ports must be 1-65535: ${request.ports.map(formatPort).join(',')}`, request);
  }
  const rand = request.rand ?? Array.from({ length: 16 }, () => randomInt(10)).join('');
  const salt = request.salt ?? randomBytes(SALT_LEN);
  if (!/^\d{16}$/.test(rand) || salt.length !== SALT_LEN) requestError('rand must be 16 digits and salt 8 bytes', request);
  const plaintext = formatPlaintext({
    rand,
    user: request.user ?? 'knockgw',
    timestamp: request.timestamp,
    version: request.version ?? '3.0.0',
    type,
    message: `${ip.address},${what}`,
    ...(request.natAccess !== undefined ? { natAccess: request.natAccess } : {}),
    ...(request.clientTimeout !== undefined ? { clientTimeout: request.clientTimeout } : {}),
    digest: request.digest ?? 'sha256',
  });
  const k = keyBytes(keys);
  const cipherText = b64Unpadded(encryptSalted(Buffer.from(plaintext, 'latin1'), k.key, salt));
  return cipherText.slice(SALTED_B64.length) + hmacB64(keys.hmacDigest, k.hmacKey, cipherText);
}
