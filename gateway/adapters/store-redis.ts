// The HA grant store: every node writes grants to one Redis and converges on the same set.
//
// Layout, for namespace ns (the braces are a cluster hash tag: a namespace lives on one slot, so
// the Lua scripts may touch all of its keys):
//   knockgw:{ns}:grant:<id>  the grant as JSON, PX = its remaining TTL (no TTL = until closed)
//   knockgw:{ns}:grants      sorted set of ids by expiry (Redis time; +inf = until closed)
//   knockgw:{ns}:changes     stream of changes (XADD MAXLEN ~ 10000): a hint, never the truth
//
// Clocks. A grant's expiresAt is unix ms by the granting node's clock, kept in the JSON for
// humans and logs. Lifetimes are decided by Redis's clock alone: a node sends a *relative* TTL
// (PX = expiresAt - its now), merges compare remaining TTLs (PTTL), and readers turn a PTTL back
// into their own clock (expiresAt = local now + PTTL). PXAT was rejected: an absolute expiry from
// a node whose clock runs ahead of Redis's would keep the grant open for TTL + skew. So skew
// between nodes and Redis cannot stretch a grant beyond its TTL (only network latency, ms).
//
// Watch is level-triggered: stream entries (XREAD BLOCK on a dedicated connection, cursor kept
// per node in memory) wake the reconciler at once; a periodic full read repairs anything missed
// (trimmed stream, reconnect). If Redis is down, put/remove work on a local cache that list()
// serves, are queued, and are replayed in order on reconnect.
//
// Start-up: a refused password fails at once (KGW_STORE_AUTH). An unreachable Redis starts the
// store degraded (empty cache, loud warning, retrying) unless requireStoreAtStart is set, then
// KGW_STORE_UNAVAILABLE. Not for Redis Cluster (single endpoint, Sentinel, unix socket, TLS).
import { createHash, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { isLive, mergeGrant, type Grant } from '../core/grant.ts';
import { describeError, kgwError } from '../core/errors.ts';
import type { Clock, GrantStore, Logger } from '../ports.ts';
import { GrantCache, GrantSchema } from './store-memory.ts';
import { redactUrl, redisConnection } from './redis-url.ts';

export interface RedisStoreOptions {
  readonly url: string;
  readonly nodeId: string;
  readonly namespace?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Period of the full re-read that repairs missed hints (default 30 s). */
  readonly fullReconcileMs?: number;
  /** Fail with KGW_STORE_UNAVAILABLE when Redis is not reachable at start (default: start degraded). */
  readonly requireStoreAtStart?: boolean;
  /** How long start-up waits for Redis (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Cap of the jittered exponential reconnect backoff (default 400 ms). */
  readonly reconnectMaxMs?: number;
  /** Approximate length kept in the change stream (default 10000). */
  readonly streamMaxLen?: number;
  /** Extra ioredis options (TLS CA, sentinelPassword, …), applied over those from the URL. */
  readonly redisOptions?: RedisOptions;
}

export interface RedisStore extends GrantStore {
  readonly kind: 'redis';
  /** The command connection (fail-fast, no offline queue): for the leader lease and nonces. */
  readonly client: Redis;
  /** `knockgw:{ns}:<suffix>` */
  key(suffix: string): string;
  /** True while the command connection is up. */
  connected(): boolean;
}

// Keys: 1 grant, 2 index, 3 stream. Args: id, JSON head (every field but the two below, without
// its closing brace), createdAt, expiresAt ('null' = until closed), px ('' = until closed),
// stream maxlen, node id. Merge rule (= mergeGrant): first createdAt, the longer remaining TTL.
const PUT_LUA = `
local function kind(k) return redis.call('TYPE', k).ok end
if kind(KEYS[2]) ~= 'zset' and kind(KEYS[2]) ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[2] .. ' is not a sorted set') end
if kind(KEYS[3]) ~= 'stream' and kind(KEYS[3]) ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[3] .. ' is not a stream') end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created, expires, px = ARGV[3], ARGV[4], ARGV[5]
local mode = 'new'
if px == '' then mode = 'unlimited' end
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then
  redis.call('DEL', KEYS[1])
elseif cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and type(old.createdAt) == 'number' then
    created = string.format('%.0f', old.createdAt)
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl == -1 then
      mode = 'unlimited'
    elseif mode == 'new' and pttl > tonumber(px) and type(old.expiresAt) == 'number' then
      mode = 'kept'
      expires = string.format('%.0f', old.expiresAt)
    end
  end
end
if mode == 'unlimited' then expires = 'null' end
local value = ARGV[2] .. ',"createdAt":' .. created .. ',"expiresAt":' .. expires .. '}'
local pttl, score
if mode == 'unlimited' then
  redis.call('SET', KEYS[1], value)
  pttl, score = -1, '+inf'
elseif mode == 'kept' then
  redis.call('SET', KEYS[1], value, 'KEEPTTL')
  pttl = redis.call('PTTL', KEYS[1])
  score = now + pttl
else
  redis.call('SET', KEYS[1], value, 'PX', px)
  pttl = tonumber(px)
  score = now + pttl
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'op', 'put', 'id', ARGV[1], 'node', ARGV[7], 'grant', value, 'pttl', string.format('%d', pttl))
return {value, mode, pttl}
`;

// Keys: 1 grant, 2 index, 3 stream. Args: id, node id, stream maxlen. Returns the old JSON or ''.
const REMOVE_LUA = `
local cur = redis.pcall('GET', KEYS[1])
local n = redis.call('DEL', KEYS[1])
if redis.call('TYPE', KEYS[2]).ok == 'zset' then redis.call('ZREM', KEYS[2], ARGV[1]) end
if n == 0 then return false end
if redis.call('TYPE', KEYS[3]).ok ~= 'stream' and redis.call('TYPE', KEYS[3]).ok ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[3] .. ' is not a stream') end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'remove', 'id', ARGV[1], 'node', ARGV[2])
if type(cur) ~= 'string' then return '' end
return cur
`;

// Keys: 1 index. Args: grant key prefix. Returns {redis now ms, id, json ('' = not a string), pttl, …};
// prunes index entries whose key is gone (expired by PX).
const LIST_LUA = `
local k = redis.call('TYPE', KEYS[1]).ok
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
if k == 'none' then return out end
if k ~= 'zset' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[1] .. ' is not a sorted set') end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. out[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id
  local v = redis.pcall('GET', key)
  if not v then
    redis.call('ZREM', KEYS[1], id)
  else
    if type(v) ~= 'string' then v = '' end
    out[#out + 1] = id
    out[#out + 1] = v
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out
`;

interface Script { readonly lua: string; readonly sha: string }
const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });
const PUT = script(PUT_LUA);
const REMOVE = script(REMOVE_LUA);
const LIST = script(LIST_LUA);

const PutReply = z.tuple([z.string(), z.enum(['new', 'kept', 'unlimited']), z.number()]);
const ListReply = z.array(z.union([z.string(), z.number()]));
const XReadReply = z.array(z.tuple([z.string(), z.array(z.tuple([z.string(), z.array(z.string())]))])).nullable();

type QueuedOp = { readonly op: 'put'; readonly grant: Grant } | { readonly op: 'remove'; readonly id: string };

const AUTH_ERROR = /WRONGPASS|NOAUTH|invalid password|invalid username-password/i;

export function backoffDelay(attempt: number, capMs: number): number {
  const base = Math.min(capMs, 50 * 2 ** Math.min(attempt, 16));
  // Jitter in [50%, 100%]: nodes that lost Redis together must not return in lockstep.
  return Math.round(base * (0.5 + Math.random() / 2));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const { clock, nodeId } = opts;
  const logger = opts.logger;
  const ns = opts.namespace ?? 'knockgw';
  const key = (suffix: string): string => `knockgw:{${ns}}:${suffix}`;
  const grantPrefix = key('grant:');
  const indexKey = key('grants');
  const streamKey = key('changes');
  const maxLen = String(opts.streamMaxLen ?? 10_000);
  // Low: nodes must converge within a second of Redis returning, and a reconnect attempt to a
  // Redis that is still down costs next to nothing.
  const capMs = opts.reconnectMaxMs ?? 400;
  const target = redactUrl(opts.url);

  const connOpts: RedisOptions = {
    ...redisConnection(opts.url),
    lazyConnect: true,
    // Fail fast instead of buffering: while Redis is away the store queues itself, in order.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    retryStrategy: (times) => backoffDelay(times, capMs),
    sentinelRetryStrategy: (times) => backoffDelay(times, capMs),
    // After a Sentinel failover the old master turns replica: reconnect to find the new one.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    ...opts.redisOptions,
  };
  const client = new Redis(connOpts);
  const reader = new Redis({ ...connOpts, connectionName: `knockgw-watch-${nodeId}` });

  const cache = new GrantCache({ clock, logger });
  const queue = new Map<string, QueuedOp>();
  let closed = false;
  let up = false;
  let downSince: number | undefined;
  let cursor: string | undefined;
  let epoch: string | undefined;
  // Redis's clock minus ours, learnt on each full read: turns stream ids (Redis ms) into our time.
  let offsetMs = 0;
  let flushing: Promise<number> | undefined;
  // Counted across every flush (list() may replay the queue before the reconnect handler does).
  let flushedTotal = 0;

  const lastWarn = new Map<string, { at: number; suppressed: number }>();
  const warnLimited = (kind: string, fields: Record<string, unknown>, msg: string): void => {
    const now = clock.now();
    const w = lastWarn.get(kind);
    if (w && now - w.at < 60_000) {
      w.suppressed++;
      return;
    }
    lastWarn.set(kind, { at: now, suppressed: 0 });
    logger.warn({ event: kind, ...fields, suppressed: w?.suppressed ?? 0 }, msg);
  };

  const evalScript = async (s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> => {
    try {
      return await client.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!describeError(err).startsWith('NOSCRIPT')) throw err;
      return client.eval(s.lua, keys.length, ...keys, ...args);
    }
  };

  /**
   * A stored JSON value as a grant, or undefined after a warning. With a PTTL the expiry is
   * re-based on our clock; without one (a removed grant, for the log) it stays as written.
   */
  const decode = (id: string, json: string, pttl: number | undefined, localNow: number): Grant | undefined => {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      value = undefined;
    }
    const parsed = GrantSchema.safeParse(value);
    if (!parsed.success || parsed.data.id !== id) {
      const why = json === '' ? 'not a string' : parsed.success ? `id is ${parsed.data.id}` : (parsed.error.issues[0]?.message ?? 'invalid');
      warnLimited('store.bad_grant', { key: grantPrefix + id, why }, `ignoring the unreadable grant key ${grantPrefix + id} (${why})`);
      return undefined;
    }
    if (pttl === undefined) return parsed.data;
    return Object.freeze({ ...parsed.data, expiresAt: pttl < 0 ? null : localNow + pttl });
  };

  const remotePut = async (grant: Grant): Promise<Grant> => {
    const now = clock.now();
    if (grant.expiresAt !== null && grant.expiresAt <= now) return grant;
    const { createdAt, expiresAt, ...rest } = grant;
    const head = JSON.stringify(rest).slice(0, -1);
    const px = expiresAt === null ? '' : String(expiresAt - now);
    const reply = PutReply.parse(await evalScript(PUT, [grantPrefix + grant.id, indexKey, streamKey], [grant.id, head, String(createdAt), String(expiresAt), px, maxLen, nodeId]));
    const [json, mode, pttl] = reply;
    const stored = decode(grant.id, json, pttl, now);
    if (!stored) throw kgwError('KGW_STORE_DATA', `Redis returned an unreadable grant for ${grant.id}`, { id: grant.id });
    // The TTL we sent is exact in our own clock; only an older, longer grant is re-based.
    return mode === 'new' ? Object.freeze({ ...stored, expiresAt: grant.expiresAt }) : stored;
  };

  const remoteRemove = async (id: string): Promise<Grant | undefined> => {
    const reply = await evalScript(REMOVE, [grantPrefix + id, indexKey, streamKey], [id, nodeId, maxLen]);
    if (typeof reply !== 'string' || reply === '') return undefined;
    return decode(id, reply, undefined, clock.now());
  };

  const remoteList = async (): Promise<Grant[]> => {
    const before = clock.now();
    const reply = ListReply.parse(await evalScript(LIST, [indexKey], [grantPrefix]));
    const after = clock.now();
    const local = Math.round((before + after) / 2);
    offsetMs = Number(reply[0]) - local;
    const grants: Grant[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      // PTTL was read between before and after: counting from before never stretches a grant.
      const g = decode(String(reply[i]), String(reply[i + 1]), Number(reply[i + 2]), before);
      if (g && isLive(g, after)) grants.push(g);
    }
    return grants;
  };

  const enqueue = (op: QueuedOp): void => {
    const id = op.op === 'put' ? op.grant.id : op.id;
    // Re-inserting moves the id to the end: the queue replays in the order of the last changes.
    queue.delete(id);
    queue.set(id, op);
  };

  const flushOnce = async (): Promise<number> => {
    let flushed = 0;
    for (const [id, op] of [...queue]) {
      if (!up) break;
      try {
        if (op.op === 'put') {
          const stored = await remotePut(op.grant);
          if (queue.get(id) === op && isLive(stored, clock.now())) cache.set(stored);
        } else {
          await remoteRemove(op.id);
        }
      } catch (err) {
        warnLimited('store.flush_failed', { id, err: describeError(err), queued: queue.size }, `cannot replay the queued change of ${id} yet`);
        break;
      }
      if (queue.get(id) === op) queue.delete(id);
      flushed++;
      flushedTotal++;
    }
    return flushed;
  };

  const flush = (): Promise<number> => {
    flushing ??= flushOnce().finally(() => (flushing = undefined));
    return flushing;
  };

  /** Flush, then read the authoritative set into the cache (silently: list() callers read it). */
  const refresh = async (): Promise<Grant[]> => {
    while (flushing) await flushing;
    if (queue.size > 0) await flush();
    const grants = await remoteList();
    const merged = new Map(grants.map((g) => [g.id, g]));
    // Changes still queued (Redis refused them) stay visible locally.
    for (const op of queue.values()) {
      if (op.op === 'put') merged.set(op.grant.id, op.grant);
      else merged.delete(op.id);
    }
    cache.replaceAll(merged.values());
    return [...merged.values()];
  };

  const local = {
    put(grant: Grant): Grant {
      const merged = mergeGrant(cache.get(grant.id), grant);
      if (isLive(merged, clock.now())) {
        cache.set(merged);
        enqueue({ op: 'put', grant: merged });
      }
      return merged;
    },
    remove(id: string): Grant | undefined {
      enqueue({ op: 'remove', id });
      return cache.delete(id);
    },
  };

  const onStreamEntry = (id: string, fields: readonly string[]): void => {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] ?? '', fields[i + 1] ?? '');
    if (f.get('node') === nodeId) return;
    const gid = f.get('id');
    const op = f.get('op');
    if (gid && op === 'remove') {
      if (!queue.has(gid)) cache.delete(gid);
      return;
    }
    if (gid && op === 'put') {
      // The TTL left when the entry was written, minus the entry's age (its id is Redis ms).
      const writtenAt = Number(id.split('-')[0]) - offsetMs;
      const g = decode(gid, f.get('grant') ?? '', Number(f.get('pttl') ?? -1), Number.isFinite(writtenAt) ? Math.min(writtenAt, clock.now()) : clock.now());
      if (g && !queue.has(gid)) {
        if (isLive(g, clock.now())) cache.set(g);
        else cache.delete(gid);
        return;
      }
    }
    warnLimited('store.bad_change', { stream: streamKey, entry: id }, `ignoring an unreadable change ${id} in ${streamKey}`);
    cache.emit(undefined);
  };

  // Wakes the read loop when the watch connection is back (re-checking the cursor now and then).
  const readerReady = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        reader.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, 200);
      reader.once('ready', done);
    });

  const readLoop = async (): Promise<void> => {
    while (!closed) {
      if (reader.status !== 'ready' || cursor === undefined) {
        await readerReady();
        continue;
      }
      try {
        const raw: unknown = await reader.xread('COUNT', 500, 'BLOCK', 5000, 'STREAMS', streamKey, cursor);
        const reply = XReadReply.parse(raw);
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            cursor = id;
            onStreamEntry(id, fields);
          }
        }
      } catch (err) {
        if (closed) return;
        warnLimited('store.watch_failed', { err: describeError(err) }, 'reading the change stream failed; retrying');
        await sleep(100);
      }
    }
  };

  // A Redis that comes back empty (restart without persistence, a fresh replacement) lost
  // everyone's grants. An epoch key, created by whoever sees it first, tells: a node that finds a
  // different epoch than last time re-seeds its own live grants (each node re-seeds its own).
  const checkEpoch = async (): Promise<void> => {
    await client.set(key('epoch'), randomUUID(), 'NX');
    const current = await client.get(key('epoch'));
    const lost = epoch !== undefined && current !== epoch;
    epoch = current ?? undefined;
    if (!lost) return;
    let reseeded = 0;
    for (const g of cache.peek()) {
      if (g.nodeId !== nodeId || queue.has(g.id)) continue;
      enqueue({ op: 'put', grant: g });
      reseeded++;
    }
    logger.warn({ event: 'store.reseeded', target, grants: reseeded }, `Redis at ${target} came back empty: re-seeding ${reseeded} local grants`);
  };

  const onReady = async (): Promise<void> => {
    const queued = queue.size;
    const flushedBefore = flushedTotal;
    try {
      await checkEpoch();
      await flush();
      const flushed = flushedTotal - flushedBefore;
      // The cursor starts at the stream's end *before* the full read, so nothing falls in between.
      const last: unknown = await client.xrevrange(streamKey, '+', '-', 'COUNT', 1);
      const lastId = z.array(z.tuple([z.string(), z.array(z.string())])).catch([]).parse(last)[0]?.[0];
      cursor ??= lastId ?? '0-0';
      await refresh();
      if (downSince !== undefined) {
        logger.info({ event: 'store.reconnected', target, queued, flushed, downMs: clock.now() - downSince, grants: cache.size }, `Redis at ${target} is back: replayed ${flushed} of ${queued} queued changes`);
      }
      downSince = undefined;
      cache.emit(undefined);
    } catch (err) {
      warnLimited('store.resync_failed', { target, err: describeError(err) }, `cannot resynchronise with Redis at ${target}`);
    }
  };

  client.on('ready', () => {
    up = true;
    void onReady();
  });
  client.on('close', () => {
    if (!up) return;
    up = false;
    downSince = clock.now();
    logger.warn({ event: 'store.disconnected', target, queued: queue.size, grants: cache.size }, `lost Redis at ${target}: serving ${cache.size} cached grants, queueing changes`);
  });
  for (const conn of [client, reader]) {
    conn.on('error', (err: Error) => {
      if (AUTH_ERROR.test(err.message)) logger.error({ event: 'store.auth', target, err: err.message }, `Redis at ${target} refused the credentials`);
      else warnLimited(`store.error.${conn === client ? 'main' : 'watch'}`, { target, err: err.message }, `Redis at ${target}: ${err.message}`);
    });
  }

  // Start: wait for the first ready (or a refused password) before answering.
  const first = await new Promise<'ready' | 'timeout' | Error>((resolve) => {
    const timer = setTimeout(() => done('timeout'), (opts.connectTimeoutMs ?? 5000) + 100);
    const onReadyOnce = (): void => done('ready');
    const onErr = (err: Error): void => {
      if (AUTH_ERROR.test(err.message)) done(err);
    };
    const done = (r: 'ready' | 'timeout' | Error): void => {
      clearTimeout(timer);
      client.off('ready', onReadyOnce);
      client.off('error', onErr);
      resolve(r);
    };
    client.on('ready', onReadyOnce);
    client.on('error', onErr);
    client.connect().catch(() => undefined);
    reader.connect().catch(() => undefined);
  });
  if (first instanceof Error) {
    client.disconnect();
    reader.disconnect();
    throw kgwError('KGW_STORE_AUTH', `Redis at ${target} refused the credentials (${first.message}); check the password in the store URL`, { target }, first);
  }
  if (first === 'timeout') {
    if (opts.requireStoreAtStart) {
      client.disconnect();
      reader.disconnect();
      throw kgwError('KGW_STORE_UNAVAILABLE', `Redis at ${target} is not reachable; start it or drop requireStoreAtStart to start degraded`, { target });
    }
    downSince = clock.now();
    logger.error({ event: 'store.degraded', target }, `Redis at ${target} is not reachable: starting DEGRADED with no shared grants; local grants are queued until it answers`);
  } else {
    await onReady();
    // Watch from the first put on: a peer's change must not wait for the reader's handshake.
    if (reader.status !== 'ready') await Promise.race([readerReady(), sleep(opts.connectTimeoutMs ?? 5000)]);
  }
  const loop = readLoop();

  const periodic = setInterval(() => {
    if (!up) return;
    refresh()
      .then(() => cache.emit(undefined))
      .catch((err: unknown) => warnLimited('store.resync_failed', { target, err: describeError(err) }, `periodic full read from Redis at ${target} failed`));
  }, opts.fullReconcileMs ?? 30_000);
  periodic.unref();

  return {
    kind: 'redis',
    client,
    key,
    connected: () => up,
    async put(grant) {
      if (closed) throw kgwError('KGW_STORE_UNAVAILABLE', 'the store is closed');
      if (!up || queue.size > 0) {
        const merged = local.put(grant);
        if (up) void flush();
        return merged;
      }
      try {
        const stored = await remotePut(grant);
        if (isLive(stored, clock.now())) cache.set(stored);
        return stored;
      } catch (err) {
        warnLimited('store.write_failed', { target, err: describeError(err) }, `cannot write to Redis at ${target}; queueing locally`);
        return local.put(grant);
      }
    },
    async remove(id) {
      if (closed) throw kgwError('KGW_STORE_UNAVAILABLE', 'the store is closed');
      if (!up || queue.size > 0) {
        const old = local.remove(id);
        if (up) void flush();
        return old;
      }
      try {
        const old = await remoteRemove(id);
        return cache.delete(id) ?? old;
      } catch (err) {
        warnLimited('store.write_failed', { target, err: describeError(err) }, `cannot write to Redis at ${target}; queueing locally`);
        return local.remove(id);
      }
    },
    async list() {
      if (!up) return cache.live();
      try {
        return await refresh();
      } catch (err) {
        warnLimited('store.read_failed', { target, err: describeError(err) }, `cannot read from Redis at ${target}; serving cached grants`);
        return cache.live();
      }
    },
    watch(onChange) {
      return cache.watch(onChange);
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(periodic);
      if (up && queue.size > 0) await Promise.race([flush(), sleep(1000)]);
      if (queue.size > 0) logger.warn({ event: 'store.unflushed', target, queued: queue.size }, `closing with ${queue.size} changes not written to Redis`);
      reader.disconnect();
      await loop;
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
      else client.disconnect();
      cache.close();
    },
  };
}
