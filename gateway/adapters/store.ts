// Picks the grant store from the --store spec and gives the matching replay-protection store.
//   memory                          single node, grants mirrored to the state file
//   redis://… rediss://…            standalone Redis (TLS with rediss)
//   /path/redis.sock, unix:///path  Redis on a unix socket
//   redis+sentinel://h:p,h:p/name   Redis behind Sentinel
import type { RedisOptions } from 'ioredis';
import type { Clock, Logger, NonceStore } from '../ports.ts';
import { createMemoryNonceStore } from './nonce-memory.ts';
import { createRedisNonceStore } from './nonce-redis.ts';
import { createMemoryStore, type CorruptStateFile, type MemoryStore } from './store-memory.ts';
import { createRedisStore, type RedisStore } from './store-redis.ts';

export type Store = MemoryStore | RedisStore;

export interface StoreOptions {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Memory store only; '' or absent = no persistence. */
  readonly stateFile?: string;
  readonly onCorruptStateFile?: CorruptStateFile;
  /** Redis only (see store-redis.ts for the defaults). */
  readonly namespace?: string;
  readonly fullReconcileMs?: number;
  readonly requireStoreAtStart?: boolean;
  readonly connectTimeoutMs?: number;
  readonly reconnectMaxMs?: number;
  readonly redisOptions?: RedisOptions;
}

export function createStore(spec: string, opts: StoreOptions): Promise<Store> {
  if (spec === 'memory') {
    return createMemoryStore({
      clock: opts.clock,
      logger: opts.logger,
      ...(opts.stateFile ? { stateFile: opts.stateFile } : {}),
      ...(opts.onCorruptStateFile ? { onCorruptStateFile: opts.onCorruptStateFile } : {}),
    });
  }
  const { stateFile: _stateFile, onCorruptStateFile: _onCorrupt, ...redisOpts } = opts;
  return createRedisStore({ ...redisOpts, url: spec });
}

/** Nonces live where the grants live: in memory for one node, in Redis when shared. */
export function createNonceStore(store: Store, opts: { clock: Clock; maxEntries?: number }): NonceStore {
  return store.kind === 'redis' ? createRedisNonceStore(store) : createMemoryNonceStore(opts);
}
