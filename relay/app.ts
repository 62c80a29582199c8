// The relay as a Hono app built from its dependencies; each runtime (Node, Lambda, Cloud Run) only
// adapts it and injects how the client address is learned.
import { Hono, type Context } from 'hono';
import type { Clock, Logger, NonceStore } from '../gateway/ports.ts';
import { isKnockgwError, kgwError, type KnockgwError } from '../gateway/core/errors.ts';
import { isRelayErrorCode, MAX_BODY_BYTES, NONCE_TTL_MS, parseKnockBody, RELAY_STATUS, verifyKnock, type RelayKeys } from './protocol.ts';
import { DEFAULT_RATE_LIMIT, TokenBuckets, type RateLimitOptions } from './rate-limit.ts';
import type { GrantRequestSink } from './requests.ts';

export interface RelayDeps {
  readonly keys: RelayKeys;
  readonly nonces: NonceStore;
  readonly requests: GrantRequestSink;
  readonly clock: Clock;
  /** The caller's address from the platform's connection info, never from a client-set header. */
  readonly getClientIp: (c: Context) => string;
  readonly rateLimit?: RateLimitOptions;
  /** What the 202 answer reports as expiry; the gateway's door TTL is authoritative. 0 = until closed. */
  readonly ttlSecondsForDoor?: (door: string) => number;
  readonly log?: Logger;
}

export const DEFAULT_ANSWER_TTL_S = 3600;

type ErrorStatus = 400 | 401 | 403 | 409 | 413 | 422 | 429 | 500 | 503;

function errorAnswer(c: Context, err: unknown): Response {
  let code: string = 'KGW_INTERNAL';
  let status: ErrorStatus = 500;
  let message = 'internal error';
  if (isKnockgwError(err)) {
    code = err.code;
    message = plainMessage(err);
    if (isRelayErrorCode(err.code)) status = RELAY_STATUS[err.code];
    else if (err.code.startsWith('KGW_STORE_')) status = 503;
    else message = 'internal error';
  }
  if (status === 429) c.header('Retry-After', '1');
  return c.json({ error: { code, message } }, status);
}

function plainMessage(err: KnockgwError): string {
  const prefix = `${err.code}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
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
  const perIp = new TokenBuckets(limits.perIp, limits.maxTracked);
  const perKey = new TokenBuckets(limits.perKey, limits.maxTracked);
  const ttlFor = deps.ttlSecondsForDoor ?? (() => DEFAULT_ANSWER_TTL_S);

  const clientIp = (c: Context): string => {
    const ip = deps.getClientIp(c);
    if (!perIp.take(ip, deps.clock.now())) throw kgwError('KGW_RELAY_RATE_LIMITED', `too many requests from ${ip}; retry in a second`, { ip });
    return ip;
  };

  const app = new Hono();

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
    const now = deps.clock.now();
    const { client, ip } = verifyKnock(deps.keys, body, observedIp, now);
    // Only after the signature verifies: otherwise anyone could drain a client's bucket by name.
    if (!perKey.take(client.id, now)) throw kgwError('KGW_RELAY_RATE_LIMITED', `too many knocks for client "${client.id}"; retry later`, { client: client.id });
    if (!(await deps.nonces.claim(`relay:${client.id}`, body.nonce, NONCE_TTL_MS))) {
      throw kgwError('KGW_RELAY_REPLAY', `nonce ${body.nonce} of client "${client.id}" was already used`, { client: client.id });
    }
    await deps.requests.submit({ ...body, observedIp, receivedAt: now });
    const ttl = ttlFor(body.door);
    deps.log?.info({ event: 'relay.accepted', client: client.id, door: body.door, ip }, 'relay knock accepted');
    return c.json({ status: 'accepted', ip, door: body.door, expiresAt: ttl > 0 ? Math.floor(now / 1000) + ttl : null }, 202);
  });

  app.onError((err, c) => {
    if (isKnockgwError(err) && isRelayErrorCode(err.code)) {
      deps.log?.info({ event: 'relay.denied', code: err.code, reason: plainMessage(err) }, 'relay request refused');
    } else {
      deps.log?.error({ event: 'relay.error', err }, 'relay request failed');
    }
    return errorAnswer(c, err);
  });

  return app;
}
