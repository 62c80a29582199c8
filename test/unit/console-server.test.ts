// The console's gate without a daemon: a fake backend stands in for the control socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackHost, startConsoleServer } from '../../gateway/services/console/server.ts';
import { parseCommand } from '../../gateway/cli.ts';
import { captureLog } from '../helpers/cloud.ts';

void test('only a loopback name or address is a Host the console answers', () => {
  for (const h of ['127.0.0.1:9465', 'localhost:8000', '[::1]:9465', '127.3.2.1', 'localhost']) assert.ok(isLoopbackHost(h), h);
  for (const h of [undefined, '', 'rebound.example:9465', '10.0.0.1:9465', '[::2]:80', 'localhost.evil.example', '127.0.0.1.nip.io']) assert.equal(isLoopbackHost(h), false, String(h));
});

void test('--listen must be a loopback address and port', () => {
  assert.deepEqual(parseCommand(['console']), { cmd: 'console', host: '127.0.0.1', port: 9465, control: '/run/knockgw.sock' });
  assert.deepEqual(parseCommand(['console', '--listen', '[::1]:0']), { cmd: 'console', host: '::1', port: 0, control: '/run/knockgw.sock' });
  assert.throws(() => parseCommand(['console', '--listen', '0.0.0.0:9465']), /KGW_CLI_USAGE.*not a loopback address.*ssh -L/);
  assert.throws(() => parseCommand(['console', '--listen', 'localhost:9465']), /must be ADDR:PORT/);
  assert.throws(() => parseCommand(['console', '--listen', '127.0.0.1:70000']), /must be ADDR:PORT/);
});

void test('the token opens a session; without it every route but the static assets is 403, and a revoke needs the header too', async (t) => {
  const calls: string[] = [];
  const log = captureLog();
  const server = await startConsoleServer({
    host: '127.0.0.1', port: 0, token: 'T0KEN', logger: log.logger,
    backend: { request: (method, path, body) => (calls.push(`${method} ${path} ${JSON.stringify(body ?? null)}`), Promise.resolve({ status: 200, body: '{"closed":[]}' })) },
  });
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  assert.equal(server.url, `${base}/?token=T0KEN`);
  assert.equal((await fetch(`${base}/console.js`)).status, 200);
  assert.equal((await fetch(`${base}/api/activity`)).status, 403);
  const login = await fetch(server.url, { redirect: 'manual' });
  assert.equal(login.status, 303);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const page = await fetch(`${base}/`, { headers: { cookie } });
  assert.match(await page.text(), /<meta name="knockgw-token" content="T0KEN">/);
  assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  const revoke = (headers: Record<string, string>, body = '{"ip":"198.18.0.10"}') => fetch(`${base}/api/revoke`, { method: 'POST', headers: { cookie, ...headers }, body });
  assert.equal((await revoke({})).status, 403);
  assert.equal((await revoke({ 'x-knockgw-token': 'wrong' })).status, 403);
  assert.equal((await revoke({ 'x-knockgw-token': 'T0KEN' }, 'not json')).status, 400);
  assert.equal((await revoke({ 'x-knockgw-token': 'T0KEN' })).status, 200);
  assert.deepEqual(calls, ['POST /v1/revoke {"ip":"198.18.0.10"}']);
  const denied = log.events.filter((e) => e.event === 'console.denied').map((e) => e.reason);
  assert.deepEqual(denied, ['no session token (open the URL knockgw console printed)', 'revoke without the session token header', 'revoke without the session token header']);
});
