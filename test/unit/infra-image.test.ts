// The relay image and the Cloud Run service without Docker or Google: the Dockerfile's stages,
// what the build context lets through, and the service deploy:gcp renders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { relayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { RELAY_BUNDLES } from '../../scripts/deploy/bundle.ts';
import { imageEnvironment, renderedCloudRunService, ROOT } from '../helpers/relay-lab.ts';

const read = (p: string) => readFile(join(ROOT, p), 'utf8');

void test('the image has two stages on a digest-pinned base, and the final one holds only the bundle', async () => {
  const docker = await read('relay/Dockerfile');
  const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(docker)?.[1] ?? '';
  assert.match(base, /^node:24-slim@sha256:[0-9a-f]{64}$/, 'pinned by digest, not by a moving tag');
  const froms = [...docker.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)].map((m) => [m[1], m[2]]);
  assert.deepEqual(froms, [['${NODE_IMAGE}', 'build'], ['${NODE_IMAGE}', undefined]]);
  const final = docker.slice(docker.lastIndexOf('\nFROM '));
  const copies = [...final.matchAll(/^COPY (.+)$/gm)].map((m) => m[1]);
  assert.deepEqual(copies, [`--from=build /out/${RELAY_BUNDLES.container.file} ./${RELAY_BUNDLES.container.file}`]);
  assert.match(final, new RegExp(`^CMD \\["node", "/app/${RELAY_BUNDLES.container.file.replace('.', '\\.')}"\\]$`, 'm'));
  assert.match(final, /^USER node$/m);
  assert.match(docker, /^RUN node scripts\/deploy\/bundle\.ts container \/out$/m, 'the image bundles with the same code the tests run');
  assert.equal((await imageEnvironment()).KNOCKGW_TRUSTED_PROXIES, '0', 'no proxy is trusted unless the platform says so');
});

void test('the build context is a whitelist of what the Dockerfile copies, and keys files never enter it', async () => {
  const docker = await read('relay/Dockerfile');
  const sources = [...docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/)).map((s) => s.replace(/\/$/, ''));
  const dockerignore = (await read('.dockerignore')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.equal(dockerignore[0], '*', '.dockerignore excludes everything first');
  assert.deepEqual(dockerignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')).sort(), [...sources].sort());
  assert.ok(dockerignore.includes('**/keys.json') && dockerignore.includes('**/*.key.json'));
  const gcloudignore = (await read('.gcloudignore')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.equal(gcloudignore[0], '/*', '.gcloudignore excludes everything first');
  for (const s of sources) assert.ok(gcloudignore.includes(`!/${s}`) || gcloudignore.includes(`!/${s}/`), `.gcloudignore lets ${s} through`);
  assert.ok(gcloudignore.includes('**/keys.json') && gcloudignore.includes('**/*.key.json'));
});

void test('the rendered Cloud Run service runs the image by digest, secrets by version, as its own account, with one trusted proxy', async () => {
  const svc = z.object({
    spec: z.object({
      template: z.object({
        metadata: z.object({ annotations: z.record(z.string(), z.string()) }),
        spec: z.object({
          serviceAccountName: z.string(),
          containers: z.array(z.object({
            image: z.string(),
            env: z.array(z.object({ name: z.string(), value: z.string().optional(), valueFrom: z.object({ secretKeyRef: z.object({ name: z.string(), key: z.string() }) }).optional() })),
          }).loose()).length(1),
          volumes: z.array(z.object({ secret: z.object({ secretName: z.string(), items: z.array(z.object({ key: z.string(), path: z.string() })) }) }).loose()),
        }).loose(),
      }).loose(),
    }).loose(),
  }).loose().parse(await renderedCloudRunService());
  const spec = svc.spec.template.spec;
  assert.equal(spec.serviceAccountName, 'knockgw-relay@my-proj-123.iam.gserviceaccount.com');
  const [c] = spec.containers;
  assert.match(c?.image ?? '', /^[a-z0-9-]+-docker\.pkg\.dev\/my-proj-123\/knockgw\/relay@sha256:[0-9a-f]{64}$/);
  const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e]));
  assert.equal(env.KNOCKGW_TRUSTED_PROXIES?.value, '1');
  assert.deepEqual(env.KNOCKGW_STORE?.valueFrom, { secretKeyRef: { name: 'knockgw-relay-redis-url', key: '4' } }, 'the relay\'s Redis URL from Secret Manager, pinned to a version');
  assert.deepEqual(spec.volumes[0]?.secret, { secretName: 'knockgw-relay-keys', items: [{ key: '3', path: 'keys.json' }] });
  assert.equal(svc.spec.template.metadata.annotations['run.googleapis.com/vpc-access-egress'], 'private-ranges-only');
  assert.ok(!JSON.stringify(svc).includes(':latest'), 'nothing mutable');
});

void test('the docs quote the ACL rule relayAcl() generates', async () => {
  const acl = relayAcl();
  const doc = await read('infra/README.md');
  assert.ok(doc.includes(`ACL SETUSER ${acl.setUserArgs('0'.repeat(64)).join(' ').replace(`#${'0'.repeat(64)}`, '#<sha256 of the password>')}`));
  assert.ok(doc.includes(`access string \`${acl.accessString}\``));
});

void test('.gcloudignore, read with gitignore rules by git itself, uploads the build inputs and nothing secret', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-gcloudignore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = ['package.json', 'package-lock.json', 'gateway/core/ip.ts', 'relay/main.ts', 'relay/Dockerfile', 'scripts/deploy/bundle.ts', 'scripts/deploy/aws.ts', 'scripts/demo.sh',
    'keys.json', 'gateway/keys.json', 'alice-phone.key.json', 'relay-redis.url', '.env', 'node_modules/zod/index.js', 'test/unit/x.ts', 'dist/relay/lambda/index.mjs', 'infra/aws/relay.yaml'];
  for (const f of files) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    await writeFile(join(dir, f), 'x');
  }
  await writeFile(join(dir, '.gitignore'), await read('.gcloudignore'));
  assert.equal(spawnSync('git', ['-C', dir, 'init', '-q']).status, 0, 'git (gateway/system-tools.ts) is installed');
  const r = spawnSync('git', ['-C', dir, 'check-ignore', '--no-index', '--stdin'], { input: files.join('\n'), encoding: 'utf8' });
  const ignored = new Set(r.stdout.split('\n').filter(Boolean));
  assert.deepEqual(files.filter((f) => !ignored.has(f)), ['package.json', 'package-lock.json', 'gateway/core/ip.ts', 'relay/main.ts', 'relay/Dockerfile', 'scripts/deploy/bundle.ts']);
});
