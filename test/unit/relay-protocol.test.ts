import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { keygen } from '../../gateway/client/keygen.ts';
import { relayKnock } from '../../gateway/client/relay-knock.ts';
import { createApp } from '../../relay/app.ts';
import { canonicalString, parseKeys, parsePrivateKeyFile, signKnock } from '../../gateway/protocol/relay-v1.ts';
import { loadKeysFile } from '../../gateway/kit/keys-file.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import { fixedClock, identities, memoryNonces, NOW_MS } from '../helpers/relay-fixtures.ts';

const NONCE = 'AAECAwQFBgcICQoLDA0ODw==';

void test('the canonical string is the six protocol lines joined by \\n, ip empty when absent', () => {
  assert.equal(canonicalString({ client: 'alice-phone', door: 'openSSH', ts: 1790000000, nonce: NONCE }),
    `knockgw-v1\nalice-phone\nopenSSH\n\n1790000000\n${NONCE}`);
  assert.equal(canonicalString({ client: 'bob', door: 'openSSH', ip: '203.0.113.7', ts: 1, nonce: NONCE }),
    `knockgw-v1\nbob\nopenSSH\n203.0.113.7\n1\n${NONCE}`);
});

void test('an HMAC-SHA256 signature is the HMAC of the canonical string under the base64 secret', () => {
  const k = keygen({ id: 'alice-phone', alg: 'hmac-sha256', doors: ['openSSH'] });
  assert.equal(k.keysEntry.alg, 'hmac-sha256');
  const secret = k.keysEntry.alg === 'hmac-sha256' ? k.keysEntry.secret : '';
  assert.equal(Buffer.from(secret, 'base64').length, 32);
  const body = signKnock(parsePrivateKeyFile(k.privateKeyFile, 'k'), { door: 'openSSH', ts: 1790000000, nonce: NONCE });
  const want = createHmac('sha256', Buffer.from(secret, 'base64')).update(`knockgw-v1\nalice-phone\nopenSSH\n\n1790000000\n${NONCE}`).digest('base64');
  assert.equal(body.sig, want);
  assert.deepEqual(Object.keys(body).sort(), ['client', 'door', 'nonce', 'sig', 'ts', 'v']);
});

void test('an Ed25519 signature verifies with the raw 32-byte public key of the keys entry', () => {
  const k = keygen({ id: 'bob', doors: ['openSSH'] });
  assert.equal(k.keysEntry.alg, 'ed25519');
  const raw = Buffer.from(k.keysEntry.alg === 'ed25519' ? k.keysEntry.publicKey : '', 'base64');
  assert.equal(raw.length, 32);
  const body = signKnock(parsePrivateKeyFile(k.privateKeyFile, 'k'), { door: 'openSSH', ip: '203.0.113.7', ts: 5, nonce: NONCE });
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  assert.equal(verify(null, Buffer.from(`knockgw-v1\nbob\nopenSSH\n203.0.113.7\n5\n${NONCE}`), pub, Buffer.from(body.sig, 'base64')), true);
});

void test('the keys file loader accepts the documented format and rejects bad entries with a coded error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-keys-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ids = identities();
  const path = join(dir, 'keys.json');
  await writeFile(path, ids.keysFileText);
  const keys = await loadKeysFile(path);
  assert.deepEqual([...keys.keys()], ['alice-phone', 'bob', 'carol']);
  assert.equal(keys.get('bob')?.allowIp, false);
  assert.equal(keys.get('carol')?.allowIp, true);

  const bad = [
    '{"clients": [{"id": "x", "alg": "hmac-sha256", "secret": "c2hvcnQ=", "doors": ["openSSH"]}]}',
    '{"clients": [{"id": "x", "alg": "rsa", "publicKey": "", "doors": ["openSSH"]}]}',
    `{"clients": [${JSON.stringify(keygen({ id: 'x', doors: ['d'] }).keysEntry)}, ${JSON.stringify(keygen({ id: 'x', doors: ['d'] }).keysEntry)}]}`,
    'not json',
  ];
  for (const text of bad) assert.throws(() => parseKeys(text, 'keys.json'), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
  await assert.rejects(loadKeysFile(join(dir, 'missing.json')), (e) => isKnockgwError(e, 'KGW_CONFIG_READ'));
});

void test('relayKnock signs, posts and returns the answer; a refusal throws the server code', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ids = identities();
  const keyFile = join(dir, 'bob.key');
  await writeFile(keyFile, ids.bobKeyFile, { mode: 0o600 });
  const queue = createMemoryRequestQueue();
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: queue, clock: fixedClock(), getClientIp: () => '203.0.113.7' });
  const fetchImpl = ((input: string | URL | Request, init?: RequestInit) => app.request(input, init)) as typeof fetch;
  const answer = await relayKnock({ url: 'https://relay.example.net', keyFile, door: 'openSSH', fetchImpl, now: () => NOW_MS });
  // This relay does not know the gateway's TTL, so it claims no expiry.
  assert.deepEqual(answer, { status: 'accepted', ip: '203.0.113.7', door: 'openSSH' });
  await assert.rejects(relayKnock({ url: 'https://relay.example.net/', keyFile, door: 'openWeb', fetchImpl, now: () => NOW_MS }),
    (e) => isKnockgwError(e, 'KGW_RELAY_DOOR_FORBIDDEN') && e.detail.status === 403);
  await assert.rejects(relayKnock({ url: 'https://relay.example.net', keyFile, door: 'openSSH', fetchImpl, now: () => NOW_MS - 3_600_000 }),
    (e) => isKnockgwError(e, 'KGW_RELAY_STALE'));
  const refused = (() => Promise.reject(new TypeError('fetch failed'))) as typeof fetch;
  await assert.rejects(relayKnock({ url: 'http://127.0.0.1:1', keyFile, door: 'openSSH', fetchImpl: refused }), (e) => isKnockgwError(e, 'KGW_RELAY_UNREACHABLE'));
  const html = (() => Promise.resolve(new Response('<html>bad gateway</html>', { status: 502 }))) as typeof fetch;
  await assert.rejects(relayKnock({ url: 'http://127.0.0.1:1', keyFile, door: 'openSSH', fetchImpl: html }), (e) => isKnockgwError(e, 'KGW_RELAY_RESPONSE'));
});

void test('keygen refuses an id that the keys file could not hold', () => {
  assert.throws(() => keygen({ id: 'a\nb', doors: ['openSSH'] }), (e) => isKnockgwError(e, 'KGW_CLI_USAGE'));
  assert.throws(() => keygen({ id: 'a', doors: [] }), (e) => isKnockgwError(e, 'KGW_CLI_USAGE'));
});
