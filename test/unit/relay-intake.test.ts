import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApp } from '../../relay/app.ts';
import { createMemoryRequestQueue, type GrantRequest, type GrantRequestSink } from '../../relay/requests.ts';
import { handleGrantRequest, startRelayIntake, type OpenDoorRequest } from '../../gateway/services/relay-intake.ts';
import { captureLog, fixedClock, identities, knock, memoryNonces, NOW_MS } from '../helpers/relay-fixtures.ts';

const ids = identities();
const OBSERVED = '203.0.113.7';

/** relay app -> (optionally tampering) queue -> intake, all in memory. */
function pipeline(tamper?: (r: GrantRequest) => GrantRequest) {
  const queue = createMemoryRequestQueue();
  const sink: GrantRequestSink = { submit: (r) => queue.submit(tamper ? tamper(r) : r) };
  const app = createApp({ keys: ids.keys, nonces: memoryNonces(), requests: sink, clock: fixedClock(), getClientIp: () => OBSERVED });
  const opened: OpenDoorRequest[] = [];
  const { log, events } = captureLog();
  const intake = startRelayIntake({
    keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), log, source: queue.source(),
    openDoor: (r) => { opened.push(r); return Promise.resolve(); },
  });
  const post = (body: unknown) => app.request('/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const settle = () => new Promise((r) => setTimeout(r, 10));
  return { queue, app, post, opened, events, intake, settle };
}

void test('a knock accepted by the relay opens the door at the gateway for the observed IP', async (t) => {
  const p = pipeline();
  t.after(() => p.intake.stop());
  for (const who of ['alice', 'bob'] as const) assert.equal((await p.post(knock(ids[who]))).status, 202);
  await p.settle();
  assert.deepEqual(p.opened, [{ door: 'openSSH', ip: OBSERVED, source: 'relay' }, { door: 'openSSH', ip: OBSERVED, source: 'relay' }]);
});

void test('a request whose signed fields were changed after the relay accepted it is dropped at the gateway', async (t) => {
  const p = pipeline((r) => ({ ...r, ip: '198.51.100.66' }));
  t.after(() => p.intake.stop());
  assert.equal((await p.post(knock(ids.carol, { ip: '198.51.100.9' }))).status, 202);
  await p.settle();
  assert.deepEqual(p.opened, []);
  const denied = p.events.filter((e) => e.event === 'knock.denied');
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.code, 'KGW_RELAY_BAD_SIGNATURE');
  assert.equal(denied[0]?.client, 'carol');
});

void test('the gateway drops what a compromised relay writes on its own', async () => {
  const { log, events } = captureLog();
  const opened: OpenDoorRequest[] = [];
  const deps = { keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), log, openDoor: (r: OpenDoorRequest) => { opened.push(r); return Promise.resolve(); } };
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
    const out = await handleGrantRequest(deps, 'x', payload);
    assert.deepEqual([out.ok, out.ok ? '' : out.code], [false, code]);
  }
  assert.deepEqual(opened, []);
  assert.equal(events.filter((e) => e.event === 'knock.denied').length, cases.length);
  // A valid request twice (two gateway nodes, or a replay written into the queue) opens once.
  assert.equal((await handleGrantRequest(deps, 'y', legit)).ok, true);
  const again = await handleGrantRequest(deps, 'z', legit);
  assert.deepEqual(again.ok ? '' : again.code, 'KGW_RELAY_REPLAY');
  assert.equal(opened.length, 1);
});

void test('a failing openDoor is logged and the intake keeps consuming', async (t) => {
  const queue = createMemoryRequestQueue();
  const { log, events } = captureLog();
  let calls = 0;
  const intake = startRelayIntake({
    keys: ids.keys, nonces: memoryNonces(), clock: fixedClock(), log, source: queue.source(),
    openDoor: () => (++calls === 1 ? Promise.reject(new Error('firewall busy')) : Promise.resolve()),
  });
  t.after(() => intake.stop());
  await queue.submit({ ...knock(ids.bob), observedIp: OBSERVED, receivedAt: NOW_MS });
  await queue.submit({ ...knock(ids.alice), observedIp: OBSERVED, receivedAt: NOW_MS });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(calls, 2);
  assert.equal(events.filter((e) => e.event === 'relay.granted').length, 1);
  assert.match(String(events.find((e) => e.event === 'knock.denied')?.reason), /firewall busy/);
});
