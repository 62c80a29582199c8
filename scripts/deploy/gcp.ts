// npm run deploy:gcp -- --project P --region R --keys keys.json --redis-url-file relay-redis.url \
//   [--network default --subnet default] [--dry-run]
// From a clone to a working relay on Cloud Run: enable the APIs, create the Artifact Registry
// repository and the relay's service account, let the deployer act as it (actAs), build the
// linux/amd64 image with Cloud Build (no local Docker), store the two secrets, deploy the image
// by digest with the secrets by version, and make the service public (knocks are signed).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { kgwError } from '../../gateway/core/errors.ts';
import { bundleRelay } from './bundle.ts';
import { need, parseDeployArgs, readRelaySecrets, runDeployCli, writePlan } from './common.ts';
import { dryRunner, realRunner, type Runner, type Secret } from './runner.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
export const SERVICE_TEMPLATE = 'infra/gcp/relay-service.yaml';
export const CLOUDBUILD = 'infra/gcp/cloudbuild.yaml';
export const APIS = ['run.googleapis.com', 'artifactregistry.googleapis.com', 'cloudbuild.googleapis.com', 'secretmanager.googleapis.com', 'iam.googleapis.com'];
export const SECRETS = { keys: 'knockgw-relay-keys', redisUrl: 'knockgw-relay-redis-url' } as const;
const REPO = 'knockgw';
const SERVICE = 'knockgw-relay';
const DRY_DIGEST = `sha256:${'0'.repeat(64)}`;

export interface GcpDeployOptions {
  readonly project: string;
  readonly region: string;
  readonly keysFile: string;
  readonly redisUrlFile: string;
  readonly network: string;
  readonly subnet: string;
  readonly doorTtl: number;
  readonly deployer?: string;
  readonly outDir: string;
  readonly dryRun: boolean;
  readonly allowSharedCredential: boolean;
  /** The relay's Redis user also gets the enrollment rules (phones enroll through it). */
  readonly enroll?: boolean;
}

/** What a fresh project answers: nothing exists yet, every secret gets version 1. */
function dryAnswers(o: GcpDeployOptions) {
  return [
    { prefix: ['gcloud', 'config', 'get-value', 'account'], stdout: 'deployer@example.com\n' },
    { prefix: ['gcloud', 'artifacts', 'repositories', 'describe'], code: 1 },
    { prefix: ['gcloud', 'iam', 'service-accounts', 'describe'], code: 1 },
    { prefix: ['gcloud', 'secrets', 'describe'], code: 1 },
    { prefix: ['gcloud', 'secrets', 'versions', 'add'], stdout: 'projects/123456789012/secrets/x/versions/1\n' },
    { prefix: ['gcloud', 'builds', 'get-default-service-account'], stdout: `projects/${o.project}/serviceAccounts/123456789012-compute@developer.gserviceaccount.com\n` },
    { prefix: ['gcloud', 'artifacts', 'docker', 'images', 'describe'], stdout: `${DRY_DIGEST}\n` },
    { prefix: ['gcloud', 'run', 'services', 'describe'], stdout: `https://${SERVICE}-dryrun-${o.region}.a.run.app\n` },
  ];
}

/** A user or a service account, as an IAM member. */
export function iamMember(account: string): string {
  return account.endsWith('.gserviceaccount.com') ? `serviceAccount:${account}` : `user:${account}`;
}

export function renderService(template: string, v: { project: string; imageDigest: string; network: string; subnet: string; doorTtl: number; keysVersion: string; storeVersion: string }): string {
  const values: Record<string, string> = { PROJECT_ID: v.project, IMAGE_DIGEST: v.imageDigest, NETWORK: v.network, SUBNET: v.subnet, DOOR_TTL: String(v.doorTtl), KEYS_VERSION: v.keysVersion, STORE_VERSION: v.storeVersion };
  return template.replace(/\b(PROJECT_ID|IMAGE_DIGEST|NETWORK|SUBNET|DOOR_TTL|KEYS_VERSION|STORE_VERSION)\b/g, (k) => values[k] ?? k);
}

export async function deployGcp(o: GcpDeployOptions, log: (line: string) => void): Promise<{ runner: Runner; url: string; image: string }> {
  const secrets = await readRelaySecrets({ keysFile: o.keysFile, redisUrlFile: o.redisUrlFile, allowSharedCredential: o.allowSharedCredential, enroll: o.enroll ?? false });
  const runner = o.dryRun ? dryRunner(dryAnswers(o), log) : realRunner(log);
  const gcloud = (args: readonly string[], opts?: Parameters<Runner['run']>[1]) => runner.run(['gcloud', ...args, '--project', o.project, '--quiet'], opts);
  const sa = `${SERVICE}@${o.project}.iam.gserviceaccount.com`;

  const deployer = o.deployer ?? (await runner.run(['gcloud', 'config', 'get-value', 'account'], { why: 'who deploys: needs actAs on the relay\'s service account' })).stdout.trim();
  if (!deployer) throw kgwError('KGW_DEPLOY_USAGE', 'no gcloud account is active; run gcloud auth login or pass --deployer', {});
  await gcloud(['services', 'enable', ...APIS], { why: 'Cloud Run, Artifact Registry, Cloud Build, Secret Manager, IAM' });

  if ((await gcloud(['artifacts', 'repositories', 'describe', REPO, '--location', o.region], { okCodes: [1], why: 'does the image repository exist?' })).code !== 0) {
    await gcloud(['artifacts', 'repositories', 'create', REPO, '--repository-format', 'docker', '--location', o.region, '--description', 'knockgw relay images']);
  }
  if ((await gcloud(['iam', 'service-accounts', 'describe', sa], { okCodes: [1], why: 'the relay\'s own identity (no project roles)' })).code !== 0) {
    await gcloud(['iam', 'service-accounts', 'create', SERVICE, '--display-name', 'knockgw relay']);
  }
  // Deploying a service that runs as an account needs iam.serviceAccounts.actAs on that account.
  await gcloud(['iam', 'service-accounts', 'add-iam-policy-binding', sa, '--member', iamMember(deployer), '--role', 'roles/iam.serviceAccountUser'], { why: 'actAs: the deployer may deploy a service running as the relay account (that account only)' });
  const buildSa = (await gcloud(['builds', 'get-default-service-account', '--format', 'value(serviceAccountEmail)'], { why: 'the account Cloud Build pushes the image as' })).stdout.trim().split('/').pop() ?? '';
  await gcloud(['artifacts', 'repositories', 'add-iam-policy-binding', REPO, '--location', o.region, '--member', `serviceAccount:${buildSa}`, '--role', 'roles/artifactregistry.writer'], { why: 'Cloud Build may push to this repository only' });

  const version = async (name: string, secret: Secret): Promise<string> => {
    if ((await gcloud(['secrets', 'describe', name], { okCodes: [1] })).code !== 0) {
      await gcloud(['secrets', 'create', name, '--replication-policy', 'automatic']);
    }
    const added = (await gcloud(['secrets', 'versions', 'add', name, '--data-file', '-', '--format', 'value(name)'], { stdin: secret, why: `${secret.label} from stdin, never a command-line argument` })).stdout.trim();
    await gcloud(['secrets', 'add-iam-policy-binding', name, '--member', `serviceAccount:${sa}`, '--role', 'roles/secretmanager.secretAccessor'], { why: 'the relay account reads this secret and no other' });
    const v = added.split('/').pop() ?? '';
    if (!/^\d+$/.test(v)) throw kgwError('KGW_DEPLOY_STEP', `gcloud did not report the new version of secret ${name} ("${added}")`, { secret: name });
    return v;
  };
  const keysVersion = await version(SECRETS.keys, secrets.keys);
  const storeVersion = await version(SECRETS.redisUrl, secrets.redisUrl);

  // Tagged by the bundle's hash (the same sources give the same tag); deployed by digest.
  const bundle = await bundleRelay('container', join(o.outDir, 'container'));
  const image = `${o.region}-docker.pkg.dev/${o.project}/${REPO}/relay:${bundle.sha256.slice(0, 16)}`;
  log(`container bundle ${bundle.bytes} bytes (${bundle.packages.length} packages) -> ${image}`);
  await gcloud(['builds', 'submit', '--region', o.region, '--config', CLOUDBUILD, '--substitutions', `_IMAGE=${image}`, '.'], { why: 'linux/amd64 image built by Cloud Build from the files .gcloudignore lets through' });
  const digest = (await gcloud(['artifacts', 'docker', 'images', 'describe', image, '--format', 'value(image_summary.digest)'], { why: 'the digest the service will run' })).stdout.trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw kgwError('KGW_DEPLOY_STEP', `no digest for ${image} ("${digest}")`, { image });
  const imageDigest = `${image.slice(0, image.lastIndexOf(':'))}@${digest}`;

  const rendered = renderService(await readFile(join(ROOT, SERVICE_TEMPLATE), 'utf8'), { project: o.project, imageDigest, network: o.network, subnet: o.subnet, doorTtl: o.doorTtl, keysVersion, storeVersion });
  await mkdir(o.outDir, { recursive: true });
  const servicePath = join(o.outDir, 'relay-service.yaml');
  await writeFile(servicePath, rendered);
  await gcloud(['run', 'services', 'replace', servicePath, '--region', o.region], { why: 'a new revision: new digest or new secret versions' });
  await gcloud(['run', 'services', 'add-iam-policy-binding', SERVICE, '--region', o.region, '--member', 'allUsers', '--role', 'roles/run.invoker'], { why: 'public on purpose: every knock is signed' });
  const url = (await gcloud(['run', 'services', 'describe', SERVICE, '--region', o.region, '--format', 'value(status.url)'])).stdout.trim();
  await writePlan(o.outDir, { platform: 'gcp', dryRun: o.dryRun, steps: runner.steps, templates: [SERVICE_TEMPLATE, CLOUDBUILD, servicePath], redisAcl: secrets.aclCommands, outputs: { RelayUrl: url, Image: imageDigest, RedisTarget: secrets.redisTarget } });
  return { runner, url, image: imageDigest };
}

export function parseGcpArgs(argv: readonly string[]): GcpDeployOptions {
  const values = parseDeployArgs(argv, {
    project: { type: 'string' }, region: { type: 'string' }, keys: { type: 'string' }, 'redis-url-file': { type: 'string' },
    network: { type: 'string' }, subnet: { type: 'string' }, 'door-ttl': { type: 'string' }, deployer: { type: 'string' }, out: { type: 'string' },
    'dry-run': { type: 'boolean' }, 'allow-shared-redis-credential': { type: 'boolean' }, enroll: { type: 'boolean' },
  });
  const ttl = values['door-ttl'] ?? '3600';
  if (!/^\d{1,7}$/.test(ttl)) throw kgwError('KGW_DEPLOY_USAGE', `--door-ttl must be a whole number of seconds, not "${ttl}"`, { option: 'door-ttl' });
  return {
    project: need(values, 'project'),
    region: need(values, 'region'),
    keysFile: need(values, 'keys'),
    redisUrlFile: need(values, 'redis-url-file'),
    network: values.network ?? 'default',
    subnet: values.subnet ?? 'default',
    doorTtl: Number(ttl),
    ...(values.deployer ? { deployer: values.deployer } : {}),
    outDir: resolve(values.out ?? join(ROOT, 'dist', 'deploy', 'gcp')),
    dryRun: values['dry-run'] ?? false,
    allowSharedCredential: values['allow-shared-redis-credential'] ?? false,
    enroll: values.enroll ?? false,
  };
}

export const USAGE = '--project P --region R --keys keys.json --redis-url-file relay-redis.url [--network N --subnet S] [--door-ttl S] [--deployer EMAIL] [--out DIR] [--enroll] [--allow-shared-redis-credential] [--dry-run]\nprerequisites, flags and what the dry run shows: infra/README.md';

if (import.meta.main) await runDeployCli('deploy:gcp', USAGE, parseGcpArgs, deployGcp);
