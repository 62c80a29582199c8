import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAwsCloudFirewall, TAG_EXPIRES, TAG_GRANT, type AwsCloudFirewall } from '../../gateway/adapters/cloud-aws.ts';
import { isKnockgwError } from '../../gateway/errors.ts';
import type { AwsCloudConfig } from '../../gateway/config/types.ts';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from '../fakes/ec2.ts';
import { captureLog, grantFor, manyIps, useDummyAwsCredentials, type CapturedLog } from '../helpers/cloud.ts';

useDummyAwsCredentials();
const FAST = { baseMs: 5, capMs: 50, maxAttempts: 10, budgetMs: 20_000 };

async function setup(t: { after(fn: () => Promise<void> | void): void }, fakeOpts: Ec2FakeOptions = {}, cfg: Partial<AwsCloudConfig> = {}):
  Promise<{ fake: Ec2Fake; fw: AwsCloudFirewall; log: CapturedLog }> {
  const fake = await startEc2Fake(fakeOpts);
  const log = captureLog();
  const fw = createAwsCloudFirewall({
    config: { region: 'eu-west-1', securityGroupIds: fakeOpts.securityGroups ?? ['sg-0123456789abcdef0'], mode: 'rules', endpoint: fake.endpoint, ...cfg },
    logger: log.logger,
    retry: FAST,
    requestTimeoutMs: 500,
  });
  t.after(async () => { fw.close(); await fake.close(); });
  return { fake, fw, log };
}

test('a grant becomes one tagged /32 rule per port, and revoke removes it', async (t) => {
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

test('an IPv6 grant becomes a /128 rule', async (t) => {
  const { fake, fw } = await setup(t);
  await fw.grant([grantFor('2001:db8::7')]);
  assert.deepEqual(fake.rules().map((r) => [r.family, r.cidr]), [[6, '2001:db8::7/128']]);
});

test('granting twice and revoking twice both succeed (Duplicate / NotFound are success)', async (t) => {
  const { fake, fw } = await setup(t);
  const g = grantFor('203.0.113.8');
  await fw.grant([g]);
  await fw.grant([g]);
  assert.equal(fake.rules().length, 1);
  assert.equal(fake.calls.AuthorizeSecurityGroupIngress, 1, 'the second grant saw the rule and sent nothing');
  await fw.revoke([g]);
  await fw.revoke([g]);
  assert.equal(fake.rules().length, 0);
});
