// deploy:aws and deploy:gcp in dry-run mode: the real bundling, zipping and rendering, every aws
// and gcloud command recorded instead of run. What a reviewer would check before a first deploy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { relayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { deployAws, parseAwsArgs, type AwsDeployOptions } from '../../scripts/deploy/aws.ts';
import { APIS, deployGcp, SECRETS } from '../../scripts/deploy/gcp.ts';
import type { PlannedStep } from '../../scripts/deploy/runner.ts';
import { identities } from '../helpers/relay-fixtures.ts';
import { ROOT } from '../helpers/relay-lab.ts';

const ids = identities();
const PASSWORD = 'relay-only-Pa55word-0123456789';
const RELAY_URL = `rediss://knockgw-relay:${PASSWORD}@relay.abc123.euw1.cache.amazonaws.com:6379`;

async function lab(t: { after(fn: () => Promise<void>): void }, url = RELAY_URL) {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-deploy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  await writeFile(join(dir, 'relay.url'), `${url}\n`);
  return dir;
}

const awsOptions = (dir: string, over: Partial<AwsDeployOptions> = {}): AwsDeployOptions => ({
  ...parseAwsArgs(['--region', 'eu-west-1', '--keys', join(dir, 'keys.json'), '--redis-url-file', join(dir, 'relay.url'), '--subnets', 'subnet-0123456789abcdef0,subnet-0123456789abcdef1', '--security-groups', 'sg-0123456789abcdef0', '--extension-layer-arn', 'arn:aws:lambda:eu-west-1:015030872274:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:18', '--out', join(dir, 'out'), '--dry-run']),
  ...over,
});

const verbs = (steps: readonly PlannedStep[], n: number) => steps.map((s) => s.argv.slice(0, n).join(' '));
const find = (steps: readonly PlannedStep[], ...prefix: string[]) => steps.filter((s) => prefix.every((w, i) => s.argv[i] === w));
const paramOf = (s: PlannedStep | undefined, name: string) => s?.argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);

async function assertNoSecrets(dir: string, out: string[], extra: string[] = []): Promise<void> {
  const plan = (await readFile(join(dir, 'out', 'plan.json'), 'utf8')) + (await readFile(join(dir, 'out', 'plan.sh'), 'utf8')) + out.join('\n');
  const hmacSecrets = (JSON.parse(ids.keysFileText) as { clients: { secret?: string }[] }).clients.flatMap((c) => (c.secret ? [c.secret] : []));
  assert.ok(hmacSecrets.length > 0);
  for (const secret of [PASSWORD, ...extra, ...hmacSecrets]) {
    assert.ok(!plan.includes(secret), 'no secret in the plan or the output');
  }
}

void test('deploy:aws --dry-run uploads a content-hashed zip once, deploys, writes both SecureStrings with the stack\'s key, then rolls their versions', async (t) => {
  const dir = await lab(t);
  const out: string[] = [];
  const { runner, codeKey } = await deployAws(awsOptions(dir, { reservedConcurrency: 5 }), (l) => out.push(l));
  assert.deepEqual(verbs(runner.steps, 3), [
    'aws sts get-caller-identity', 'aws s3api head-bucket', 'aws s3api create-bucket', 'aws s3api put-public-access-block', 'aws s3api head-object', 'aws s3api put-object',
    'aws cloudformation describe-stacks', 'aws cloudformation deploy', 'aws ssm put-parameter', 'aws ssm put-parameter', 'aws cloudformation deploy', 'aws cloudformation describe-stacks',
  ]);
  for (const s of runner.steps) assert.deepEqual(s.argv.slice(-2), ['--region', 'eu-west-1']);

  const zip = await readFile(join(dir, 'out', 'relay-lambda.zip'));
  assert.equal(codeKey, `knockgw-relay/${createHash('sha256').update(zip).digest('hex')}.zip`);
  const again = await deployAws(awsOptions(dir), () => undefined);
  assert.equal(again.codeKey, codeKey, 'same sources, same artifact: nothing to update');

  const [first, second] = find(runner.steps, 'aws', 'cloudformation', 'deploy');
  assert.equal(first?.argv[first.argv.indexOf('--template-file') + 1], 'infra/aws/relay.yaml');
  assert.equal(paramOf(first, 'CodeS3Key'), codeKey);
  assert.equal(paramOf(first, 'ReservedConcurrency'), '5');
  assert.equal(paramOf(first, 'ConfigVersion'), '0', 'a new stack starts at version 0');
  assert.equal(paramOf(second, 'ConfigVersion'), 'k1-s1', 'the parameters\' new versions reach the function');
  const puts = find(runner.steps, 'aws', 'ssm', 'put-parameter');
  assert.deepEqual(puts.map((s) => [s.argv[4], s.argv[s.argv.indexOf('--type') + 1], s.argv[s.argv.indexOf('--key-id') + 1], s.argv[s.argv.indexOf('--value') + 1]]), [
    ['/knockgw/relay/keys', 'SecureString', 'alias/knockgw-relay-parameters', 'file://$KEYS_FILE'],
    ['/knockgw/relay/redis-url', 'SecureString', 'alias/knockgw-relay-parameters', 'file://$RELAY_REDIS_URL'],
  ]);
  const sh = await readFile(join(dir, 'out', 'plan.sh'), 'utf8');
  const hash = createHash('sha256').update(PASSWORD).digest('hex');
  assert.ok(sh.includes(`ACL SETUSER ${relayAcl().setUserArgs(hash).join(' ')}`), 'the plan says which ACL rule the Redis needs');
  await assertNoSecrets(dir, out);
});

void test('deploy:aws refuses the gateways\' credential (default user or no user) unless told that a compromised relay could then mint grants', async (t) => {
  for (const url of ['redis://:gatewaypass@10.0.0.5:6379', 'redis://10.0.0.5:6379', 'redis://default:gatewaypass@10.0.0.5:6379']) {
    const dir = await lab(t, url);
    await assert.rejects(deployAws(awsOptions(dir), () => undefined), (e: unknown) => isKnockgwError(e, 'KGW_DEPLOY_CREDENTIAL'), url.replace(/:[^:@/]+@/, ':***@'));
    const { runner } = await deployAws(awsOptions(dir, { allowSharedCredential: true }), () => undefined);
    assert.ok(runner.steps.length > 0);
  }
});

void test('deploy:gcp --dry-run enables the APIs, grants actAs, builds amd64 with Cloud Build, stores the secrets from stdin and deploys the image by digest', async (t) => {
  const dir = await lab(t);
  const out: string[] = [];
  const { runner, image } = await deployGcp({ project: 'my-proj-123', region: 'europe-west1', keysFile: join(dir, 'keys.json'), redisUrlFile: join(dir, 'relay.url'), network: 'default', subnet: 'default', doorTtl: 3600, outDir: join(dir, 'out'), dryRun: true, allowSharedCredential: false }, (l) => out.push(l));
  const steps = runner.steps;
  assert.deepEqual(find(steps, 'gcloud', 'services', 'enable')[0]?.argv.slice(3, 3 + APIS.length), APIS);
  assert.equal(find(steps, 'gcloud', 'artifacts', 'repositories', 'create').length, 1);
  const actAs = find(steps, 'gcloud', 'iam', 'service-accounts', 'add-iam-policy-binding')[0]?.argv ?? [];
  assert.deepEqual([actAs[4], actAs[actAs.indexOf('--member') + 1], actAs[actAs.indexOf('--role') + 1]], ['knockgw-relay@my-proj-123.iam.gserviceaccount.com', 'user:deployer@example.com', 'roles/iam.serviceAccountUser']);
  const build = find(steps, 'gcloud', 'builds', 'submit')[0]?.argv ?? [];
  assert.equal(build[build.indexOf('--config') + 1], 'infra/gcp/cloudbuild.yaml');
  assert.match(await readFile(join(ROOT, 'infra/gcp/cloudbuild.yaml'), 'utf8'), /'--platform', 'linux\/amd64'/);
  const adds = find(steps, 'gcloud', 'secrets', 'versions', 'add');
  assert.deepEqual(adds.map((s) => [s.argv[4], s.stdin, s.argv[s.argv.indexOf('--data-file') + 1]]), [[SECRETS.keys, 'KEYS_FILE', '-'], [SECRETS.redisUrl, 'RELAY_REDIS_URL', '-']]);
  assert.equal(find(steps, 'gcloud', 'secrets', 'add-iam-policy-binding').length, 2);
  assert.match(image, /@sha256:[0-9a-f]{64}$/);
  const rendered = await readFile(join(dir, 'out', 'relay-service.yaml'), 'utf8');
  assert.ok(rendered.includes(`image: ${image}`));
  assert.ok(!/\b(PROJECT_ID|IMAGE_DIGEST|KEYS_VERSION|STORE_VERSION|DOOR_TTL)\b/.test(rendered.replace(/^#.*$/gm, '')), 'every placeholder filled');
  const order = verbs(steps, 4);
  assert.ok(order.indexOf('gcloud builds submit --region') < order.indexOf('gcloud run services replace'), 'built before deployed');
  const invoker = find(steps, 'gcloud', 'run', 'services', 'add-iam-policy-binding')[0]?.argv ?? [];
  assert.deepEqual([invoker[invoker.indexOf('--member') + 1], invoker[invoker.indexOf('--role') + 1]], ['allUsers', 'roles/run.invoker']);
  await assertNoSecrets(dir, out);
});

void test('the deploy commands run from npm with --dry-run and answer a usage error with exit 64', async (t) => {
  const dir = await lab(t);
  const ok = spawnSync(process.execPath, ['scripts/deploy/gcp.ts', '--dry-run', '--project', 'my-proj-123', '--region', 'europe-west1', '--keys', join(dir, 'keys.json'), '--redis-url-file', join(dir, 'relay.url'), '--out', join(dir, 'out')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /dry run complete/);
  const bad = spawnSync(process.execPath, ['scripts/deploy/aws.ts', '--dry-run', '--region', 'eu-west-1'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /KGW_DEPLOY_USAGE: --keys is required/);
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts['deploy:aws'], 'node scripts/deploy/aws.ts');
  assert.equal(pkg.scripts['deploy:gcp'], 'node scripts/deploy/gcp.ts');
});
