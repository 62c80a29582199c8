// `status --json` is a contract (README "Status"): the console and operators' scripts read these
// fields. A gateway with a cloud behind the real lease and sync reports version, uptime, store,
// leader, per-cloud health and per-door engine codes; a failing cloud says so with its error code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlServer } from '../../gateway/services/control-server.ts';
import { runControlCommand } from '../../gateway/commands/control.ts';
import { VERSION } from '../../gateway/kit/version.ts';
import { makeGrant } from '../../gateway/core/grant.ts';
import { kgwError } from '../../gateway/core/errors.ts';
import { doorEngines, planEngines } from '../../gateway/core/engines.ts';
import { createSingleLease } from '../../gateway/adapters/lease/index.ts';
import { runCloud } from '../../gateway/wiring/cloud-runtime.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { CLOSE, DOOR, eventually, logCapture, OPEN, testGateway } from '../helpers/in-process.ts';
import { createMemoryCloud } from '../helpers/memory-cloud.ts';

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

void test('status reports version, uptime, store, leader, clouds, door engines and grants', async (t) => {
  const log = logCapture();
  const cloud = createMemoryCloud('aws');
  const runtime = runCloud({ firewalls: [cloud], lease: (_job, l) => createSingleLease(l), clock: { now: () => Date.now() }, logger: log.logger, metrics: createMetrics() });
  const g = await testGateway(t, { version: VERSION, cloud: runtime, doorEngines: [{ name: 'openSSH', engine: 'kernel' }] });
  await g.gateway.start();
  await g.backend.store.put(makeGrant({ ip: '203.0.113.7', door: DOOR.name, ports: DOOR.open, ttlMs: DOOR.ttlMs, source: 'knock', now: Date.now(), nodeId: 'gw-test' }));
  assert.ok(await eventually(async () => (await g.gateway.status()).clouds[0]?.state === 'ok' && cloud.rules.size === 1, 4000), 'the cloud converged');
  const s = await g.gateway.status();
  assert.equal(s.version, PKG.version);
  assert.equal(typeof s.uptime, 'number');
  assert.ok(s.startedAt && Date.parse(s.startedAt) <= Date.now());
  assert.equal(s.nodeId, 'gw-test');
  assert.deepEqual(s.store, { kind: 'memory', state: 'connected', since: null });
  assert.equal(s.leader, true);
  assert.deepEqual(s.doors, [{ name: 'openSSH', engine: 'kernel' }]);
  const [c] = s.clouds;
  assert.equal(c?.name, 'aws');
  assert.equal(c?.pendingWrites, 0);
  assert.equal(c?.worldOpenRules, 0);
  assert.equal(c?.lastError, null);
  assert.ok(c?.lastListedAt && !Number.isNaN(Date.parse(c.lastListedAt)));
  assert.equal(s.grants.length, 1);
  assert.deepEqual(s.grants[0]?.ports, ['22/tcp']);
  assert.deepEqual(s.grants[0]?.cloudRules, [{ provider: 'aws', rule: `rule-${s.grants[0]?.id}` }], 'the leader names the cloud rule the grant holds');
  assert.deepEqual(s.fleet, [{ nodeId: 'gw-test', self: true, version: PKG.version, store: 'connected', startedAt: s.startedAt, silentFor: 0, silent: false }], "a memory store's fleet is this node");
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, 'plain JSON');

  // `knockgw status` says the same in words, read over the control socket.
  const out = await statusText(t, () => g.gateway.status());
  assert.match(out, new RegExp(`^knockgw ${VERSION.replace(/\./g, '\\.')} · node gw-test · up \\d+ s · firewall \\S+ · store memory connected$`, 'm'));
  assert.match(out, /^this node leads the cloud sync$/m);
  assert.match(out, /^ {2}cloud aws: ok; listed \S+$/m);
  assert.match(out, /^ {2}door openSSH: kernel engine$/m);
  assert.match(out, /^1 live grant\(s\)$/m);
});

void test('a cloud whose writes fail is failing, with the call, the code and the writes left', async (t) => {
  const log = logCapture();
  const cloud = createMemoryCloud('gcp');
  const broken = { ...cloud, grant: () => Promise.reject(kgwError('KGW_CLOUD_API', 'quota')) };
  const runtime = runCloud({ firewalls: [broken], lease: (_job, l) => createSingleLease(l), clock: { now: () => Date.now() }, logger: log.logger, metrics: createMetrics() });
  const g = await testGateway(t, { cloud: runtime });
  await g.gateway.start();
  await g.backend.store.put(makeGrant({ ip: '203.0.113.8', door: DOOR.name, ports: DOOR.open, ttlMs: DOOR.ttlMs, source: 'knock', now: Date.now(), nodeId: 'gw-test' }));
  assert.ok(await eventually(async () => (await g.gateway.status()).clouds[0]?.state === 'failing', 4000), 'reported failing');
  const c = (await g.gateway.status()).clouds[0];
  assert.equal(c?.pendingWrites, 1);
  assert.deepEqual({ op: c?.lastError?.op, code: c?.lastError?.code }, { op: 'grant', code: 'KGW_CLOUD_API' });
  assert.deepEqual((await g.gateway.status()).doors, [{ name: 'openSSH', engine: 'none' }]);
});

void test('without a cloud there is no leader and no cloud entry', async (t) => {
  const g = await testGateway(t);
  await g.gateway.start();
  const s = await g.gateway.status();
  assert.equal(s.leader, null);
  assert.deepEqual(s.clouds, []);
});

void test('door engines as codes: kernel, pcap with the reason, spa', () => {
  const plan = planEngines({ engine: 'auto', firewall: 'iptables', sequences: [OPEN, CLOSE], doors: [DOOR] });
  assert.deepEqual(doorEngines(plan, ['openSSH'], ['laptop']), [
    { name: 'openSSH', engine: 'pcap', reason: 'the iptables backend has no kernel engine' },
    { name: 'laptop', engine: 'spa' },
  ]);
  const kernel = planEngines({ engine: 'kernel', firewall: 'nftables', sequences: [OPEN, CLOSE], doors: [DOOR] });
  assert.deepEqual(doorEngines(kernel, ['openSSH', 'relayOnly'], []), [{ name: 'openSSH', engine: 'kernel' }, { name: 'relayOnly', engine: 'none' }]);
});

/** `knockgw status` (text) of what `status` answers, read over a real control socket. */
async function statusText(t: { after(fn: () => Promise<void> | void): void }, status: () => Promise<unknown>): Promise<string> {
  const log = logCapture();
  const dir = await mkdtemp(join(tmpdir(), 'kgw-status-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const control = join(dir, 'ctl.sock');
  const server = await startControlServer(control, { status, revoke: () => Promise.resolve({ closed: [] }), metrics: () => '', activity: () => ({ minuteMs: 60_000, minutes: [] }) }, log.logger);
  t.after(() => server.close());
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => ((out += chunk), true));
  try {
    assert.equal(await runControlCommand({ cmd: 'status', json: false, control }), 0);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const grantOf = (ip: string, cloudRules: unknown): Record<string, unknown> => ({ id: `g-${ip}`, ip, family: 4, covers: ip, exposure: 'one address', door: 'openSSH', ports: ['22/tcp'], source: 'knock', createdAt: 0, expiresAt: null, nodeId: 'gw-a', cloudRules });
const redisStatus = { version: '0.1.0', uptime: 5, nodeId: 'gw-a', firewall: 'nftables', store: { kind: 'redis', state: 'connected', since: null }, doors: [] };

void test('status in words: the fleet with a silent node, and the cloud rules each grant holds', async (t) => {
  const out = await statusText(t, () => Promise.resolve({
    ...redisStatus, leader: true,
    clouds: [{ name: 'aws', state: 'ok', since: null, lastListedAt: '2026-12-07T06:00:00.000Z', pendingWrites: 0, worldOpenRules: 0, lastError: null }],
    fleet: [
      { nodeId: 'gw-a', self: true, version: '0.1.0', store: 'connected', startedAt: '2026-12-07T05:00:00.000Z', silentFor: 0.2, silent: false },
      { nodeId: 'gw-b', self: false, version: '0.1.0', store: 'connected', startedAt: null, silentFor: 0.7, silent: false },
      { nodeId: 'gw-c', self: false, version: '0.0.9', store: 'cut-off', startedAt: null, silentFor: 74.2, silent: true },
    ],
    grants: [grantOf('203.0.113.7', [{ provider: 'aws', rule: 'sgr-0a1b2c3d4e5f60718' }]), grantOf('203.0.113.8', [])],
  }));
  assert.match(out, /^fleet: 3 node\(s\)$/m);
  assert.match(out, /^ {2}node gw-a: 0\.1\.0, store connected, this node, up since 2026-12-07T05:00:00\.000Z$/m);
  assert.match(out, /^ {2}node gw-b: 0\.1\.0, store connected, heard 0\.7 s ago$/m);
  assert.match(out, /^ {2}node gw-c: 0\.0\.9, store cut-off, SILENT for 74\.2 s \(last said: store cut-off\)$/m);
  assert.match(out, /203\.0\.113\.7 .*; cloud: aws sgr-0a1b2c3d4e5f60718\)$/m);
  assert.match(out, /203\.0\.113\.8 .*; cloud: no rule yet\)$/m);
});

void test('status in words on a follower and on a node that cannot read the roster', async (t) => {
  const out = await statusText(t, () => Promise.resolve({
    ...redisStatus, store: { kind: 'redis', state: 'cut-off', since: '2026-12-07T06:00:00.000Z' }, leader: false,
    clouds: [{ name: 'gcp', state: 'follower', since: null, lastListedAt: null, pendingWrites: 0, worldOpenRules: 0, lastError: null }],
    fleet: null,
    grants: [grantOf('203.0.113.9', null)],
  }));
  assert.match(out, /^fleet: unknown \(the store cannot be read now\)$/m);
  assert.match(out, /203\.0\.113\.9 .*; cloud rules: held by the leader node\)$/m);
});
