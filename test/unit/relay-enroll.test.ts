// Enrollment and enrolled devices through the relay app (no socket): single-use, short-lived,
// door-bound tokens; knocks from devices with WebCrypto-shaped keys; revocation; the page's CSP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../relay/app.ts';
import { createFileDeviceRegistry } from '../../gateway/kit/devices-file.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import { signKnock, type KnockBody } from '../../gateway/protocol/relay-v1.ts';
import { p256RawPublic } from '../../gateway/protocol/relay-v1-algs.ts';
import type { DeviceRegistry } from '../../gateway/protocol/devices.ts';
import { captureLog, fixedClock, identities, memoryNonces, NOW_MS } from '../helpers/relay-fixtures.ts';
import { createLogBudget } from '../../gateway/core/log-budget.ts';
import { checkGrantRequest } from '../../gateway/services/source-relay.ts';

const ids = identities();
const PHONE_IP = '198.51.100.20';

async function setup(registry?: DeviceRegistry) {
  const devices = registry ?? (await createFileDeviceRegistry({}));
  const clock = fixedClock();
  const app = createApp({
    keys: ids.keys, nonces: memoryNonces(), requests: createMemoryRequestQueue(), clock, getClientIp: () => PHONE_IP, devices,
    doors: new Map([['openSSH', 60], ['admin', 60]]),
    doorInfo: new Map([['openSSH', { open: ['22/tcp'] }], ['admin', { open: ['2222/tcp'], scope: { v4: 24 } }]]),
    page: { publicUrls: { v4: 'https://v4.knock.example', v6: 'https://v6.knock.example:8443' } },
  });
  const json = (path: string, body: unknown) => app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { app, devices, clock, json };
}

/** A P-256 key as a browser makes it: the raw point to register, a signer for knocks. */
function browserKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { publicKey: p256RawPublic(privateKey).toString('base64'), sign: (id: string, door: string): KnockBody => signKnock({ id, alg: 'ecdsa-p256', key: privateKey }, { door, ts: Math.floor(NOW_MS / 1000), nonce: randomBytes(16).toString('base64') }) };
}

void test('a token enrolls exactly one device, for its door only; the second use is refused with 410', async () => {
  const { devices, json } = await setup();
  const { token } = await devices.issue({ door: 'openSSH', name: 'pixel', ttlMs: 60_000 }, NOW_MS);
  const key = browserKey();
  const first = await json('/v1/enroll', { v: 1, token, alg: 'ecdsa-p256', publicKey: key.publicKey });
  assert.equal(first.status, 201);
  const enrolled = await first.json() as { client: string; door: string; name: string };
  assert.match(enrolled.client, /^d-/);
  assert.deepEqual([enrolled.door, enrolled.name], ['openSSH', 'pixel']);
  const again = await json('/v1/enroll', { v: 1, token, alg: 'ecdsa-p256', publicKey: browserKey().publicKey });
  assert.equal(again.status, 410);
  assert.equal((await again.json() as { error: { code: string } }).error.code, 'KGW_ENROLL_TOKEN');
  assert.equal((await devices.list()).length, 1);

  const ok = await json('/v1/knock', key.sign(enrolled.client, 'openSSH'));
  assert.equal(ok.status, 202);
  const answer = await ok.json() as { ip: string; covers: string; open: string[] };
  assert.deepEqual([answer.ip, answer.covers, answer.open], [PHONE_IP, PHONE_IP, ['22/tcp']]);
  // The key of the openSSH device cannot open another door.
  const other = await json('/v1/knock', key.sign(enrolled.client, 'admin'));
  assert.equal(other.status, 403);
  assert.equal((await other.json() as { error: { code: string } }).error.code, 'KGW_RELAY_DOOR_FORBIDDEN');
});

void test('an expired or never-issued token is refused, and nothing is enrolled', async () => {
  const { devices, json } = await setup();
  const { token } = await devices.issue({ door: 'openSSH', ttlMs: 1000 }, NOW_MS - 5000);
  const expired = await json('/v1/enroll', { v: 1, token, alg: 'ecdsa-p256', publicKey: browserKey().publicKey });
  assert.equal(expired.status, 410);
  const forged = await json('/v1/enroll', { v: 1, token: randomBytes(32).toString('base64url'), alg: 'ecdsa-p256', publicKey: browserKey().publicKey });
  assert.equal(forged.status, 410);
  const malformed = await json('/v1/enroll', { v: 1, token: 'x', alg: 'ecdsa-p256', publicKey: 'AAAA' });
  assert.equal(malformed.status, 400);
  const huge = await json('/v1/enroll', { v: 1, token, alg: 'ecdsa-p256', publicKey: 'A'.repeat(4000) });
  assert.equal(huge.status, 413);
  assert.deepEqual(await devices.list(), []);
});

void test('enrollment attempts are rate-limited per address', async () => {
  const { json } = await setup();
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await json('/v1/enroll', { v: 1, token: randomBytes(32).toString('base64url'), alg: 'ed25519', publicKey: randomBytes(32).toString('base64') })).status);
  assert.deepEqual(statuses, [410, 410, 410, 410, 410, 429, 429]);
});

void test('a revoked device is refused like an unknown client (401)', async () => {
  const { devices, json } = await setup();
  const { token } = await devices.issue({ door: 'openSSH', ttlMs: 60_000 }, NOW_MS);
  const key = browserKey();
  const { client } = await (await json('/v1/enroll', { v: 1, token, alg: 'ecdsa-p256', publicKey: key.publicKey })).json() as { client: string };
  assert.equal((await json('/v1/knock', key.sign(client, 'openSSH'))).status, 202);
  assert.equal(await devices.revoke(client), true);
  const refused = await json('/v1/knock', key.sign(client, 'openSSH'));
  assert.equal(refused.status, 401);
});

void test('the devices file keeps devices across restarts, stores tokens only by hash, mode 0600', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-devices-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'devices.json');
  const reg = await createFileDeviceRegistry({ path });
  const { token } = await reg.issue({ door: 'openSSH', ttlMs: 60_000 }, Date.now());
  assert.equal((await readFile(path, 'utf8')).includes(token), false, 'the token itself is never written');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const d = await reg.redeem(token, { alg: 'ed25519', publicKey: randomBytes(32).toString('base64'), enrolledFrom: PHONE_IP }, Date.now());
  const again = await createFileDeviceRegistry({ path });
  assert.deepEqual((await again.list()).map((x) => x.id), [d.id]);
  await assert.rejects(again.redeem(token, { alg: 'ed25519', publicKey: randomBytes(32).toString('base64'), enrolledFrom: PHONE_IP }, Date.now()), /KGW_ENROLL_TOKEN/);
});

void test('the knock page: strict CSP on every file, nothing from elsewhere, an installable manifest, /v1/config', async () => {
  const { app } = await setup();
  for (const path of ['/', '/app.js', '/app.css', '/sw.js', '/app.webmanifest', '/icon.svg']) {
    const res = await app.request(path);
    assert.equal(res.status, 200, path);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self' https:\/\/v4\.knock\.example https:\/\/v6\.knock\.example:8443(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const body = await res.text();
    // No absolute URL to another origin in any file (the SVG namespace is a name, not a fetch).
    assert.deepEqual(body.replace('http://www.w3.org/2000/svg', '').match(/https?:\/\/[^\s"')]+/g) ?? [], [], path);
  }
  const html = await (await app.request('/')).text();
  assert.equal(/<script>|<style>|\son\w+=/.test(html), false, 'no inline script, style or handler');
  const manifest = await (await app.request('/app.webmanifest')).json() as { display: string; icons: unknown[]; start_url: string };
  assert.deepEqual([manifest.display, manifest.start_url, manifest.icons.length], ['standalone', '/', 1]);
  const config = await (await app.request('/v1/config')).json() as { extensions: string[]; publicUrls: Record<string, string> };
  assert.deepEqual(config.extensions, ['ecdsa-p256']);
  assert.equal(config.publicUrls.v6, 'https://v6.knock.example:8443');
  const pre = await app.request('/v1/knock', { method: 'OPTIONS', headers: { origin: 'https://v4.knock.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
});

void test('the gateway looks an enrolled device up itself: a queued knock of a revoked device opens nothing', async () => {
  const devices = await createFileDeviceRegistry({});
  const { token } = await devices.issue({ door: 'openSSH', ttlMs: 60_000 }, NOW_MS);
  const key = browserKey();
  const d = await devices.redeem(token, { alg: 'ecdsa-p256', publicKey: key.publicKey, enrolledFrom: PHONE_IP }, NOW_MS);
  const { log } = captureLog();
  const deps = { keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), logger: log, devices };
  const budget = createLogBudget(log, { perWindow: 100, windowMs: 10_000, now: () => NOW_MS });
  const queued = (body: KnockBody) => ({ ...body, observedIp: PHONE_IP, receivedAt: NOW_MS });
  const ok = await checkGrantRequest(deps, budget, '1-0', queued(key.sign(d.id, 'openSSH')));
  assert.equal(ok.ok, true);
  await devices.revoke(d.id);
  const refused = await checkGrantRequest(deps, budget, '2-0', queued(key.sign(d.id, 'openSSH')));
  assert.deepEqual(refused.ok ? 'opened' : refused.code, 'KGW_RELAY_UNKNOWN_CLIENT');
  // Without the registry the gateway knows no device at all.
  const { devices: _dropped, ...withoutRegistry } = deps;
  const none = await checkGrantRequest(withoutRegistry, budget, '3-0', queued(key.sign(d.id, 'openSSH')));
  assert.equal(none.ok, false);
});

void test("the relay's Redis user gets the enrollment rules only when asked", async () => {
  const { relayAcl } = await import('../../gateway/kit/redis/relay-acl.ts');
  assert.deepEqual(relayAcl().commands, ['set', 'xadd']);
  const acl = relayAcl({ enroll: true });
  assert.deepEqual(acl.commands, ['set', 'xadd', 'getdel', 'hget', 'hset']);
  assert.deepEqual(acl.keyPatterns.slice(2), ['knockgw:{knockgw}:enroll:*', 'knockgw:{knockgw}:devices']);
});
