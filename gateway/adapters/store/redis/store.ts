// The HA grant store: every node writes grants to one Redis and converges on the same set.
//
// Layout (see kit/redis/keys.ts for the namespace):
//   grant:<id>  the grant as JSON, PX = its remaining TTL (no TTL = until closed)
//   grants      sorted set of ids by expiry (Redis time; +inf = until closed)
//   changes     stream of changes (XADD MAXLEN ~ 10000): a hint, never the truth
//   gen         the generation: one more per change (kit/redis/lua.ts), so a full read that finds
//               the one it last read whole costs one round trip, not two commands per grant
// Merges and lists are Lua scripts (kit/redis/lua.ts, run by remote.ts), lifetimes follow
// Redis's clock (codec.ts), changes of other nodes arrive through the stream (feed.ts; a reader
// that fell behind what the stream keeps reads every grant at once), and while Redis is away
// put/remove work on the local cache and wait in the outbox (outbox.ts); a Redis that came back
// empty gets each node's own grants again (epoch.ts).
//
// Start-up: a refused password fails at once (KGW_STORE_AUTH). An unreachable Redis starts the
// store degraded (empty cache, loud warning, retrying) unless requireStoreAtStart is set, then
// KGW_STORE_UNAVAILABLE. Not for Redis Cluster (single endpoint, Sentinel, unix socket, TLS).
import { z } from 'zod';
import { isLive, mergeGrant, type Grant } from '../../../core/grant.ts';
import { describeError, kgwError } from '../../../core/errors.ts';
import { createLogBudget } from '../../../core/log-budget.ts';
import { coalesced } from '../../../core/coalesce.ts';
import type { Clock, GrantStore, Logger } from '../../../ports.ts';
import type { RedisConnection } from '../../../kit/redis/connection.ts';
import { keyspace } from '../../../kit/redis/keys.ts';
import { startStreamReader } from '../../../kit/redis/stream-reader.ts';
import { GrantCache } from '../grant-cache.ts';
import { changeFeed } from './feed.ts';
import { epochCheck } from './epoch.ts';
import { generation } from './generation.ts';
import { createOutbox, localWrites, type QueuedOp } from './outbox.ts';
import { dropLearned, startHeartbeat } from './heartbeat.ts';
import { remoteGrants } from './remote.ts';

export interface RedisStoreOptions {
  /** The command connection (fail-fast); shared with the lease and the nonce store, owned by the caller. */
  readonly conn: RedisConnection;
  readonly nodeId: string;
  readonly namespace?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Period of the full re-read that repairs missed hints, skipped when list() read it meanwhile (default 30 s). */
  readonly fullReconcileMs?: number;
  /**
   * A full read reads every grant even when the generation is the one last read whole, once the
   * last such read is this old (default 10 × fullReconcileMs): catches a hand edit with redis-cli.
   */
  readonly fullReadMaxAgeMs?: number;
  /** Fail with KGW_STORE_UNAVAILABLE when Redis is not reachable at start (default: start degraded). */
  readonly requireStoreAtStart?: boolean;
  /** How long start-up waits for Redis (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Approximate length kept in the change stream (default 10000). */
  readonly streamMaxLen?: number;
  /** Silence after which learned grants close (default 60 s); onStale gets them (metrics). */
  readonly maxStalenessMs?: number;
  readonly onStale?: (grants: readonly Grant[]) => void;
}

export interface RedisStore extends GrantStore {
  readonly kind: 'redis';
  /** True while the command connection is up. */
  connected(): boolean;
}

/** How long a full read waits for the change feed to bring what Redis's generation says it has. */
const FEED_WAIT_MS = 1000;
const READ_COUNT = 500; // stream entries per XREAD
const XRangeReply = z.array(z.tuple([z.string(), z.array(z.string())])).catch([]);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const { conn, clock, nodeId, logger } = opts;
  const key = keyspace(opts.namespace);
  const streamKey = key('changes');
  const maxLen = opts.streamMaxLen ?? 10_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const target = conn.target;
  // One line per kind and minute: these are about Redis or its data, and repeat until fixed.
  const budget = createLogBudget(logger, { perWindow: 1, windowMs: 60_000, now: () => clock.now() });
  const cache = new GrantCache({ clock, logger });
  const outbox = createOutbox();
  const up = (): boolean => conn.status() === 'ready';
  let closed = false;
  let downSince: number | undefined;

  const remote = remoteGrants({ conn, key, nodeId, clock, maxLen: String(maxLen), budget });
  const gen = generation(opts.fullReadMaxAgeMs ?? 10 * (opts.fullReconcileMs ?? 30_000));

  const sendQueued = async (op: QueuedOp): Promise<void> => {
    if (op.op === 'remove') return void (await remote.remove(op.id));
    const r = await remote.put(op.grant);
    if (outbox.get(op.grant.id) !== op) return;
    // Closed elsewhere after this node proved it (it was queued here meanwhile): the close wins.
    if ('closed' in r) void cache.delete(op.grant.id);
    else if (isLive(r.grant, clock.now()) && gen.claim(r.grant.id, r.gen)) cache.set(r.grant);
  };
  const flush = (): Promise<number> =>
    outbox.flush(sendQueued, up, (op, err) =>
      budget.warn('store.flush_failed', { id: op.op === 'put' ? op.grant.id : op.id, err: describeError(err), queued: outbox.size }, 'cannot replay a queued change yet'),
    );

  /** Set by every full read; the backstop below reads only in a period that had none. */
  let readInPeriod = false;
  /** Per full read in flight, the grants the cache changed meanwhile. */
  const reading = new Set<Set<string>>();
  cache.watch((change) => {
    if (change) for (const ids of reading) ids.add(change.kind === 'put' ? change.grant.id : change.id);
  });

  const checkEpoch = epochCheck({ conn, key: key('epoch'), nodeId, cache, outbox, logger });

  /**
   * Flush, then read the authoritative set into the cache: silently for list() callers (they read
   * it), announcing each difference otherwise (the backstop, a reconnect), so a watcher never has
   * to read the whole set again: in a fleet, one more read per node is O(nodes × grants). When
   * Redis's generation is the one the cache holds (or the change feed brings it within a moment),
   * the cache is that set and no grant is read; `force` reads all the same (a stream gap, a
   * reconnect), and so does a read after fullReadMaxAgeMs.
   */
  const refresh = async (announce = false, force = false): Promise<Grant[]> => {
    readInPeriod = true;
    await outbox.idle();
    if (outbox.size > 0) await flush();
    const startedAt = clock.now();
    const since = outbox.size === 0 ? gen.since(startedAt, force) : undefined;
    if (since !== undefined && (await gen.reach(since, await remote.generation(), FEED_WAIT_MS))) return cache.live();
    const touched = new Set<string>();
    reading.add(touched);
    const mark = gen.mark();
    let read: Awaited<ReturnType<typeof remote.list>>;
    try {
      read = await remote.list();
      // A Redis flushed without a restart: each node puts its own grants back (queued: kept below).
      await checkEpoch();
    } finally {
      reading.delete(touched);
    }
    gen.read(read.gen, startedAt, mark);
    const merged = new Map(read.grants.map((g) => [g.id, g]));
    // A change that reached the cache during the read (the stream, a local write, an expiry) is
    // newer than what a chunk read before it said: a read takes many round trips.
    for (const id of touched) {
      const now = cache.get(id);
      if (now) merged.set(id, now);
      else merged.delete(id);
    }
    // Changes still queued (Redis refused them) stay visible locally.
    for (const op of outbox.pending()) {
      if (op.op === 'put') merged.set(op.grant.id, op.grant);
      else merged.delete(op.id);
    }
    if (announce) cache.sync(merged.values());
    else cache.replaceAll(merged.values());
    if (outbox.size > 0) void flush();
    return [...merged.values()];
  };

  const local = localWrites(cache, outbox, clock);
  const readerConn = conn.duplicate(`knockgw-watch-${nodeId}`);
  // One full read at a time for gaps (a reader far behind reports one per batch), and one more
  // after it when a gap came meanwhile: the read in flight may have passed what was lost since.
  const gapRead = coalesced(() =>
    refresh(true, true).then(
      () => undefined,
      (err: unknown) => budget.warn('store.resync_failed', { target, err: describeError(err) }, `full read from Redis at ${target} after a stream gap failed`),
    ),
  );
  const reader = startStreamReader({
    conn: readerConn,
    stream: streamKey,
    onEntry: changeFeed({ nodeId, stream: streamKey, cache, outbox, clock, offsetMs: () => remote.offsetMs(), budget, applied: (g) => gen.applied(g), claim: (id, g) => gen.claim(id, g) }),
    onError: (err) => budget.warn('store.watch_failed', { err: describeError(err) }, 'reading the change stream failed; retrying'),
    // A batch as long as the stream keeps may have started past what was trimmed.
    lagAt: Math.min(READ_COUNT, maxLen),
    count: READ_COUNT,
    onGap: () => {
      budget.warn('store.stream_gap', { stream: streamKey, maxLen }, `fell behind ${streamKey} by more than it keeps: reading every grant now`);
      void gapRead.run();
    },
  });

  const onReady = async (): Promise<void> => {
    const queued = outbox.size;
    try {
      await checkEpoch();
      const flushed = await flush();
      // The cursor starts at the stream's end *before* the full read, so nothing falls in between.
      const last = XRangeReply.parse(await conn.client.xrevrange(streamKey, '+', '-', 'COUNT', 1))[0]?.[0];
      reader.seek(last ?? '0-0');
      await refresh(true, true);
      if (downSince !== undefined) {
        logger.info({ event: 'store.reconnected', target, queued, flushed, downMs: clock.now() - downSince, grants: cache.size }, `Redis at ${target} is back: replayed ${flushed} of ${queued} queued changes`);
      }
      downSince = undefined;
    } catch (err) {
      budget.warn('store.resync_failed', { target, err: describeError(err) }, `cannot resynchronise with Redis at ${target}`);
    }
  };

  conn.client.on('error', (err: Error) => budget.warn('store.error', { target, err: err.message }, `Redis at ${target}: ${err.message}`));
  const first = await conn.connect(connectTimeoutMs + 100);
  if (first !== 'ready' && (first !== 'timeout' || opts.requireStoreAtStart)) {
    await reader.close();
    await readerConn.close();
    throw first === 'timeout' ? kgwError('KGW_STORE_UNAVAILABLE', `Redis at ${target} is not reachable; start it or drop requireStoreAtStart to start degraded`, { target }) : first;
  }
  if (first === 'timeout') {
    downSince = clock.now();
    logger.error({ event: 'store.degraded', target }, `Redis at ${target} is not reachable: starting DEGRADED with no shared grants; local grants are queued until it answers`);
  } else {
    await onReady();
    // Watch from the first put on: a peer's change must not wait for the reader's handshake.
    await readerConn.connect(connectTimeoutMs);
  }
  const heartbeat = startHeartbeat({
    conns: [conn, readerConn], clock, logger, boundMs: opts.maxStalenessMs ?? 60_000,
    onCutOff: (since) => opts.onStale?.(dropLearned({ cache, outbox, nodeId, logger, target, since })),
    // Heard again on a socket that never dropped: read the set back (each difference reopens).
    onBack: () => void (up() ? onReady() : undefined),
  });
  const offReady = conn.on('ready', () => void onReady());
  const offDown = conn.on('down', () => {
    downSince = clock.now();
    logger.warn({ event: 'store.disconnected', target, queued: outbox.size, grants: cache.size }, `lost Redis at ${target}: serving ${cache.size} cached grants, queueing changes`);
  });
  if (first === 'timeout') void readerConn.connect(0);

  // The backstop full read: a period in which nobody read the whole set (in the daemon the
  // reconciler's repair lists it every period) ends with one.
  const periodic = setInterval(() => {
    const quiet = !readInPeriod;
    readInPeriod = false;
    if (!up() || !quiet) return;
    refresh(true).catch((err: unknown) => budget.warn('store.resync_failed', { target, err: describeError(err) }, `periodic full read from Redis at ${target} failed`));
  }, opts.fullReconcileMs ?? 30_000);
  periodic.unref();

  /** Writes through when Redis takes it, else locally and queued (in order behind anything queued). */
  const write = async <T>(remote: () => Promise<T>, fallback: () => T): Promise<T> => {
    if (closed) throw kgwError('KGW_STORE_UNAVAILABLE', 'the store is closed');
    if (!up() || outbox.size > 0) {
      const r = fallback();
      if (up()) void flush();
      return r;
    }
    try {
      return await remote();
    } catch (err) {
      budget.warn('store.write_failed', { target, err: describeError(err) }, `cannot write to Redis at ${target}; queueing locally`);
      return fallback();
    }
  };

  return {
    kind: 'redis',
    connected: up,
    // Cache (so firewall) first, then Redis; a silent link fails it by the heartbeat: queued.
    put: (grant) =>
      write(async () => {
        const merged = mergeGrant(cache.get(grant.id), grant);
        if (isLive(merged, clock.now())) cache.set(merged);
        const r = await remote.put(grant);
        if ('closed' in r) return cache.delete(grant.id) ?? merged;
        if (isLive(r.grant, clock.now()) && gen.claim(r.grant.id, r.gen)) cache.set(r.grant);
        return r.grant;
      }, () => local.put(grant)),
    remove: (id) =>
      write(async () => {
        const r = await remote.remove(id);
        return (r && !gen.claim(id, r.gen) ? undefined : cache.delete(id)) ?? r?.old;
      }, () => local.remove(id)),
    async list() {
      if (!up()) return cache.live();
      try {
        return await refresh();
      } catch (err) {
        budget.warn('store.read_failed', { target, err: describeError(err) }, `cannot read from Redis at ${target}; serving cached grants`);
        return cache.live();
      }
    },
    watch: (onChange) => cache.watch(onChange),
    health: () => heartbeat.health(),
    async close() {
      if (closed) return;
      closed = true;
      heartbeat.stop();
      clearInterval(periodic);
      offReady();
      offDown();
      if (up() && outbox.size > 0) await Promise.race([flush(), sleep(1000)]);
      if (outbox.size > 0) logger.warn({ event: 'store.unflushed', target, queued: outbox.size }, `closing with ${outbox.size} changes not written to Redis`);
      await reader.close();
      await readerConn.close({ drop: true });
      budget.flush();
      cache.close();
    },
  };
}
