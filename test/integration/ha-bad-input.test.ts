// Issue 20, bad input: a staleness bound out of range is a usage or config error naming the
// allowed range, from the real `knockgw daemon` process; a Sentinel URL whose sentinels answer
// nothing starts the store the way an unreachable Redis does: degraded, loud, retrying, and the
// grants written meanwhile reach Redis once a sentinel is there.
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { makeGrant } from '../../gateway/core/grant.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { keyspace } from '../../gateway/kit/redis/keys.ts';
import { MAIN, tempDir } from '../helpers/gateway.ts';
import { captureLogger, freePort, startRedis, startSentinel } from '../helpers/redis.ts';

const DOOR = 'doors:\n  - name: d\n    sequence: ["7000", "8000"]\n    open: ["22/tcp"]\n';
const RANGE = /from 2 to 2147483 seconds/;

void test('--max-staleness 0, negative, non-numeric or over the TTL limit (flag or YAML) stops the daemon with the allowed range', async (t) => {
  const dir = await tempDir();
  t.after(() => dir.remove());
  const config = await dir.write('k.yaml', DOOR);
  for (const bad of [['0'], ['-5'], ['=-5'], ['abc'], ['2147484']]) {
    const flag = bad[0]!.startsWith('=') ? [`--max-staleness${bad[0]!}`] : ['--max-staleness', ...bad];
    const r = spawnSync(process.execPath, [MAIN, 'daemon', '--config', config, ...flag], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 64, `--max-staleness ${bad[0]!} exits 64 (usage); stderr: ${r.stderr}`);
    assert.match(r.stderr, /KGW_CLI_USAGE: --max-staleness .* must be an integer from 2 to 2147483 seconds/, bad[0]);
  }
  for (const bad of ['0', '-1', '"ten"', '2147484']) {
    const yaml = await dir.write('bad.yaml', `ha: { maxStaleness: ${bad} }\n${DOOR}`);
    const r = spawnSync(process.execPath, [MAIN, 'daemon', '--config', yaml], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(r.status, 0, `ha.maxStaleness ${bad} is refused`);
    assert.match(r.stderr, /KGW_CONFIG_INVALID/, bad);
    assert.match(r.stderr, RANGE, bad);
  }
});

void test('unreachable sentinels at start: degraded with local grants, loud, retrying (or KGW_STORE_UNAVAILABLE when required); flushed once a sentinel answers', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const port = await freePort();
  const url = `redis+sentinel://127.0.0.1:${port}/mymaster`;
  await assert.rejects(
    openStore(url, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true, connectTimeoutMs: 300 }),
    (err: unknown) => isKnockgwError(err, 'KGW_STORE_UNAVAILABLE'),
  );
  const log = captureLogger();
  const backend = await openStore(url, { nodeId: 'gw-a', clock: systemClock, logger: log.logger, connectTimeoutMs: 300, reconnectMaxMs: 200 });
  t.after(() => backend.close());
  // The same as a plain Redis that is down: one store.degraded line at the same level.
  const plainLog = captureLogger();
  const plain = await openStore(`redis://127.0.0.1:${await freePort()}`, { nodeId: 'gw-b', clock: systemClock, logger: plainLog.logger, connectTimeoutMs: 300 });
  t.after(() => plain.close());
  const degraded = log.events('store.degraded');
  assert.equal(degraded.length, 1, 'one store.degraded event');
  assert.equal(degraded[0]?.level, plainLog.events('store.degraded')[0]?.level, 'at the level an unreachable Redis logs it');
  assert.ok(['warn', 'error'].includes(String(degraded[0]?.level)), 'loud');
  const g = await backend.store.put(makeGrant({ ip: '198.51.100.91', door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId: 'gw-a', now: Date.now() }));
  assert.deepEqual((await backend.store.list()).map((x) => x.id), [g.id], 'the local grant is served meanwhile');

  const started = Date.now();
  await startSentinel(t, redis, port);
  while (log.events('store.reconnected').length === 0 && Date.now() - started < 15_000) await new Promise((r) => setTimeout(r, 50));
  t.diagnostic(`reconnected ${Date.now() - started} ms after the sentinel came up`);
  assert.equal(log.events('store.reconnected').length, 1, 'the store keeps retrying and reconnects through the sentinel');
  const probe = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: false, maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined);
  t.after(() => void probe.disconnect());
  let stored = 0;
  while (stored === 0 && Date.now() - started < 17_000) {
    stored = await probe.exists(keyspace()(`grant:${g.id}`));
    if (stored === 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(stored, 1, 'the grant queued while degraded reaches Redis');
});
