// Two "nodes" (two store instances) against a real redis-server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { makeGrant, type Grant } from '../../gateway/core/grant.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { systemClock, type StoreChange } from '../../gateway/ports.ts';
import { openStore, type StoreOptions } from '../../gateway/wiring/store.ts';
import { keyspace, type KeySpace } from '../../gateway/kit/redis/keys.ts';
import type { RedisStore } from '../../gateway/adapters/store/index.ts';
import { redisConnection } from '../../gateway/kit/redis/url.ts';
import { captureLogger, startRedis, type CapturedLog } from '../helpers/redis.ts';

const grant = (ip: string, ttlMs: number, nodeId: string, door = 'openSSH'): Grant =>
  makeGrant({ ip, door, ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs, nodeId, now: Date.now() });

const ipOf = (i: number): string => `10.1.${i >> 8}.${i & 255}`;

type Ctx = { after(fn: () => Promise<void> | void): void };

type Node = RedisStore & { log: CapturedLog; key: KeySpace };

async function node(t: Ctx, url: string, nodeId: string, extra: Partial<StoreOptions> = {}): Promise<Node> {
  const log = captureLogger();
  const backend = await openStore(url, { nodeId, clock: systemClock, logger: log.logger, fullReconcileMs: 1000, reconnectMaxMs: 200, ...extra });
  t.after(() => backend.close());
  return Object.assign(backend.store as RedisStore, { log, key: keyspace(extra.namespace) });
}

const openOnly = (url: string, extra: Partial<StoreOptions> = {}) => openStore(url, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, ...extra });

function raw(t: Ctx, url: string): Redis {
  const r = new Redis({ ...redisConnection(url), lazyConnect: false, maxRetriesPerRequest: 1 });
  // This probe client sees Redis stop and start like the stores do; its errors are not the test's.
  r.on('error', () => undefined);
  t.after(() => void r.disconnect());
  return r;
}

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

void test('a put on node A reaches node B (watch and list) within 20 ms', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const seen = new Map<string, number>();
  b.watch((c) => {
    if (c?.kind === 'put') seen.set(c.grant.id, performance.now());
  });
  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) {
    const g = grant(ipOf(i), 60_000, 'gw-a');
    const start = performance.now();
    await a.put(g);
    await until(`grant ${i} on B`, () => seen.has(g.id), 1000);
    latencies.push((seen.get(g.id) ?? 0) - start);
  }
  const p50 = pct(latencies, 50), p99 = pct(latencies, 99);
  t.diagnostic(`A.put -> B.watch over 200 puts: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms`);
  assert.ok(p50 < 20, `p50 ${p50} ms`);
  // The tail is the machine's scheduler (tests share the CPU), not the store: bounded loosely.
  assert.ok(p99 < 250, `p99 ${p99} ms`);
  const onB = await b.list();
  assert.equal(onB.length, 200);
  // B sees the expiry in its own clock, within the TTL.
  for (const g of onB) assert.ok(g.expiresAt !== null && g.expiresAt <= Date.now() + 60_000);
});

void test('a remove on A closes on B', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const g = await a.put(grant('198.51.100.20', 60_000, 'gw-a'));
  await until('put on B', async () => (await b.list()).length === 1, 1000);
  const changes: (StoreChange | undefined)[] = [];
  b.watch((c) => changes.push(c));
  assert.equal((await a.remove(g.id))?.id, g.id);
  await until('remove on B', () => changes.some((c) => c?.kind === 'remove' && c.id === g.id), 200);
  assert.deepEqual(await b.list(), []);
  const r = raw(t, redis.url);
  assert.equal(await r.exists(b.key(`grant:${g.id}`)), 0);
});

void test('Redis expires a grant by PX with no knockgw process running, and a node closes it on time', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const r = raw(t, redis.url);
  const g = await a.put(grant('198.51.100.30', 400, 'gw-a'));
  const k = a.key(`grant:${g.id}`);
  const pttl = await r.pttl(k);
  assert.ok(pttl > 300 && pttl <= 400, `PTTL ${pttl}`);
  const removedOnB = new Promise<number>((resolve) => b.watch((c) => c?.kind === 'remove' && resolve(Date.now())));
  await a.close();
  const closedAt = await removedOnB;
  assert.ok(g.expiresAt !== null && closedAt >= g.expiresAt - 5 && closedAt - g.expiresAt < 60, `B closed ${closedAt - (g.expiresAt ?? 0)} ms after expiry`);
  await b.close();
  await until('key expired in Redis', async () => (await r.exists(k)) === 0, 200);
  // An unlimited grant has no TTL at all.
  const c = await node(t, redis.url, 'gw-c');
  const forever = await c.put(grant('198.51.100.31', 0, 'gw-c'));
  assert.equal(await r.pttl(c.key(`grant:${forever.id}`)), -1);
  assert.equal((await c.put(grant('198.51.100.31', 1000, 'gw-c'))).expiresAt, null);
});

void test('two nodes granting the same id concurrently converge on one grant (longest TTL, first createdAt)', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const first = grant('198.51.100.40', 5_000, 'gw-a');
  await a.put(first);
  const results = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => a.put(grant('198.51.100.40', 10_000 + i, 'gw-a'))),
    ...Array.from({ length: 20 }, (_, i) => b.put(grant('198.51.100.40', 30_000 - i, 'gw-b'))),
  ]);
  assert.ok(results.every((g) => g.createdAt === first.createdAt));
  const [onA] = await a.list();
  const [onB] = await b.list();
  assert.ok(onA && onB);
  assert.equal(onA.createdAt, first.createdAt);
  assert.ok(Math.abs((onA.expiresAt ?? 0) - (Date.now() + 30_000)) < 200);
  assert.ok(Math.abs((onB.expiresAt ?? 0) - (onA.expiresAt ?? 0)) < 250);
  assert.ok((await raw(t, redis.url).pttl(a.key(`grant:${first.id}`))) > 29_000);
});

void test('Redis stopped during puts and restarted: no grant lost, both nodes converge within 1 s', async (t) => {
  const redis = await startRedis(t, { persist: true });
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const ids = new Set<string>();
  const putOne = async (i: number): Promise<void> => {
    const s = i % 2 === 0 ? a : b;
    ids.add((await s.put(grant(ipOf(i), 60_000, s === a ? 'gw-a' : 'gw-b'))).id);
  };
  for (let i = 0; i < 60; i++) await putOne(i);
  await redis.stop('SIGKILL');
  for (let i = 60; i < 120; i++) await putOne(i);
  // While Redis is away each node serves what it knows.
  assert.ok((await a.list()).length >= 60);
  await until('A notices', () => !a.connected(), 1000);
  await a.remove(grant(ipOf(0), 1, 'gw-a').id);
  ids.delete(grant(ipOf(0), 1, 'gw-a').id);
  await redis.start();
  const back = Date.now();
  const same = async (s: Node): Promise<boolean> => {
    const got = (await s.list()).map((g) => g.id).sort();
    return got.length === ids.size && got.every((id) => ids.has(id));
  };
  const ms = await until('convergence after restart', async () => (await same(a)) && (await same(b)), 1000);
  t.diagnostic(`converged ${ms.toFixed(0)} ms after redis-server was back`);
  await until('both log store.reconnected', () => a.log.events('store.reconnected').length + b.log.events('store.reconnected').length === 2, 1000);
  for (const s of [a, b]) t.diagnostic(`${s === a ? 'A' : 'B'} reconnected ${Number(s.log.events('store.reconnected')[0]?.time) - back} ms after restart`);
  const reconnected = a.log.events('store.reconnected')[0];
  assert.ok(reconnected, 'store.reconnected logged');
  assert.equal(reconnected.queued, 31);
  assert.equal(reconnected.flushed, 31);
  assert.equal(a.log.events('store.disconnected').length, 1);
  assert.equal(await raw(t, redis.url).zcard(a.key('grants')), 119);
});

void test('a Redis that restarts empty is re-seeded: each node puts back its own live grants', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  for (let i = 0; i < 10; i++) await (i % 2 ? b : a).put(grant(ipOf(i), 60_000, i % 2 ? 'gw-b' : 'gw-a'));
  await until('B knows all', async () => (await b.list()).length === 10, 1000);
  await redis.restart();
  await until('re-seeded', async () => (await raw(t, redis.url).zcard(a.key('grants'))) === 10, 2000);
  assert.equal(a.log.events('store.reseeded')[0]?.grants, 5);
  assert.equal(b.log.events('store.reseeded')[0]?.grants, 5);
});

void test('a restarted node catches up from the full set', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b1 = await node(t, redis.url, 'gw-b');
  for (let i = 0; i < 50; i++) await a.put(grant(ipOf(i), 60_000, 'gw-a'));
  await b1.close();
  for (let i = 50; i < 80; i++) await a.put(grant(ipOf(i), 60_000, 'gw-a'));
  for (let i = 0; i < 10; i++) await a.remove(grant(ipOf(i), 1, 'gw-a').id);
  const b2 = await node(t, redis.url, 'gw-b');
  const got = (await b2.list()).map((g) => g.ip).sort();
  assert.deepEqual(got, Array.from({ length: 70 }, (_, i) => ipOf(i + 10)).sort());
});

void test('a node that falls behind more than the stream keeps reads every grant at once, not a repair period later', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  // A short stream and no periodic read within the test: only the gap check can catch B up.
  const a = await node(t, redis.url, 'gw-a', { streamMaxLen: 100, fullReconcileMs: 600_000 });
  const b = await node(t, redis.url, 'gw-b', { streamMaxLen: 100, fullReconcileMs: 600_000 });
  const seen = new Set<string>();
  b.watch((c) => c?.kind === 'put' && seen.add(c.grant.id));
  await Promise.all(Array.from({ length: 2000 }, (_, i) => a.put(grant(ipOf(i), 60_000, 'gw-a'))));
  assert.ok((await raw(t, redis.url).xlen(a.key('changes'))) < 2000, 'the stream was trimmed');
  await until('B announced all 2000', () => seen.size === 2000, 3000);
  assert.ok(b.log.events('store.stream_gap').length >= 1);
});

void test('a wrong or missing password fails the start with KGW_STORE_AUTH', async (t) => {
  const redis = await startRedis(t, { password: 's3cret' });
  if (!redis) return;
  for (const url of [`redis://:wrong@127.0.0.1:${redis.port}`, `redis://127.0.0.1:${redis.port}`]) {
    const started = Date.now();
    await assert.rejects(openOnly(url), (err: unknown) => {
      assert.ok(isKnockgwError(err, 'KGW_STORE_AUTH'), String(err));
      assert.doesNotMatch(err.message, /wrong/);
      return true;
    });
    assert.ok(Date.now() - started < 1000, 'fails fast');
  }
  const ok = await node(t, redis.url, 'gw-a');
  assert.equal((await ok.put(grant('198.51.100.50', 1000, 'gw-a'))).ip, '198.51.100.50');
});

void test('garbage in the namespace is ignored with a warning, never a crash', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const r = raw(t, redis.url);
  const good = await a.put(grant('198.51.100.60', 60_000, 'gw-a'));
  await r.set(a.key('grant:x'), 'notjson');
  await r.hset(a.key('grant:y'), 'ip', '198.51.100.61');
  await r.set(a.key('grant:z'), JSON.stringify({ ...good, id: 'z', ip: '127.0.0.1' }));
  await r.zadd(a.key('grants'), '+inf', 'x', '+inf', 'y', '+inf', 'z');
  await r.xadd(a.key('changes'), '*', 'op', 'put', 'id', 'x', 'node', 'mallory', 'grant', '{');
  const b = await node(t, redis.url, 'gw-b');
  assert.deepEqual((await b.list()).map((g) => g.id), [good.id]);
  assert.deepEqual((await a.list()).map((g) => g.id), [good.id]);
  assert.ok(b.log.events('store.bad_grant').length >= 1);
  await until('bad stream entry noticed', () => a.log.events('store.bad_change').length === 1, 500);
  // Our own write over a foreign value wins.
  await r.hset(a.key(`grant:openSSH@198.51.100.62`), 'x', '1');
  assert.equal((await a.put(grant('198.51.100.62', 60_000, 'gw-a'))).ip, '198.51.100.62');
  assert.equal((await b.list()).length, 2);
});

void test('unreachable at start: degraded with local grants (or KGW_STORE_UNAVAILABLE when required), flushed when Redis comes', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  await redis.stop();
  await assert.rejects(
    openOnly(redis.url, { requireStoreAtStart: true, connectTimeoutMs: 300 }),
    (err: unknown) => isKnockgwError(err, 'KGW_STORE_UNAVAILABLE'),
  );
  const a = await node(t, redis.url, 'gw-a', { connectTimeoutMs: 300 });
  assert.equal(a.log.events('store.degraded').length, 1);
  const g = await a.put(grant('198.51.100.70', 60_000, 'gw-a'));
  assert.deepEqual((await a.list()).map((x) => x.id), [g.id]);
  await redis.start();
  await until('reconnected', () => a.log.events('store.reconnected').length === 1, 2000);
  assert.equal(a.log.events('store.reconnected')[0]?.flushed, 1);
  assert.equal(await raw(t, redis.url).exists(a.key(`grant:${g.id}`)), 1);
});

void test('a unix socket path works as the store URL', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.socketPath, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  await a.put(grant('198.51.100.80', 60_000, 'gw-a'));
  assert.equal((await b.list()).length, 1);
});
