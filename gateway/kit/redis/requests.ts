// The grant-request queue between relays and gateways, in Redis: one stream
// (`XADD knockgw:requests MAXLEN ~ 10000 * req <json>`). The relay only *asks*: a request carries
// the client's signed body and the address the relay observed; every gateway node reads every
// request and verifies it again, and its nonce claim makes exactly one node act.
//
// A reader starts 10 s back, not at `$`: `$` means "after my first XREAD reaches Redis", and a
// request written while the reader connects would be lost. Stream ids are Redis milliseconds, so
// this covers the connection time and small clock skew; a request seen twice is harmless (nonce
// claim, idempotent grants). Requests queued while no gateway ran for longer are not replayed:
// their timestamps would be near the window's edge anyway, and the client knocks again.
import { kgwError } from '../../core/errors.ts';
import type { GrantRequestSink, GrantRequestSource, QueuedRequest } from '../../protocol/relay-v1.ts';
import type { RedisConnection } from './connection.ts';
import { startStreamReader } from './stream-reader.ts';

export const REQUESTS_STREAM = 'knockgw:requests';
export const REQUESTS_MAXLEN = 10_000;
const START_LOOKBACK_MS = 10_000;
/** Unread requests a reader holds; beyond it the oldest goes (a gateway that far behind would find it stale anyway). */
const READ_AHEAD = 1000;

export function createRedisRequestSink(conn: RedisConnection, opts: { stream?: string; maxLen?: number } = {}): GrantRequestSink {
  const stream = opts.stream ?? REQUESTS_STREAM;
  const maxLen = opts.maxLen ?? REQUESTS_MAXLEN;
  return {
    async submit(req) {
      try {
        await conn.client.xadd(stream, 'MAXLEN', '~', maxLen, '*', 'req', JSON.stringify(req));
      } catch (err) {
        throw kgwError('KGW_STORE_UNAVAILABLE', `cannot queue the grant request in Redis stream ${stream}`, { stream }, err);
      }
    },
  };
}

function payloadOf(fields: readonly string[]): unknown {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'req') continue;
    try {
      return JSON.parse(fields[i + 1] ?? '') as unknown;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Reads the queue on a dedicated connection of `conn` (owned and closed by the source). Read
 * errors go to `onError`; the reader retries with backoff.
 */
export function createRedisRequestSource(conn: RedisConnection, opts: { stream?: string; blockMs?: number; onError?: (err: unknown) => void } = {}): GrantRequestSource {
  const own = conn.duplicate('knockgw-requests');
  void own.connect(5000);
  const buffer: QueuedRequest[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const reader = startStreamReader({
    conn: own,
    stream: opts.stream ?? REQUESTS_STREAM,
    from: `${Math.max(0, Date.now() - START_LOOKBACK_MS)}-0`,
    ...(opts.blockMs !== undefined ? { blockMs: opts.blockMs } : {}),
    count: 100,
    onEntry: (id, fields) => {
      if (buffer.length >= READ_AHEAD) buffer.shift();
      buffer.push({ id, payload: payloadOf(fields) });
      wake?.();
    },
    onError: (err) => opts.onError?.(err),
  });
  return {
    async *[Symbol.asyncIterator]() {
      while (!closed) {
        const next = buffer.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
    async close() {
      closed = true;
      wake?.();
      await reader.close();
      await own.close({ drop: true });
    },
  };
}
