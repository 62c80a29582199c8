// Enrolled devices in a real Redis, shared by relays and gateway nodes: tokens consumed exactly
// once even when redeemed concurrently, a device enrolled through one relay knocks through
// another and the gateway grants it, and the relay's ACL user gets the enrollment rules only when
// asked (relayAcl({ enroll: true })), and even then cannot read tokens or revoke devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisConnection } from '../../gateway/kit/redis/connection.ts';
import { keyspace } from '../../gateway/kit/redis/keys.ts';
import { createRedisDeviceRegistry, DEVICES_HASH, ENROLL_PREFIX } from '../../gateway/kit/redis/devices.ts';
import { createRedisNonceStore } from '../../gateway/kit/redis/nonces.ts';
import { relayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { createRedisRequestSource } from '../../gateway/kit/redis/requests.ts';
import { signKnock } from '../../gateway/protocol/relay-v1.ts';
import { p256RawPublic } from '../../gateway/protocol/relay-v1-algs.ts';
import { createRelaySource } from '../../gateway/services/source-relay.ts';
import { buildRelay } from '../../relay/runtime.ts';
import { startRedis } from '../helpers/redis.ts';
import { captureLog, collectOpens, identities } from '../helpers/relay-fixtures.ts';

const ids = identities();
const now = () => Date.now();

void test('enrollment through a relay with its own ACL user: one token, one device, granted by the gateway; revoked, refused', async (t) => {
  const server = await startRedis(t, { password: 'admin-secret' });
  if (!server) return;
  const admin = createRedisConnection({ spec: server.url, failFast: false });
  assert.equal(await admin.connect(2000), 'ready');
  t.after(() => admin.close());
  const user = async (name: string, enroll: boolean): Promise<string> => {
    const password = randomBytes(24).toString('base64url');
    await admin.client.call('ACL', 'SETUSER', ...relayAcl({ user: name, enroll }).setUserArgs(createHash('sha256').update(password).digest('hex')));
    return `redis://${name}:${password}@127.0.0.1:${server.port}`;
  };
  const gatewayDevices = createRedisDeviceRegistry({ conn: admin });
  const { log } = captureLog();
  const relayA = buildRelay({ keys: ids.keys, store: await user('relay-a', true), getClientIp: () => '198.51.100.20', clock: { now }, logger: log });
  const relayB = buildRelay({ keys: ids.keys, store: await user('relay-b', true), getClientIp: () => '198.51.100.21', clock: { now }, logger: log });
  const plain = buildRelay({ keys: ids.keys, store: await user('relay-plain', false), getClientIp: () => '198.51.100.22', clock: { now }, logger: log });
  t.after(async () => { await relayA.close(); await relayB.close(); await plain.close(); });
  const gateway = await collectOpens([createRelaySource({ keys: ids.keys, nonces: createRedisNonceStore({ conn: admin }), clock: { now }, logger: log, devices: gatewayDevices, requests: createRedisRequestSource(admin, { blockMs: 200 }) })]);
  t.after(() => gateway.stop());
  const post = (app: typeof relayA.app, path: string, body: unknown) => app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  // Concurrent redemptions of one token on two relays: exactly one device.
  const { token } = await gatewayDevices.issue({ door: 'openSSH', name: 'pixel', ttlMs: 60_000 }, now());
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const enroll = { v: 1, token, alg: 'ecdsa-p256', publicKey: p256RawPublic(privateKey).toString('base64') };
  const statuses = (await Promise.all([post(relayA.app, '/v1/enroll', enroll), post(relayB.app, '/v1/enroll', enroll), post(relayA.app, '/v1/enroll', enroll)])).map((r) => r.status).sort();
  assert.deepEqual(statuses, [201, 410, 410]);
  const devices = await gatewayDevices.list();
  assert.equal(devices.length, 1);
  const id = devices[0]?.id ?? '';

  // Enrolled through one relay, it knocks through the other; the gateway looks it up itself.
  const body = signKnock({ id, alg: 'ecdsa-p256', key: privateKey }, { door: 'openSSH', ts: Math.floor(now() / 1000), nonce: randomBytes(16).toString('base64') });
  assert.equal((await post(relayB.app, '/v1/knock', body)).status, 202);
  const deadline = Date.now() + 3000;
  while (gateway.opened.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(gateway.opened, [{ door: 'openSSH', ip: '198.51.100.21', source: 'relay' }]);

  // Without the enrollment rules a relay cannot enroll (503, fail closed), nor see devices.
  const { token: t2 } = await gatewayDevices.issue({ door: 'openSSH', ttlMs: 60_000 }, now());
  const refused = await post(plain.app, '/v1/enroll', { ...enroll, token: t2 });
  assert.equal(refused.status, 503);
  assert.equal((await post(plain.app, '/v1/knock', { ...body, nonce: randomBytes(16).toString('base64') })).status, 503);

  // Even with them, the relay user cannot read a token record or revoke a device.
  const raw = new Redis(await user('relay-c', true), { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
  t.after(() => { raw.disconnect(); return Promise.resolve(); });
  await raw.connect();
  const key = keyspace();
  await assert.rejects(raw.get(key(`${ENROLL_PREFIX}x`)), /NOPERM/);
  await assert.rejects(raw.hdel(key(DEVICES_HASH), id), /NOPERM/);
  await assert.rejects(raw.hgetall(key(DEVICES_HASH)), /NOPERM/);

  // Revoked by the gateway side: every relay refuses it at once.
  assert.equal(await gatewayDevices.revoke(id), true);
  const again = signKnock({ id, alg: 'ecdsa-p256', key: privateKey }, { door: 'openSSH', ts: Math.floor(now() / 1000), nonce: randomBytes(16).toString('base64') });
  assert.equal((await post(relayA.app, '/v1/knock', again)).status, 401);
});
