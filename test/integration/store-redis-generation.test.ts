// The generation (key `gen`): a full read that finds the generation it last read whole reads no
// grant at all, any change makes the next one read everything, and a flushed Redis is read (and
// re-seeded) like one that restarted empty. Against a real redis-server, counting what Redis ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { makeGrant, type Grant } from '../../gateway/core/grant.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore, type StoreOptions } from '../../gateway/wiring/store.ts';
import { keyspace, type KeySpace } from '../../gateway/kit/redis/keys.ts';
import type { RedisStore } from '../../gateway/adapters/store/index.ts';
import { redisConnection } from '../../gateway/kit/redis/url.ts';
import { captureLogger, startRedis, type CapturedLog } from '../helpers/redis.ts';

type Ctx = { after(fn: () => Promise<void> | void): void };
type Node = RedisStore & { log: CapturedLog; key: KeySpace };

const grant = (ip: string, nodeId: string): Grant =>
  makeGrant({ ip, door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId, now: Date.now() });
const ipOf = (i: number): string => `10.2.${i >> 8}.${i & 255}`;

async function node(t: Ctx, url: string, nodeId: string, extra: Partial<StoreOptions> = {}): Promise<Node> {
  const log = captureLogger();
  // No backstop read within a test: every read below is one the test asked for.
  const backend = await openStore(url, { nodeId, clock: systemClock, logger: log.logger, fullReconcileMs: 600_000, reconnectMaxMs: 200, ...extra });
  t.after(() => backend.close());
  return Object.assign(backend.store as RedisStore, { log, key: keyspace(extra.namespace) });
}

function raw(t: Ctx, url: string): Redis {
  const r = new Redis({ ...redisConnection(url), maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  t.after(() => void r.disconnect());
  return r;
}

/** How often Redis ran `cmd` (scripts' commands included) since the last reset. */
async function calls(r: Redis, cmd: string): Promise<number> {
  const info = await r.info('commandstats');
  return Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ids = (gs: readonly Grant[]): string[] => gs.map((g) => g.id).sort();

void test('an unchanged generation reads no grant; a change the stream never told makes the next read read all', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const r = raw(t, redis.url);
  // More than one GRANT_LIST chunk (250).
  await Promise.all(Array.from({ length: 600 }, (_, i) => a.put(grant(ipOf(i), 'gw-a'))));
  await until('B holds all 600', async () => (await b.list()).length === 600, 3000);
  const gen = await r.get(a.key('gen'));
  assert.ok(gen !== null && Number(gen) > 1e6, `generation ${gen}`);

  // A wrote since its last full read: it reads once more.
  assert.equal((await a.list()).length, 600);
  await r.config('RESETSTAT');
  for (let i = 0; i < 5; i++) assert.equal((await b.list()).length, 600);
  assert.equal((await a.list()).length, 600);
  assert.equal(await calls(r, 'zscan'), 0, 'no read walked the index');
  assert.equal(await calls(r, 'pttl'), 0);
  assert.equal(await calls(r, 'evalsha'), 6, 'one round trip per read');
  assert.equal(await calls(r, 'get'), 6, 'reading the generation');

  // A grant written behind the stream's back, with the generation bumped as a script would.
  const sneaky = { ...grant('198.51.100.90', 'gw-x'), id: 'sneaky' };
  await r.set(a.key('grant:sneaky'), JSON.stringify(sneaky), 'PX', 60_000);
  await r.zadd(a.key('grants'), Date.now() + 60_000, 'sneaky');
  await r.incr(a.key('gen'));
  assert.ok((await b.list()).some((g) => g.id === 'sneaky'), 'B read it');
  assert.ok((await calls(r, 'zscan')) >= 3, 'B walked every chunk');
  await r.config('RESETSTAT');
  assert.equal((await b.list()).length, 601);
  assert.equal(await calls(r, 'zscan'), 0, 'and not again');
});

void test('puts and removes on another node: each read after them holds exactly what Redis holds', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const live = new Map<string, Grant>();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 10; i++) {
      const g = await a.put(grant(ipOf(round * 10 + i), 'gw-a'));
      live.set(g.id, g);
    }
    for (const id of [...live.keys()].slice(0, 4)) {
      await a.remove(id);
      live.delete(id);
    }
    // B reads straight after A's writes, racing its own change feed.
    assert.deepEqual(ids(await b.list()), [...live.keys()].sort(), `round ${round}`);
  }
  // A removal of nothing is no change.
  const r = raw(t, redis.url);
  const gen = await r.get(a.key('gen'));
  assert.equal(await a.remove('openSSH@203.0.113.1'), undefined);
  assert.equal(await r.get(a.key('gen')), gen);
});

void test('a trickle of changes elsewhere reaches the cache by the stream: the reads after it read no grant', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const r = raw(t, redis.url);
  await Promise.all(Array.from({ length: 300 }, (_, i) => a.put(grant(ipOf(i), 'gw-a'))));
  await until('B holds all 300', async () => (await b.list()).length === 300, 3000);
  assert.equal((await a.list()).length, 300);
  const seen: string[] = [];
  b.watch((c) => c && seen.push(c.kind));
  await r.config('RESETSTAT');
  for (let i = 0; i < 10; i++) {
    const g = await a.put(grant(ipOf(1000 + i), 'gw-a'));
    await until(`B saw put ${i}`, () => seen.length === 2 * i + 1, 1000);
    assert.equal((await b.list()).length, 301);
    await a.remove(g.id);
    await until(`B saw remove ${i}`, () => seen.length === 2 * i + 2, 1000);
    assert.equal((await b.list()).length, 300);
  }
  // Straight after the write, racing the feed: the read waits for it rather than reading all.
  for (let i = 0; i < 10; i++) {
    const g = await a.put(grant(ipOf(2000 + i), 'gw-a'));
    assert.ok((await b.list()).some((x) => x.id === g.id), `B's read has put ${i}`);
    await a.remove(g.id);
    assert.ok(!(await b.list()).some((x) => x.id === g.id), `B's read has remove ${i}`);
  }
  // A's own entries move its generation on too.
  await until('A reads nothing', async () => (await a.list()).length === 300 && (await calls(r, 'zscan')) === 0, 1000);
  assert.equal(await calls(r, 'zscan'), 0, 'nobody walked the index');

  // An entry from a knockgw without generations: the next read reads everything.
  await r.xadd(a.key('changes'), '*', 'op', 'remove', 'id', 'openSSH@203.0.113.9', 'node', 'gw-old');
  await until('B read it all', async () => (await b.list()).length === 300 && (await calls(r, 'zscan')) > 0, 1000);
});

void test('nodes that started on an empty namespace follow the feed from its first change', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const r = raw(t, redis.url);
  await r.config('RESETSTAT');
  for (let i = 0; i < 5; i++) await a.put(grant(ipOf(i), 'gw-a'));
  assert.equal((await b.list()).length, 5);
  assert.equal((await a.list()).length, 5);
  assert.equal(await calls(r, 'zscan'), 0, 'the start-up reads left a generation to follow');
});

void test('a hand edit that leaves the generation alone is read at the latest after fullReadMaxAgeMs', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a', { fullReadMaxAgeMs: 400 });
  const r = raw(t, redis.url);
  await a.put(grant('198.51.100.91', 'gw-a'));
  assert.equal((await a.list()).length, 1);
  const hand = { ...grant('198.51.100.92', 'gw-x'), id: 'hand' };
  await r.set(a.key('grant:hand'), JSON.stringify(hand), 'PX', 60_000);
  await r.zadd(a.key('grants'), Date.now() + 60_000, 'hand');
  assert.equal((await a.list()).length, 1, 'within the age, the generation says nothing changed');
  await until('the hand-written grant is read', async () => (await a.list()).length === 2, 2000);
});

void test('a flushed Redis has no generation: the next read reads it, and each node puts its own grants back', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await node(t, redis.url, 'gw-a');
  const b = await node(t, redis.url, 'gw-b');
  const r = raw(t, redis.url);
  for (let i = 0; i < 10; i++) await (i % 2 ? b : a).put(grant(ipOf(i), i % 2 ? 'gw-b' : 'gw-a'));
  await until('both hold 10', async () => (await a.list()).length === 10 && (await b.list()).length === 10, 2000);
  const before = await r.get(a.key('gen'));
  await r.flushall();
  // No reconnect: only the generation tells these nodes that Redis lost everything.
  assert.deepEqual((await a.list()).map((g) => g.nodeId), Array(5).fill('gw-a'), 'A keeps its own grants');
  await b.list();
  await until('re-seeded', async () => (await r.zcard(a.key('grants'))) === 10, 2000);
  assert.equal(a.log.events('store.reseeded')[0]?.grants, 5);
  assert.equal(b.log.events('store.reseeded')[0]?.grants, 5);
  const after = await r.get(a.key('gen'));
  assert.ok(after !== null && after !== before && Number(after) > 1e6, `a new generation ${after}, not a count from 1`);
  await until('both read all 10 again', async () => (await a.list()).length === 10 && (await b.list()).length === 10, 2000);
});
