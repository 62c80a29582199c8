import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGcpCloudFirewall, ruleName, type GcpCloudFirewall } from '../../gateway/adapters/cloud/index.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import type { Grant } from '../../gateway/core/grant.ts';
import { startGceFake, type GceFake, type GceFakeOptions } from '../fakes/gce.ts';
import { captureLog, grantFor } from '../helpers/cloud.ts';

// Enough attempts that a throttled burst always gets through on a loaded machine (full jitter
// can make a run of tiny delays), still fast enough for a test.
const FAST = { baseMs: 5, capMs: 200, maxAttempts: 30, budgetMs: 20_000 };

async function setup(t: { after(fn: () => Promise<void> | void): void }, fakeOpts: GceFakeOptions = {}): Promise<{ fake: GceFake; fw: GcpCloudFirewall }> {
  const fake = await startGceFake(fakeOpts);
  const fw = await createGcpCloudFirewall({
    config: { project: fake.project, network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 900, mode: 'per-grant', endpoint: fake.endpoint },
    logger: captureLog().logger,
    protectedPorts: [{ port: 22, proto: 'tcp' }],
    retry: FAST,
    requestTimeoutMs: 2_000,
  });
  t.after(async () => { await fw.close(); await fake.close(); });
  return { fake, fw };
}

void test('a grant becomes one INGRESS rule per family with a /32 or /128 source and the gateway target tag', async (t) => {
  const { fake, fw } = await setup(t);
  const v4 = grantFor('203.0.113.9', { ports: [{ port: 22, proto: 'tcp' }, { port: 2222, proto: 'tcp' }, { port: 60001, proto: 'udp' }] });
  const v6 = grantFor('2001:db8::9');
  await fw.grant([v4, v6]);
  const rules = new Map(fake.firewalls().map((r) => [r.name, r]));
  assert.equal(rules.size, 2);
  const r4 = rules.get(ruleName(v4.id, 4));
  assert.deepEqual(r4?.sourceRanges, ['203.0.113.9/32']);
  assert.deepEqual(r4?.allowed, [{ IPProtocol: 'tcp', ports: ['22', '2222'] }, { IPProtocol: 'udp', ports: ['60001'] }]);
  assert.equal(r4?.direction, 'INGRESS');
  assert.equal(r4?.priority, 900);
  assert.deepEqual(r4?.targetTags, ['knockgw']);
  assert.equal(r4?.network, `projects/${fake.project}/global/networks/default`);
  assert.deepEqual(rules.get(ruleName(v6.id, 6))?.sourceRanges, ['2001:db8::9/128']);
  for (const name of rules.keys()) assert.match(name, /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
  const listed = await fw.list();
  assert.deepEqual(listed.map((r) => r.grantId).sort(), [v4.id, v6.id].sort());
  await fw.revoke([v4, v6]);
  assert.equal(fake.firewalls().length, 0);
});

void test("a door's scope reaches the VPC firewall: a carrier /24 and an IPv6 /64 are the rules' source ranges", async (t) => {
  const { fake, fw } = await setup(t);
  const v4 = grantFor('198.51.100.77', { prefix: 24 });
  const v6 = grantFor('2001:db8:1:2:aaaa::5', { prefix: 64 });
  await fw.grant([v4, v6]);
  const rules = new Map(fake.firewalls().map((r) => [r.name, r]));
  assert.deepEqual(rules.get(ruleName(v4.id, 4))?.sourceRanges, ['198.51.100.0/24']);
  assert.deepEqual(rules.get(ruleName(v6.id, 6))?.sourceRanges, ['2001:db8:1:2::/64']);
  await fw.revoke([v4, v6]);
  assert.equal(fake.firewalls().length, 0);
});

void test('409 alreadyExists on insert and 404 notFound on delete count as success', async (t) => {
  const { fake, fw } = await setup(t);
  const g = grantFor('203.0.113.10');
  await fw.grant([g]);
  // A second node grants the same grant at the same moment: one insert wins, the other gets 409.
  const racing = await createGcpCloudFirewall({ config: { project: fake.project, network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 900, mode: 'per-grant', endpoint: fake.endpoint }, logger: captureLog().logger, protectedPorts: [], retry: FAST });
  t.after(() => racing.close());
  const h = grantFor('203.0.113.11');
  await Promise.all([fw.grant([h]), racing.grant([h])]);
  assert.equal(fake.calls['firewalls.insert'], 3);
  // At least once: the winner's rule may not be readable yet, and the loser looks again (on a loaded machine it does).
  assert.ok((fake.calls['firewalls.get'] ?? 0) >= 1, 'the 409 loser checked the existing rule');
  assert.equal(fake.firewalls().length, 2);
  await racing.revoke([grantFor('203.0.113.77')]);
  await fw.revoke([h]);
  await fw.revoke([g]);
  await fw.revoke([g]);
  assert.equal(fake.firewalls().length, 0);
});

void test('an operation error surfaces as a coded error (quota → KGW_CLOUD_QUOTA)', async (t) => {
  const { fake, fw } = await setup(t, { maxRules: 1 });
  await fw.grant([grantFor('203.0.113.21')]);
  await assert.rejects(fw.grant([grantFor('203.0.113.22')]), (err) => isKnockgwError(err, 'KGW_CLOUD_QUOTA') && /QUOTA_EXCEEDED/.test(err.message));
  fake.inject('operation-error', 1, { method: 'firewalls.delete' });
  await assert.rejects(fw.revoke([grantFor('203.0.113.21')]), (err) => isKnockgwError(err, 'KGW_CLOUD_QUOTA'));
});

void test('refuses 0.0.0.0, ::, an empty address and a grant without ports before any API call, and never sends an empty sourceRanges', async (t) => {
  const { fake, fw } = await setup(t);
  const bad = (ip: string): Grant => ({ ...grantFor('203.0.113.13'), ip });
  for (const g of [bad('0.0.0.0'), bad('::'), bad(''), bad('203.0.113.0/24'), { ...grantFor('203.0.113.13'), ports: [] }]) {
    await assert.rejects(fw.grant([g]), (err) => isKnockgwError(err, 'KGW_CLOUD_REFUSED'));
  }
  assert.equal(fake.totalCalls(), 0);
  await fw.grant([grantFor('203.0.113.14'), grantFor('2001:db8::14')]);
  assert.ok(fake.inserted.length > 0);
  for (const body of fake.inserted) assert.equal(body.sourceRanges?.length, 1, `rule ${body.name} has exactly one source range`);
});

void test('429 and 5xx are retried with backoff until the call goes through', async (t) => {
  const { fake, fw } = await setup(t, { bucket: { burst: 3, refillPerSec: 20 } });
  fake.inject('server-error', 3, { method: 'firewalls.insert' });
  const grants = Array.from({ length: 12 }, (_, i) => grantFor(`198.51.100.${i + 1}`));
  await fw.grant(grants);
  assert.equal(fake.firewalls().length, 12);
  assert.ok(fake.throttled.count > 0, 'the token bucket pushed back');
  assert.ok(fw.stats().retries >= 3);
  const calls = Object.values(fw.apiCalls?.() ?? {}).reduce((a, b) => a + b, 0);
  t.diagnostic(`gcp: ${calls} API calls for ${grants.length} grants (${(calls / grants.length).toFixed(2)}/grant; GCE has no batch insert), ${fake.throttled.count} throttled`);
});

void test('a malformed JSON answer is a KGW_CLOUD_RESPONSE error', async (t) => {
  const { fake, fw } = await setup(t);
  fake.inject('malformed', 1, { method: 'firewalls.list' });
  await assert.rejects(fw.list(), (err) => isKnockgwError(err, 'KGW_CLOUD_RESPONSE'));
});
