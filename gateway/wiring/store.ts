// The shared-state backend named by --store, as one bundle: the grant store, the replay-protection
// (nonce) store, leader leases and, with Redis, the relay request queue. Only this module knows
// that they share one Redis connection; everything else gets the pieces it needs.
//   memory                          single node, grants and the replay cache mirrored to files
//   redis://… rediss://…            standalone Redis (TLS with rediss)
//   /path/redis.sock, unix:///path  Redis on a unix socket
//   redis+sentinel://h:p,h:p/name   Redis behind Sentinel
import type { RedisOptions } from 'ioredis';
import type { Grant } from '../core/grant.ts';
import type { Clock, FleetRoster, GrantStore, LeaderLease, Logger, NonceStore } from '../ports.ts';
import type { GrantRequestSource } from '../protocol/relay-v1.ts';
import { createRedisConnection } from '../kit/redis/connection.ts';
import { keyspace } from '../kit/redis/keys.ts';
import { createRedisNonceStore } from '../kit/redis/nonces.ts';
import { createRedisRequestSource } from '../kit/redis/requests.ts';
import { createRedisDeviceRegistry } from '../kit/redis/devices.ts';
import type { DeviceRegistry } from '../protocol/devices.ts';
import { createMemoryNonceStore } from '../kit/nonces-memory.ts';
import { type CorruptStateFile, createFileNonceStore, createMemoryStore, createRedisFleetRoster, createRedisStore } from '../adapters/store/index.ts';
import { createRedisLease, createSingleLease } from '../adapters/lease/index.ts';

export interface StoreBackend {
  readonly kind: 'memory' | 'redis';
  readonly store: GrantStore;
  readonly nonces: NonceStore;
  /** A lease for one job (e.g. 'cloud'): always held with memory, contended in Redis. */
  readonly lease: (job: string, opts: { ttlMs: number; logger: Logger }) => LeaderLease;
  /** Redis only: the grant requests relays queue for every gateway node. */
  readonly requestSource?: (onError: (err: unknown) => void) => GrantRequestSource;
  /** Redis only: enrolled devices shared by every relay and node. */
  readonly devices?: () => DeviceRegistry;
  /** Redis only: the nodes sharing the store (a memory store's fleet is this node). */
  readonly fleet?: FleetRoster;
  /** Closes the store, then the connection (leases and sources are closed by their owners first). */
  close(): Promise<void>;
}

export interface StoreOptions {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Memory store only; '' or absent = no persistence. */
  readonly stateFile?: string;
  readonly onCorruptStateFile?: CorruptStateFile;
  /** Redis only (see adapters/store/redis/store.ts for the defaults). */
  readonly namespace?: string;
  readonly fullReconcileMs?: number;
  readonly fullReadMaxAgeMs?: number;
  readonly streamMaxLen?: number;
  readonly requireStoreAtStart?: boolean;
  readonly connectTimeoutMs?: number;
  /** Cap of the jittered exponential reconnect backoff (default 400 ms). */
  readonly reconnectMaxMs?: number;
  readonly redisOptions?: RedisOptions;
  readonly maxStalenessMs?: number;
  readonly onStale?: (grants: readonly Grant[]) => void;
}

/** The memory store's replay cache file: state.json → state.replay.json, beside it. */
export function replayFileFor(stateFile: string): string {
  return `${stateFile.replace(/\.json$/, '')}.replay.json`;
}

export async function openStore(spec: string, opts: StoreOptions): Promise<StoreBackend> {
  if (spec === 'memory') {
    const store = await createMemoryStore({
      clock: opts.clock,
      logger: opts.logger,
      ...(opts.stateFile ? { stateFile: opts.stateFile } : {}),
      ...(opts.onCorruptStateFile ? { onCorruptStateFile: opts.onCorruptStateFile } : {}),
    });
    // The replay cache survives a restart next to the grants; without a state file neither does.
    const replay = opts.stateFile
      ? await createFileNonceStore({ file: replayFileFor(opts.stateFile), clock: opts.clock, logger: opts.logger, ...(opts.onCorruptStateFile ? { onCorrupt: opts.onCorruptStateFile } : {}) }).catch(async (err: unknown) => {
        await store.close();
        throw err;
      })
      : undefined;
    return {
      kind: 'memory',
      store,
      nonces: replay ?? createMemoryNonceStore({ clock: opts.clock }),
      lease: (_job, l) => createSingleLease(l),
      async close() {
        await replay?.close();
        await store.close();
      },
    };
  }
  const conn = createRedisConnection({
    spec,
    name: `knockgw-${opts.nodeId}`,
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.reconnectMaxMs !== undefined ? { reconnect: { baseMs: 50, capMs: opts.reconnectMaxMs, jitter: 'half' } } : {}),
    ...(opts.redisOptions ? { redisOptions: opts.redisOptions } : {}),
  });
  const keys = keyspace(opts.namespace);
  const store = await createRedisStore({
    conn,
    nodeId: opts.nodeId,
    clock: opts.clock,
    logger: opts.logger,
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    ...(opts.fullReconcileMs !== undefined ? { fullReconcileMs: opts.fullReconcileMs } : {}),
    ...(opts.fullReadMaxAgeMs !== undefined ? { fullReadMaxAgeMs: opts.fullReadMaxAgeMs } : {}),
    ...(opts.streamMaxLen !== undefined ? { streamMaxLen: opts.streamMaxLen } : {}),
    ...(opts.requireStoreAtStart !== undefined ? { requireStoreAtStart: opts.requireStoreAtStart } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.maxStalenessMs !== undefined ? { maxStalenessMs: opts.maxStalenessMs } : {}),
    ...(opts.onStale ? { onStale: opts.onStale } : {}),
  }).catch(async (err: unknown) => {
    await conn.close();
    throw err;
  });
  return {
    kind: 'redis',
    store,
    nonces: createRedisNonceStore({ conn, keys }),
    lease: (job, l) => createRedisLease({ conn, key: keys(`lease:${job}`), nodeId: opts.nodeId, ttlMs: l.ttlMs, logger: l.logger }),
    requestSource: (onError) => createRedisRequestSource(conn, { onError }),
    devices: () => createRedisDeviceRegistry({ conn, keys }),
    fleet: createRedisFleetRoster({ conn, nodeId: opts.nodeId, ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}) }),
    async close() {
      await store.close();
      await conn.close();
    },
  };
}
