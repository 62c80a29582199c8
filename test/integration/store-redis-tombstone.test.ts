// Found by the chaos harness (seed 20): a knock proved on a node cut off from Redis waits in its
// outbox; meanwhile the client closes on another node that never heard of the grant (nothing to
// remove there). When the cut heals the queued knock reached Redis and reopened the grant on
// every node: a zombie. A close now leaves a tombstone that outranks any proof older than it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeGrant } from '../../gateway/core/grant.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { createGrantService } from '../../gateway/services/grants.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';

const grantAt = (now: number) => makeGrant({ ip: '198.51.100.7', door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId: 'gw-a', now });

void test('a close on a node that never saw the grant outranks an older proof arriving later, not a newer one', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await openStore(redis.url, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => a.close());
  const b = await openStore(redis.url, { nodeId: 'gw-b', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => b.close());

  const proved = grantAt(Date.now() - 2000);
  assert.equal(await b.store.remove(proved.id), undefined, 'B has nothing to remove');
  await a.store.put(proved);
  assert.deepEqual((await a.store.list()).map((g) => g.id), [], 'the older proof stays closed on A (its cache dropped it)');
  assert.deepEqual((await b.store.list()).map((g) => g.id), [], 'and on B');

  const again = grantAt(Date.now());
  await a.store.put(again);
  assert.deepEqual((await b.store.list()).map((g) => g.id), [again.id], 'a knock after the close opens as usual');
});

void test('a revoke on a node that has not seen the knock yet outranks it too', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const a = await openStore(redis.url, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => a.close());
  const b = await openStore(redis.url, { nodeId: 'gw-b', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => b.close());
  const { logger } = captureLogger();
  const onB = createGrantService({ store: b.store, doors: [{ name: 'openSSH', open: [{ port: 22, proto: 'tcp' }], ttlMs: 60_000 }], clock: systemClock, logger, nodeId: 'gw-b', metrics: createMetrics() });

  const proved = grantAt(Date.now() - 2000);
  assert.deepEqual(await onB.revokeIp(proved.ip, 'revoke'), [], 'B lists nothing to revoke');
  await a.store.put(proved);
  assert.deepEqual((await b.store.list()).map((g) => g.id), [], 'the knock proved before the revoke stays closed');
});
