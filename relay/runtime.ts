// Builds the relay's dependencies — keys, nonce store and request queue on memory or Redis — so
// each runtime file (Node server, container, Lambda) stays a few lines.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { describeError, kgwError } from '../gateway/core/errors.ts';
import type { Clock, Logger } from '../gateway/ports.ts';
import { parseKeys, type RelayKeys } from '../gateway/protocol/relay-v1.ts';
import { loadKeysFile } from '../gateway/kit/keys-file.ts';
import { createMemoryNonceStore } from '../gateway/kit/nonces-memory.ts';
import { createMemoryRequestQueue } from '../gateway/kit/request-queue-memory.ts';
import { createRedisConnection } from '../gateway/kit/redis/connection.ts';
import { createRedisNonceStore } from '../gateway/kit/redis/nonces.ts';
import { createRedisRequestSink } from '../gateway/kit/redis/requests.ts';
import { redactUrl, redisConnection } from '../gateway/kit/redis/url.ts';
import { createRedisDeviceRegistry } from '../gateway/kit/redis/devices.ts';
import { createApp } from './app.ts';
import type { PublicUrls } from './page.ts';
import { storeSpec, type RelayEnv } from './env.ts';

export interface RelayRuntimeOptions {
  readonly keys: RelayKeys;
  /** 'memory' (only a gateway in this very process sees the requests) or a Redis store spec. */
  readonly store: string;
  readonly getClientIp: (c: Context) => string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The gateways' door TTL in seconds, when known (answers then carry expiresAt). */
  readonly doorTtlSeconds?: number;
  /** Family-pinned URLs for the knock page. */
  readonly publicUrls?: PublicUrls;
}

export interface RelayRuntime {
  readonly app: Hono;
  /** Clients in the keys (logged at start). */
  readonly clients: number;
  close(): Promise<void>;
}

export function buildRelay(opts: RelayRuntimeOptions): RelayRuntime {
  const ttl = opts.doorTtlSeconds;
  // A relay knows a TTL only as the operator stated it, not which doors exist: doors stay unchecked.
  // The knock page everywhere; enrolled devices live in Redis (the relay's ACL user needs the
  // enrollment rules, relay-acl.ts { enroll: true }), or only in memory for a local test relay.
  const common = { keys: opts.keys, clock: opts.clock, getClientIp: opts.getClientIp, log: opts.logger, page: opts.publicUrls ? { publicUrls: opts.publicUrls } : {} };
  if (opts.store === 'memory') {
    opts.logger.warn({ event: 'relay.memory_store' }, 'relay store is memory: grant requests reach only a gateway in this process');
    const app = createApp({ ...common, nonces: createMemoryNonceStore({ clock: opts.clock }), requests: createMemoryRequestQueue(), ...(ttl === undefined ? {} : { answerTtlSeconds: ttl }) });
    // No device registry: nothing here could issue a token.
    return { app, clients: opts.keys.size, close: () => Promise.resolve() };
  }
  // With the gateways' credential a compromised relay could write grants; it works, but says so.
  const target = redisConnection(opts.store);
  if (!target.path && (target.username ?? 'default') === 'default') {
    opts.logger.warn({ event: 'relay.shared_credential', store: redactUrl(opts.store) }, "the relay uses Redis's default user: a compromised relay could write grants; give it its own ACL user (infra/README.md)");
  }
  // Commands wait for a reconnect at most 2 s: a knock the relay cannot record is a quick 503.
  // The relay's Redis user may run SET and XADD only (relay-acl.ts): no ready check (INFO), no
  // CLIENT SETNAME/SETINFO, which would each be refused and logged on every connect. CLIENT LIST
  // still names the relay by its ACL user.
  const conn = createRedisConnection({
    spec: opts.store,
    failFast: false,
    commandTimeoutMs: 2000,
    redisOptions: { enableReadyCheck: false, disableClientInfo: true },
  });
  conn.client.on('error', (err: Error) => opts.logger.warn({ event: 'store.error', store: conn.target, reason: err.message }, 'relay Redis connection error'));
  void conn.connect(5000);
  const app = createApp({ ...common, nonces: createRedisNonceStore({ conn }), requests: createRedisRequestSink(conn), devices: createRedisDeviceRegistry({ conn }), ...(ttl === undefined ? {} : { answerTtlSeconds: ttl }) });
  return { app, clients: opts.keys.size, close: () => conn.close() };
}

const ssmAnswer = z.object({ Parameter: z.object({ Value: z.string() }) });

/**
 * A SecureString through the AWS Parameters and Secrets Lambda Extension (localhost, authenticated
 * by the function's session token; it caches, so a cold start costs one SSM call per parameter).
 */
export async function readSsmParameter(name: string, processEnv: Readonly<Record<string, string | undefined>>, fetchImpl: typeof fetch = fetch): Promise<string> {
  const port = processEnv.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? '2773';
  const url = `http://localhost:${port}/systemsmanager/parameters/get?name=${encodeURIComponent(name)}&withDecryption=true`;
  let text: string;
  try {
    const res = await fetchImpl(url, { headers: { 'X-Aws-Parameters-Secrets-Token': processEnv.AWS_SESSION_TOKEN ?? '' } });
    text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  } catch (err) {
    throw kgwError('KGW_CONFIG_READ', `cannot read the SSM parameter ${name} (is the Parameters and Secrets extension layer attached, and are ssm:GetParameter and kms:Decrypt allowed?): ${describeError(err)}`, { parameter: name }, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const answer = ssmAnswer.safeParse(json);
  if (!answer.success) throw kgwError('KGW_CONFIG_READ', `the extension's answer for ${name} has no Parameter.Value`, { parameter: name });
  return answer.data.Parameter.Value;
}

/** Keys from KNOCKGW_KEYS_FILE, or on Lambda from the SSM parameter KNOCKGW_KEYS_PARAMETER. */
export async function loadKeys(env: RelayEnv, processEnv: Readonly<Record<string, string | undefined>>, fetchImpl: typeof fetch = fetch): Promise<RelayKeys> {
  if (env.KNOCKGW_KEYS_FILE) return loadKeysFile(env.KNOCKGW_KEYS_FILE);
  const name = env.KNOCKGW_KEYS_PARAMETER ?? '';
  return parseKeys(await readSsmParameter(name, processEnv, fetchImpl), `ssm:${name}`);
}

/** The store spec: KNOCKGW_STORE, or the SSM parameter KNOCKGW_STORE_PARAMETER (never a plain variable on Lambda). */
export async function loadStore(env: RelayEnv, processEnv: Readonly<Record<string, string | undefined>>, fetchImpl: typeof fetch = fetch): Promise<string> {
  if (env.KNOCKGW_STORE !== undefined) return env.KNOCKGW_STORE;
  const name = env.KNOCKGW_STORE_PARAMETER ?? '';
  const value = (await readSsmParameter(name, processEnv, fetchImpl)).trim();
  // The same rule as KNOCKGW_STORE, and the error names the parameter, never its value.
  const parsed = storeSpec.safeParse(value);
  if (!parsed.success) throw kgwError('KGW_CONFIG_INVALID', `the SSM parameter ${name} does not hold a redis://, rediss:// or redis+sentinel:// URL`, { parameter: name });
  return parsed.data;
}

/** The relay of a parsed environment (Lambda, container). */
/**
 * `platform`: a runtime where no gateway shares the relay's process and instances come and go
 * (Lambda): there a memory store would answer 202 to knocks that reach no gateway, so it is refused.
 */
export async function relayFromEnv(env: RelayEnv, processEnv: Readonly<Record<string, string | undefined>>, getClientIp: (c: Context) => string, opts: { logger: Logger; clock: Clock; fetchImpl?: typeof fetch; platform?: string }): Promise<RelayRuntime> {
  const store = await loadStore(env, processEnv, opts.fetchImpl);
  if (store === 'memory' && opts.platform) {
    throw kgwError('KGW_CONFIG_INVALID', `the relay store is memory, which cannot work on ${opts.platform}: no gateway runs in the function, each instance has its own memory and a cold start loses it, so knocks would be accepted and reach no gateway; set ${env.KNOCKGW_STORE_PARAMETER ? `the SSM parameter ${env.KNOCKGW_STORE_PARAMETER}` : 'KNOCKGW_STORE_PARAMETER (or KNOCKGW_STORE)'} to the gateways' Redis`, { store });
  }
  return buildRelay({
    keys: await loadKeys(env, processEnv, opts.fetchImpl),
    store,
    getClientIp,
    clock: opts.clock,
    logger: opts.logger,
    ...(env.KNOCKGW_DOOR_TTL === undefined ? {} : { doorTtlSeconds: env.KNOCKGW_DOOR_TTL }),
    publicUrls: { ...(env.KNOCKGW_PUBLIC_URL_V4 ? { v4: env.KNOCKGW_PUBLIC_URL_V4 } : {}), ...(env.KNOCKGW_PUBLIC_URL_V6 ? { v6: env.KNOCKGW_PUBLIC_URL_V6 } : {}) },
  });
}
