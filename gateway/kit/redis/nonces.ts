// Replay protection shared by every node and relay: `SET key 1 NX PX ttl` is the claim, so
// exactly one of many concurrent claims of a nonce wins. Fails closed: if Redis cannot answer,
// the claim throws KGW_STORE_UNAVAILABLE instead of accepting a possible replay.
import { describeError, kgwError } from '../../core/errors.ts';
import type { NonceStore } from '../../ports.ts';
import type { RedisConnection } from './connection.ts';
import { keyspace, type KeySpace } from './keys.ts';

export interface RedisNonceStoreOptions {
  readonly conn: RedisConnection;
  readonly keys?: KeySpace;
}

/**
 * Where the nonces of every scope starting with `scopePrefix` live. encodeURIComponent works
 * character by character, so the encoded scope starts with the encoded prefix: the relay's Redis
 * ACL pattern is this prefix plus `*` (relay-acl.ts).
 */
export function nonceKeyPrefix(keys: KeySpace, scopePrefix: string): string {
  return keys(`nonce:${encodeURIComponent(scopePrefix)}`);
}

export function nonceKey(keys: KeySpace, scope: string, nonce: string): string {
  // Encoded so that scope "a:b" + nonce "c" and scope "a" + nonce "b:c" stay distinct.
  return `${nonceKeyPrefix(keys, scope)}:${encodeURIComponent(nonce)}`;
}

export function createRedisNonceStore(opts: RedisNonceStoreOptions): NonceStore {
  const key = opts.keys ?? keyspace();
  return {
    async claim(scope, nonce, ttlMs) {
      const k = nonceKey(key, scope, nonce);
      try {
        return (await opts.conn.client.set(k, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
      } catch (err) {
        throw kgwError('KGW_STORE_UNAVAILABLE', `cannot check the nonce in Redis (${describeError(err)}); refusing rather than risking a replay`, { scope }, err);
      }
    },
  };
}
