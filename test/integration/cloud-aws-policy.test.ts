// The generated IAM policy against what the AWS adapter really sends: every call the adapter
// makes to the EC2 fake (spilling across groups, v4 and v6 prefix lists, sweep, world-open
// report) is allowed by gatewayAwsPolicy(config), and the same calls on anything else are not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { awsPartition, createAwsCloudFirewall, gatewayAwsPolicy } from '../../gateway/adapters/cloud/index.ts';
import type { AwsCloudConfig } from '../../gateway/config/types.ts';
import { startEc2Fake } from '../fakes/ec2.ts';
import { captureLog, grantFor, manyIps, useDummyAwsCredentials } from '../helpers/cloud.ts';
import { FAST_RETRY, SSH } from '../helpers/cloud-labs.ts';
import { authorizationsOf, isAllowed } from '../helpers/iam-eval.ts';

const ACCOUNT = '111122223333';
const GROUPS = ['sg-0123456789abcdef0', 'sg-89abcdef'];
const LISTS = { v4: 'pl-0123456789abcdef0', v6: 'pl-0fedcba987654321f' };

async function exercise(t: { after(fn: () => Promise<void> | void): void }, mode: AwsCloudConfig['mode']) {
  useDummyAwsCredentials();
  const fake = await startEc2Fake({ securityGroups: GROUPS, prefixLists: [{ id: LISTS.v4, family: 4 }, { id: LISTS.v6, family: 6 }], rulesPerGroup: 2 });
  t.after(() => fake.close());
  const config: AwsCloudConfig = { region: 'eu-west-1', securityGroupIds: GROUPS, mode, prefixListId: LISTS.v4, prefixListIdV6: LISTS.v6, endpoint: fake.endpoint };
  const fw = await createAwsCloudFirewall({ config, logger: captureLog().logger, protectedPorts: SSH, retry: FAST_RETRY, requestTimeoutMs: 2_000, settlePollMs: 20, rulesPerGroup: 2 });
  t.after(() => fw.close());
  // Three v4 addresses spill past the first group's two rules; v6 goes to its own list in prefix-list mode.
  const grants = [...manyIps(3).map((ip) => grantFor(ip)), grantFor('2001:db8::7')];
  await fw.grant(grants);
  await fw.list();
  await fw.revoke(grants);
  await fw.worldOpen?.();
  return { fake, config, policy: gatewayAwsPolicy(config, ACCOUNT) };
}

for (const mode of ['rules', 'prefix-list'] as const) {
  void test(`${mode} mode: every EC2 call the adapter makes is allowed by the generated policy, on its own resources only`, async (t) => {
    const { fake, config, policy } = await exercise(t, mode);
    const env = { partition: awsPartition(config.region), region: config.region, account: ACCOUNT, taggedManaged: new Set([...GROUPS, LISTS.v4, LISTS.v6]) };
    const denied = fake.requests.flatMap((r) => authorizationsOf(r, env).filter((a) => !isAllowed(policy, a)).map((a) => `${a.action} on ${a.resource}`));
    assert.deepEqual(denied, []);
    const touched = new Set(fake.requests.map((r) => r.params.GroupId ?? r.params.PrefixListId).filter(Boolean));
    if (mode === 'rules') {
      assert.deepEqual([...touched].sort(), [...GROUPS].sort(), 'both groups used: the spill group is in the policy too');
      assert.ok(fake.requests.flatMap((r) => authorizationsOf(r, env)).some((a) => a.action === 'ec2:CreateTags'), 'tag-on-create was exercised');
      assert.ok(fake.requests.some((r) => r.action === 'RevokeSecurityGroupIngress'));
    }
    else assert.deepEqual([...touched].sort(), [LISTS.v4, LISTS.v6].sort(), 'both families\' lists used and allowed');

    // The same calls aimed elsewhere, or at a listed group nobody marked as knockgw's, are refused.
    const other = { ...env, taggedManaged: new Set(['sg-0000000000000000a', 'pl-0000000000000000a']) };
    const elsewhere = fake.requests.filter((r) => r.params.GroupId ?? r.params.PrefixListId).map((r) => ({ action: r.action, params: { ...r.params, ...(r.params.GroupId ? { GroupId: 'sg-0000000000000000a' } : { PrefixListId: 'pl-0000000000000000a' }) } }));
    assert.ok(elsewhere.length > 0);
    for (const r of elsewhere) assert.ok(authorizationsOf(r, other).some((a) => !isAllowed(policy, a)), `${r.action} on another resource is refused`);
    const untagged = { ...env, taggedManaged: new Set<string>() };
    for (const r of fake.requests.filter((x) => /Authorize|Revoke|Modify/.test(x.action))) assert.ok(authorizationsOf(r, untagged).some((a) => !isAllowed(policy, a)), `${r.action} needs the knockgw:managed tag`);
  });
}

void test('an Authorize call that would create a rule without knockgw\'s tags, or with other tags, is refused', async (t) => {
  const { policy, config } = await exercise(t, 'rules');
  const env = { partition: 'aws', region: config.region, account: ACCOUNT, taggedManaged: new Set(GROUPS) };
  const base = { GroupId: GROUPS[0] ?? '', 'TagSpecification.1.ResourceType': 'security-group-rule' };
  const onlyGrant = { ...base, 'TagSpecification.1.Tag.1.Key': 'knockgw:grant', 'TagSpecification.1.Tag.1.Value': 'g' };
  const extra = { ...onlyGrant, 'TagSpecification.1.Tag.2.Key': 'knockgw:expires', 'TagSpecification.1.Tag.2.Value': '1', 'TagSpecification.1.Tag.3.Key': 'Name', 'TagSpecification.1.Tag.3.Value': 'x' };
  for (const params of [onlyGrant, extra]) assert.ok(authorizationsOf({ action: 'AuthorizeSecurityGroupIngress', params }, env).some((a) => !isAllowed(policy, a)));
});
