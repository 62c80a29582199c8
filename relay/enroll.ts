// POST /v1/enroll: a phone redeems the single-use token of its enrollment link with the public key
// it just made (WebCrypto, non-extractable private half). The token is consumed whatever the
// outcome after it is found; attempts are rate-limited per address (tokens are 256-bit random, so
// this is about load and noise, not guessing).
import type { Context, Hono } from 'hono';
import { kgwError } from '../gateway/core/errors.ts';
import { createRateLimiter, take } from '../gateway/core/rate-limit.ts';
import { parseEnrollBody, type DeviceRegistry } from '../gateway/protocol/devices.ts';
import type { Clock, Logger } from '../gateway/ports.ts';

/** A few attempts at once, then one a minute per address. */
export const ENROLL_RATE = Object.freeze({ perSecond: 1 / 60, burst: 5 });

const MAX_ENROLL_BYTES = 2048;

/** The body as text, refused with 413 past `max` bytes counted as they arrive (whatever Content-Length says). */
async function readAtMost(req: Request, max: number): Promise<string> {
  const tooLarge = () => kgwError('KGW_RELAY_TOO_LARGE', `an enrollment is at most ${max} bytes`);
  if (Number(req.headers.get('content-length') ?? '0') > max) throw tooLarge();
  if (!req.body) return '';
  const reader = (req.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function mountEnroll(app: Hono, deps: { devices: DeviceRegistry; clock: Clock; clientIp: (c: Context) => string; log?: Logger }): void {
  const limiter = createRateLimiter(ENROLL_RATE, 100_000, (Math.random() * 2 ** 32) >>> 0, { sketch: false });
  app.post('/v1/enroll', async (c) => {
    const ip = deps.clientIp(c);
    const now = deps.clock.now();
    if (take(limiter, ip, now) !== 'ok') throw kgwError('KGW_RELAY_RATE_LIMITED', `too many enrollment attempts from ${ip}; wait a minute`, { ip });
    if ((c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() !== 'application/json') {
      throw kgwError('KGW_RELAY_MALFORMED', 'Content-Type must be application/json');
    }
    const text = await readAtMost(c.req.raw, MAX_ENROLL_BYTES);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw kgwError('KGW_RELAY_MALFORMED', 'the body is not valid JSON');
    }
    const body = parseEnrollBody(json);
    const device = await deps.devices.redeem(body.token, { alg: body.alg, publicKey: body.publicKey, enrolledFrom: ip, ...(body.name === undefined ? {} : { name: body.name }) }, now);
    deps.log?.info({ event: 'device.enrolled', device: device.id, name: device.name, door: device.door, alg: device.alg, ip }, 'device enrolled');
    return c.json({ status: 'enrolled', client: device.id, name: device.name, door: device.door, alg: device.alg }, 201);
  });
}
