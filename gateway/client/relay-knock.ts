// NAT-safe knock: sign a v1 request with the client's key and POST it to the relay, which sees
// the address the client's traffic really comes from.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeError, kgwError, type ErrorCode } from '../core/errors.ts';
import { isRelayErrorCode, parsePrivateKeyFile, signKnock } from '../protocol/relay-v1.ts';

export interface RelayKnockOptions {
  /** Relay base URL, e.g. https://relay.example.net (the /v1/knock path is appended). */
  readonly url: string;
  /** Path of the private key file from `knockgw keygen`. */
  readonly keyFile: string;
  readonly door: string;
  /** Ask for this address instead of the observed one (the keys entry must allow it). */
  readonly ip?: string;
  readonly fetchImpl?: typeof fetch;
  /** Unix milliseconds; injectable for tests. */
  readonly now?: () => number;
  readonly timeoutMs?: number;
}

export interface RelayAnswer {
  readonly status: 'accepted';
  readonly ip: string;
  readonly door: string;
  /** Unix seconds, null = until closed; absent when the relay does not know the gateway's TTL. */
  readonly expiresAt?: number | null | undefined;
}

const answerSchema = z.object({ status: z.literal('accepted'), ip: z.string(), door: z.string(), expiresAt: z.number().nullable().optional() });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

function endpoint(base: string, path: string): string {
  try {
    return new URL(path, base.endsWith('/') ? base : `${base}/`).toString();
  } catch {
    throw kgwError('KGW_CLI_USAGE', `"${base}" is not a valid relay URL`, { url: base });
  }
}

async function readKey(path: string) {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw kgwError('KGW_CONFIG_READ', `cannot read relay key file ${path}: ${describeError(err)}`, { path }, err);
  }
  return parsePrivateKeyFile(text, path);
}

export async function relayKnock(opts: RelayKnockOptions): Promise<RelayAnswer> {
  const signer = await readKey(opts.keyFile);
  const doFetch = opts.fetchImpl ?? fetch;
  const now = opts.now ?? Date.now;
  const body = signKnock(signer, {
    door: opts.door,
    ts: Math.floor(now() / 1000),
    nonce: randomBytes(16).toString('base64'),
    ...(opts.ip === undefined ? {} : { ip: opts.ip }),
  });
  const url = endpoint(opts.url, 'v1/knock');
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw kgwError('KGW_RELAY_UNREACHABLE', `cannot reach the relay at ${url}: ${describeError(err)}`, { url }, err);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.status === 202) {
    const ok = answerSchema.safeParse(json);
    if (ok.success) return ok.data;
    throw kgwError('KGW_RELAY_RESPONSE', `the relay at ${url} answered 202 with an unexpected body`, { url, body: text.slice(0, 200) });
  }
  const err = errorSchema.safeParse(json);
  if (err.success) {
    const code: ErrorCode = isRelayErrorCode(err.data.error.code) ? err.data.error.code : 'KGW_RELAY_RESPONSE';
    throw kgwError(code, `relay refused the knock (HTTP ${res.status}): ${err.data.error.message}`, { url, status: res.status, serverCode: err.data.error.code });
  }
  throw kgwError('KGW_RELAY_RESPONSE', `the relay at ${url} answered HTTP ${res.status} without a knockgw error`, { url, status: res.status, body: text.slice(0, 200) });
}
