// Relay protocol v1: the contract between third-party clients, the relay and the gateway.
// Keys file, request body, the canonical signed string, the verification steps and the queued
// grant request live here, so the relay and the gateway cannot drift apart. No I/O: both sides
// read their files and queues through gateway/kit and pass the text or values in.
import { createSecretKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { ed25519PrivateKey, p256PrivateKey, PUBLIC_KEY_BYTES, signBytes, verifyBytes, verifyingKey, type KeyAlg } from './relay-v1-algs.ts';

export { ed25519PrivateKey, ed25519RawPublic, KEY_ALGS, p256RawPublic, type KeyAlg } from './relay-v1-algs.ts';
import { describeError, kgwError, type ErrorCode } from '../core/errors.ts';
import { parseIp, refusalReason } from '../core/ip.ts';

export const PROTOCOL_TAG = 'knockgw-v1';
export const MAX_BODY_BYTES = 4096;
/** Accepted clock difference between client and relay/gateway, in seconds. */
export const TS_WINDOW_S = 60;
/** A nonce must be remembered for as long as its timestamp could still be accepted. */
export const NONCE_TTL_MS = (2 * TS_WINDOW_S + 5) * 1000;

// Relay and gateway claim each nonce in scopes of their own. They must stay apart: the relay's
// Redis user may write only keys of the relay scope, so it can never reset a gateway's claim and
// replay a knock (gateway/kit/redis/relay-acl.ts builds its key pattern from RELAY_NONCE_SCOPE).
export const RELAY_NONCE_SCOPE = 'relay:';
export const GATEWAY_NONCE_SCOPE = 'gateway:';

/** HTTP status for each relay error code (the documented answers of POST /v1/knock). */
export const RELAY_STATUS = {
  KGW_RELAY_MALFORMED: 400,
  KGW_RELAY_BAD_SIGNATURE: 401,
  KGW_RELAY_UNKNOWN_CLIENT: 401,
  KGW_RELAY_DOOR_FORBIDDEN: 403,
  KGW_RELAY_DOOR_UNKNOWN: 403,
  KGW_RELAY_IP_FORBIDDEN: 403,
  KGW_RELAY_REPLAY: 409,
  KGW_RELAY_TOO_LARGE: 413,
  KGW_RELAY_STALE: 422,
  KGW_RELAY_RATE_LIMITED: 429,
} as const satisfies Partial<Record<ErrorCode, number>>;
export type RelayErrorCode = keyof typeof RELAY_STATUS;

export function isRelayErrorCode(code: string): code is RelayErrorCode {
  return Object.hasOwn(RELAY_STATUS, code);
}

// Names end up as lines of the signed string, so no control characters (a newline would let two
// different requests share one canonical string).
const NAME = z.string().min(1).max(128).refine(
  (s) => ![...s].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f),
  'must not contain control characters',
);

function base64Of(bytes: number, what: string): z.ZodType<string> {
  return z.string().refine((s) => isBase64(s) && Buffer.from(s, 'base64').length === bytes, `${what} must be standard base64 of exactly ${bytes} bytes`);
}

function isBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
}

const clientCommon = {
  id: NAME,
  doors: z.array(NAME).min(1),
  /** May the client ask for another IP than the one the relay observes (e.g. a jump host)? */
  allowIp: z.boolean().default(false),
};

export const keysFileSchema = z.object({
  clients: z.array(z.discriminatedUnion('alg', [
    z.object({ ...clientCommon, alg: z.literal('hmac-sha256'), secret: base64Of(32, 'secret') }),
    z.object({ ...clientCommon, alg: z.literal('ed25519'), publicKey: base64Of(PUBLIC_KEY_BYTES.ed25519, 'publicKey') }),
    // Extension v1.1 (browsers without WebCrypto Ed25519): relay-v1-algs.ts.
    z.object({ ...clientCommon, alg: z.literal('ecdsa-p256'), publicKey: base64Of(PUBLIC_KEY_BYTES['ecdsa-p256'], 'publicKey') }),
  ])),
}).superRefine((file, ctx) => {
  const seen = new Set<string>();
  for (const [i, c] of file.clients.entries()) {
    if (seen.has(c.id)) ctx.addIssue({ code: 'custom', message: `duplicate client id "${c.id}"`, path: ['clients', i, 'id'] });
    seen.add(c.id);
  }
});
export type KeysFile = z.infer<typeof keysFileSchema>;
export type KeysEntry = KeysFile['clients'][number];

export const knockBodySchema = z.object({
  v: z.literal(1),
  client: NAME,
  door: NAME,
  ip: z.string().max(64).refine((s) => parseIp(s) !== undefined, 'ip must be an IPv4 or IPv6 address').optional(),
  ts: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  nonce: base64Of(16, 'nonce'),
  sig: z.string().max(256).refine(isBase64, 'sig must be standard base64'),
});
export type KnockBody = z.infer<typeof knockBodySchema>;
export type SignedFields = Omit<KnockBody, 'v' | 'sig'>;

/** A verified-capable client: its public half (or shared secret) as a node:crypto key. */
export interface RelayClient {
  readonly id: string;
  readonly alg: KeysEntry['alg'];
  readonly doors: ReadonlySet<string>;
  readonly allowIp: boolean;
  readonly key: KeyObject;
}
export type RelayKeys = ReadonlyMap<string, RelayClient>;

export function canonicalString(f: SignedFields): string {
  return [PROTOCOL_TAG, f.client, f.door, f.ip ?? '', String(f.ts), f.nonce].join('\n');
}

export function compileKeys(file: KeysFile): RelayKeys {
  const out = new Map<string, RelayClient>();
  for (const c of file.clients) {
    out.set(c.id, compileClient(c));
  }
  return out;
}

/** One keys-file entry (or an enrolled device) as a verifying client. */
export function compileClient(c: KeysEntry): RelayClient {
  const key = verifyingKey(c.alg, c.alg === 'hmac-sha256' ? c.secret : c.publicKey);
  return Object.freeze({ id: c.id, alg: c.alg, doors: new Set(c.doors), allowIp: c.allowIp, key });
}

/** Parses keys-file JSON text (already read); `origin` names it in errors. */
export function parseKeys(text: string, origin: string): RelayKeys {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw kgwError('KGW_CONFIG_INVALID', `relay keys ${origin} is not valid JSON: ${describeError(err)}`, { path: origin });
  }
  const parsed = keysFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw kgwError('KGW_CONFIG_INVALID', `relay keys ${origin} is invalid: ${issues}`, { path: origin, issues });
  }
  return compileKeys(parsed.data);
}

/** Signs with a client's private key material: HMAC secret key or Ed25519 private key. */
export function signFields(alg: KeyAlg, key: KeyObject, f: SignedFields): string {
  return signBytes(alg, key, Buffer.from(canonicalString(f), 'utf8'));
}

export function verifySignature(client: RelayClient, f: SignedFields, sigB64: string): boolean {
  return verifyBytes(client.alg, client.key, Buffer.from(canonicalString(f), 'utf8'), Buffer.from(sigB64, 'base64'));
}

function relayError(code: RelayErrorCode, message: string, detail: Record<string, unknown> = {}) {
  return kgwError(code, message, detail);
}

/** Parses an untrusted body value; throws KGW_RELAY_MALFORMED with what is wrong. */
export function parseKnockBody(value: unknown): KnockBody {
  const parsed = knockBodySchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
  throw relayError('KGW_RELAY_MALFORMED', `invalid knock body: ${issues}`);
}

/**
 * Everything but replay and rate limits: client known, signature, door, timestamp window, and the
 * IP to grant. Returns the client and the canonical IP to grant; throws a KGW_RELAY_* error.
 */
export function verifyKnock(keys: RelayKeys, body: KnockBody, observedIp: string, nowMs: number, enrolled?: RelayClient): { client: RelayClient; ip: string } {
  // A keys-file client wins over an enrolled device of the same id (devices are named d-…).
  const client = keys.get(body.client) ?? (enrolled?.id === body.client ? enrolled : undefined);
  if (!client) throw relayError('KGW_RELAY_UNKNOWN_CLIENT', `client "${body.client}" is not in the keys file`, { client: body.client });
  if (!verifySignature(client, body, body.sig)) {
    throw relayError('KGW_RELAY_BAD_SIGNATURE', `the signature of client "${client.id}" does not verify (wrong key, or a field was changed)`, { client: client.id });
  }
  if (!client.doors.has(body.door)) {
    throw relayError('KGW_RELAY_DOOR_FORBIDDEN', `client "${client.id}" may not open door "${body.door}"`, { client: client.id, door: body.door });
  }
  const skew = Math.abs(nowMs / 1000 - body.ts);
  if (!(skew <= TS_WINDOW_S)) {
    throw relayError('KGW_RELAY_STALE', `timestamp ${body.ts} is ${Math.round(skew)} s away from the server clock (allowed ±${TS_WINDOW_S} s); check the client's clock`, { ts: body.ts });
  }
  const observed = parseIp(observedIp);
  if (!observed) throw relayError('KGW_RELAY_MALFORMED', `the observed client address "${observedIp}" is not an IP address`, { observedIp });
  if (body.ip === undefined) return { client, ip: observed.address };
  const named = parseIp(body.ip);
  if (!named) throw relayError('KGW_RELAY_MALFORMED', `ip "${body.ip}" is not an IP address`, { ip: body.ip });
  if (named.address !== observed.address && !client.allowIp) {
    throw relayError('KGW_RELAY_IP_FORBIDDEN', `client "${client.id}" asked for ${named.address} but connects from ${observed.address}, and may not name another IP (allowIp is false)`, { client: client.id, ip: named.address, observedIp: observed.address });
  }
  if (named.address !== observed.address) {
    // Naming an address is the one way a client can point a grant elsewhere: never at a range.
    const reason = refusalReason(named);
    if (reason) throw relayError('KGW_RELAY_IP_FORBIDDEN', `refusing to grant ${named.address}: ${reason}`, { client: client.id, ip: named.address });
  }
  return { client, ip: named.address };
}

// ---------------------------------------------------------------- client side

/** The client's private key file written by `knockgw keygen` (keep it mode 0600). */
export const privateKeyFileSchema = z.discriminatedUnion('alg', [
  z.object({ id: NAME, alg: z.literal('hmac-sha256'), secret: base64Of(32, 'secret') }),
  z.object({ id: NAME, alg: z.literal('ed25519'), privateKey: base64Of(32, 'privateKey') }),
  // v1.1: the raw 32-byte P-256 scalar d (big-endian).
  z.object({ id: NAME, alg: z.literal('ecdsa-p256'), privateKey: base64Of(32, 'privateKey') }),
]);
export type PrivateKeyFile = z.infer<typeof privateKeyFileSchema>;

export interface ClientSigner {
  readonly id: string;
  readonly alg: KeysEntry['alg'];
  readonly key: KeyObject;
}

export function parsePrivateKeyFile(text: string, origin: string): ClientSigner {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw kgwError('KGW_CONFIG_INVALID', `relay key file ${origin} is not valid JSON: ${describeError(err)}`, { path: origin });
  }
  const parsed = privateKeyFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw kgwError('KGW_CONFIG_INVALID', `relay key file ${origin} is invalid: ${issues}`, { path: origin, issues });
  }
  const f = parsed.data;
  const key = f.alg === 'hmac-sha256' ? createSecretKey(Buffer.from(f.secret, 'base64'))
    : f.alg === 'ed25519' ? ed25519PrivateKey(Buffer.from(f.privateKey, 'base64')) : p256PrivateKey(Buffer.from(f.privateKey, 'base64'));
  return { id: f.id, alg: f.alg, key };
}

/** Builds a signed v1 body. `nonce` is base64 of 16 random bytes, `ts` unix seconds. */
export function signKnock(signer: ClientSigner, req: { door: string; ip?: string; ts: number; nonce: string }): KnockBody {
  const fields: SignedFields = { client: signer.id, door: req.door, ts: req.ts, nonce: req.nonce, ...(req.ip === undefined ? {} : { ip: req.ip }) };
  return { v: 1, ...fields, sig: signFields(signer.alg, signer.key, fields) };
}

// ---------------------------------------------------------------- relay → gateway

/** What the relay queues for the gateways: the client's signed body plus what the relay observed. */
export type GrantRequest = KnockBody & {
  /** The address the relay saw the request come from (platform connection info). */
  readonly observedIp: string;
  /** Relay clock, unix milliseconds. */
  readonly receivedAt: number;
};

export const grantRequestSchema = knockBodySchema.extend({
  observedIp: z.string().max(64),
  receivedAt: z.number(),
});

/** Parses a queued payload (the queue may hold anything a compromised relay wrote). */
export function parseGrantRequest(payload: unknown): GrantRequest {
  const parsed = grantRequestSchema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; ');
  throw kgwError('KGW_RELAY_MALFORMED', `invalid queued grant request: ${issues}`);
}

/** Where the relay puts grant requests (Redis stream, or in process). */
export interface GrantRequestSink {
  submit(req: GrantRequest): Promise<void>;
}

/** One entry as read from the queue: its id and the still-untrusted payload. */
export interface QueuedRequest {
  readonly id: string;
  readonly payload: unknown;
}

export interface GrantRequestSource extends AsyncIterable<QueuedRequest> {
  /** Ends the iteration (a pending read returns done). */
  close(): Promise<void>;
}
