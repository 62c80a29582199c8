import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { relayKnock } from '../../gateway/client/relay-knock.ts';
import { createApp } from '../../relay/app.ts';
import { nodeClientIp, startRelayServer } from '../../relay/server.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import { parseGrantRequest, type QueuedRequest } from '../../gateway/protocol/relay-v1.ts';
import { identities, knock, memoryNonces } from '../helpers/relay-fixtures.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

const ids = identities();

async function serveRelay(t: { after(fn: () => Promise<void>): void }, trustedProxies = 0) {
  const queue = createMemoryRequestQueue();
  const source = queue.source();
  const received: QueuedRequest[] = [];
  const pump = (async () => { for await (const q of source) received.push(q); })();
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: queue, clock: { now: () => Date.now() }, getClientIp: nodeClientIp(trustedProxies) });
  const server = await startRelayServer({ listen: '127.0.0.1:0', app });
  t.after(async () => { await server.close(); await source.close(); await pump; });
  return { url: server.url, received };
}

void test('the real Node server answers /v1/ip and takes a signed knock from relayKnock; a loopback caller is refused, not accepted', async (t) => {
  const { url, received } = await serveRelay(t);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const ip = await fetch(`${url}/v1/ip`);
  assert.equal(await ip.text(), '127.0.0.1\n');

  const dir = await mkdtemp(join(tmpdir(), 'kgw-relay-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'alice.key');
  await writeFile(keyFile, ids.aliceKeyFile, { mode: 0o600 });
  // The gateway would never grant 127.0.0.1: the relay says so instead of answering "accepted".
  await assert.rejects(relayKnock({ url, keyFile, door: 'openSSH' }), (e: unknown) => isKnockgwError(e, 'KGW_RELAY_IP_FORBIDDEN') && e.detail.status === 403);
  assert.equal(received.length, 0);

  // The same client seen through a trusted proxy from a routable address is accepted and queued.
  const proxied = await serveRelay(t, 1);
  const answer = await relayKnock({ url: proxied.url, keyFile, door: 'openSSH', fetchImpl: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, 'x-forwarded-for': '203.0.113.44' } }) });
  assert.equal(answer.ip, '203.0.113.44');
  assert.equal(answer.door, 'openSSH');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(proxied.received.length, 1);
  assert.equal(parseGrantRequest(proxied.received[0]?.payload).observedIp, '203.0.113.44');
});

void test('a spoofed X-Forwarded-For does not change the address without trusted proxies', async (t) => {
  const { url } = await serveRelay(t);
  const res = await fetch(`${url}/v1/ip`, { headers: { 'x-forwarded-for': '198.51.100.66', accept: 'application/json' } });
  assert.deepEqual(await res.json(), { ip: '127.0.0.1' });
  const k = await fetch(`${url}/v1/knock`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.66' },
    body: JSON.stringify(knock(ids.bob, { ts: Math.floor(Date.now() / 1000), ip: '198.51.100.66' })),
  });
  assert.equal(k.status, 403);
});

void test('with one trusted proxy the rightmost X-Forwarded-For entry is the client, never the leftmost', async (t) => {
  const { url } = await serveRelay(t, 1);
  const res = await fetch(`${url}/v1/ip`, { headers: { 'x-forwarded-for': '198.51.100.66, 203.0.113.9' } });
  assert.equal(await res.text(), '203.0.113.9\n');
  const none = await fetch(`${url}/v1/ip`);
  assert.equal(none.status, 400);
  assert.equal((await none.json() as { error: { code: string } }).error.code, 'KGW_RELAY_MALFORMED');
});

void test('a chunked body over 4 KiB is cut off with 413 over a real socket', async (t) => {
  const { url } = await serveRelay(t);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${url}/v1/knock`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    for (let i = 0; i < 10; i++) req.write(`{"pad":"${'x'.repeat(1000)}",`);
    req.end('"v":1}');
  });
  assert.equal(status, 413);
});

void test('the Node relay cuts off a client that never finishes its headers and caps connections per address', async (t) => {
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: createMemoryRequestQueue(), clock: { now: () => Date.now() }, getClientIp: nodeClientIp(0) });
  const server = await startRelayServer({ listen: '127.0.0.1:0', app, limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsPerIp: 2 } });
  t.after(() => server.close());
  const port = Number(new URL(server.url).port);
  const open = (): Promise<Socket> => new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    s.resume();
  });
  const closes = (s: Socket, ms: number): Promise<boolean> => new Promise((resolve) => {
    s.once('close', () => resolve(true));
    setTimeout(() => resolve(false), ms);
  });
  const slow = await open();
  slow.write('POST /v1/knock HTTP/1.1\r\nHost: x\r\n');
  const second = await open();
  const third = await open();
  assert.equal(await closes(third, 1000), true, 'a third connection from one address is closed at once');
  assert.equal(await closes(slow, 4000), true, 'the slow client is cut off after the headers timeout');
  second.destroy();
});
