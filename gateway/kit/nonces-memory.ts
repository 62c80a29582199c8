// Replay protection for a single node: nonces in memory until they expire. Bounded: when full of
// live nonces it refuses (KGW_STORE_FULL) rather than forget one, because a forgotten nonce is a
// replay window; the rate limits in front of it keep a legitimate load far below the cap.
import { kgwError } from '../core/errors.ts';
import type { Clock, NonceStore } from '../ports.ts';

export interface MemoryNonceStoreOptions {
  readonly clock: Clock;
  /** Live nonces kept at most (default 100000). */
  readonly maxEntries?: number;
  /** Entries to start with (a cache persisted by adapters/store/nonces-file.ts): [scope + "\n" + nonce, expires at]. */
  readonly restore?: Iterable<readonly [string, number]>;
}

/** How an entry is keyed (and persisted by adapters/store/nonces-file.ts): scope and nonce cannot run into each other. */
export function nonceKey(scope: string, nonce: string): string {
  return `${scope}\n${nonce}`;
}

export interface MemoryNonceStore extends NonceStore {
  readonly size: number;
  /** The live entries, for persistence: [scope + "\n" + nonce, expires at (unix ms)]. */
  snapshot(): [string, number][];
}

export function createMemoryNonceStore(opts: MemoryNonceStoreOptions): MemoryNonceStore {
  const max = opts.maxEntries ?? 100_000;
  // Insertion order is close to expiry order (one TTL per scope), so pruning from the front is cheap.
  const seen = new Map<string, number>();
  const start = opts.clock.now();
  for (const [k, expiresAt] of [...(opts.restore ?? [])].sort((a, b) => a[1] - b[1])) if (expiresAt > start && seen.size < max) seen.set(k, expiresAt);

  const prune = (now: number, full: boolean): void => {
    for (const [k, expiresAt] of seen) {
      if (expiresAt <= now) seen.delete(k);
      else if (!full) return;
    }
  };

  return {
    get size() {
      return seen.size;
    },
    snapshot() {
      const now = opts.clock.now();
      return [...seen].filter(([, expiresAt]) => expiresAt > now);
    },
    claim(scope, nonce, ttlMs) {
      const now = opts.clock.now();
      const k = nonceKey(scope, nonce);
      const expiresAt = seen.get(k);
      if (expiresAt !== undefined && expiresAt > now) return Promise.resolve(false);
      prune(now, false);
      if (seen.size >= max) prune(now, true);
      if (seen.size >= max) {
        return Promise.reject(kgwError('KGW_STORE_FULL', `${max} nonces are live; refusing new ones until some expire`, { max }));
      }
      seen.delete(k);
      seen.set(k, now + ttlMs);
      return Promise.resolve(true);
    },
  };
}
