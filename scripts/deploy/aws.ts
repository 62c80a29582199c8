// npm run deploy:aws -- --region R --keys keys.json --redis-url-file relay-redis.url \
//   --subnets subnet-a,subnet-b --security-groups sg-x --extension-layer-arn ARN [--dry-run]
// From a clone to a working relay on Lambda: bundle (pinned esbuild), zip deterministically,
// upload under the zip's sha256 (so every code change is a new key and a function update),
// deploy infra/aws/relay.yaml, write the two SecureString parameters with the stack's KMS key,
// and deploy again with their versions so warm instances let go of old secrets.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { kgwError } from '../../gateway/core/errors.ts';
import { bundleRelay } from './bundle.ts';
import { need, parseDeployArgs, readRelaySecrets, runDeployCli, writePlan } from './common.ts';
import { dryRunner, realRunner, type Runner, type Secret } from './runner.ts';
import { zipFiles } from './zip.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** Relative to the repository root, where commands run: plans read the same on every machine. */
export const TEMPLATE = 'infra/aws/relay.yaml';
const DRY_ACCOUNT = '111122223333';
const PREVIOUS_CONFIG = "Stacks[0].Parameters[?ParameterKey=='ConfigVersion'].ParameterValue";

export interface AwsDeployOptions {
  readonly region: string;
  readonly stack: string;
  readonly keysFile: string;
  readonly redisUrlFile: string;
  readonly subnets: readonly string[];
  readonly securityGroups: readonly string[];
  readonly extensionLayerArn: string;
  readonly bucket?: string;
  readonly kmsKeyArn?: string;
  readonly reservedConcurrency?: number;
  readonly doorTtl: number;
  readonly keysParameter: string;
  readonly storeParameter: string;
  readonly outDir: string;
  readonly dryRun: boolean;
  readonly allowSharedCredential: boolean;
  /** The relay's Redis user also gets the enrollment rules (phones enroll through it). */
  readonly enroll?: boolean;
}

/** What a fresh account answers: no bucket, no object, parameters at version 1. */
function dryAnswers(o: AwsDeployOptions) {
  return [
    { prefix: ['aws', 'sts', 'get-caller-identity'], stdout: `${DRY_ACCOUNT}\n` },
    { prefix: ['aws', 's3api', 'head-bucket'], code: 254 },
    { prefix: ['aws', 's3api', 'head-object'], code: 254 },
    { prefix: ['aws', 'ssm', 'put-parameter'], stdout: '1\n' },
    { prefix: ['aws', 'cloudformation', 'describe-stacks', '--stack-name', o.stack, '--query', PREVIOUS_CONFIG], code: 254 },
    { prefix: ['aws', 'cloudformation', 'describe-stacks'], stdout: `https://dryrun0000000000000000000000000.lambda-url.${o.region}.on.aws/\n` },
  ];
}

/** Writes a secret to a file only this user can read, for `--value file://…`; removed in finally. */
async function withSecretFile<T>(runner: Runner, secret: Secret, fn: (uri: string) => Promise<T>): Promise<T> {
  if (runner.dryRun) return fn(`file://$${secret.label}`);
  const dir = await mkdtemp(join(tmpdir(), 'knockgw-deploy-'));
  try {
    const path = join(dir, 'value');
    await writeFile(path, secret.value, { mode: 0o600 });
    return await fn(`file://${path}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function deployAws(o: AwsDeployOptions, log: (line: string) => void): Promise<{ runner: Runner; url: string; codeKey: string }> {
  const secrets = await readRelaySecrets({ keysFile: o.keysFile, redisUrlFile: o.redisUrlFile, allowSharedCredential: o.allowSharedCredential, enroll: o.enroll ?? false });
  const runner = o.dryRun ? dryRunner(dryAnswers(o), log) : realRunner(log);
  const aws = (args: readonly string[], opts?: Parameters<Runner['run']>[1]) => runner.run(['aws', ...args, '--region', o.region], opts);

  const account = (await aws(['sts', 'get-caller-identity', '--query', 'Account', '--output', 'text'], { why: 'the account the bucket and the ARNs belong to' })).stdout.trim();
  const bucket = o.bucket ?? `knockgw-relay-${account}-${o.region}`;

  const bundle = await bundleRelay('lambda', join(o.outDir, 'lambda'));
  const zip = zipFiles([{ name: 'index.mjs', data: await readFile(bundle.path) }]);
  const zipPath = join(o.outDir, 'relay-lambda.zip');
  await writeFile(zipPath, zip);
  const { createHash } = await import('node:crypto');
  const codeKey = `knockgw-relay/${createHash('sha256').update(zip).digest('hex')}.zip`;
  log(`bundle ${bundle.bytes} bytes (${bundle.packages.length} packages), zip ${zip.byteLength} bytes -> s3://${bucket}/${codeKey}`);

  if ((await aws(['s3api', 'head-bucket', '--bucket', bucket], { okCodes: [254], why: 'does the artifact bucket exist?' })).code !== 0) {
    await aws(['s3api', 'create-bucket', '--bucket', bucket, ...(o.region === 'us-east-1' ? [] : ['--create-bucket-configuration', `LocationConstraint=${o.region}`])], { why: 'a private bucket for the relay bundles' });
    await aws(['s3api', 'put-public-access-block', '--bucket', bucket, '--public-access-block-configuration', 'BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true']);
  }
  if ((await aws(['s3api', 'head-object', '--bucket', bucket, '--key', codeKey], { okCodes: [254], why: 'the same bundle is uploaded once' })).code !== 0) {
    await aws(['s3api', 'put-object', '--bucket', bucket, '--key', codeKey, '--body', zipPath]);
  }

  const deploy = (configVersion: string, why: string) => aws([
    'cloudformation', 'deploy', '--template-file', TEMPLATE, '--stack-name', o.stack, '--capabilities', 'CAPABILITY_IAM', '--no-fail-on-empty-changeset',
    '--parameter-overrides', `CodeS3Bucket=${bucket}`, `CodeS3Key=${codeKey}`, `KeysParameterName=${o.keysParameter}`, `StoreParameterName=${o.storeParameter}`,
    `KmsKeyArn=${o.kmsKeyArn ?? ''}`, `ConfigVersion=${configVersion}`, `ParametersExtensionLayerArn=${o.extensionLayerArn}`,
    `SubnetIds=${o.subnets.join(',')}`, `SecurityGroupIds=${o.securityGroups.join(',')}`, `DoorTtlSeconds=${o.doorTtl}`, `ReservedConcurrency=${o.reservedConcurrency ?? 0}`,
  ], { why });

  // The key exists once the stack does; the parameters are written with it, then their versions
  // deployed. The first deploy keeps the running version (nothing restarts for nothing).
  const previous = await aws(['cloudformation', 'describe-stacks', '--stack-name', o.stack, '--query', PREVIOUS_CONFIG, '--output', 'text'], { okCodes: [254, 255], why: 'the parameter versions the function runs with now (none for a new stack)' });
  await deploy(previous.code === 0 && previous.stdout.trim() ? previous.stdout.trim() : '0', 'the stack: function, URL, role, log group and (unless --kms-key-arn) the parameters\' KMS key');
  const keyId = o.kmsKeyArn ?? `alias/${o.stack}-parameters`;
  // Intelligent-Tiering: a keys file past 4 KB (a few dozen clients) needs the advanced tier.
  const put = (name: string, secret: Secret) => withSecretFile(runner, secret, (uri) => aws(['ssm', 'put-parameter', '--name', name, '--type', 'SecureString', '--key-id', keyId, '--tier', 'Intelligent-Tiering', '--overwrite', '--value', uri, '--query', 'Version', '--output', 'text'], { why: `${secret.label} as a SecureString under the customer managed key` }));
  const keysVersion = (await put(o.keysParameter, secrets.keys)).stdout.trim();
  const storeVersion = (await put(o.storeParameter, secrets.redisUrl)).stdout.trim();
  await deploy(`k${keysVersion}-s${storeVersion}`, 'the parameters\' versions reach the function: new instances read the new secrets');

  const url = (await aws(['cloudformation', 'describe-stacks', '--stack-name', o.stack, '--query', "Stacks[0].Outputs[?OutputKey=='RelayUrl'].OutputValue", '--output', 'text'], { why: 'the relay URL for knockgw knock --relay' })).stdout.trim();
  await writePlan(o.outDir, { platform: 'aws', dryRun: o.dryRun, steps: runner.steps, templates: [TEMPLATE], redisAcl: secrets.aclCommands, outputs: { RelayUrl: url, CodeS3Key: codeKey, Bucket: bucket, RedisTarget: secrets.redisTarget } });
  return { runner, url, codeKey };
}

const int = (name: string, v: string | undefined, fallback?: number): number | undefined => {
  if (v === undefined) return fallback;
  const n = z.coerce.number().int().min(0).safeParse(v);
  if (!n.success) throw kgwError('KGW_DEPLOY_USAGE', `--${name} must be a whole number, not "${v}"`, { option: name });
  return n.data;
};

export function parseAwsArgs(argv: readonly string[]): AwsDeployOptions {
  const values = parseDeployArgs(argv, {
    region: { type: 'string' }, stack: { type: 'string' }, keys: { type: 'string' }, 'redis-url-file': { type: 'string' },
    subnets: { type: 'string' }, 'security-groups': { type: 'string' }, 'extension-layer-arn': { type: 'string' }, bucket: { type: 'string' },
    'kms-key-arn': { type: 'string' }, 'reserved-concurrency': { type: 'string' }, 'door-ttl': { type: 'string' }, out: { type: 'string' },
    'keys-parameter': { type: 'string' }, 'store-parameter': { type: 'string' }, 'dry-run': { type: 'boolean' }, 'allow-shared-redis-credential': { type: 'boolean' }, enroll: { type: 'boolean' },
  });
  const list = (name: string) => need(values, name).split(',').map((s) => s.trim()).filter(Boolean);
  const reserved = int('reserved-concurrency', values['reserved-concurrency']);
  return {
    region: need(values, 'region'),
    stack: values.stack ?? 'knockgw-relay',
    keysFile: need(values, 'keys'),
    redisUrlFile: need(values, 'redis-url-file'),
    subnets: list('subnets'),
    securityGroups: list('security-groups'),
    extensionLayerArn: need(values, 'extension-layer-arn'),
    ...(values.bucket ? { bucket: values.bucket } : {}),
    ...(values['kms-key-arn'] ? { kmsKeyArn: values['kms-key-arn'] } : {}),
    ...(reserved ? { reservedConcurrency: reserved } : {}),
    doorTtl: int('door-ttl', values['door-ttl'], 3600) ?? 3600,
    keysParameter: values['keys-parameter'] ?? '/knockgw/relay/keys',
    storeParameter: values['store-parameter'] ?? '/knockgw/relay/redis-url',
    outDir: resolve(values.out ?? join(ROOT, 'dist', 'deploy', 'aws')),
    dryRun: values['dry-run'] ?? false,
    allowSharedCredential: values['allow-shared-redis-credential'] ?? false,
    enroll: values.enroll ?? false,
  };
}

export const USAGE = '--region R --keys keys.json --redis-url-file relay-redis.url --subnets subnet-a,subnet-b --security-groups sg-x --extension-layer-arn ARN [--stack NAME] [--bucket B] [--kms-key-arn ARN] [--reserved-concurrency N] [--door-ttl S] [--keys-parameter P] [--store-parameter P] [--out DIR] [--enroll] [--allow-shared-redis-credential] [--dry-run]\nprerequisites, flags and what the dry run shows: infra/README.md';

if (import.meta.main) await runDeployCli('deploy:aws', USAGE, parseAwsArgs, deployAws);
