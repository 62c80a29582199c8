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
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, 'plain JSON');

  // `knockgw status` says the same in words, read over the control socket.
  const dir = await mkdtemp(join(tmpdir(), 'kgw-status-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const control = join(dir, 'ctl.sock');
  const server = await startControlServer(control, { status: () => g.gateway.status(), revoke: () => Promise.resolve({ closed: [] }), metrics: () => '', activity: () => g.gateway.activity() }, log.logger);
  t.after(() => server.close());
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => ((out += chunk), true));
  try {
    assert.equal(await runControlCommand({ cmd: 'status', json: false, control }), 0);
  } finally {
    process.stdout.write = write;
  }
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
