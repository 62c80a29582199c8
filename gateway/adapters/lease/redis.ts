// One node at a time does the cloud changes: a lease in Redis (`SET key node NX PX ttl`), renewed
// every ttl/3 by a compare-and-PEXPIRE, released by a compare-and-DEL. Cloud operations are
// idempotent, so the short overlap a lease can have is harmless; what must never happen is a
// node that *keeps* acting while partitioned. So leadership is also bounded locally: it ends at
// a deadline on this process's monotonic clock (send time of the last successful renewal + TTL
// - drift, as in Redlock), whether or not Redis can be reached to say so.
import { describeError } from '../../core/errors.ts';
import type { Clock, LeaderLease, Logger } from '../../ports.ts';
import type { RedisConnection } from '../../kit/redis/connection.ts';
import { LEASE_ACQUIRE, LEASE_RELEASE, runScript, type Script } from '../../kit/redis/lua.ts';
import { listeners } from './events.ts';

export interface RedisLeaseOptions {
  readonly conn: RedisConnection;
  /** The full key (namespaced by the caller). */
  readonly key: string;
  readonly nodeId: string;
  readonly ttlMs: number;
  readonly logger: Logger;
  /** Must be monotonic (default performance.now): a wall-clock jump must not extend leadership. */
  readonly clock?: Clock;
}

const monotonic: Clock = { now: () => performance.now() };

export function createRedisLease(opts: RedisLeaseOptions): LeaderLease {
  const { key, nodeId, ttlMs, logger } = opts;
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

  const run = (script: Script, args: readonly (string | number)[]): Promise<unknown> => runScript(opts.conn.client, script, [key], args);

  const attempt = async (): Promise<void> => {
    const sentAt = clock.now();
    try {
      // A partitioned Redis may never answer: a renewal older than a period counts as failed.
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${renewMs} ms`)), renewMs).unref());
      const got = await Promise.race([run(LEASE_ACQUIRE, [nodeId, ttlMs]), timeout]);
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
      await run(LEASE_RELEASE, [nodeId]).catch((err: unknown) =>
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
  };
}
