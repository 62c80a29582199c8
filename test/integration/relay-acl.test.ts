import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisConnection, type RedisConnection } from '../../gateway/kit/redis/connection.ts';
import { keyspace } from '../../gateway/kit/redis/keys.ts';
import { createRedisNonceStore, nonceKey } from '../../gateway/kit/redis/nonces.ts';
import { relayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { createRedisRequestSource, REQUESTS_STREAM } from '../../gateway/kit/redis/requests.ts';
import { GATEWAY_NONCE_SCOPE, RELAY_NONCE_SCOPE } from '../../gateway/protocol/relay-v1.ts';
import { createRelaySource } from '../../gateway/services/source-relay.ts';
import { buildRelay } from '../../relay/runtime.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { captureLog, collectOpens, identities, knock } from '../helpers/relay-fixtures.ts';

const ids = identities();
const now = () => Date.now();
const ADMIN_PASSWORD = 'gateway-admin-secret';

/** A redis-server whose default user needs a password, plus the relay's ACL user from relayAcl(). */
async function redisWithRelayUser(t: { after(fn: () => Promise<void>): void; skip(msg: string): void }): Promise<{ server: RedisServer; admin: RedisConnection; relayUrl: string } | undefined> {
  const server = await startRedis(t, { password: ADMIN_PASSWORD });
  if (!server) return undefined;
  const admin = createRedisConnection({ spec: server.url, failFast: false });
  assert.equal(await admin.connect(2000), 'ready');
  t.after(() => admin.close());
  const password = randomBytes(24).toString('base64url');
  await admin.client.call('ACL', 'SETUSER', ...relayAcl().setUserArgs(createHash('sha256').update(password).digest('hex')));
  return { server, admin, relayUrl: `redis://knockgw-relay:${password}@127.0.0.1:${server.port}` };
}

function rawClient(t: { after(fn: () => Promise<void>): void }, url: string): Redis {
  const client = new Redis(url, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
  t.after(() => { client.disconnect(); return Promise.resolve(); });
  return client;
}

const refused = async (what: string, p: Promise<unknown>): Promise<void> => {
  await assert.rejects(p, (err: Error) => /NOPERM/.test(err.message), `${what} is refused with NOPERM`);
};

void test('with the relay\'s own Redis user a knock is queued and the gateway grants it; nothing the relay does is refused', async (t) => {
  const lab = await redisWithRelayUser(t);
  if (!lab) return;
  const { admin, relayUrl } = lab;
  const { log, events } = captureLog();
  // Before the relay connects: its connection handshake is checked too.
  await admin.client.call('ACL', 'LOG', 'RESET');
  const relay = buildRelay({ keys: ids.keys, store: relayUrl, getClientIp: () => '203.0.113.7', clock: { now }, logger: log });
  t.after(() => relay.close());
  const gateway = await collectOpens([createRelaySource({ keys: ids.keys, nonces: createRedisNonceStore({ conn: admin }), clock: { now }, logger: log, requests: createRedisRequestSource(admin, { blockMs: 200 }) })]);
  t.after(() => gateway.stop());

  const body = knock(ids.bob, { ts: Math.floor(now() / 1000) });
  const post = () => relay.app.request('/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal((await post()).status, 202);
  assert.equal((await post()).status, 409, 'the relay\'s nonce claim works under its ACL');
  const deadline = Date.now() + 3000;
  while (gateway.opened.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(gateway.opened, [{ door: 'openSSH', ip: '203.0.113.7', source: 'relay' }]);
  // Connect, claim, queue and quit needed no command or key outside the rule.
  assert.deepEqual(await admin.client.call('ACL', 'LOG'), []);
  assert.equal(events.filter((e) => e.event === 'relay.shared_credential').length, 0);

  // The same relay on the gateways' credential still works, and says what that costs.
  const shared = captureLog();
  const withAdmin = buildRelay({ keys: ids.keys, store: lab.server.url, getClientIp: () => '203.0.113.7', clock: { now }, logger: shared.log });
  t.after(() => withAdmin.close());
  assert.equal(shared.events.filter((e) => e.event === 'relay.shared_credential').length, 1);
});

void test('the relay\'s credential cannot write or read grants, reset a gateway nonce or run scripts (NOPERM)', async (t) => {
  const lab = await redisWithRelayUser(t);
  if (!lab) return;
  const { admin, relayUrl } = lab;
  const key = keyspace();
  const relay = rawClient(t, relayUrl);
  await relay.connect();
  const grant = JSON.stringify({ id: 'x', ip: '198.51.100.66', ports: [{ port: 22, proto: 'tcp' }], door: 'openSSH', source: 'manual', createdAt: now(), expiresAt: null, nodeId: 'evil' });

  await refused('writing a grant key', relay.set(key('grant:x'), grant));
  await refused('adding to the grant index', relay.zadd(key('grants'), '+inf', 'x'));
  await refused('reading the grant index', relay.zrange(key('grants'), 0, -1));
  await refused('reading a grant', relay.get(key('grant:x')));
  await refused('appending to the change stream', relay.xadd(key('changes'), '*', 'op', 'put', 'id', 'x', 'grant', grant));
  await refused('resetting a gateway nonce claim', relay.set(nonceKey(key, `${GATEWAY_NONCE_SCOPE}bob`, 'AAAAAAAAAAAAAAAAAAAAAA=='), '1', 'PX', 1));
  await refused('reading the request stream', relay.xrange(REQUESTS_STREAM, '-', '+'));
  await refused('deleting keys', relay.del(key('grants')));
  await refused('taking the leader lease', relay.set(key('lease:cloud'), 'evil', 'PX', 60_000, 'NX'));
  await refused('running a script', relay.eval('return 1', 0));
  await refused('listing keys', relay.keys('*'));
  await refused('flushing', relay.flushall());
  await refused('reconfiguring', relay.config('SET', 'maxmemory', '1'));

  // What it may do, and only that.
  assert.equal(await relay.set(nonceKey(key, `${RELAY_NONCE_SCOPE}bob`, 'AAAAAAAAAAAAAAAAAAAAAA=='), '1', 'PX', 1000, 'NX'), 'OK');
  assert.match(String(await relay.xadd(REQUESTS_STREAM, 'MAXLEN', '~', 10_000, '*', 'req', '{}')), /^\d+-\d+$/);
  assert.equal(await admin.client.exists(key('grant:x')), 0, 'no grant was written');
});
