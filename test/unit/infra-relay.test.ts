// infra/aws/relay.yaml checked offline against AWS's published resource provider schemas and
// cfn-lint rules (@aws/cloudformation-validate), then for what the schemas cannot know: least
// privilege, secrets by name only, and an environment the relay accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegoEngine, TemplateFile, type StandardDiagnostic } from '@aws/cloudformation-validate';
import { parse } from 'yaml';
import { z } from 'zod';
import { parseRelayEnv } from '../../relay/env.ts';
import { lambdaEnvironmentFromTemplate, ROOT } from '../helpers/relay-lab.ts';

const TEMPLATE = join(ROOT, 'infra/aws/relay.yaml');

const templateSchema = z.object({
  AWSTemplateFormatVersion: z.literal('2010-09-09'),
  Parameters: z.record(z.string(), z.object({ Type: z.string(), Default: z.unknown().optional(), NoEcho: z.boolean().optional() }).loose()),
  Conditions: z.record(z.string(), z.unknown()).optional(),
  Resources: z.record(z.string(), z.object({ Type: z.string(), Condition: z.string().optional(), Properties: z.record(z.string(), z.unknown()) }).loose()),
  Outputs: z.record(z.string(), z.unknown()),
});
type Template = z.infer<typeof templateSchema>;
const statementSchema = z.object({ Effect: z.literal('Allow'), Action: z.union([z.string(), z.array(z.string())]), Resource: z.unknown(), Condition: z.unknown().optional() }).strict();
const policySchema = z.object({ PolicyName: z.string(), PolicyDocument: z.object({ Version: z.literal('2012-10-17'), Statement: z.array(statementSchema) }) });

async function template(): Promise<Template> {
  return templateSchema.parse(parse(await readFile(TEMPLATE, 'utf8')));
}

function validate(path: string): StandardDiagnostic[] {
  const engine = new RegoEngine();
  try {
    return engine.validateStandard(new TemplateFile(path), { pseudoParameterOverrides: { region: 'eu-west-1', partition: 'aws' } }).diagnostics;
  } finally {
    engine.free();
  }
}
const serious = (d: StandardDiagnostic[]) => d.filter((x) => x.severity !== 'INFO' && x.severity !== 'DEBUG').map((x) => `${x.severity} ${x.ruleId} ${x.message}`);

void test('relay.yaml passes the CloudFormation resource schemas and cfn-lint rules with nothing above INFO', () => {
  assert.deepEqual(serious(validate(TEMPLATE)), []);
});

void test('the validator is awake: a misspelt property and a wrong runtime in a copy are reported', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-cfn-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bad = (await readFile(TEMPLATE, 'utf8')).replace('MemorySize: 256', 'MemorySizee: 256').replace('Runtime: nodejs24.x', 'Runtime: nodejs99.x');
  await writeFile(join(dir, 'bad.yaml'), bad);
  const found = serious(validate(join(dir, 'bad.yaml'))).join('\n');
  assert.match(found, /MemorySizee/);
  assert.match(found, /nodejs99\.x/);
});

function rolePolicies(t: Template): z.infer<typeof policySchema>[] {
  const role = Object.values(t.Resources).find((r) => r.Type === 'AWS::IAM::Role');
  assert.equal(role?.Properties.ManagedPolicyArns, undefined, 'no managed policies: every permission is spelled out');
  return z.array(policySchema).parse(role?.Properties.Policies);
}

const VPC_ENI_ACTIONS = ['ec2:AssignPrivateIpAddresses', 'ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:UnassignPrivateIpAddresses'];
const PARAM_ARNS = ['KeysParameterName', 'StoreParameterName'].map((p) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter\${${p}}` }));

void test('the relay role writes its own logs, reads its two parameters and decrypts them only as those parameters', async () => {
  const t = await template();
  const statements = rolePolicies(t).flatMap((p) => p.PolicyDocument.Statement);
  assert.deepEqual(statements.flatMap((s) => [s.Action].flat()).sort(), ['kms:Decrypt', 'logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:GetParameter', ...VPC_ENI_ACTIONS].sort());
  for (const s of statements) {
    const acts = [s.Action].flat();
    if (s.Resource === '*') assert.deepEqual([...acts].sort(), VPC_ENI_ACTIONS, 'only the VPC interface actions, which take no ARN, use "*"');
    else if (acts.includes('ssm:GetParameter')) assert.deepEqual(s.Resource, PARAM_ARNS);
    else if (acts.includes('kms:Decrypt')) {
      assert.deepEqual(s.Resource, { 'Fn::If': ['CreateKey', { 'Fn::GetAtt': ['ParametersKey', 'Arn'] }, { Ref: 'KmsKeyArn' }] });
      // SSM puts the parameter's ARN in the encryption context: the key opens these two only.
      assert.deepEqual(s.Condition, { StringEquals: { 'kms:EncryptionContext:PARAMETER_ARN': PARAM_ARNS } });
    } else assert.deepEqual(s.Resource, { 'Fn::GetAtt': ['LogGroup', 'Arn'] }, 'logs only in the stack\'s own log group');
  }
  assert.ok(!JSON.stringify(t.Resources).includes('arn:aws:'), 'the partition is ${AWS::Partition}, never hard-coded');
  assert.match(String(t.Parameters.KmsKeyArn?.Default), /^$/, 'by default the stack makes a customer managed key (aws/ssm opens to every principal of the account)');
  assert.equal(t.Resources.ParametersKey?.Condition, 'CreateKey');
});

void test('no secret passes through the template: the function gets parameter names, and the relay accepts its environment', async () => {
  const t = await template();
  assert.deepEqual(Object.entries(t.Parameters).filter(([, p]) => p.NoEcho).map(([k]) => k), [], 'no NoEcho parameter: nothing secret is a stack parameter');
  const env = await lambdaEnvironmentFromTemplate();
  assert.deepEqual(Object.keys(env).sort(), ['KNOCKGW_CONFIG_VERSION', 'KNOCKGW_DOOR_TTL', 'KNOCKGW_KEYS_PARAMETER', 'KNOCKGW_STORE_PARAMETER']);
  const parsed = parseRelayEnv(env);
  assert.equal(parsed.KNOCKGW_STORE, undefined);
  assert.equal(parsed.KNOCKGW_TRUSTED_PROXIES, 0, 'Lambda reads sourceIp; no proxy count applies');
});

void test('the function runs in private subnets, takes content-addressed code and reserves concurrency only when asked', async () => {
  const t = await template();
  assert.equal(t.Parameters.SubnetIds?.Type, 'List<AWS::EC2::Subnet::Id>');
  assert.equal(t.Parameters.SubnetIds?.Default, undefined, 'subnets are required: the Redis must not be internet-reachable');
  assert.equal(t.Parameters.SecurityGroupIds?.Default, undefined);
  const key = new RegExp(z.string().parse(t.Parameters.CodeS3Key?.AllowedPattern));
  assert.ok(key.test(`knockgw-relay/${'ab'.repeat(32)}.zip`));
  assert.ok(!key.test('relay.zip'), 'a fixed key would never update the function');
  assert.equal(t.Parameters.ReservedConcurrency?.Default, 0);
  const fn = Object.values(t.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
  assert.deepEqual(fn?.Properties.ReservedConcurrentExecutions, { 'Fn::If': ['HasReservedConcurrency', { Ref: 'ReservedConcurrency' }, { Ref: 'AWS::NoValue' }] });
  assert.deepEqual(fn?.Properties.VpcConfig, { SubnetIds: { Ref: 'SubnetIds' }, SecurityGroupIds: { Ref: 'SecurityGroupIds' } });
  const perms = Object.values(t.Resources).filter((r) => r.Type === 'AWS::Lambda::Permission').map((r) => r.Properties);
  assert.deepEqual(perms.map((p) => [p.Action, p.Principal, p.FunctionUrlAuthType, p.InvokedViaFunctionUrl]).sort(), [
    ['lambda:InvokeFunction', '*', undefined, true],
    ['lambda:InvokeFunctionUrl', '*', 'NONE', undefined],
  ]);
});

void test('every Ref, GetAtt and Sub variable in the template names a parameter, resource or pseudo parameter', async () => {
  const t = await template();
  const known = new Set([...Object.keys(t.Parameters), ...Object.keys(t.Resources), 'AWS::Partition', 'AWS::Region', 'AWS::AccountId', 'AWS::StackName', 'AWS::NoValue']);
  const problems: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) { v.forEach(walk); return; }
    if (typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Ref' && typeof x === 'string' && !known.has(x)) problems.push(`Ref ${x}`);
      if (k === 'Fn::GetAtt' && Array.isArray(x) && !known.has(String(x[0]))) problems.push(`GetAtt ${String(x[0])}`);
      if (k === 'Fn::Sub' && typeof x === 'string') {
        for (const m of x.matchAll(/\$\{([^}]+)\}/g)) if (!known.has((m[1] ?? '').split('.')[0] ?? '')) problems.push(`Sub ${m[1]}`);
      }
      walk(x);
    }
  };
  walk(t.Resources);
  walk(t.Outputs);
  assert.deepEqual(problems, []);
});
