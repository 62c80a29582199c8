// The gateway's cloud permissions: generated from the config the adapters accept, the example
// file is that generator's output, the statements have the shape the Service Authorization
// Reference calls for, and AWS's published schemas and IAM lint rules accept them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegoEngine, TemplateFile } from '@aws/cloudformation-validate';
import { parse } from 'yaml';
import { z } from 'zod';
import { aggregatedRuleName, AWS_IAM_ACTIONS, awsPartition, gatewayAwsPolicy, gatewayGcpCommands, gatewayGcpCondition, GCP_METHODS, GCP_PERMISSIONS, type IamPolicy, MANAGED_TAG, RULE_PREFIX, ruleName } from '../../gateway/adapters/cloud/index.ts';
import { compileYaml } from '../../gateway/config/load.ts';
import type { AwsCloudConfig } from '../../gateway/config/types.ts';
import { ROOT } from '../helpers/relay-lab.ts';

const ACCOUNT = '111122223333';

/** The config the example policy file is made from (as `npm run iam -- aws` reads one). */
function awsConfig(cloud: string): AwsCloudConfig {
  const cfg = compileYaml(`interface: eth0\ndoors:\n  - { name: openSSH, sequence: ["7000", "8000"], open: ["22/tcp"] }\ncloud:\n  aws: ${cloud}\n`, 'test.yaml', 'gw-a');
  assert.ok(cfg.cloud.aws);
  return cfg.cloud.aws;
}
const EXAMPLE = '{ region: eu-west-1, securityGroupIds: [sg-0123456789abcdef0, sg-0fedcba9876543210], mode: rules }';
const PREFIX_LISTS = '{ region: eu-west-1, securityGroupIds: [sg-89abcdef], mode: prefix-list, prefixListId: pl-0123456789abcdef0, prefixListIdV6: pl-0fedcba987654321f }';

void test('infra/aws/gateway-iam.json is the generator\'s output for the example config', async () => {
  const file = JSON.parse(await readFile(join(ROOT, 'infra/aws/gateway-iam.json'), 'utf8')) as unknown;
  assert.deepEqual(file, JSON.parse(JSON.stringify(gatewayAwsPolicy(awsConfig(EXAMPLE), ACCOUNT))));
});

void test('both modes together allow exactly the EC2 actions the adapter calls (plus CreateTags), no wildcard', () => {
  const actions = new Set([EXAMPLE, PREFIX_LISTS].flatMap((c) => gatewayAwsPolicy(awsConfig(c), ACCOUNT).Statement.flatMap((s) => s.Action)));
  assert.deepEqual([...actions].sort(), [...AWS_IAM_ACTIONS].sort());
  assert.ok(![...actions].some((a) => a.includes('*')));
});

void test('every group and prefix list the config names is in the policy, in the region\'s partition, and nothing else', () => {
  const rules = gatewayAwsPolicy(awsConfig(EXAMPLE), ACCOUNT);
  const arns = (p: IamPolicy) => p.Statement.flatMap((s) => [s.Resource].flat()).filter((r) => r !== '*' && !r.endsWith('/*'));
  assert.deepEqual([...new Set(arns(rules))].sort(), ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'].map((id) => `arn:aws:ec2:eu-west-1:${ACCOUNT}:security-group/${id}`));
  const lists = gatewayAwsPolicy(awsConfig(PREFIX_LISTS), ACCOUNT);
  assert.deepEqual([...new Set(arns(lists))].sort(), ['pl-0123456789abcdef0', 'pl-0fedcba987654321f'].map((id) => `arn:aws:ec2:eu-west-1:${ACCOUNT}:prefix-list/${id}`), 'the IPv6 list too');
  for (const [region, partition] of [['cn-north-1', 'aws-cn'], ['us-gov-west-1', 'aws-us-gov'], ['eu-central-2', 'aws']] as const) {
    assert.equal(awsPartition(region), partition);
    const p = gatewayAwsPolicy(awsConfig(EXAMPLE.replace('eu-west-1', region)), ACCOUNT);
    for (const r of arns(p)) assert.ok(r.startsWith(`arn:${partition}:ec2:${region}:`), r);
  }
});

void test('tag conditions sit only on the rule ARN, group and list changes need the knockgw:managed tag, Describe is bound to the region', () => {
  for (const policy of [gatewayAwsPolicy(awsConfig(EXAMPLE), ACCOUNT), gatewayAwsPolicy(awsConfig(PREFIX_LISTS), ACCOUNT)]) {
    for (const s of policy.Statement) {
      const resources = [s.Resource].flat();
      const conditionText = JSON.stringify(s.Condition ?? {});
      if (resources.some((r) => /:(security-group|prefix-list)\//.test(r))) {
        assert.ok(!/RequestTag|TagKeys/.test(conditionText), `${s.Sid}: request-tag keys are not in a group's or list's request context`);
        if (!s.Action.includes('ec2:GetManagedPrefixListEntries')) assert.deepEqual(s.Condition, { StringEquals: { [`aws:ResourceTag/${MANAGED_TAG}`]: 'true' } }, s.Sid);
      } else if (resources.some((r) => r.includes(':security-group-rule/'))) {
        assert.match(conditionText, /knockgw:grant.*knockgw:expires/, `${s.Sid}: only rules carrying knockgw's two tags`);
      } else {
        assert.deepEqual(resources, ['*']);
        assert.ok(s.Action.every((a) => a.startsWith('ec2:Describe')), `${s.Sid}: only Describe* uses "*"`);
        assert.deepEqual(s.Condition, { StringEquals: { 'aws:RequestedRegion': 'eu-west-1' } });
      }
    }
  }
  const tagging = gatewayAwsPolicy(awsConfig(EXAMPLE), ACCOUNT).Statement.filter((s) => s.Action.includes('ec2:CreateTags'));
  assert.ok(tagging.length === 1 && JSON.stringify(tagging[0]?.Condition).includes('"ec2:CreateAction":"AuthorizeSecurityGroupIngress"'), 'CreateTags only while creating rules');
});

void test('AWS\'s IAM schema and lint rules accept both policies (as managed policies in a template)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-iam-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const template = { AWSTemplateFormatVersion: '2010-09-09', Resources: Object.fromEntries([EXAMPLE, PREFIX_LISTS].map((c, i) => [`GatewayPolicy${i}`, { Type: 'AWS::IAM::ManagedPolicy', Properties: { PolicyDocument: gatewayAwsPolicy(awsConfig(c), ACCOUNT) } }])) };
  await writeFile(join(dir, 'policy.json'), JSON.stringify(template));
  const engine = new RegoEngine();
  t.after(() => engine.free());
  const found = engine.validateStandard(new TemplateFile(join(dir, 'policy.json'))).diagnostics.filter((d) => d.severity !== 'INFO' && d.severity !== 'DEBUG');
  assert.deepEqual(found.map((d) => `${d.ruleId} ${d.message}`), []);
});

void test('the GCP custom role holds exactly the permissions of the methods the adapter calls', async () => {
  const role = z.object({ title: z.string(), stage: z.string(), includedPermissions: z.array(z.string()) })
    .parse(parse(await readFile(join(ROOT, 'infra/gcp/gateway-role.yaml'), 'utf8')));
  assert.deepEqual([...role.includedPermissions].sort(), [...GCP_PERMISSIONS]);
  assert.ok(GCP_METHODS['firewalls.insert'].includes('compute.networks.updatePolicy'), 'insert needs updatePolicy on the network');
  assert.ok(GCP_METHODS['firewalls.patch'].includes('compute.firewalls.update'), 'aggregated mode patches its rules: firewalls.update');
});

void test('the GCP binding\'s condition limits firewall permissions to the names both modes use and the network permission to the configured network', () => {
  const names = [ruleName('g-1', 4), ruleName('g-1', 6), aggregatedRuleName('openSSH', [{ port: 22, proto: 'tcp' }], 4, 0)];
  for (const n of names) assert.ok(n.startsWith(RULE_PREFIX) && RULE_PREFIX === 'knockgw-', n);
  const c = gatewayGcpCondition({ network: 'projects/host-proj/global/networks/prod-vpc' });
  assert.equal(c.expression, "(resource.type != 'compute.googleapis.com/Firewall' || resource.name.extract('/global/firewalls/{name}').startsWith('knockgw-')) && (resource.type != 'compute.googleapis.com/Network' || resource.name.endsWith('/global/networks/prod-vpc'))");
  const [create, bind] = gatewayGcpCommands({ project: 'my-proj-123', network: 'default' }, 'gw@my-proj-123.iam.gserviceaccount.com');
  assert.equal(create, 'gcloud iam roles create knockgwGateway --project=my-proj-123 --file=infra/gcp/gateway-role.yaml');
  assert.match(bind ?? '', /--role=projects\/my-proj-123\/roles\/knockgwGateway --condition='\^;\^title=knockgw-rules-only;description=[^;]+;expression=\(resource\.type/);
});
