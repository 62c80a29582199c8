import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type AwsCloudFirewall, createAwsCloudFirewall, TAG_EXPIRES, TAG_GRANT } from '../../gateway/adapters/cloud/index.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import type { RetryPolicy } from '../../gateway/adapters/cloud/index.ts';
import type { Grant } from '../../gateway/core/grant.ts';
import type { AwsCloudConfig } from '../../gateway/config/types.ts';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from '../fakes/ec2.ts';
import { captureLog, grantFor, manyIps, useDummyAwsCredentials, type CapturedLog } from '../helpers/cloud.ts';

useDummyAwsCredentials();
// Enough attempts that a throttled burst always gets through on a loaded machine (full jitter
// can make a run of tiny delays), still fast enough for a test.
const FAST = { baseMs: 5, capMs: 200, maxAttempts: 30, budgetMs: 20_000 };
const SSH_PORTS = [{ port: 22, proto: 'tcp' as const }];

async function setup(t: { after(fn: () => Promise<void> | void): void }, fakeOpts: Ec2FakeOptions = {}, cfg: Partial<AwsCloudConfig> = {}, retry: Partial<RetryPolicy> = {}):
  Promise<{ fake: Ec2Fake; fw: AwsCloudFirewall; log: CapturedLog }> {
  const fake = await startEc2Fake(fakeOpts);
  const log = captureLog();
  const fw = await createAwsCloudFirewall({
    config: { region: 'eu-west-1', securityGroupIds: fakeOpts.securityGroups ?? ['sg-0123456789abcdef0'], mode: 'rules', endpoint: fake.endpoint, ...cfg },
    logger: log.logger,
    protectedPorts: SSH_PORTS,
    retry: { ...FAST, ...retry },
    requestTimeoutMs: 500,
    settlePollMs: 20,
    ...(fakeOpts.rulesPerGroup ? { rulesPerGroup: fakeOpts.rulesPerGroup } : {}),
  });
  t.after(async () => { fw.close(); await fake.close(); });
  return { fake, fw, log };
}

void test('a grant becomes one tagged /32 rule per port, and revoke removes it', async (t) => {
  const { fake, fw } = await setup(t);
  const g = grantFor('203.0.113.7', { ports: [{ port: 22, proto: 'tcp' }, { port: 60001, proto: 'udp' }] });
  await fw.grant([g]);
  const rules = fake.rules();
  assert.equal(rules.length, 2);
  for (const r of rules) {
    assert.equal(r.cidr, '203.0.113.7/32');
    assert.equal(r.tags[TAG_GRANT], g.id);
    assert.equal(r.tags[TAG_EXPIRES], String(Math.ceil((g.expiresAt ?? 0) / 1000)));
  }
  assert.deepEqual(rules.map((r) => `${r.fromPort}/${r.proto}`).sort(), ['22/tcp', '60001/udp']);
  const listed = await fw.list();
  assert.deepEqual(listed.map((r) => [r.grantId, r.ip, r.expiresAt]), [[g.id, g.ip, Math.ceil((g.expiresAt ?? 0) / 1000) * 1000], [g.id, g.ip, Math.ceil((g.expiresAt ?? 0) / 1000) * 1000]]);
  await fw.revoke([g]);
  assert.equal(fake.rules().length, 0);
});

void test('an IPv6 grant becomes a /128 rule', async (t) => {
  const { fake, fw } = await setup(t);
  await fw.grant([grantFor('2001:db8::7')]);
  assert.deepEqual(fake.rules().map((r) => [r.family, r.cidr]), [[6, '2001:db8::7/128']]);
});

void test("a door's scope reaches the security group: a carrier /24 and an IPv6 /64 become those CIDRs, in rules and prefix-list mode", async (t) => {
  const v4 = grantFor('198.51.100.77', { prefix: 24 });
  const v6 = grantFor('2001:db8:1:2:aaaa::5', { prefix: 64 });
  const rules = await setup(t);
  await rules.fw.grant([v4, v6]);
  assert.deepEqual(rules.fake.rules().map((r) => [r.family, r.cidr]).sort(), [[4, '198.51.100.0/24'], [6, '2001:db8:1:2::/64']]);
  await rules.fw.revoke([v4, v6]);
  assert.equal(rules.fake.rules().length, 0);
  const lists = await setup(t, { prefixLists: [{ id: 'pl-0123456789abcdef0', family: 4 }, { id: 'pl-0123456789abcdef6', family: 6 }] },
    { mode: 'prefix-list', prefixListId: 'pl-0123456789abcdef0', prefixListIdV6: 'pl-0123456789abcdef6' });
  await lists.fw.grant([v4, v6]);
  assert.deepEqual([...lists.fake.prefixList('pl-0123456789abcdef0').entries.keys()], ['198.51.100.0/24']);
  assert.deepEqual([...lists.fake.prefixList('pl-0123456789abcdef6').entries.keys()], ['2001:db8:1:2::/64']);
});

void test('granting twice and revoking twice both succeed (Duplicate / NotFound are success)', async (t) => {
  const { fake, fw } = await setup(t);
  const g = grantFor('203.0.113.8');
  assert.equal((await fw.grant([g]) ?? []).length, 1, 'grant reports the rule it created');
  // No listing before a grant (a knock costs one call): the second answer is Duplicate, i.e. done.
  assert.equal((await fw.grant([g]) ?? []).length, 1, 'and the rule that was already there');
  assert.equal(fake.rules().length, 1);
  assert.equal(fake.calls.AuthorizeSecurityGroupIngress, 2);
  await fw.revoke([g]);
  await fw.revoke([g]);
  assert.equal(fake.rules().length, 0);
});

void test('two nodes granting the same grant at once: InvalidPermission.Duplicate is success and one rule remains', async (t) => {
  const { fake, fw } = await setup(t);
  const other = await createAwsCloudFirewall({ config: { region: 'eu-west-1', securityGroupIds: ['sg-0123456789abcdef0'], mode: 'rules', endpoint: fake.endpoint }, logger: captureLog().logger, protectedPorts: SSH_PORTS, retry: FAST });
  t.after(() => other.close());
  const g = grantFor('203.0.113.30');
  await Promise.all([fw.grant([g]), other.grant([g])]);
  assert.equal(fake.rules().length, 1);
});

void test('refuses 0.0.0.0/0, ::/0, empty and network ranges before any API call', async (t) => {
  const { fake, fw } = await setup(t);
  const bad = (ip: string): Grant => ({ ...grantFor('203.0.113.31'), ip });
  for (const g of [bad('0.0.0.0'), bad('::'), bad(''), bad('0.0.0.0/0'), bad('::/0'), bad('10.0.0.0/8'), bad('224.0.0.1'), bad('127.0.0.1'), { ...grantFor('203.0.113.31'), ports: [] }]) {
    await assert.rejects(fw.grant([g]), (err) => isKnockgwError(err, 'KGW_CLOUD_REFUSED'), `refused ${g.ip}`);
  }
  // One bad grant refuses the whole batch, good ones included.
  await assert.rejects(fw.grant([grantFor('203.0.113.32'), bad('0.0.0.0')]), (err) => isKnockgwError(err, 'KGW_CLOUD_REFUSED'));
  assert.equal(fake.totalCalls(), 0);
});

void test('5xx answers are retried and the grant goes through once the API recovers', async (t) => {
  const { fake, fw } = await setup(t);
  fake.inject('server-error', 3, { action: 'AuthorizeSecurityGroupIngress' });
  await fw.grant([grantFor('203.0.113.33')]);
  assert.equal(fake.rules().length, 1);
  assert.equal(fake.calls.AuthorizeSecurityGroupIngress, 4);
  assert.equal(fw.stats().retries, 3);
});

void test('a slow answer times out and is retried', async (t) => {
  const { fake, fw } = await setup(t);
  await fw.grant([grantFor('203.0.113.34')]);
  fake.inject('slow', 1, { action: 'DescribeSecurityGroupRules', delayMs: 1_500 });
  assert.equal((await fw.list()).length, 1);
  assert.equal(fake.calls.DescribeSecurityGroupRules, 2);
});

void test('retries stop at the attempt limit with a coded error', async (t) => {
  const { fake, fw } = await setup(t);
  fake.inject('server-error', 50);
  await assert.rejects(fw.list(), (err) => isKnockgwError(err, 'KGW_CLOUD_API') && err.detail.status === 500);
  assert.equal(fake.calls.DescribeSecurityGroupRules, FAST.maxAttempts);
});

void test('a malformed XML answer is a KGW_CLOUD_RESPONSE error', async (t) => {
  const { fake, fw } = await setup(t);
  fake.inject('malformed', 1);
  await assert.rejects(fw.list(), (err) => isKnockgwError(err, 'KGW_CLOUD_RESPONSE'));
});

void test('a full security group spills to the next one, and when all are full: KGW_CLOUD_QUOTA and advice to use prefix lists', async (t) => {
  const groups = ['sg-0000000000000000a', 'sg-0000000000000000b'];
  const { fake, fw, log } = await setup(t, { securityGroups: groups, rulesPerGroup: 5 });
  await fw.grant(manyIps(8).map((ip) => grantFor(ip)));
  const count = (g: string): number => fake.rules().filter((r) => r.groupId === g).length;
  assert.equal(count(groups[0] ?? ''), 5);
  assert.equal(count(groups[1] ?? ''), 3);
  // IPv6 is counted apart: the groups still take v6 rules.
  await fw.grant([grantFor('2001:db8::40')]);
  assert.equal(count(groups[0] ?? ''), 6);
  await assert.rejects(fw.grant(manyIps(4, 100).map((ip) => grantFor(ip))), (err) => isKnockgwError(err, 'KGW_CLOUD_QUOTA'));
  assert.equal(count(groups[1] ?? ''), 5);
  assert.ok(log.named('cloud.quota').some((e) => /prefix-list/.test(String(e.msg))));
});

void test('100 grants in a burst against a throttling EC2: all applied, none lost (batched rules)', async (t) => {
  const groups = ['sg-0000000000000000a', 'sg-0000000000000000b'];
  const { fake, fw } = await setup(t, { securityGroups: groups, bucket: { burst: 3, refillPerSec: 10 } }, {}, { baseMs: 100, capMs: 1_000 });
  const grants = manyIps(100).map((ip) => grantFor(ip));
  await Promise.all([fw.grant(grants.slice(0, 50)), fw.grant(grants.slice(50))]);
  const cidrs = new Set(fake.rules().map((r) => r.cidr));
  assert.equal(cidrs.size, 100);
  assert.equal((await fw.list()).length, 100);
  const perGrant = (fake.totalCalls() - 1) / grants.length; // - the list() just above
  t.diagnostic(`rules mode: ${fake.totalCalls() - 1} API calls for 100 grants (${perGrant.toFixed(2)}/grant), throttled ${fake.throttled.count}`);
  assert.ok(perGrant <= 0.2, `calls per grant ${perGrant}`);
});

void test('prefix-list mode: 100 grants in a burst, ≤ 0.2 API calls per grant, revoke removes them', async (t) => {
  const { fake, fw } = await setup(t, { prefixLists: [{ id: 'pl-0123456789abcdef0', family: 4 }, { id: 'pl-0123456789abcdef6', family: 6 }], bucket: { burst: 2, refillPerSec: 10 } },
    { mode: 'prefix-list', prefixListId: 'pl-0123456789abcdef0', prefixListIdV6: 'pl-0123456789abcdef6' });
  const grants = [...manyIps(99).map((ip) => grantFor(ip)), grantFor('2001:db8::50')];
  await fw.grant(grants);
  assert.equal(fake.prefixList('pl-0123456789abcdef0').entries.size, 99);
  assert.deepEqual([...fake.prefixList('pl-0123456789abcdef6').entries.keys()], ['2001:db8::50/128']);
  const perGrant = fake.totalCalls() / grants.length;
  t.diagnostic(`prefix-list mode: ${fake.totalCalls()} API calls for 100 grants (${perGrant.toFixed(2)}/grant)`);
  assert.ok(perGrant <= 0.2, `calls per grant ${perGrant}`);
  const listed = await fw.list();
  assert.equal(listed.length, 100);
  assert.equal(listed.find((r) => r.ip === '2001:db8::50')?.grantId, grants[99]?.id);
  await fw.revoke(grants);
  assert.equal(fake.prefixList('pl-0123456789abcdef0').entries.size, 0);
  assert.equal(fake.prefixList('pl-0123456789abcdef6').entries.size, 0);
});

void test('prefix-list version conflict: re-read and retry, nothing lost', async (t) => {
  const { fake, fw, log } = await setup(t, { prefixLists: [{ id: 'pl-0123456789abcdef0', family: 4 }] }, { mode: 'prefix-list', prefixListId: 'pl-0123456789abcdef0' });
  fake.inject('concurrent-change', 2, { action: 'ModifyManagedPrefixList' });
  await fw.grant([grantFor('203.0.113.60'), grantFor('203.0.113.61')]);
  assert.equal(fake.prefixList('pl-0123456789abcdef0').entries.size, 2);
  assert.equal(fake.calls.ModifyManagedPrefixList, 3);
  assert.equal(log.named('cloud.conflict').length, 2);
  // A full list is a quota error, not a silent drop.
  fake.prefixList('pl-0123456789abcdef0').maxEntries = 3;
  await assert.rejects(fw.grant([grantFor('203.0.113.62'), grantFor('203.0.113.63')]), (err) => isKnockgwError(err, 'KGW_CLOUD_QUOTA'));
  assert.equal(fake.prefixList('pl-0123456789abcdef0').entries.size, 3);
});
