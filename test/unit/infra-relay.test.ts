import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (p: string) => readFile(join(ROOT, p), 'utf8');

const templateSchema = z.object({
  AWSTemplateFormatVersion: z.literal('2010-09-09'),
  Parameters: z.record(z.string(), z.object({ Type: z.string() }).loose()),
  Conditions: z.record(z.string(), z.unknown()).optional(),
  Resources: z.record(z.string(), z.object({ Type: z.string(), Properties: z.record(z.string(), z.unknown()) }).loose()),
  Outputs: z.record(z.string(), z.unknown()),
});
type Template = z.infer<typeof templateSchema>;

const statementSchema = z.object({
  Effect: z.literal('Allow'),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.unknown(),
}).strict();
const policySchema = z.object({ PolicyName: z.string(), PolicyDocument: z.object({ Version: z.literal('2012-10-17'), Statement: z.array(statementSchema) }) });

async function template(): Promise<Template> {
  return templateSchema.parse(parse(await read('infra/aws/relay.yaml')));
}

function resourceOf(t: Template, type: string) {
  const found = Object.entries(t.Resources).filter(([, r]) => r.Type === type);
  assert.equal(found.length > 0, true, `a ${type}`);
  return found;
}

/** Both branches of Fn::If (a conditional policy is still a policy the role may get). */
function rolePolicies(t: Template): z.infer<typeof policySchema>[] {
  const [[, role] = ['', undefined]] = resourceOf(t, 'AWS::IAM::Role');
  assert.equal(role?.Properties.ManagedPolicyArns, undefined, 'no managed policies: every permission is spelled out');
  const raw = z.array(z.unknown()).parse(role?.Properties.Policies);
  return raw.flatMap((p) => {
    const cond = z.object({ 'Fn::If': z.tuple([z.string(), z.unknown(), z.unknown()]) }).safeParse(p);
    const branches = cond.success ? [cond.data['Fn::If'][1], cond.data['Fn::If'][2]] : [p];
    return branches.filter((b) => !z.object({ Ref: z.literal('AWS::NoValue') }).safeParse(b).success).map((b) => policySchema.parse(b));
  });
}

const VPC_ENI_ACTIONS = ['ec2:AssignPrivateIpAddresses', 'ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:UnassignPrivateIpAddresses'];

void test('the relay role may only write its own logs, read its keys parameter and (in a VPC) manage its interfaces', async () => {
  const t = await template();
  const statements = rolePolicies(t).flatMap((p) => p.PolicyDocument.Statement);
  const actions = statements.flatMap((s) => [s.Action].flat()).sort();
  assert.deepEqual(actions, ['logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:GetParameter', ...VPC_ENI_ACTIONS].sort());
  for (const a of actions) assert.doesNotMatch(a, /\*/, `no wildcard action (${a})`);

  for (const s of statements) {
    const acts = [s.Action].flat();
    if (s.Resource === '*') {
      // The only place AWS requires "*": Lambda's VPC network interfaces.
      assert.deepEqual([...acts].sort(), VPC_ENI_ACTIONS);
      continue;
    }
    assert.equal(JSON.stringify(s.Resource).includes('"*"'), false);
    if (acts.includes('ssm:GetParameter')) {
      assert.deepEqual(s.Resource, { 'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${KeysParameterName}' });
    } else {
      assert.deepEqual(s.Resource, { 'Fn::GetAtt': ['LogGroup', 'Arn'] }, 'logs only in the stack\'s own log group');
    }
  }
  // The keys parameter is one fully qualified name, so the ARN above names exactly it.
  assert.equal(t.Parameters.KeysParameterName?.AllowedPattern, '^/[A-Za-z0-9_.\\-/]+$');
});

void test('the Lambda runs a current Node runtime behind a public Function URL with both invoke statements', async () => {
  const t = await template();
  const [[, fn] = ['', undefined]] = resourceOf(t, 'AWS::Lambda::Function');
  const runtime = z.string().regex(/^nodejs(\d+)\.x$/).parse(fn?.Properties.Runtime);
  assert.ok(Number(/\d+/.exec(runtime)?.[0]) >= 22, `runtime ${runtime} is Node 22 or newer`);
  assert.equal(fn?.Properties.Handler, 'index.handler');
  const env = z.object({ Variables: z.record(z.string(), z.unknown()) }).parse(fn?.Properties.Environment).Variables;
  assert.deepEqual(Object.keys(env).sort(), ['KNOCKGW_DOOR_TTL', 'KNOCKGW_KEYS_PARAMETER', 'KNOCKGW_STORE']);
  assert.equal(t.Parameters.RedisUrl?.NoEcho, true);

  const [[, url] = ['', undefined]] = resourceOf(t, 'AWS::Lambda::Url');
  assert.equal(url?.Properties.AuthType, 'NONE');
  const perms = resourceOf(t, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
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
      if (k.startsWith('!')) problems.push(`short-form tag ${k}`);
      walk(x);
    }
  };
  walk(t.Resources);
  walk(t.Outputs);
  assert.deepEqual(problems, []);
});

void test('the Cloud Run service runs the relay container as its own service account with one trusted proxy', async () => {
  const svc = z.object({
    apiVersion: z.literal('serving.knative.dev/v1'),
    kind: z.literal('Service'),
    metadata: z.object({ name: z.string() }).loose(),
    spec: z.object({
      template: z.object({
        spec: z.object({
          serviceAccountName: z.string(),
          containers: z.array(z.object({
            image: z.string(),
            ports: z.array(z.object({ containerPort: z.number() }).loose()),
            env: z.array(z.object({ name: z.string(), value: z.string().optional(), valueFrom: z.unknown().optional() })),
          }).loose()).length(1),
          volumes: z.array(z.object({ name: z.string(), secret: z.object({ secretName: z.string() }).loose() })),
        }).loose(),
      }).loose(),
    }).loose(),
  }).parse(parse(await read('infra/gcp/relay-service.yaml')));
  const spec = svc.spec.template.spec;
  assert.match(spec.serviceAccountName, /^knockgw-relay@PROJECT_ID\.iam\.gserviceaccount\.com$/);
  const [container] = spec.containers;
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? 'secret']));
  assert.equal(env.KNOCKGW_TRUSTED_PROXIES, '1');
  assert.equal(env.KNOCKGW_STORE, 'secret', 'the Redis URL (may hold a password) comes from Secret Manager');
  assert.equal(env.KNOCKGW_KEYS_FILE, '/etc/knockgw/keys/keys.json');
  assert.deepEqual(container?.ports.map((p) => p.containerPort), [8080]);
  assert.deepEqual(spec.volumes.map((v) => v.secret.secretName), ['knockgw-relay-keys']);

  const docker = await read('relay/Dockerfile');
  assert.match(docker, /^CMD \["node", "relay\/main\.ts"\]$/m);
  assert.match(docker, /KNOCKGW_TRUSTED_PROXIES=1/);
  assert.match(docker, /^USER node$/m);
});
