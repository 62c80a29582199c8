import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAwsCloudFirewall } from '../../gateway/adapters/cloud/index.ts';
import { createCloudSync } from '../../gateway/services/cloud-sync.ts';
import type { CloudFirewall } from '../../gateway/ports.ts';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from '../fakes/ec2.ts';
import { captureLog, grantFor, manyIps, useDummyAwsCredentials, type CapturedLog } from '../helpers/cloud.ts';

useDummyAwsCredentials();
const FAST = { baseMs: 5, capMs: 50, maxAttempts: 4, budgetMs: 5_000 };
const PL = 'pl-0123456789abcdef0';

interface Lab { fake: Ec2Fake; log: CapturedLog; adapter: () => Promise<CloudFirewall & { close(): void }> }

async function lab(t: { after(fn: () => Promise<void> | void): void }, mode: 'rules' | 'prefix-list' = 'rules', fakeOpts: Ec2FakeOptions = {}): Promise<Lab> {
  const fake = await startEc2Fake({ prefixLists: [{ id: PL, family: 4 }], ...fakeOpts });
  const log = captureLog();
  const made: { close(): void }[] = [];
  t.after(async () => { for (const m of made) m.close(); await fake.close(); });
  return {
    fake,
    log,
    adapter: async () => {
      const fw = await createAwsCloudFirewall({ config: { region: 'eu-west-1', securityGroupIds: ['sg-0123456789abcdef0'], mode, prefixListId: PL, endpoint: fake.endpoint }, logger: log.logger, protectedPorts: [{ port: 22, proto: 'tcp' }], retry: FAST, settlePollMs: 20 });
      made.push(fw);
      return fw;
    },
  };
}

const clockAt = (ms: number): { now(): number; set(v: number): void } => {
  let now = ms;
  return { now: () => now, set: (v) => { now = v; } };
};

void test('reconcile grants what is missing, revokes what is gone, and a second pass changes nothing', async (t) => {
  const { fake, log, adapter } = await lab(t);
  const clock = clockAt(Date.now());
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock });
  const [a, b, c] = manyIps(3).map((ip) => grantFor(ip, { now: clock.now() }));
  if (!a || !b || !c) throw new Error('setup');
  let r = await sync.reconcile([a, b]);
  assert.deepEqual([r.granted, r.revoked, r.errors], [2, 0, 0]);
  assert.deepEqual(fake.rules().map((x) => x.cidr).sort(), [`${a.ip}/32`, `${b.ip}/32`].sort());
  r = await sync.reconcile([b, c]);
  assert.deepEqual([r.granted, r.revoked, r.errors], [1, 1, 0]);
  assert.deepEqual(fake.rules().map((x) => x.cidr).sort(), [`${b.ip}/32`, `${c.ip}/32`].sort());
  r = await sync.reconcile([b, c]);
  assert.deepEqual([r.granted, r.revoked, r.apiCalls], [0, 0, 0], 'an idle pass costs no call: the cloud is known from the last listing and writes');
  assert.equal(log.named('cloud.grant').length, 2);
  assert.equal(log.named('cloud.revoke').length, 1);
  // An expired grant in the desired set is revoked, not granted.
  clock.set((c.expiresAt ?? 0) + 1);
  r = await sync.reconcile([b, c]);
  assert.equal(r.revoked, 2);
  assert.equal(fake.rules().length, 0);
});

void test('a daemon killed between authorize and writing its state: the sweeper removes the orphan rule once its expiry passed', async (t) => {
  const { fake, log, adapter } = await lab(t);
  const now = Date.now();
  const g = grantFor('203.0.113.80', { ttlMs: 2_000, now });
  const kept = grantFor('203.0.113.81', { ttlMs: 3_600_000, now });
  // The first process authorized both, then died: no state file, no store entry for `g`.
  await (await adapter()).grant([g, kept]);
  assert.equal(fake.rules().length, 2);
  // A fresh process (nothing reconciled yet) sweeps after g's expiry.
  const clock = clockAt(now + 60_000);
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock });
  const r = await sync.sweep();
  assert.equal(r.revoked, 1);
  assert.deepEqual(fake.rules().map((x) => x.cidr), ['203.0.113.81/32']);
  assert.equal(log.named('cloud.sweep').length, 1);
  assert.equal(sync.counters().swept, 1);
});

void test('the sweeper keeps a rule whose grant was extended (still live in the desired set)', async (t) => {
  const { fake, log, adapter } = await lab(t);
  const now = Date.now();
  const g = grantFor('203.0.113.82', { ttlMs: 2_000, now });
  const clock = clockAt(now);
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock });
  await sync.reconcile([g]);
  const extended = { ...g, expiresAt: now + 3_600_000 };
  await sync.reconcile([extended]);
  clock.set(now + 60_000);
  assert.equal((await sync.sweep()).revoked, 0);
  assert.equal(fake.rules().length, 1);
});

void test('cloud failures are logged as cloud.error with a code and counted, never thrown', async (t) => {
  const { fake, log, adapter } = await lab(t);
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock: clockAt(Date.now()) });
  fake.inject('server-error', 100);
  const r = await sync.reconcile([grantFor('203.0.113.83')]);
  assert.equal(r.errors, 1);
  const errs = log.named('cloud.error');
  assert.equal(errs[0]?.code, 'KGW_CLOUD_API');
  assert.equal(errs[0]?.op, 'list');
  assert.equal(sync.counters().errors, 1);
  // A grant the cloud must never see is refused and counted; the others still go through.
  fake.inject('server-error', 0);
  const fresh = await lab(t);
  const sync2 = createCloudSync({ firewalls: [await fresh.adapter()], logger: fresh.log.logger, clock: clockAt(Date.now()) });
  const r2 = await sync2.reconcile([{ ...grantFor('203.0.113.84'), ip: '0.0.0.0' }, grantFor('203.0.113.85')]);
  assert.deepEqual([r2.granted, r2.errors], [1, 1]);
  assert.deepEqual(fresh.fake.rules().map((x) => x.cidr), ['203.0.113.85/32']);
  assert.equal(fresh.log.named('cloud.error')[0]?.code, 'KGW_CLOUD_REFUSED');
});

void test('two reconciles never overlap', async (t) => {
  const { log, adapter } = await lab(t);
  const inner = await adapter();
  let inFlight = 0, maxInFlight = 0;
  const track = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try { return await fn(...a); } finally { inFlight--; }
  };
  const fw: CloudFirewall = { name: 'aws', list: track(() => inner.list()), grant: track((g) => inner.grant(g)), revoke: track((g) => inner.revoke(g)) };
  const sync = createCloudSync({ firewalls: [fw], logger: log.logger, clock: clockAt(Date.now()) });
  const grants = manyIps(6).map((ip) => grantFor(ip));
  const reports = await Promise.all([sync.reconcile(grants.slice(0, 3)), sync.reconcile(grants), sync.sweep(), sync.reconcile(grants.slice(3))]);
  assert.equal(maxInFlight, 1);
  assert.deepEqual(reports.map((r) => r.kind), ['reconcile', 'reconcile', 'sweep', 'reconcile']);
  assert.deepEqual((await inner.list()).map((r) => r.ip).sort(), manyIps(6).slice(3).sort());
});

void test('a node that is not the leader leaves the cloud alone', async (t) => {
  const { fake, log, adapter } = await lab(t);
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock: clockAt(Date.now()), isLeader: () => false });
  const r = await sync.reconcile([grantFor('203.0.113.86')]);
  assert.equal(r.ran, false);
  assert.equal(fake.totalCalls(), 0);
});

void test('prefix-list mode: two doors of one IP share an entry, closing one door keeps it open', async (t) => {
  const { fake, log, adapter } = await lab(t, 'prefix-list');
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock: clockAt(Date.now()) });
  const ssh = grantFor('203.0.113.87', { door: 'openSSH' });
  const web = grantFor('203.0.113.87', { door: 'openWeb', ports: [{ port: 443, proto: 'tcp' }] });
  await sync.reconcile([ssh, web]);
  assert.deepEqual([...fake.prefixList(PL).entries.keys()], ['203.0.113.87/32']);
  const r = await sync.reconcile([web]);
  assert.equal(r.revoked, 0);
  assert.equal(fake.prefixList(PL).entries.size, 1);
  await sync.reconcile([]);
  assert.equal(fake.prefixList(PL).entries.size, 0);
});

void test('counters expose API calls per provider and action (the bench divides them by grants)', async (t) => {
  const { log, adapter } = await lab(t, 'prefix-list', { bucket: { burst: 5, refillPerSec: 5 } });
  const sync = createCloudSync({ firewalls: [await adapter()], logger: log.logger, clock: clockAt(Date.now()) });
  const grants = manyIps(100).map((ip) => grantFor(ip));
  const r = await sync.reconcile(grants);
  assert.equal(r.granted, 100);
  const calls = Object.values(sync.counters().apiCalls.aws ?? {}).reduce((a, b) => a + b, 0);
  t.diagnostic(`reconcile of 100 grants (prefix-list): ${calls} API calls, ${(calls / 100).toFixed(2)} per grant`);
  assert.equal(calls, r.apiCalls);
  assert.ok(calls / 100 <= 0.2);
});
