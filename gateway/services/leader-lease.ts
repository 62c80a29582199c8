// One node at a time does the cloud changes: a lease in Redis (`SET key node NX PX ttl`), renewed
// every ttl/3 by a compare-and-PEXPIRE, released by a compare-and-DEL. Cloud operations are
// idempotent, so the short overlap a lease can have is harmless; what must never happen is a
// node that *keeps* acting while partitioned. So leadership is also bounded locally: it ends at
// a deadline on this process's monotonic clock (send time of the last successful renewal + TTL
// - drift, as in Redlock), whether or not Redis can be reached to say so.
// With the memory store there is one node: the lease is trivially always held.
import type { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { describeError } from '../core/errors.ts';
import type { Clock, Logger } from '../ports.ts';
import type { Store } from '../adapters/store.ts';

export type LeaseEvent = 'gained' | 'lost';

export interface LeaderLease {
  isLeader(): boolean;
  /** gained: this node may act; lost (with a reason): it must stop now. Returns an unsubscribe. */
  on(event: LeaseEvent, listener: (reason: string) => void): () => void;
  /** Stops renewing; releases the lease (default) so another node takes over at once. */
  stop(opts?: { release?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export interface LeaderLeaseOptions {
  /** A store: Redis stores share its connection (the key is namespaced); memory = always leader. */
  readonly store?: Store;
  /** Or a Redis connection, with `key` used as is. */
  readonly redis?: Redis;
  readonly key: string;
  readonly nodeId: string;
  readonly ttlMs: number;
  readonly logger: Logger;
  /** Must be monotonic (default performance.now): a wall-clock jump must not extend leadership. */
  readonly clock?: Clock;
}

// Acquire or renew: take a free lease, or extend our own; never touch another node's.
const ACQUIRE_LUA = `
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
const sha = (lua: string): string => createHash('sha1').update(lua).digest('hex');
const ACQUIRE_SHA = sha(ACQUIRE_LUA);
const RELEASE_SHA = sha(RELEASE_LUA);

const monotonic: Clock = { now: () => performance.now() };

function listeners(): {
  on(event: LeaseEvent, fn: (reason: string) => void): () => void;
  emit(event: LeaseEvent, reason: string, logger: Logger): void;
} {
  const subs = { gained: new Set<(reason: string) => void>(), lost: new Set<(reason: string) => void>() };
  return {
    on(event, fn) {
      const set = subs[event];
      const wrapped = (reason: string): void => fn(reason);
      set.add(wrapped);
      return () => void set.delete(wrapped);
    },
    emit(event, reason, logger) {
      for (const fn of subs[event]) {
        try {
          fn(reason);
        } catch (err) {
          logger.error({ event: 'lease.listener_failed', err: describeError(err) }, 'a lease listener threw');
        }
      }
    },
  };
}

function alwaysLeader(opts: LeaderLeaseOptions): LeaderLease {
  const subs = listeners();
  let leader = true;
  return {
    isLeader: () => leader,
    on(event, fn) {
      const off = subs.on(event, fn);
      // A listener added after the start still learns it leads.
      if (event === 'gained' && leader) queueMicrotask(() => fn('single node'));
      return off;
    },
    stop() {
      if (leader) {
        leader = false;
        subs.emit('lost', 'stopped', opts.logger);
      }
      return Promise.resolve();
    },
    close() {
      return this.stop();
    },
  };
}

export function createLeaderLease(opts: LeaderLeaseOptions): LeaderLease {
  if (opts.store?.kind === 'memory') return alwaysLeader(opts);
  const redis = opts.store?.kind === 'redis' ? opts.store.client : opts.redis;
  if (!redis) throw new TypeError('createLeaderLease needs a store or a redis connection');
  const key = opts.store?.kind === 'redis' ? opts.store.key(`lease:${opts.key}`) : opts.key;
  const { nodeId, ttlMs, logger } = opts;
  const clock = opts.clock ?? monotonic;
  const renewMs = Math.max(1, Math.floor(ttlMs / 3));
  // Redlock's allowance for clock drift between this process and Redis.
  const driftMs = Math.ceil(ttlMs * 0.01) + 2;
  const subs = listeners();

  let leader = false;
  let deadline = 0;
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  let lossTimer: NodeJS.Timeout | undefined;

  const lose = (reason: string): void => {
    clearTimeout(lossTimer);
    if (!leader) return;
    leader = false;
    logger.warn({ event: 'lease.lost', key, nodeId, reason }, `no longer the leader (${reason})`);
    subs.emit('lost', reason, logger);
  };

  const run = async <T>(lua: string, digest: string, args: readonly (string | number)[]): Promise<T> => {
    try {
      return (await redis.evalsha(digest, 1, key, ...args)) as T;
    } catch (err) {
      if (!describeError(err).startsWith('NOSCRIPT')) throw err;
      return (await redis.eval(lua, 1, key, ...args)) as T;
    }
  };

  const attempt = async (): Promise<void> => {
    const sentAt = clock.now();
    try {
      // A partitioned Redis may never answer: a renewal older than a period counts as failed.
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${renewMs} ms`)), renewMs).unref());
      const got = await Promise.race([run<number>(ACQUIRE_LUA, ACQUIRE_SHA, [nodeId, ttlMs]), timeout]);
      if (stopped) return;
      if (got !== 1) {
        lose('held by another node');
        return;
      }
      deadline = sentAt + ttlMs - driftMs;
      clearTimeout(lossTimer);
      lossTimer = setTimeout(() => lose('lease expired without renewal'), Math.max(0, deadline - clock.now()));
      lossTimer.unref();
      if (!leader) {
        leader = true;
        logger.info({ event: 'lease.gained', key, nodeId, ttlMs }, `became the leader for ${key}`);
        subs.emit('gained', 'acquired', logger);
      }
    } catch (err) {
      // Keep leading until the deadline: the lease may well still be ours in Redis.
      logger.warn({ event: 'lease.renew_failed', key, nodeId, leader, err: describeError(err) }, 'cannot reach Redis for the lease');
    }
  };

  const tick = (): void => {
    if (stopped || inFlight) return;
    inFlight = attempt().finally(() => (inFlight = undefined));
  };
  const timer = setInterval(tick, renewMs);
  timer.unref();
  tick();

  const stop = async ({ release = true }: { release?: boolean } = {}): Promise<void> => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    await inFlight;
    const wasLeader = leader;
    lose('stopped');
    if (release && wasLeader) {
      await run<number>(RELEASE_LUA, RELEASE_SHA, [nodeId]).catch((err: unknown) =>
        logger.warn({ event: 'lease.release_failed', key, err: describeError(err) }, 'cannot release the lease; it expires on its own'),
      );
    }
  };

  return {
    isLeader: () => leader && clock.now() < deadline,
    on(event, fn) {
      const off = subs.on(event, fn);
      if (event === 'gained' && leader) queueMicrotask(() => fn('acquired'));
      return off;
    },
    stop,
    close: () => stop(),
  };
}
