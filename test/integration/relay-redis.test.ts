import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedisConnection, type RedisConnection } from '../../gateway/kit/redis/connection.ts';
import { createRedisNonceStore } from '../../gateway/kit/redis/nonces.ts';
import { createRelaySource } from '../../gateway/services/source-relay.ts';
import { createApp } from '../../relay/app.ts';
import { createRedisRequestSink, createRedisRequestSource, REQUESTS_STREAM } from '../../gateway/kit/redis/requests.ts';
import { parseGrantRequest, type QueuedRequest } from '../../gateway/protocol/relay-v1.ts';
import { startRedis } from '../helpers/redis.ts';
import { captureLog, collectOpens, identities, knock } from '../helpers/relay-fixtures.ts';

const ids = identities();
const now = () => Date.now();

async function connect(t: { after(fn: () => Promise<void>): void }, url: string): Promise<RedisConnection> {
  const conn = createRedisConnection({ spec: url, failFast: false });
  await conn.connect(2000);
  // The server goes first in clean-up: this client sees it vanish like the gateways do.
  t.after(() => conn.close());
  return conn;
}

void test('grant requests reach every reader; a reader starts a few seconds back, never a minute', async (t) => {
  const server = await startRedis(t);
  if (!server) return;
  const conn = await connect(t, server.url);
  const redis = conn.client;
  const sink = createRedisRequestSink(conn);
  // A minute old: a reader that starts now must not replay it.
  await redis.xadd(REQUESTS_STREAM, `${Date.now() - 60_000}-0`, 'req', JSON.stringify({ ...knock(ids.bob), observedIp: '203.0.113.9', receivedAt: now() }));
  // Written while the readers are still connecting: they must not lose it.
  const early = { ...knock(ids.bob), observedIp: '203.0.113.1', receivedAt: now() };
  await sink.submit(early);

  const readers = [createRedisRequestSource(conn, { blockMs: 200 }), createRedisRequestSource(conn, { blockMs: 200 })];
  const got: QueuedRequest[][] = [[], []];
  const pumps = readers.map(async (r, i) => { for await (const q of r) got[i]?.push(q); });
  await new Promise((r) => setTimeout(r, 300));
  const sent = { ...knock(ids.alice), observedIp: '203.0.113.2', receivedAt: now() };
  await sink.submit(sent);
  await sink.submit({ ...knock(ids.bob), observedIp: '203.0.113.3', receivedAt: now() });
  await redis.xadd(REQUESTS_STREAM, '*', 'req', 'not json');
  const deadline = Date.now() + 3000;
  while (got.some((g) => g.length < 4) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const t0 = Date.now();
  await Promise.all(readers.map((r) => r.close()));
  await Promise.all(pumps);
  assert.ok(Date.now() - t0 < 1000, 'close() interrupts a blocking XREAD');
  for (const g of got) {
    assert.equal(g.length, 4);
    assert.deepEqual(parseGrantRequest(g[0]?.payload), early);
    assert.deepEqual(parseGrantRequest(g[1]?.payload), sent);
    assert.equal(parseGrantRequest(g[2]?.payload).observedIp, '203.0.113.3');
    assert.equal(g[3]?.payload, undefined);
  }
  assert.ok(await redis.xlen(REQUESTS_STREAM) <= 10_000);
});

void test('relay and two gateway nodes sharing Redis: a knock opens the door exactly once', async (t) => {
  const server = await startRedis(t);
  if (!server) return;
  const conn = await connect(t, server.url);
  const nonces = createRedisNonceStore({ conn });
  const app = createApp({ keys: ids.keys, nonces, requests: createRedisRequestSink(conn), clock: { now }, getClientIp: () => '203.0.113.7' });
  const { log } = captureLog();
  const gateways = await collectOpens([0, 1].map(() => createRelaySource({ keys: ids.keys, nonces, clock: { now }, logger: log, requests: createRedisRequestSource(conn, { blockMs: 200 }) })));
  t.after(() => gateways.stop());
  const { opened } = gateways;
  await new Promise((r) => setTimeout(r, 300));
  const body = knock(ids.bob, { ts: Math.floor(now() / 1000) });
  const post = (b: unknown) => app.request('/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  assert.equal((await post(body)).status, 202);
  assert.equal((await post(body)).status, 409);
  const deadline = Date.now() + 3000;
  while (opened.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(opened, [{ door: 'openSSH', ip: '203.0.113.7', source: 'relay' }]);
});
