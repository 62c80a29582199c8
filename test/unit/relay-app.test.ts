import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kgwError } from '../../gateway/core/errors.ts';
import { createApp, type RelayDeps } from '../../relay/app.ts';
import { nodeClientIp } from '../../relay/server.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import { parseGrantRequest, type QueuedRequest } from '../../gateway/protocol/relay-v1.ts';
import { captureLog, fixedClock, identities, knock, memoryNonces, NOW_MS } from '../helpers/relay-fixtures.ts';

const ids = identities();
const CLIENT_IP = '203.0.113.7';

function setup(over: Partial<RelayDeps> = {}) {
  const queue = createMemoryRequestQueue();
  const source = queue.source();
  const received: QueuedRequest[] = [];
  const pump = (async () => { for await (const q of source) received.push(q); })();
  const clock = fixedClock();
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: queue, clock, getClientIp: () => CLIENT_IP, ...over });
  const post = (body: unknown, init: RequestInit = {}) => app.request('/v1/knock', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const stop = async () => { await source.close(); await pump; };
  return { app, post, received, clock, stop };
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const json = await res.json() as { error: { code: string; message: string } };
  assert.equal(typeof json.error.message, 'string');
  return { status: res.status, code: json.error.code, message: json.error.message };
}

void test('GET /v1/ip answers the caller address as a text line, or JSON when asked', async (t) => {
  const { app, stop } = setup();
  t.after(stop);
  const text = await app.request('/v1/ip');
  assert.equal(text.status, 200);
  assert.match(text.headers.get('content-type') ?? '', /^text\/plain/);
  assert.equal(await text.text(), `${CLIENT_IP}\n`);
  const json = await app.request('/v1/ip', { headers: { accept: 'application/json' } });
  assert.deepEqual(await json.json(), { ip: CLIENT_IP });
});

for (const who of ['alice', 'bob'] as const) {
  void test(`a signed knock (${who === 'alice' ? 'HMAC-SHA256' : 'Ed25519'}) is accepted and queued with the observed IP`, async (t) => {
    const s = setup({ doors: new Map([['openSSH', 600]]) });
    t.after(s.stop);
    const body = knock(ids[who]);
    const res = await s.post(body);
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { status: 'accepted', ip: CLIENT_IP, door: 'openSSH', expiresAt: NOW_MS / 1000 + 600 });
    await new Promise((r) => setImmediate(r));
    assert.equal(s.received.length, 1);
    const queued = parseGrantRequest(s.received[0]?.payload);
    assert.deepEqual(queued, { ...body, observedIp: CLIENT_IP, receivedAt: NOW_MS });
  });
}

void test('a replayed nonce is refused with 409 and queued only once', async (t) => {
  const s = setup();
  t.after(s.stop);
  const body = knock(ids.bob);
  assert.equal((await s.post(body)).status, 202);
  const e = await errorOf(await s.post(body));
  assert.deepEqual([e.status, e.code], [409, 'KGW_RELAY_REPLAY']);
  await new Promise((r) => setImmediate(r));
  assert.equal(s.received.length, 1);
});

void test('a timestamp outside ±60 s is refused with 422, inside is accepted', async (t) => {
  const s = setup();
  t.after(s.stop);
  const nowS = NOW_MS / 1000;
  for (const ts of [nowS - 61, nowS + 61]) {
    const e = await errorOf(await s.post(knock(ids.alice, { ts })));
    assert.deepEqual([e.status, e.code], [422, 'KGW_RELAY_STALE']);
  }
  assert.equal((await s.post(knock(ids.alice, { ts: nowS - 60 }))).status, 202);
  assert.equal((await s.post(knock(ids.alice, { ts: nowS + 60 }))).status, 202);
});

void test('a wrong signature is refused with 401 and nothing is queued', async (t) => {
  const s = setup();
  t.after(s.stop);
  for (const who of ['alice', 'bob'] as const) {
    const good = knock(ids[who]);
    const other = knock(ids[who]);
    // A valid signature, but over another nonce.
    const e = await errorOf(await s.post({ ...good, sig: other.sig }));
    assert.deepEqual([e.status, e.code], [401, 'KGW_RELAY_BAD_SIGNATURE']);
    // Changing a signed field (the door) breaks it too.
    const e2 = await errorOf(await s.post({ ...good, door: 'openWeb' }));
    assert.deepEqual([e2.status, e2.code], [401, 'KGW_RELAY_BAD_SIGNATURE']);
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(s.received.length, 0);
});

void test('an unknown client gets the same 401 as a bad signature (no enumeration); the log tells them apart', async (t) => {
  const { log, events } = captureLog();
  const s = setup({ log });
  t.after(s.stop);
  const unknown = await errorOf(await s.post({ ...knock(ids.bob), client: 'mallory' }));
  const forged = await errorOf(await s.post({ ...knock(ids.bob), sig: knock(ids.alice).sig }));
  assert.deepEqual(unknown, forged);
  assert.deepEqual([unknown.status, unknown.code], [401, 'KGW_RELAY_BAD_SIGNATURE']);
  assert.deepEqual(events.filter((e) => e.event === 'relay.denied').map((e) => e.code), ['KGW_RELAY_UNKNOWN_CLIENT', 'KGW_RELAY_BAD_SIGNATURE']);
});

void test('a door the client may not open is refused with 403', async (t) => {
  const s = setup();
  t.after(s.stop);
  const e = await errorOf(await s.post(knock(ids.bob, { door: 'openWeb' })));
  assert.deepEqual([e.status, e.code], [403, 'KGW_RELAY_DOOR_FORBIDDEN']);
  assert.equal((await s.post(knock(ids.carol, { door: 'openWeb' }))).status, 202);
});

void test('naming another IP is refused with 403 unless the keys entry allows it', async (t) => {
  const s = setup();
  t.after(s.stop);
  const e = await errorOf(await s.post(knock(ids.bob, { ip: '198.51.100.9' })));
  assert.deepEqual([e.status, e.code], [403, 'KGW_RELAY_IP_FORBIDDEN']);
  // Naming one's own address is always fine.
  assert.equal((await s.post(knock(ids.bob, { ip: CLIENT_IP }))).status, 202);
  const ok = await s.post(knock(ids.carol, { ip: '198.51.100.9' }));
  assert.equal(ok.status, 202);
  assert.equal((await ok.json() as { ip: string }).ip, '198.51.100.9');
  // Even an allowed client cannot point a grant at a loopback or multicast address.
  const e2 = await errorOf(await s.post(knock(ids.carol, { ip: '127.0.0.1' })));
  assert.deepEqual([e2.status, e2.code], [403, 'KGW_RELAY_IP_FORBIDDEN']);
});

void test('a body over 4 KiB is refused with 413, with or without Content-Length', async (t) => {
  const s = setup();
  t.after(s.stop);
  const big = JSON.stringify({ ...knock(ids.bob), pad: 'x'.repeat(5000) });
  const declared = await errorOf(await s.post(big));
  assert.deepEqual([declared.status, declared.code], [413, 'KGW_RELAY_TOO_LARGE']);
  // A chunked stream has no Content-Length: the bytes themselves are counted.
  const bytes = new TextEncoder().encode(big);
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      for (let i = 0; i < bytes.length; i += 1000) ctl.enqueue(bytes.slice(i, i + 1000));
      ctl.close();
    },
  });
  const req = new Request('http://relay.test/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' });
  assert.equal(req.headers.get('content-length'), null);
  const chunked = await errorOf(await s.app.request(req));
  assert.deepEqual([chunked.status, chunked.code], [413, 'KGW_RELAY_TOO_LARGE']);
});

void test('malformed JSON, a bad body and a wrong Content-Type are refused with 400', async (t) => {
  const s = setup();
  t.after(s.stop);
  const cases: [string, Response][] = [
    ['not json', await s.post('{"v":1,')],
    ['not utf-8', await s.post('', { body: new Uint8Array([0x7b, 0xff, 0x7d]) })],
    ['wrong version', await s.post({ ...knock(ids.bob), v: 2 })],
    ['short nonce', await s.post({ ...knock(ids.bob), nonce: 'AAAA' })],
    ['newline in door', await s.post({ ...knock(ids.bob), door: 'open\nSSH' })],
    ['text/plain', await s.post(knock(ids.bob), { headers: { 'content-type': 'text/plain' } })],
    ['no content-type', await s.app.request('/v1/knock', { method: 'POST', body: new Blob([JSON.stringify(knock(ids.bob))]) })],
  ];
  for (const [what, res] of cases) {
    const e = await errorOf(res);
    assert.deepEqual([what, e.status, e.code], [what, 400, 'KGW_RELAY_MALFORMED']);
  }
});

void test('requests beyond the per-IP budget get 429', async (t) => {
  const s = setup({ rateLimit: { perIp: { perSecond: 1, burst: 3 }, perKey: { perSecond: 100, burst: 100 }, maxTracked: 10 } });
  t.after(s.stop);
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await s.app.request('/v1/ip')).status);
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  const e = await errorOf(await s.post(knock(ids.bob)));
  assert.deepEqual([e.status, e.code], [429, 'KGW_RELAY_RATE_LIMITED']);
  s.clock.set(NOW_MS + 1000);
  assert.equal((await s.post(knock(ids.bob, { ts: NOW_MS / 1000 + 1 }))).status, 202);
});

void test('knocks beyond the per-key budget get 429, without touching other clients', async (t) => {
  let ip = 0;
  const s = setup({
    getClientIp: () => `198.51.100.${++ip}`,
    rateLimit: { perIp: { perSecond: 100, burst: 100 }, perKey: { perSecond: 0.1, burst: 2 }, maxTracked: 10 },
  });
  t.after(s.stop);
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await s.post(knock(ids.bob))).status);
  assert.deepEqual(statuses, [202, 202, 429]);
  assert.equal((await s.post(knock(ids.alice))).status, 202);
  // Unsigned garbage under bob's name does not drain his bucket (checked after the signature).
  s.clock.set(NOW_MS + 20_000);
  for (let i = 0; i < 5; i++) assert.equal((await s.post({ ...knock(ids.bob), sig: knock(ids.bob).sig })).status, 401);
  assert.equal((await s.post(knock(ids.bob, { ts: NOW_MS / 1000 + 20 }))).status, 202);
});

void test('a store outage is a coded 503 and any other failure a coded 500, never a crash', async (t) => {
  const down = setup({ nonces: { claim: () => Promise.reject(kgwError('KGW_STORE_UNAVAILABLE', 'redis is down')) } });
  t.after(down.stop);
  const e = await errorOf(await down.post(knock(ids.bob)));
  assert.deepEqual([e.status, e.code], [503, 'KGW_STORE_UNAVAILABLE']);
  const broken = setup({ requests: { submit: () => Promise.reject(new Error('boom')) } });
  t.after(broken.stop);
  const res = await broken.post(knock(ids.bob));
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: { code: 'KGW_INTERNAL', message: 'internal error' } });
});

void test('an observed address the gateway would never grant is refused with a coded 403, not "accepted"', async (t) => {
  for (const ip of ['127.0.0.1', '0.0.0.0', '::', '::1', '224.0.0.5', 'ff02::1']) {
    const s = setup({ getClientIp: () => ip });
    t.after(s.stop);
    const e = await errorOf(await s.post(knock(ids.bob)));
    assert.deepEqual([ip, e.status, e.code], [ip, 403, 'KGW_RELAY_IP_FORBIDDEN']);
    assert.equal(s.received.length, 0, `${ip}: nothing queued`);
  }
  // Through a trusted proxy the address comes from X-Forwarded-For: the same rule applies.
  const proxied = setup({ getClientIp: nodeClientIp(1) });
  t.after(proxied.stop);
  for (const xff of ['0.0.0.0', '::', '239.1.2.3', '127.0.0.1']) {
    const e = await errorOf(await proxied.post(knock(ids.bob), { headers: { 'content-type': 'application/json', 'x-forwarded-for': `198.51.100.1, ${xff}` } }));
    assert.deepEqual([xff, e.status, e.code], [xff, 403, 'KGW_RELAY_IP_FORBIDDEN']);
  }
});

void test('a relay that knows the doors refuses one the gateway lacks and tells the expiry; one that does not claims none', async (t) => {
  // carol's key may open openWeb, but this gateway has only openSSH (0 = until closed).
  const knowing = setup({ doors: new Map([['openSSH', 0]]) });
  t.after(knowing.stop);
  const accepted = (await (await knowing.post(knock(ids.carol))).json()) as Record<string, unknown>;
  assert.equal(accepted.expiresAt, null, 'until closed, as the gateway says');
  const e = await errorOf(await knowing.post(knock(ids.carol, { door: 'openWeb' })));
  assert.deepEqual([e.status, e.code], [403, 'KGW_RELAY_DOOR_UNKNOWN']);
  assert.equal(knowing.received.length, 1, 'only the known door was queued');
  const blind = setup();
  t.after(blind.stop);
  const answer = (await (await blind.post(knock(ids.bob))).json()) as Record<string, unknown>;
  assert.equal('expiresAt' in answer, false, 'no expiry it does not know');
});

void test('refusals are logged within a budget, and a client that hangs up is not an error', async (t) => {
  const { log, events } = captureLog();
  const s = setup({ log, getClientIp: () => '203.0.113.99' });
  t.after(s.stop);
  for (let i = 0; i < 300; i++) await s.post({ ...knock(ids.bob), sig: knock(ids.alice).sig });
  const denied = events.filter((e) => e.event === 'relay.denied').length;
  assert.ok(denied <= 20, `${denied} lines for 300 refusals`);
  const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  const broken = setup({ log, requests: { submit: () => Promise.reject(aborted) } });
  t.after(broken.stop);
  await broken.post(knock(ids.bob));
  assert.equal(events.filter((e) => e.event === 'relay.error').length, 0);
  assert.equal(events.filter((e) => e.event === 'relay.client_aborted').length, 1);
});
