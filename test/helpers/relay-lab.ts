// What the bundle and deploy tests share: a redis-server whose default user has a password, the
// relay's own ACL user on it (relayAcl(), as the deploy scripts print it), a fake of the AWS
// Parameters and Secrets Lambda Extension, and the deployed templates read as data.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { createRedisConnection, type RedisConnection } from '../../gateway/kit/redis/connection.ts';
import { relayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { renderService, SERVICE_TEMPLATE } from '../../scripts/deploy/gcp.ts';
import { startRedis, type RedisServer } from './redis.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

interface Ctx { after(fn: () => Promise<void> | void): void; skip(msg: string): void }

export interface RelayRedis {
  readonly server: RedisServer;
  /** The gateways' side (default user, all permissions). */
  readonly admin: RedisConnection;
  /** The relay's own credential. */
  readonly relayUrl: string;
}

export async function startRelayRedis(t: Ctx): Promise<RelayRedis | undefined> {
  const server = await startRedis(t, { password: 'gateway-admin-secret' });
  if (!server) return undefined;
  const admin = createRedisConnection({ spec: server.url, failFast: false });
  await admin.connect(2000);
  t.after(() => admin.close());
  const password = randomBytes(24).toString('base64url');
  await admin.client.call('ACL', 'SETUSER', ...relayAcl().setUserArgs(createHash('sha256').update(password).digest('hex')));
  return { server, admin, relayUrl: `redis://knockgw-relay:${password}@127.0.0.1:${server.port}` };
}

export interface FakeExtension {
  readonly port: number;
  readonly token: string;
  /** Parameter names asked for, in order. */
  readonly asked: string[];
}

/** The extension's HTTP API on localhost: GET /systemsmanager/parameters/get?name=…&withDecryption=true. */
export async function startFakeParametersExtension(t: Ctx, parameters: Readonly<Record<string, string>>): Promise<FakeExtension> {
  const token = randomBytes(16).toString('hex');
  const asked: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const name = url.searchParams.get('name') ?? '';
    asked.push(name);
    const value = parameters[name];
    if (req.headers['x-aws-parameters-secrets-token'] !== token) res.writeHead(401).end('bad token');
    else if (url.pathname !== '/systemsmanager/parameters/get' || url.searchParams.get('withDecryption') !== 'true' || value === undefined) res.writeHead(400).end('not found');
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Parameter: { Name: name, Type: 'SecureString', Value: value, Version: 1 } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, token, asked };
}

const Template = z.object({
  Parameters: z.record(z.string(), z.object({ Default: z.union([z.string(), z.number()]).optional() }).loose()),
  Resources: z.record(z.string(), z.object({ Type: z.string(), Properties: z.record(z.string(), z.unknown()) }).loose()),
});

/** The Lambda function's environment as relay.yaml sets it, Refs resolved to the parameters' defaults. */
export async function lambdaEnvironmentFromTemplate(): Promise<Record<string, string>> {
  const t = Template.parse(parse(await readFile(join(ROOT, 'infra/aws/relay.yaml'), 'utf8')));
  const fn = Object.values(t.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
  const vars = z.object({ Variables: z.record(z.string(), z.union([z.string(), z.object({ Ref: z.string() })])) }).parse(fn?.Properties.Environment).Variables;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => {
    if (typeof v === 'string') return [k, v];
    const d = t.Parameters[v.Ref]?.Default;
    if (d === undefined) throw new Error(`${k} refers to parameter ${v.Ref}, which has no default for the test to use`);
    return [k, String(d)];
  }));
}

/** ENV of the Dockerfile's final stage: what the image sets when the platform sets nothing. */
export async function imageEnvironment(): Promise<Record<string, string>> {
  const text = await readFile(join(ROOT, 'relay/Dockerfile'), 'utf8');
  const final = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const m of final.replace(/\\\n\s*/g, ' ').matchAll(/^ENV\s+(.+)$/gm)) {
    for (const kv of (m[1] ?? '').trim().split(/\s+/)) {
      const [k = '', ...v] = kv.split('=');
      env[k] = v.join('=');
    }
  }
  return env;
}

/** The Cloud Run service as deploy:gcp renders it (sample values). */
export async function renderedCloudRunService(): Promise<unknown> {
  const text = renderService(await readFile(join(ROOT, SERVICE_TEMPLATE), 'utf8'), { project: 'my-proj-123', imageDigest: `europe-west1-docker.pkg.dev/my-proj-123/knockgw/relay@sha256:${'a'.repeat(64)}`, network: 'default', subnet: 'default', doorTtl: 900, keysVersion: '3', storeVersion: '4' });
  return parse(text) as unknown;
}

/** Plain `value:` entries of the rendered Cloud Run service's container env. */
export async function cloudRunEnvironment(): Promise<Record<string, string>> {
  const svc = z.object({ spec: z.object({ template: z.object({ spec: z.object({ containers: z.array(z.object({ env: z.array(z.object({ name: z.string(), value: z.string().optional() })) }).loose()) }).loose() }).loose() }).loose() })
    .parse(await renderedCloudRunService());
  const env = svc.spec.template.spec.containers[0]?.env ?? [];
  return Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value ?? '']));
}
