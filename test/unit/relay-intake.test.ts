import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApp } from '../../relay/app.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import type { GrantRequest, GrantRequestSink } from '../../gateway/protocol/relay-v1.ts';
import { checkGrantRequest, createRelaySource } from '../../gateway/services/source-relay.ts';
import { createIntake } from '../../gateway/services/intake.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import type { GrantService } from '../../gateway/services/grants.ts';
import { createLogBudget } from '../../gateway/core/log-budget.ts';
import { captureLog, collectOpens, fixedClock, identities, knock, memoryNonces, NOW_MS, type OpenedDoor } from '../helpers/relay-fixtures.ts';

const ids = identities();
const OBSERVED = '203.0.113.7';

/** relay app -> (optionally tampering) queue -> the gateway's relay source, all in memory. */
async function pipeline(tamper?: (r: GrantRequest) => GrantRequest) {
  const queue = createMemoryRequestQueue();
  const sink: GrantRequestSink = { submit: (r) => queue.submit(tamper ? tamper(r) : r) };
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: sink, clock: fixedClock(), getClientIp: () => OBSERVED });
  const { log, events } = captureLog();
  const gateway = await collectOpens([createRelaySource({ keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), logger: log, requests: queue.source() })]);
  const post = (body: unknown) => app.request('/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const settle = () => new Promise((r) => setTimeout(r, 10));
  return { queue, app, post, opened: gateway.opened, denied: gateway.denied, events, intake: gateway, settle };
}

void test('a knock accepted by the relay opens the door at the gateway for the observed IP', async (t) => {
  const p = await pipeline();
  t.after(() => p.intake.stop());
  for (const who of ['alice', 'bob'] as const) assert.equal((await p.post(knock(ids[who]))).status, 202);
  await p.settle();
  assert.deepEqual(p.opened, [{ door: 'openSSH', ip: OBSERVED, source: 'relay' }, { door: 'openSSH', ip: OBSERVED, source: 'relay' }]);
});

void test('a request whose signed fields were changed after the relay accepted it is dropped at the gateway', async (t) => {
  const p = await pipeline((r) => ({ ...r, ip: '198.51.100.66' }));
  t.after(() => p.intake.stop());
  assert.equal((await p.post(knock(ids.carol, { ip: '198.51.100.9' }))).status, 202);
  await p.settle();
  assert.deepEqual(p.opened, []);
  const denied = p.events.filter((e) => e.event === 'knock.denied');
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.code, 'KGW_RELAY_BAD_SIGNATURE');
  assert.equal(denied[0]?.client, 'carol');
  assert.deepEqual(p.denied, ['relay: KGW_RELAY_BAD_SIGNATURE'], 'and the console\'s chart counts it');
});

void test('the gateway drops what a compromised relay writes on its own', async () => {
  const { log, events } = captureLog();
  const opened: OpenedDoor[] = [];
  const deps = { keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), logger: log };
  const budget = createLogBudget(log, { perWindow: 100, windowMs: 10_000, now: () => NOW_MS });
  const handle = async (id: string, payload: unknown) => {
    const v = await checkGrantRequest(deps, budget, id, payload);
    if (v.ok) opened.push({ door: v.proof.door, ip: v.proof.ip, source: 'relay' });
    return v;
  };
  const legit = { ...knock(ids.bob), observedIp: OBSERVED, receivedAt: NOW_MS };
  const cases: [unknown, string][] = [
    [{ ...knock(ids.bob), sig: knock(ids.alice).sig, observedIp: OBSERVED, receivedAt: NOW_MS }, 'KGW_RELAY_BAD_SIGNATURE'],
    [{ ...knock(ids.bob, { door: 'openWeb' }), observedIp: OBSERVED, receivedAt: NOW_MS }, 'KGW_RELAY_DOOR_FORBIDDEN'],
    [{ ...knock(ids.bob, { ip: '198.51.100.1' }), observedIp: OBSERVED, receivedAt: NOW_MS }, 'KGW_RELAY_IP_FORBIDDEN'],
    [{ ...knock(ids.bob, { ts: NOW_MS / 1000 - 300 }), observedIp: OBSERVED, receivedAt: NOW_MS }, 'KGW_RELAY_STALE'],
    [{ ...knock(ids.bob), observedIp: '0.0.0.0', receivedAt: NOW_MS }, 'KGW_IP_REFUSED'],
    [{ ...knock(ids.bob), client: 'mallory', observedIp: OBSERVED, receivedAt: NOW_MS }, 'KGW_RELAY_UNKNOWN_CLIENT'],
    [{ hello: 'world' }, 'KGW_RELAY_MALFORMED'],
    [undefined, 'KGW_RELAY_MALFORMED'],
  ];
  for (const [payload, code] of cases) {
    const out = await handle('x', payload);
    assert.deepEqual([out.ok, out.ok ? '' : out.code], [false, code]);
  }
  assert.deepEqual(opened, []);
  assert.equal(events.filter((e) => e.event === 'knock.denied').length, cases.length);
  // A valid request twice (two gateway nodes, or a replay written into the queue) opens once.
  assert.equal((await handle('y', legit)).ok, true);
  const again = await handle('z', legit);
  assert.deepEqual(again.ok ? '' : again.code, 'KGW_RELAY_REPLAY');
  assert.equal(opened.length, 1);
});

void test('a grant that fails to open is logged and the intake keeps consuming', async (t) => {
  const queue = createMemoryRequestQueue();
  const { log, events } = captureLog();
  let calls = 0;
  const grants = { open: () => (++calls === 1 ? Promise.reject(new Error('firewall busy')) : Promise.resolve()) } as unknown as GrantService;
  const via: string[] = [];
  const intake = createIntake({ grants, clock: fixedClock(), logger: log, metrics: createMetrics(), onGranted: (how) => via.push(how) });
  const gateway = await collectOpens([createRelaySource({ keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), logger: log, requests: queue.source() })], (p) => intake.submit(p));
  t.after(() => gateway.stop());
  await queue.submit({ ...knock(ids.bob), observedIp: OBSERVED, receivedAt: NOW_MS });
  await queue.submit({ ...knock(ids.alice), observedIp: OBSERVED, receivedAt: NOW_MS });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(calls, 2);
  assert.equal(events.filter((e) => e.event === 'relay.granted').length, 1);
  assert.deepEqual(via, ['relay'], 'only the grant that opened is charted, as a relay knock (a keys-file client)');
  assert.match(String(events.find((e) => e.event === 'knock.error')?.err), /firewall busy/);
});
