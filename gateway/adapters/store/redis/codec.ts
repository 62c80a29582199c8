// Grants as the Redis store writes and reads them. Lifetimes are decided by Redis's clock alone:
// a node sends a *relative* TTL (PX = expiresAt - its now), and a reader turns the PTTL it reads
// back into its own clock (expiresAt = local now + PTTL). PXAT was rejected: an absolute expiry
// from a node whose clock runs ahead of Redis's would keep the grant open for TTL + skew.
import type { Grant } from '../../../core/grant.ts';
import { GrantSchema } from '../grant-cache.ts';

/** The fields PUT_LUA needs to store a grant (see kit/redis/lua.ts). */
export interface EncodedGrant {
  /** The JSON of every field but createdAt and expiresAt, without its closing brace. */
  readonly head: string;
  readonly createdAt: string;
  /** 'null' = until closed. */
  readonly expiresAt: string;
  /** Milliseconds left by the writer's clock; '' = until closed. */
  readonly px: string;
}

export function encodeGrant(grant: Grant, now: number): EncodedGrant {
  const { createdAt, expiresAt, ...rest } = grant;
  return {
    head: JSON.stringify(rest).slice(0, -1),
    createdAt: String(createdAt),
    expiresAt: String(expiresAt),
    px: expiresAt === null ? '' : String(expiresAt - now),
  };
}

export type DecodeResult = { readonly grant: Grant } | { readonly why: string };

/**
 * A stored JSON value as a grant. With a PTTL the expiry is re-based on our clock (`localNow` is
 * when the PTTL was read); without one (a removed grant, for the log) it stays as written.
 */
export function decodeGrant(id: string, json: string, pttl: number | undefined, localNow: number): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    value = undefined;
  }
  const parsed = GrantSchema.safeParse(value);
  if (!parsed.success || parsed.data.id !== id) {
    return { why: json === '' ? 'not a string' : parsed.success ? `id is ${parsed.data.id}` : (parsed.error.issues[0]?.message ?? 'invalid') };
  }
  if (pttl === undefined) return { grant: parsed.data };
  return { grant: Object.freeze({ ...parsed.data, expiresAt: pttl < 0 ? null : localNow + pttl }) };
}
