import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { systemClock } from '../../gateway/ports.ts';
import { openStore, type StoreBackend } from '../../gateway/wiring/store.ts';
import type { LeaderLease } from '../../gateway/ports.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';

const TTL = 600;
type Ctx = { after(fn: () => Promise<void> | void): void };

async function storeFor(t: Ctx, url: string, nodeId: string): Promise<StoreBackend> {
  const backend = await openStore(url, { nodeId, clock: systemClock, logger: captureLogger().logger, reconnectMaxMs: 200 });
  t.after(() => backend.close());
  return backend;
}

function lease(t: Ctx, backend: StoreBackend): LeaderLease & { events: string[] } {
  const l = backend.lease('cloud', { ttlMs: TTL, logger: captureLogger().logger });
  t.after(() => l.stop());
  const events: string[] = [];
  l.on('gained', () => events.push('gained'));
  l.on('lost', (why) => events.push(`lost:${why}`));
  return Object.assign(l, { events });
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

void test('of two nodes exactly one leads, and it keeps the lease while it renews', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = lease(t, await storeFor(t, redis.url, 'gw-a'));
  const b = lease(t, await storeFor(t, redis.url, 'gw-b'));
  await until('a leader', () => a.isLeader() || b.isLeader(), 1000);
  const first = a.isLeader() ? a : b;
  for (let i = 0; i < 100; i++) {
    assert.equal(Number(a.isLeader()) + Number(b.isLeader()), 1, `sample ${i}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(first.isLeader(), 'no flapping');
  assert.deepEqual(first.events, ['gained']);
  const probe = new Redis(redis.url);
  probe.on('error', () => undefined);
  t.after(() => void probe.disconnect());
  assert.equal(await probe.get('knockgw:{knockgw}:lease:cloud'), first === a ? 'gw-a' : 'gw-b');
});

void test('when the leader stops renewing the other node takes over after the TTL; a release hands over at once', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = lease(t, await storeFor(t, redis.url, 'gw-a'));
  await until('A leads', () => a.isLeader(), 1000);
  const b = lease(t, await storeFor(t, redis.url, 'gw-b'));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(b.isLeader(), false);
  const stoppedAt = performance.now();
  await a.stop({ release: false });
  assert.equal(a.isLeader(), false);
  const failover = await until('B takes over', () => b.isLeader(), TTL + TTL / 3 + 300);
  t.diagnostic(`failover without release: ${(performance.now() - stoppedAt).toFixed(0)} ms (TTL ${TTL} ms)`);
  assert.ok(failover >= TTL - 250, `B took over after ${failover} ms, before A's lease could expire`);

  const c = lease(t, await storeFor(t, redis.url, 'gw-c'));
  const releasedAt = performance.now();
  await b.stop();
  await until('C takes over', () => c.isLeader(), TTL / 3 + 300);
  t.diagnostic(`handover after release: ${(performance.now() - releasedAt).toFixed(0)} ms`);
});

void test('a leader cut off from Redis stops leading once its lease could have expired', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = lease(t, await storeFor(t, redis.url, 'gw-a'));
  await until('A leads', () => a.isLeader(), 1000);
  const cutAt = performance.now();
  await redis.stop('SIGKILL');
  // The last renewal was sent before the cut, so once TTL has passed since the cut A cannot
  // claim to lead, however late this test's own timers run on a loaded machine.
  await new Promise((r) => setTimeout(r, TTL));
  assert.equal(a.isLeader(), false, 'A still claimed to lead a TTL after Redis vanished');
  await until('lost event', () => a.events.includes('lost:lease expired without renewal'), 1000);
  t.diagnostic(`lease.lost seen ${(performance.now() - cutAt).toFixed(0)} ms after Redis vanished (TTL ${TTL} ms)`);
  // And it leads again once Redis is back (the restarted Redis is empty).
  await redis.start();
  await until('A leads again', () => a.isLeader(), 2000);
});

void test('with the memory store the single node always leads', async (t) => {
  const backend = await openStore('memory', { nodeId: 'solo', clock: systemClock, logger: captureLogger().logger });
  t.after(() => backend.close());
  const l = lease(t, backend);
  assert.equal(l.isLeader(), true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(l.events, ['gained']);
  await l.stop();
  assert.equal(l.isLeader(), false);
});
