import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { AWS_EC2_ACTIONS, AWS_IAM_ACTIONS } from '../../gateway/adapters/cloud-aws-actions.ts';
import { GCP_METHODS, GCP_PERMISSIONS } from '../../gateway/adapters/cloud-gcp.ts';

const root = new URL('../../', import.meta.url);
const list = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));
const Policy = z.object({
  Version: z.literal('2012-10-17'),
  Statement: z.array(z.object({ Sid: z.string(), Effect: z.literal('Allow'), Action: list, Resource: list, Condition: z.record(z.string(), z.unknown()).optional() })),
});

void test('the AWS policy allows exactly the EC2 actions the adapter calls (plus CreateTags for tag-on-create)', async () => {
  const policy = Policy.parse(JSON.parse(await readFile(new URL('infra/aws/gateway-iam.json', root), 'utf8')));
  const actions = new Set(policy.Statement.flatMap((s) => s.Action));
  assert.deepEqual([...actions].sort(), [...AWS_IAM_ACTIONS].sort());
  for (const a of AWS_EC2_ACTIONS) assert.ok(actions.has(`ec2:${a}`), `${a} is allowed`);
  assert.ok(![...actions].some((a) => a.includes('*')), 'no wildcard actions');
});

void test('the AWS policy scopes every mutating action to resources; only Describe* (which cannot be scoped) uses "*"', async () => {
  const policy = Policy.parse(JSON.parse(await readFile(new URL('infra/aws/gateway-iam.json', root), 'utf8')));
  for (const s of policy.Statement) {
    if (s.Resource.includes('*')) assert.ok(s.Action.every((a) => a.startsWith('ec2:Describe')), `${s.Sid} uses Resource "*" only for Describe*`);
    else assert.ok(s.Resource.every((r) => /^arn:aws:ec2:[^:]+:[^:]+:(security-group|security-group-rule|prefix-list)\//.test(r)), s.Sid);
  }
  const tagging = policy.Statement.filter((s) => s.Action.includes('ec2:CreateTags'));
  assert.ok(tagging.every((s) => JSON.stringify(s.Condition).includes('"ec2:CreateAction":"AuthorizeSecurityGroupIngress"')), 'CreateTags only while creating rules');
});

void test('the GCP custom role holds exactly the permissions of the methods the adapter calls', async () => {
  const role = z.object({ title: z.string(), stage: z.string(), includedPermissions: z.array(z.string()) })
    .parse(parse(await readFile(new URL('infra/gcp/gateway-role.yaml', root), 'utf8')));
  assert.deepEqual([...role.includedPermissions].sort(), [...GCP_PERMISSIONS]);
  assert.ok(GCP_METHODS['firewalls.insert'].includes('compute.networks.updatePolicy'), 'insert needs updatePolicy on the network');
  assert.ok(GCP_METHODS['firewalls.patch'].includes('compute.firewalls.update'), 'aggregated mode patches its rules: firewalls.update');
});
