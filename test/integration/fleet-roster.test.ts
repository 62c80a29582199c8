// The fleet roster on a real redis-server: gateway nodes list each other in `status`, a node that
// stops leaves, one that goes quiet without leaving (killed, cut off) ages on Redis's clock and
// is marked silent, a foreign entry is left out, and a node that cannot read the roster says so
// (null) instead of listing nobody. The cloud leader names each grant's cloud rules; a follower
// says it does not know rather than "none".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedisConnection } from '../../gateway/kit/redis/connection.ts';
import { keyspace } from '../../gateway/kit/redis/keys.ts';
import { createRedisFleetRoster } from '../../gateway/adapters/store/index.ts';
import type { FleetNodeStatus } from '../../gateway/gateway.ts';
import { startFleetNode, type FleetNode } from '../helpers/fleet-node.ts';
import { captureLogger, startRedis, type RedisServer } from '../helpers/redis.ts';

type Ctx = Parameters<typeof startRedis>[0];
const NAMESPACE = 'roster';

async function nodes(t: Ctx, redis: RedisServer, ids: readonly string[]): Promise<FleetNode[]> {
  const out: FleetNode[] = [];
  for (const nodeId of ids) {
    const n = await startFleetNode({ url: redis.url, nodeId, namespace: NAMESPACE, logger: captureLogger('warn').logger, leaseTtlMs: 1500, cloudSettleMs: 50 });
    t.after(() => n.stop());
    out.push(n);
  }
  return out;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const fleetOf = async (n: FleetNode): Promise<readonly FleetNodeStatus[] | null> => (await n.gateway.status()).fleet;
const ids = (f: readonly FleetNodeStatus[] | null): string[] => (f ?? []).map((m) => m.nodeId);

void test('nodes list each other; a stopped node leaves, a quiet one ages and is silent, a foreign entry is left out', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const [a, , c] = await nodes(t, redis, ['gw-0', 'gw-1', 'gw-2']) as [FleetNode, FleetNode, FleetNode];

  const all = await until('three nodes on gw-0', () => fleetOf(a), (f) => f?.length === 3);
  assert.deepEqual(ids(all), ['gw-0', 'gw-1', 'gw-2'], 'this node first, then by id');
  assert.deepEqual(all?.map((m) => m.self), [true, false, false]);
  for (const m of all ?? []) {
    assert.equal(m.store, 'connected');
    assert.equal(m.silent, false);
    assert.ok(m.silentFor < 2, `${m.nodeId} heard ${m.silentFor} s ago`);
    assert.ok(m.startedAt && Date.parse(m.startedAt) <= Date.now());
    assert.equal(typeof m.version, 'string');
  }

  await c.stop();
  assert.deepEqual(ids(await until('gw-2 gone from gw-0', () => fleetOf(a), (f) => f?.length === 2)), ['gw-0', 'gw-1']);

  // A node that dies without leaving: its connection drops, its entry stays and ages.
  const conn = createRedisConnection({ spec: redis.url, name: 'ghost' });
  assert.equal(await conn.connect(2000), 'ready');
  const ghost = createRedisFleetRoster({ conn, nodeId: 'gw-ghost', namespace: NAMESPACE });
  ghost.join(() => ({ version: '9.9.9', startedAt: Date.now(), store: 'degraded' }));
  t.after(() => ghost.leave());
  await until('the ghost listed', () => fleetOf(a), (f) => ids(f).includes('gw-ghost'));
  await conn.close({ drop: true });
  // Garbage under the roster's keys (a hand edit, another tool) is not a node.
  const raw = createRedisConnection({ spec: redis.url, name: 'raw' });
  assert.equal(await raw.connect(2000), 'ready');
  t.after(() => raw.close());
  const key = keyspace(NAMESPACE);
  await raw.client.hset(key('fleet'), 'intruder', 'not json');
  await raw.client.zadd(key('fleet-seen'), Date.now(), 'intruder');

  const aged = await until('the ghost silent', () => fleetOf(a), (f) => f?.find((m) => m.nodeId === 'gw-ghost')?.silent === true, 9000);
  const g = aged?.find((m) => m.nodeId === 'gw-ghost');
  assert.ok(g && g.silentFor >= 5, `silent for ${g?.silentFor} s`);
  assert.deepEqual({ version: g?.version, store: g?.store }, { version: '9.9.9', store: 'degraded' }, 'what it last said of itself');
  assert.ok(!ids(aged).includes('intruder'));

  // This node cannot read the roster: it says it does not know, it does not list nobody.
  await redis.stop('SIGKILL');
  await until('the roster unknown on gw-0', () => fleetOf(a), (f) => f === null);
});

void test('the cloud leader names the cloud rules of each grant; a follower says only the leader knows', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const fleet = await nodes(t, redis, ['gw-0', 'gw-1']);
  await fleet[1]?.grant('198.51.100.30');
  const leader = await until('a leader', () => Promise.resolve(fleet.find((n) => n.lease.isLeader())), (n) => n !== undefined);
  assert.ok(leader);
  const follower = fleet.find((n) => n !== leader) as FleetNode;
  const [grant] = (await until('the leader wrote the cloud rule', () => leader.gateway.status(), (s) => (s.grants[0]?.cloudRules?.length ?? 0) > 0)).grants;
  assert.deepEqual(grant?.cloudRules, [{ provider: 'memory', rule: `rule-${grant?.id}` }]);
  const seen = await until('the follower has the grant', () => follower.gateway.status(), (s) => s.grants.length === 1);
  assert.equal(seen.grants[0]?.cloudRules, null);
  assert.equal(seen.leader, false);
});
