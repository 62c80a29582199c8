// Builds the relay's dependencies from arguments (CLI) or the environment (Lambda, Cloud Run),
// so each runtime file stays a few lines.
import type { Context, Hono } from 'hono';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { createMemoryNonceStore } from '../gateway/adapters/nonce-memory.ts';
import { createRedisNonceStore } from '../gateway/adapters/nonce-redis.ts';
import { redactUrl, redisConnection } from '../gateway/adapters/redis-url.ts';
import { describeError, kgwError } from '../gateway/core/errors.ts';
import type { Clock, Logger } from '../gateway/ports.ts';
import { createApp } from './app.ts';
import { loadKeysFile, parseKeys, type RelayKeys } from './protocol.ts';
import { createMemoryRequestQueue, createRedisRequestSink } from './requests.ts';

export interface RelayRuntimeOptions {
  readonly keys: RelayKeys;
  /** 'memory' (only a gateway in this very process sees the requests) or a Redis store spec. */
  readonly store: string;
  readonly getClientIp: (c: Context) => string;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Expiry reported in the 202 answer; default 3600. */
  readonly ttlSeconds?: number;
}

export interface RelayRuntime {
  readonly app: Hono;
  close(): Promise<void>;
}

export function buildRelay(opts: RelayRuntimeOptions): RelayRuntime {
  const common = {
    keys: opts.keys,
    clock: opts.clock,
    getClientIp: opts.getClientIp,
    ...(opts.logger ? { log: opts.logger } : {}),
    ...(opts.ttlSeconds === undefined ? {} : { ttlSecondsForDoor: () => opts.ttlSeconds ?? 0 }),
  };
  if (opts.store === 'memory') {
    opts.logger?.warn({ event: 'relay.memory_store' }, 'relay store is memory: grant requests reach only a gateway in this process');
    const app = createApp({ ...common, nonces: createMemoryNonceStore({ clock: opts.clock }), requests: createMemoryRequestQueue() });
    return { app, close: () => Promise.resolve() };
  }
  // Fail fast rather than queue: a knock the relay cannot record should be a quick 503.
  const redis = new Redis({ ...redisConnection(opts.store), maxRetriesPerRequest: 1, commandTimeout: 2000 });
  redis.on('error', (err: Error) => opts.logger?.warn({ event: 'store.error', store: redactUrl(opts.store), reason: err.message }, 'relay Redis connection error'));
  const app = createApp({
    ...common,
    nonces: createRedisNonceStore({ client: redis, key: (s) => `knockgw:${s}` }),
    requests: createRedisRequestSink(redis),
  });
  return { app, close: async () => { await redis.quit().catch(() => redis.disconnect()); } };
}

const ssmAnswer = z.object({ Parameter: z.object({ Value: z.string() }) });

/**
 * Keys from KNOCKGW_KEYS_FILE, or on Lambda from the SSM parameter KNOCKGW_KEYS_PARAMETER through
 * the AWS Parameters and Secrets Lambda Extension (localhost, authenticated by the session token).
 */
export async function loadKeysFromEnv(env: NodeJS.ProcessEnv, fetchImpl: typeof fetch = fetch): Promise<RelayKeys> {
  if (env.KNOCKGW_KEYS_FILE) return loadKeysFile(env.KNOCKGW_KEYS_FILE);
  const name = env.KNOCKGW_KEYS_PARAMETER;
  if (!name) throw kgwError('KGW_CONFIG_INVALID', 'set KNOCKGW_KEYS_FILE (a keys file path) or KNOCKGW_KEYS_PARAMETER (an SSM parameter name)');
  const port = env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? '2773';
  const url = `http://localhost:${port}/systemsmanager/parameters/get?name=${encodeURIComponent(name)}&withDecryption=true`;
  let text: string;
  try {
    const res = await fetchImpl(url, { headers: { 'X-Aws-Parameters-Secrets-Token': env.AWS_SESSION_TOKEN ?? '' } });
    text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  } catch (err) {
    throw kgwError('KGW_CONFIG_READ', `cannot read the relay keys parameter ${name} (is the Parameters and Secrets extension layer attached, and ssm:GetParameter allowed?): ${describeError(err)}`, { parameter: name }, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const answer = ssmAnswer.safeParse(json);
  if (!answer.success) throw kgwError('KGW_CONFIG_READ', `the extension's answer for ${name} has no Parameter.Value`, { parameter: name });
  return parseKeys(answer.data.Parameter.Value, `ssm:${name}`);
}

/** Lambda / Cloud Run: KNOCKGW_KEYS_FILE | KNOCKGW_KEYS_PARAMETER, KNOCKGW_STORE, KNOCKGW_DOOR_TTL. */
export async function buildRelayFromEnv(env: NodeJS.ProcessEnv, getClientIp: (c: Context) => string, opts: { fetchImpl?: typeof fetch; logger?: Logger; clock?: Clock } = {}): Promise<RelayRuntime> {
  const store = env.KNOCKGW_STORE;
  if (!store) throw kgwError('KGW_CONFIG_INVALID', 'set KNOCKGW_STORE to the Redis URL the gateways read (or "memory" for a local test)');
  const ttl = env.KNOCKGW_DOOR_TTL === undefined ? undefined : Number(env.KNOCKGW_DOOR_TTL);
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 0)) throw kgwError('KGW_CONFIG_INVALID', `KNOCKGW_DOOR_TTL must be whole seconds ≥ 0, not "${env.KNOCKGW_DOOR_TTL}"`);
  return buildRelay({
    keys: await loadKeysFromEnv(env, opts.fetchImpl),
    store,
    getClientIp,
    clock: opts.clock ?? { now: () => Date.now() },
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
  });
}
