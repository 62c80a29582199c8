import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeGrant } from '../../gateway/core/grant.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { captureLogger, startRedis, startSentinel } from '../helpers/redis.ts';

void test('a redis+sentinel:// store finds the master through Sentinel and shares grants with a direct node', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const sentinel = await startSentinel(t, redis);
  const sentinelBackend = await openStore(sentinel.url, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => sentinelBackend.close());
  const directBackend = await openStore(redis.url, { nodeId: 'gw-b', clock: systemClock, logger: captureLogger().logger });
  t.after(() => directBackend.close());
  const viaSentinel = sentinelBackend.store;
  const direct = directBackend.store;
  const g = makeGrant({ ip: '198.51.100.90', door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId: 'gw-a', now: Date.now() });
  await viaSentinel.put(g);
  assert.deepEqual((await direct.list()).map((x) => x.id), [g.id]);
});
