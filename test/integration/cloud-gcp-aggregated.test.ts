// GCP aggregated mode against the GCE fake (real REST wire protocol, operations, the per-rule
// source-range limit and GCE's 413 for exceeding it), through the real cloud sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregatedRuleName } from '../../gateway/adapters/cloud/index.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { createCloudSync } from '../../gateway/services/cloud-sync.ts';
import type { FakeFirewall } from '../fakes/gce.ts';
import { grantFor, manyIps } from '../helpers/cloud.ts';
import { clockAt, gcpLab, SSH } from '../helpers/cloud-labs.ts';

const totalCalls = (calls: Readonly<Record<string, number>> | undefined): number => Object.values(calls ?? {}).reduce((a, b) => a + b, 0);
const ranges = (rules: readonly FakeFirewall[]): string[] => rules.flatMap((r) => r.sourceRanges ?? []).sort();
const RULE = /^knockgw-[0-9a-f]{12}-\d{1,2}-v[46]$/;

/** No knockgw rule may ever be empty (GCE reads that as 0.0.0.0/0) or mix families. */
function assertSafe(rules: readonly FakeFirewall[], sent: readonly { sourceRanges?: string[] | undefined }[]): void {
  for (const body of sent) assert.ok((body.sourceRanges?.length ?? 0) > 0, 'no write carries an empty sourceRanges');
  for (const r of rules) {
    assert.match(r.name, RULE);
    const src = r.sourceRanges ?? [];
    assert.ok(src.length > 0 && !src.includes('0.0.0.0/0') && !src.includes('::/0'), `${r.name} is never world-open`);
    assert.ok(src.every((c) => c.includes(':')) || src.every((c) => !c.includes(':')), `${r.name} holds one family`);
  }
}

void test('100 grants in a burst under throttling: one rule per door and family, ≤ 0.2 API calls per grant', async (t) => {
  const lab = await gcpLab(t, 'aggregated', { bucket: { burst: 2, refillPerSec: 10 } });
  const fw = await lab.adapter();
  const sync = createCloudSync({ firewalls: [fw], logger: lab.log.logger, clock: clockAt(Date.now()) });
  const grants = [...manyIps(99).map((ip) => grantFor(ip)), grantFor('2001:db8::100')];
  const r = await sync.reconcile(grants);
  assert.deepEqual([r.granted, r.errors], [100, 0]);
  const rules = lab.fake.firewalls();
  assert.deepEqual(rules.map((x) => x.name).sort(), [aggregatedRuleName('openSSH', SSH, 4, 0), aggregatedRuleName('openSSH', SSH, 6, 0)].sort());
  assert.equal(rules.find((x) => x.name.endsWith('-v4'))?.sourceRanges?.length, 99);
  assert.deepEqual(rules.find((x) => x.name.endsWith('-v6'))?.sourceRanges, ['2001:db8::100/128']);
  assert.deepEqual(rules[0]?.allowed, [{ IPProtocol: 'tcp', ports: ['22'] }]);
  assert.deepEqual(rules[0]?.targetTags, ['knockgw']);
  assertSafe(rules, [...lab.fake.inserted, ...lab.fake.patched.map((p) => p.body)]);
  const perGrant = totalCalls(fw.apiCalls?.()) / grants.length;
  t.diagnostic(`gcp aggregated burst: ${totalCalls(fw.apiCalls?.())} API calls for 100 grants (${perGrant.toFixed(2)}/grant), ${lab.fake.throttled.count} throttled`);
  assert.ok(perGrant <= 0.2, `calls per grant ${perGrant}`);
  assert.ok(lab.fake.throttled.count > 0, 'the token bucket pushed back');

  // Revoking all of them: each emptied rule is deleted, never patched empty.
  const revoked = await sync.reconcile([]);
  assert.deepEqual([revoked.revoked, revoked.errors], [100, 0]);
  assert.equal(lab.fake.firewalls().length, 0);
  assertSafe([], lab.fake.patched.map((p) => p.body));
});

void test('a lone knock is one PATCH and its operation wait; other doors get rules of their own', async (t) => {
  const lab = await gcpLab(t, 'aggregated');
  const fw = await lab.adapter();
  const sync = createCloudSync({ firewalls: [fw], logger: lab.log.logger, clock: clockAt(Date.now()) });
  const first = grantFor('203.0.113.20');
  await sync.reconcile([first]);
  const before = lab.fake.totalCalls();
  const second = grantFor('203.0.113.21');
  await sync.reconcile([first, second]);
  assert.deepEqual(Object.keys(lab.fake.calls).filter((k) => (lab.fake.calls[k] ?? 0) > 0).sort(), ['firewalls.insert', 'firewalls.list', 'firewalls.patch', 'operations.wait']);
  assert.equal(lab.fake.totalCalls() - before, 2, 'patch + wait');
  assert.deepEqual(lab.fake.patched.at(-1)?.body.sourceRanges, ['203.0.113.20/32', '203.0.113.21/32'], 'the patch carries the whole list');
  const web = grantFor('203.0.113.20', { door: 'openWeb', ports: [{ port: 443, proto: 'tcp' }] });
  await sync.reconcile([first, second, web]);
  assert.equal(lab.fake.firewalls().length, 2);
  assert.deepEqual(lab.fake.firewalls().find((r) => r.name === aggregatedRuleName('openWeb', web.ports, 4, 0))?.sourceRanges, ['203.0.113.20/32']);
  // Closing one door keeps the other door's rule for the same address.
  await sync.reconcile([first, second]);
  assert.deepEqual(ranges(lab.fake.firewalls()), ['203.0.113.20/32', '203.0.113.21/32']);
});

void test('at the per-rule source-range limit the grants spill into further rules, never past the limit', async (t) => {
  const lab = await gcpLab(t, 'aggregated', { maxSourceRanges: 10 });
  const fw = await lab.adapter({ maxRangesPerRule: 10 });
  const sync = createCloudSync({ firewalls: [fw], logger: lab.log.logger, clock: clockAt(Date.now()) });
  const grants = manyIps(25).map((ip) => grantFor(ip));
  assert.equal((await sync.reconcile(grants)).errors, 0);
  const sizes = (): number[] => lab.fake.firewalls().map((r) => r.sourceRanges?.length ?? 0).sort((a, b) => b - a);
  assert.deepEqual(sizes(), [10, 10, 5]);
  assert.equal(ranges(lab.fake.firewalls()).length, 25);
  // The first rule's ten grants close: that rule is deleted; the next knocks fill the free slot.
  assert.equal((await sync.reconcile(grants.slice(10))).revoked, 10);
  assert.deepEqual(sizes(), [10, 5]);
  await sync.reconcile([...grants.slice(10), ...manyIps(8, 100).map((ip) => grantFor(ip))]);
  assert.deepEqual(sizes(), [10, 10, 3]);
  assertSafe(lab.fake.firewalls(), [...lab.fake.inserted, ...lab.fake.patched.map((p) => p.body)]);

  // Were knockgw to believe in a larger limit, GCE's 413 comes back as a coded quota error.
  const naive = await lab.adapter({ maxRangesPerRule: 50 });
  await assert.rejects(naive.grant(manyIps(15, 200).map((ip) => grantFor(ip, { door: 'other' }))),
    (err) => isKnockgwError(err, 'KGW_CLOUD_QUOTA') && /sourceRanges' is too large: maximum size 10/.test(err.message));
});

void test('expiry: expired grants leave their rule by PATCH; a daemon that died is cleaned up by the sweep', async (t) => {
  const lab = await gcpLab(t, 'aggregated');
  const now = Date.now();
  const clock = clockAt(now);
  const sync = createCloudSync({ firewalls: [await lab.adapter()], logger: lab.log.logger, clock });
  const short = grantFor('203.0.113.30', { ttlMs: 2_000, now });
  const long = grantFor('203.0.113.31', { ttlMs: 10_000, now });
  await sync.reconcile([short, long]);
  clock.set(now + 5_000);
  assert.equal((await sync.reconcile([short, long])).revoked, 1);
  assert.deepEqual(ranges(lab.fake.firewalls()), ['203.0.113.31/32']);

  // The daemon dies with `long` open; a fresh process sweeps once the rule's latest expiry passed.
  const fresh = createCloudSync({ firewalls: [await lab.adapter()], logger: lab.log.logger, clock: clockAt(now + 5_000) });
  assert.equal((await fresh.sweep()).revoked, 0, 'not expired yet: kept');
  const later = createCloudSync({ firewalls: [await lab.adapter()], logger: lab.log.logger, clock: clockAt(now + 20_000) });
  const swept = await later.sweep();
  assert.deepEqual([swept.revoked, swept.errors], [1, 0]);
  assert.equal(lab.fake.firewalls().length, 0);
  assert.equal(lab.log.named('cloud.sweep').length, 1);
});

void test('a leader handover in the middle of a burst loses nothing', async (t) => {
  // Slow operations keep the first leader's write in flight while the lease changes hands.
  const lab = await gcpLab(t, 'aggregated', { operationMs: 300, bucket: { burst: 3, refillPerSec: 10 } });
  let leader: 'a' | 'b' = 'a';
  const a = createCloudSync({ firewalls: [await lab.adapter()], logger: lab.log.logger, clock: clockAt(Date.now()), isLeader: () => leader === 'a' });
  const b = createCloudSync({ firewalls: [await lab.adapter()], logger: lab.log.logger, clock: clockAt(Date.now()), isLeader: () => leader === 'b' });
  const first = manyIps(80).map((ip) => grantFor(ip));
  const all = [...first, ...manyIps(20, 80).map((ip) => grantFor(ip)), grantFor('2001:db8::7')];
  // Both nodes see the desired set (the store is shared); only the leader writes.
  const inFlight = a.reconcile(first);
  assert.equal((await b.reconcile(first)).ran, false);
  const deadline = Date.now() + 5_000;
  while ((lab.fake.calls['firewalls.insert'] ?? 0) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  leader = 'b';
  // The new leader lists before it writes, then converges on the whole desired set.
  const handed = await b.reconcile(all);
  assert.equal(handed.ran, true);
  await inFlight;
  assert.equal((await a.reconcile(all)).ran, false, 'the old leader writes no more');
  // Whatever raced (GCE has no fingerprint), the next periodic pass puts right.
  const repaired = await b.sweep();
  assert.equal(repaired.errors, 0);
  assert.deepEqual(ranges(lab.fake.firewalls()), all.map((g) => `${g.ip}/${g.family === 4 ? 32 : 128}`).sort());
  assertSafe(lab.fake.firewalls(), [...lab.fake.inserted, ...lab.fake.patched.map((p) => p.body)]);
  t.diagnostic(`handover: first pass of the new leader ${handed.errors ? `hit ${handed.errors} race(s), repaired by the sweep` : 'converged at once'}; GCE calls ${JSON.stringify(lab.fake.calls)}`);
});
