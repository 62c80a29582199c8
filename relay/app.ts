// The relay as a Hono app built from its dependencies; each runtime (Node, Lambda, Cloud Run) only
// adapts it and injects how the client address is learned.
import { Hono, type Context } from 'hono';
import type { Clock, Logger, NonceStore } from '../gateway/ports.ts';
import { isKnockgwError, kgwError, type KnockgwError } from '../gateway/core/errors.ts';
import { parseIp, refusalReason } from '../gateway/core/ip.ts';
import { ATTACKER_LOG_BUDGET, createLogBudget } from '../gateway/core/log-budget.ts';
import { createRateLimiter, take } from '../gateway/core/rate-limit.ts';
import { isRelayErrorCode, MAX_BODY_BYTES, NONCE_TTL_MS, parseKnockBody, RELAY_NONCE_SCOPE, RELAY_STATUS, verifyKnock, type GrantRequestSink, type RelayKeys } from '../gateway/protocol/relay-v1.ts';
import { enrolledClient, type DeviceRegistry } from '../gateway/protocol/devices.ts';
import { coverage, networkOf, prefixFor, type DoorScope } from '../gateway/core/scope.ts';
import { mountEnroll } from './enroll.ts';
import { mountPage, type PublicUrls } from './page.ts';

export interface BucketSpec {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size: how many requests may come at once. */
  readonly burst: number;
}

export interface RateLimitOptions {
  readonly perIp: BucketSpec;
  readonly perKey: BucketSpec;
  /** Keys tracked per limiter; beyond it the least recently seen is forgotten. */
  readonly maxTracked: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = Object.freeze({
  perIp: { perSecond: 2, burst: 20 },
  perKey: { perSecond: 1, burst: 10 },
  maxTracked: 100_000,
});

export interface RelayDeps {
  readonly keys: RelayKeys;
  readonly nonces: NonceStore;
  readonly requests: GrantRequestSink;
  readonly clock: Clock;
  /** The caller's address from the platform's connection info, never from a client-set header. */
  readonly getClientIp: (c: Context) => string;
  readonly rateLimit?: RateLimitOptions;
  /**
   * The gateway's doors and their TTL in seconds (0 = until closed), when this relay knows them
   * (served by the daemon itself): a knock for another door is refused as unknown.
   */
  readonly doors?: ReadonlyMap<string, number>;
  /** A TTL the operator states for every door (a stand-alone relay). With neither, answers claim no expiry. */
  readonly answerTtlSeconds?: number;
  readonly log?: Logger;
  /** Enrolled devices (phones): knocks from them, and POST /v1/enroll. */
  readonly devices?: DeviceRegistry;
  /** What each door opens and its scope, when known: answers then say what opened for which addresses. */
  readonly doorInfo?: ReadonlyMap<string, { readonly open: readonly string[]; readonly scope?: DoorScope }>;
  /** Serve the knock page (PWA) at /, knocking through these family-pinned URLs. */
  readonly page?: { readonly publicUrls?: PublicUrls };
}

/** What a grant for `ip` on `door` covers, when the relay knows the door's scope. */
function coversFor(deps: RelayDeps, door: string, ip: string): { covers?: string; open?: readonly string[] } {
  const info = deps.doorInfo?.get(door);
  const parsed = parseIp(ip);
  if (!info || !parsed) return {};
  const prefix = prefixFor(info.scope, parsed.family, 'relay');
  return { covers: coverage(networkOf(parsed, prefix), parsed.family, prefix), open: info.open };
}

type ErrorStatus = 400 | 401 | 403 | 409 | 410 | 413 | 422 | 429 | 500 | 503;

/** What a client is told: an unknown client and a bad signature look the same (no enumeration of client ids). */
function answerFor(err: unknown): { status: ErrorStatus; code: string; message: string } {
  if (!isKnockgwError(err)) return { status: 500, code: 'KGW_INTERNAL', message: 'internal error' };
  if (err.code === 'KGW_RELAY_UNKNOWN_CLIENT' || err.code === 'KGW_RELAY_BAD_SIGNATURE') {
    return { status: 401, code: 'KGW_RELAY_BAD_SIGNATURE', message: 'the signature does not verify for this client' };
  }
  if (err.code === 'KGW_ENROLL_TOKEN') return { status: 410, code: err.code, message: plainMessage(err) };
  if (isRelayErrorCode(err.code)) return { status: RELAY_STATUS[err.code], code: err.code, message: plainMessage(err) };
  if (err.code.startsWith('KGW_STORE_')) return { status: 503, code: err.code, message: plainMessage(err) };
  return { status: 500, code: err.code, message: 'internal error' };
}

function plainMessage(err: KnockgwError): string {
  const prefix = `${err.code}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

/** A client that hangs up mid-request: routine on the internet, not an error of ours. */
function isClientAbort(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return err.name === 'AbortError' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || /\baborted\b/i.test(err.message);
}

/** Reads at most MAX_BODY_BYTES, counting the bytes actually received (Content-Length may lie or be absent). */
async function readLimitedBody(req: Request): Promise<string> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > MAX_BODY_BYTES) {
    throw kgwError('KGW_RELAY_TOO_LARGE', `the body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`);
  }
  let bytes: Uint8Array;
  if (declared !== null && /^\d+$/.test(declared)) {
    // HTTP framing stops the body at the declared length, so reading it whole is bounded (and
    // lets @hono/node-server skip building a web stream: most of the per-request cost).
    bytes = new Uint8Array(await req.arrayBuffer());
    // Runtimes that hand over a complete body (Lambda) do not enforce the header: count anyway.
    if (bytes.byteLength > MAX_BODY_BYTES) throw kgwError('KGW_RELAY_TOO_LARGE', `the body exceeds ${MAX_BODY_BYTES} bytes`);
  } else {
    bytes = await readCounted(req);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw kgwError('KGW_RELAY_MALFORMED', 'the body is not valid UTF-8');
  }
}

async function readCounted(req: Request): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array();
  const reader = (req.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_BODY_BYTES) {
      await reader.cancel();
      throw kgwError('KGW_RELAY_TOO_LARGE', `the body exceeds ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}

export function createApp(deps: RelayDeps): Hono {
  const limits = deps.rateLimit ?? DEFAULT_RATE_LIMIT;
  const seed = (Math.random() * 2 ** 32) >>> 0;
  const perIp = createRateLimiter(limits.perIp, limits.maxTracked, seed, { sketch: false });
  const perKey = createRateLimiter(limits.perKey, limits.maxTracked, seed, { sketch: false });
  const now = (): number => deps.clock.now();
  // Refusals are what a hostile client causes: within the gateway's budget, then counted.
  const budget = deps.log ? createLogBudget(deps.log, { ...ATTACKER_LOG_BUDGET, now }) : undefined;

  const clientIp = (c: Context): string => {
    const ip = deps.getClientIp(c);
    if (take(perIp, ip, now()) !== 'ok') throw kgwError('KGW_RELAY_RATE_LIMITED', `too many requests from ${ip}; retry in a second`, { ip });
    return ip;
  };

  const app = new Hono();
  // Signed requests, no cookies: any origin may call the API (the page knocks through both
  // family-pinned URLs, which are other origins than the one it was loaded from).
  app.use('/v1/*', async (c, next) => {
    if (c.req.method === 'OPTIONS') {
      return c.body(null, 204, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'content-type', 'Access-Control-Max-Age': '600' });
    }
    await next();
    c.header('Access-Control-Allow-Origin', '*');
  });

  app.get('/v1/ip', (c) => {
    const ip = clientIp(c);
    if ((c.req.header('accept') ?? '').includes('application/json')) return c.json({ ip });
    // fwknop --resolve-url and `curl` users read the first line.
    return c.text(`${ip}\n`);
  });

  app.post('/v1/knock', async (c) => {
    const observedIp = clientIp(c);
    if (!isJsonContentType(c.req.header('content-type'))) {
      throw kgwError('KGW_RELAY_MALFORMED', 'Content-Type must be application/json');
    }
    const text = await readLimitedBody(c.req.raw);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw kgwError('KGW_RELAY_MALFORMED', 'the body is not valid JSON');
    }
    const body = parseKnockBody(json);
    const at = now();
    const { client, ip } = verifyKnock(deps.keys, body, observedIp, at, await enrolledClient(deps.devices, deps.keys, body.client));
    // The gateway would drop a grant for these (loopback, unspecified, multicast…): say so now.
    const parsed = parseIp(ip);
    const refused = parsed ? refusalReason(parsed) : 'not an address';
    if (refused) throw kgwError('KGW_RELAY_IP_FORBIDDEN', `${ip} cannot be granted: ${refused}`, { client: client.id, ip });
    if (deps.doors && !deps.doors.has(body.door)) throw kgwError('KGW_RELAY_DOOR_UNKNOWN', `the gateway has no door "${body.door}"`, { client: client.id, door: body.door });
    const ttl = deps.doors?.get(body.door) ?? deps.answerTtlSeconds;
    // Only after the signature verifies: otherwise anyone could drain a client's bucket by name.
    if (take(perKey, client.id, at) !== 'ok') throw kgwError('KGW_RELAY_RATE_LIMITED', `too many knocks for client "${client.id}"; retry later`, { client: client.id });
    if (!(await deps.nonces.claim(`${RELAY_NONCE_SCOPE}${client.id}`, body.nonce, NONCE_TTL_MS))) {
      throw kgwError('KGW_RELAY_REPLAY', `nonce ${body.nonce} of client "${client.id}" was already used`, { client: client.id });
    }
    await deps.requests.submit({ ...body, observedIp, receivedAt: at });
    deps.log?.info({ event: 'relay.accepted', client: client.id, door: body.door, ip }, 'relay knock accepted');
    const expiry = ttl === undefined ? {} : { expiresAt: ttl > 0 ? Math.floor(at / 1000) + ttl : null };
    return c.json({ status: 'accepted', ip, door: body.door, ...expiry, ...coversFor(deps, body.door, ip) }, 202);
  });

  if (deps.devices) mountEnroll(app, { devices: deps.devices, clock: deps.clock, clientIp: deps.getClientIp, ...(deps.log ? { log: deps.log } : {}) });
  if (deps.page) mountPage(app, deps.page);

  app.onError((err, c) => {
    const a = answerFor(err);
    if (isClientAbort(err)) {
      deps.log?.debug({ event: 'relay.client_aborted', reason: err.message }, 'the client hung up mid-request');
    } else if (isKnockgwError(err) && (isRelayErrorCode(err.code) || a.status < 500)) {
      budget?.info('relay.denied', { code: err.code, reason: plainMessage(err), ...err.detail }, 'relay request refused');
    } else {
      budget?.warn('relay.error', { code: a.code, err: err.message }, 'relay request failed');
    }
    if (a.status === 429) c.header('Retry-After', '1');
    c.header('Access-Control-Allow-Origin', '*');
    return c.json({ error: { code: a.code, message: a.message } }, a.status);
  });

  return app;
}
