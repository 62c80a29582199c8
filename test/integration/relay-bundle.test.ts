// The bundles as they are deployed, each in a process of its own outside the checkout (no
// node_modules to fall back on): the Lambda bundle answers Function URL events with the
// environment relay.yaml gives it, and the container bundle serves with the image's defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { REQUESTS_STREAM } from '../../gateway/kit/redis/requests.ts';
import { parseGrantRequest } from '../../gateway/protocol/relay-v1.ts';
import { bundleRelay, RELAY_BUNDLES } from '../../scripts/deploy/bundle.ts';
import { functionUrlEvent, lambdaContext } from '../helpers/lambda-events.ts';
import { identities, knock } from '../helpers/relay-fixtures.ts';
import { cloudRunEnvironment, imageEnvironment, lambdaEnvironmentFromTemplate, ROOT, startFakeParametersExtension, startRelayRedis } from '../helpers/relay-lab.ts';

const ids = identities();
const NODE = process.execPath;

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-bundle-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// How the Lambda Node runtime uses the bundle: import it, call handler(event, context).
const HARNESS = `
import { readFileSync } from 'node:fs';
const { handler } = await import('./index.mjs');
const [events, context] = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = [];
for (const e of events) out.push(await handler(e, { ...context, getRemainingTimeInMillis: () => 10000 }));
process.stdout.write('RESULT ' + JSON.stringify(out) + '\\n');
process.exit(0);
`;

function run(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string> }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const jsonLines = (text: string): Record<string, unknown>[] => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

void test('the Lambda bundle loads (ioredis included), reads both secrets through the extension and queues a knock from a Function URL event', async (t) => {
  const lab = await startRelayRedis(t);
  if (!lab) return;
  const dir = await scratch(t);
  const bundle = await bundleRelay('lambda', dir);
  assert.ok(bundle.packages.includes('ioredis') && bundle.packages.includes('hono') && bundle.packages.includes('pino'), bundle.packages.join(','));

  const env = await lambdaEnvironmentFromTemplate();
  assert.equal(env.KNOCKGW_STORE, undefined, 'no Redis URL in the function\'s environment');
  const ext = await startFakeParametersExtension(t, { [env.KNOCKGW_KEYS_PARAMETER ?? '']: ids.keysFileText, [env.KNOCKGW_STORE_PARAMETER ?? '']: lab.relayUrl });
  const events = [
    functionUrlEvent('GET', '/v1/ip', null, {}),
    functionUrlEvent('POST', '/v1/knock', JSON.stringify(knock(ids.bob, { ts: Math.floor(Date.now() / 1000) })), { 'content-type': 'application/json' }),
  ];
  await writeFile(join(dir, 'harness.mjs'), HARNESS);
  await writeFile(join(dir, 'events.json'), JSON.stringify([events, lambdaContext]));
  const res = await run(NODE, ['harness.mjs', 'events.json'], {
    cwd: dir,
    env: { ...env, PATH: process.env.PATH ?? '', AWS_SESSION_TOKEN: ext.token, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(ext.port), AWS_LAMBDA_FUNCTION_NAME: 'knockgw-relay-relay' },
  });
  assert.equal(res.code, 0, res.stderr);
  const result = JSON.parse(res.stdout.split('\n').find((l) => l.startsWith('RESULT '))?.slice(7) ?? 'null') as { statusCode: number; body: string }[];
  assert.equal(result[0]?.statusCode, 200);
  assert.equal(result[0]?.body, '203.0.113.7\n');
  assert.equal(result[1]?.statusCode, 202, result[1]?.body);
  assert.deepEqual([...new Set(ext.asked)].sort(), [env.KNOCKGW_KEYS_PARAMETER, env.KNOCKGW_STORE_PARAMETER].sort());

  const entries = await lab.admin.client.xrange(REQUESTS_STREAM, '-', '+');
  assert.equal(entries.length, 1);
  assert.equal(parseGrantRequest(JSON.parse(entries[0]?.[1][1] ?? '')).observedIp, '203.0.113.7');
  // Lambda ships stdout to CloudWatch: the accepted knock is logged there.
  assert.ok(jsonLines(res.stdout).some((r) => r.event === 'relay.accepted' && r.client === 'bob'), res.stdout);
});

void test('the container bundle serves with the image defaults (no trusted proxy) and with Cloud Run\'s one proxy, and stops on SIGTERM', async (t) => {
  const lab = await startRelayRedis(t);
  if (!lab) return;
  const dir = await scratch(t);
  const bundle = await bundleRelay('container', dir);
  assert.equal(bundle.path, join(dir, RELAY_BUNDLES.container.file));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  const image = await imageEnvironment();
  assert.equal(image.KNOCKGW_TRUSTED_PROXIES, '0');

  const serve = async (platform: Record<string, string>) => {
    const env = { ...image, ...platform, KNOCKGW_KEYS_FILE: join(dir, 'keys.json'), KNOCKGW_STORE: lab.relayUrl, KNOCKGW_LISTEN: '127.0.0.1:0', PATH: process.env.PATH ?? '' };
    const child = spawn(NODE, [bundle.path], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    let gone = false;
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => { gone = true; resolve(code); }));
    t.after(() => { child.kill('SIGKILL'); });
    const deadline = Date.now() + 10_000;
    let url: string | undefined;
    while (!url && !gone && Date.now() < deadline) {
      url = jsonLines(out).find((r) => r.event === 'relay.listening')?.url as string | undefined;
      if (!url) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(url, `the server did not start: ${out}${err}`);
    return { url, stop: async () => { child.kill('SIGTERM'); return { code: await exited, log: jsonLines(out) }; } };
  };

  const plain = await serve({});
  const ip = await fetch(`${plain.url}/v1/ip`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
  assert.equal(await ip.text(), '127.0.0.1\n', 'a client cannot choose its address through X-Forwarded-For');
  assert.equal((await plain.stop()).code, 0);

  const cloudRun = await serve(await cloudRunEnvironment());
  const viaProxy = await fetch(`${cloudRun.url}/v1/ip`, { headers: { 'x-forwarded-for': '198.51.100.66, 203.0.113.9' } });
  assert.equal(await viaProxy.text(), '203.0.113.9\n');
  const k = await fetch(`${cloudRun.url}/v1/knock`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' }, body: JSON.stringify(knock(ids.bob, { ts: Math.floor(Date.now() / 1000) })) });
  assert.equal(k.status, 202, await k.text());
  assert.equal(await lab.admin.client.xlen(REQUESTS_STREAM), 1);
  const stopped = await cloudRun.stop();
  assert.equal(stopped.code, 0);
  assert.ok(stopped.log.some((r) => r.event === 'relay.stopping'));
});

void test('the Dockerfile\'s build stage, replayed without Docker, bundles from exactly what it copies, byte for byte what the repository bundles', async (t) => {
  const dir = await scratch(t);
  const src = join(dir, 'src');
  const docker = await readFile(join(ROOT, 'relay/Dockerfile'), 'utf8');
  const build = docker.slice(docker.indexOf(' AS build\n'), docker.lastIndexOf('\nFROM '));
  const runs: string[] = [];
  for (const line of build.split('\n')) {
    const copy = /^COPY (.+) (\S+)$/.exec(line);
    if (copy) {
      const dest = join(src, copy[2] ?? '');
      for (const s of (copy[1] ?? '').split(/\s+/)) await cp(join(ROOT, s), (copy[2] ?? '').endsWith('/') && !s.endsWith('/') ? join(dest, basename(s)) : dest, { recursive: true });
    }
    const run = /^RUN (.+)$/.exec(line);
    if (run) runs.push(run[1] ?? '');
  }
  assert.equal(runs.length, 2);
  assert.match(runs[0] ?? '', /^npm ci /);
  // npm ci stands in as the checkout's installed dependencies (same lockfile).
  await symlink(join(ROOT, 'node_modules'), join(src, 'node_modules'));
  const [cmd = '', ...args] = (runs[1] ?? '').replace('/out', join(dir, 'out')).split(' ');
  const res = await run(cmd === 'node' ? NODE : cmd, args, { cwd: src, env: { PATH: process.env.PATH ?? '' } });
  assert.equal(res.code, 0, res.stderr);
  const fromImage = await readFile(join(dir, 'out', RELAY_BUNDLES.container.file));
  const fromRepo = await readFile((await bundleRelay('container', join(dir, 'repo'))).path);
  assert.equal(createHash('sha256').update(fromImage).digest('hex'), createHash('sha256').update(fromRepo).digest('hex'), 'the image tag (the bundle hash) names what the image holds');
});
