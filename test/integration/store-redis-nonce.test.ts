import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { redisConnection } from '../../gateway/kit/redis/url.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';

void test('a nonce shared through Redis is claimed by exactly one of many concurrent claimers', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const backends = await Promise.all(['gw-a', 'gw-b', 'relay'].map((nodeId) => openStore(redis.url, { nodeId, clock: systemClock, logger: captureLogger().logger })));
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => undefined));
  const nonces = backends.map((b) => b.nonces);
  const results = await Promise.all(nonces.flatMap((n) => Array.from({ length: 10 }, () => n.claim('relay', 'bm9uY2U=', 500))));
  assert.equal(results.filter(Boolean).length, 1);
  // Scopes cannot collide through the separator.
  assert.equal(await nonces[0]?.claim('a:b', 'c', 500), true);
  assert.equal(await nonces[0]?.claim('a', 'b:c', 500), true);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(await nonces[1]?.claim('relay', 'bm9uY2U=', 500), true);
  // Without Redis a claim fails closed.
  await redis.stop();
  await assert.rejects(nonces[0]?.claim('relay', 'x', 500) ?? Promise.resolve(), (err: unknown) => isKnockgwError(err, 'KGW_STORE_UNAVAILABLE'));
});

void test('store URLs: redis, rediss, unix socket and sentinel are understood; nonsense is a config error', () => {
  assert.deepEqual(redisConnection('redis://:p%40ss@10.0.0.5:6380/2'), { host: '10.0.0.5', port: 6380, password: 'p@ss', db: 2 });
  assert.deepEqual(redisConnection('rediss://user:pw@redis.example'), { host: 'redis.example', port: 6379, username: 'user', password: 'pw', tls: {} });
  assert.deepEqual(redisConnection('redis://[::1]:7000'), { host: '::1', port: 7000 });
  assert.deepEqual(redisConnection('/run/redis/redis.sock'), { path: '/run/redis/redis.sock' });
  assert.deepEqual(redisConnection('unix:///run/redis.sock'), { path: '/run/redis.sock' });
  assert.deepEqual(redisConnection('redis+sentinel://:pw@s1:26379,s2,[fd00::3]:26380/mymaster/1?sentinelPassword=sp'), {
    sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }, { host: 'fd00::3', port: 26380 }],
    name: 'mymaster',
    password: 'pw',
    db: 1,
    sentinelPassword: 'sp',
  });
  for (const bad of ['http://x', 'redis://h/abc', 'redis+sentinel://h:99999/m']) {
    assert.throws(() => redisConnection(bad), (err: unknown) => isKnockgwError(err, 'KGW_CONFIG_INVALID') && !err.message.includes('p@ss'));
  }
});
