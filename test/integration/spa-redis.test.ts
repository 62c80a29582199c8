// HA replay protection for SPA: two gateway nodes' SPA sources share the replay cache of one real
// redis-server (their store backends), so a packet one node granted is a replay to the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { openStore } from '../../gateway/wiring/store.ts';
import { PACKETS } from '../fixtures/fwknop/packets.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';
import { spaWorld } from '../helpers/spa-source.ts';

void test('two nodes sharing one Redis replay cache: the second refuses the packet the first granted', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const now = PACKETS.access.timestamp * 1000;
  const clock = { now: () => now };
  const backends = await Promise.all(['gw-a', 'gw-b'].map((nodeId) => openStore(redis.url, { nodeId, clock, logger: captureLogger('warn').logger })));
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => undefined));
  const [a, b] = await Promise.all(backends.map((backend, i) => spaWorld({ nonces: backend.nonces, clock, nodeId: `gw-${i}` })));
  assert.ok(a && b);
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  const packet = { src: '203.0.113.9', payload: Buffer.from(PACKETS.access.packet, 'latin1') };
  await a.send(packet);
  await b.send(packet);
  assert.equal((await a.store.list()).length, 1, 'node A granted it');
  assert.deepEqual(await b.store.list(), [], 'node B did not');
  assert.deepEqual(b.events('spa.denied').map((e) => e.reason), ['replay']);
  // Both at once: exactly one wins.
  const other = { src: '203.0.113.9', payload: Buffer.from(PACKETS['user-alice'].packet, 'latin1') };
  await Promise.all([a.send(other), b.send(other)]);
  assert.equal(await a.metrics.get('spa_accepted_total', { stanza: 'laptop' }) + await b.metrics.get('spa_accepted_total', { stanza: 'laptop' }), 2);
  // What the nodes share: one key per packet digest, expiring with the replay window.
  const client = new Redis(redis.url);
  t.after(() => client.quit().then(() => undefined));
  const keys = await client.keys('*nonce:spa:*');
  assert.equal(keys.length, 2);
  const ttl = await client.pttl(keys[0] ?? '');
  assert.ok(ttl > 200_000 && ttl <= 242_000, `kept for twice MAX_SPA_PACKET_AGE plus rounding (${ttl} ms)`);
});
