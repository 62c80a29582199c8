// Enrolled devices (phones and browsers) and their enrollment tokens: the records the relay, the
// gateway and `knockgw enroll|devices` share through a DeviceRegistry (a file on one host, Redis
// for HA relays). A device is a relay v1 client whose key was made in the browser (ed25519, or the
// v1.1 extension ecdsa-p256) and bound to one door by a single-use, short-lived token.
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { kgwError } from '../core/errors.ts';
import { PUBLIC_KEY_BYTES } from './relay-v1-algs.ts';
import { compileClient, type KeysEntry, type RelayClient, type RelayKeys } from './relay-v1.ts';

/** Device ids start with d- (keys-file ids win over devices of the same name). */
export const DEVICE_ID = /^d-[A-Za-z0-9_-]{10,40}$/;
export const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
export const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
/** Hard limit: an enrollment link never lives longer than a day. */
export const MAX_TOKEN_TTL_MS = 24 * 3600_000;

const name = z.string().min(1).max(64).refine((s) => ![...s].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f), 'must not contain control characters');

export const deviceSchema = z.object({
  id: z.string().regex(DEVICE_ID),
  name,
  door: z.string().min(1).max(128),
  alg: z.enum(['ed25519', 'ecdsa-p256']),
  publicKey: z.string().max(128),
  /** unix ms */
  createdAt: z.number(),
  /** The address the enrollment came from (shown by `knockgw devices list`). */
  enrolledFrom: z.string().max(64),
});
export type Device = z.infer<typeof deviceSchema>;

export const tokenRecordSchema = z.object({ door: z.string().min(1).max(128), name: name.optional(), expiresAt: z.number() });
export type TokenRecord = z.infer<typeof tokenRecordSchema>;

/** POST /v1/enroll (the page sends it once, with the token from the link's fragment). */
export const enrollBodySchema = z.object({
  v: z.literal(1),
  token: z.string().regex(TOKEN_RE, 'token must be the 43-character code of the enrollment link'),
  alg: z.enum(['ed25519', 'ecdsa-p256']),
  publicKey: z.string().max(128),
  name: name.optional(),
}).superRefine((b, ctx) => {
  const raw = Buffer.from(b.publicKey, 'base64');
  if (raw.length !== PUBLIC_KEY_BYTES[b.alg] || raw.toString('base64') !== b.publicKey) {
    ctx.addIssue({ code: 'custom', path: ['publicKey'], message: `publicKey must be standard base64 of the raw ${PUBLIC_KEY_BYTES[b.alg]}-byte ${b.alg} public key` });
  }
});
export type EnrollBody = z.infer<typeof enrollBodySchema>;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Tokens are stored by hash only: a leaked registry holds no usable link. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(`knockgw-enroll\n${token}`).digest('hex');
}

export function newDeviceId(): string {
  return `d-${randomBytes(12).toString('base64url')}`;
}

/** A device as a keys-file entry (verified exactly like one). */
export function deviceEntry(d: Device): KeysEntry {
  return { id: d.id, alg: d.alg, publicKey: d.publicKey, doors: [d.door], allowIp: false };
}

export function parseEnrollBody(value: unknown): EnrollBody {
  const r = enrollBodySchema.safeParse(value);
  if (r.success) return r.data;
  throw kgwError('KGW_RELAY_MALFORMED', `invalid enrollment: ${r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
}

/** Where devices live. Every method fails closed with a coded error when the store cannot answer. */
export interface DeviceRegistry {
  /** Stores a token for `door` (by hash); returns the token itself, never stored. */
  issue(req: { door: string; name?: string; ttlMs: number }, nowMs: number): Promise<{ token: string; expiresAt: number }>;
  /** Consumes a token atomically and stores the device; a used, expired or unknown token throws KGW_ENROLL_TOKEN. */
  redeem(token: string, device: Omit<Device, 'id' | 'door' | 'createdAt' | 'name'> & { name?: string }, nowMs: number): Promise<Device>;
  get(id: string): Promise<Device | undefined>;
  list(): Promise<Device[]>;
  /** true when a device was removed. */
  revoke(id: string): Promise<boolean>;
  close(): Promise<void>;
}

export function tokenRefused(): Error {
  return kgwError('KGW_ENROLL_TOKEN', 'this enrollment link was already used, has expired, or was never issued; ask for a new one (knockgw enroll)');
}

/** The enrolled device `id` as a verifying client, when it is one (keys-file ids win; devices are d-…). */
export async function enrolledClient(devices: Pick<DeviceRegistry, 'get'> | undefined, keys: RelayKeys, id: string): Promise<RelayClient | undefined> {
  if (!devices || keys.has(id) || !id.startsWith('d-')) return undefined;
  const d = await devices.get(id);
  return d ? compileClient(deviceEntry(d)) : undefined;
}
