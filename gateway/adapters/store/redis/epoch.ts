// A Redis that comes back empty (restart without persistence, a fresh replacement) lost
// everyone's grants. An epoch key, created by whoever sees it first, tells: a node that finds a
// different epoch than last time re-seeds its own live grants (each node re-seeds its own).
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../../ports.ts';
import type { RedisConnection } from '../../../kit/redis/connection.ts';
import type { GrantCache } from '../grant-cache.ts';
import type { Outbox } from './outbox.ts';

export interface EpochDeps {
  readonly conn: RedisConnection;
  /** The full name of the epoch key. */
  readonly key: string;
  readonly nodeId: string;
  readonly cache: GrantCache;
  /** Where the re-seeded grants queue (flushed right after the check). */
  readonly outbox: Outbox;
  readonly logger: Logger;
}

/** Returns the check a store runs each time Redis is (again) ready. */
export function epochCheck(deps: EpochDeps): () => Promise<void> {
  const { conn, key, nodeId, cache, outbox, logger } = deps;
  let epoch: string | undefined;
  return async () => {
    await conn.client.set(key, randomUUID(), 'NX');
    const current = await conn.client.get(key);
    const lost = epoch !== undefined && current !== epoch;
    epoch = current ?? undefined;
    if (!lost) return;
    let reseeded = 0;
    for (const g of cache.peek()) {
      if (g.nodeId !== nodeId || outbox.has(g.id)) continue;
      outbox.add({ op: 'put', grant: g });
      reseeded++;
    }
    logger.warn({ event: 'store.reseeded', target: conn.target, grants: reseeded }, `Redis at ${conn.target} came back empty: re-seeding ${reseeded} local grants`);
  };
}
