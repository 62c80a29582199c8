// The grant-request queue between relay and gateway. The relay only *asks*: a request carries the
// client's signed body plus the address the relay observed, and the gateway verifies it again.
//
// Redis: one Stream (`XADD knockgw:requests MAXLEN ~ 10000 * req <json>`). Every gateway node
// reads it with XREAD BLOCK from its own in-memory cursor (no consumer group), so every node sees
// every request; the gateway's nonce claim in the shared NonceStore makes exactly one of them act.
// The cursor starts 10 s back when a reader starts and is never persisted: requests queued
// while no gateway ran for longer are not replayed — by then their timestamps would be close to
// the window's edge anyway, and the client simply knocks again.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { kgwError } from '../gateway/core/errors.ts';
import { knockBodySchema, type KnockBody } from './protocol.ts';

export const REQUESTS_STREAM = 'knockgw:requests';
export const REQUESTS_MAXLEN = 10_000;

export type GrantRequest = KnockBody & {
  /** The address the relay saw the request come from (platform connection info). */
  readonly observedIp: string;
  /** Relay clock, unix milliseconds. */
  readonly receivedAt: number;
};

export const grantRequestSchema = knockBodySchema.extend({
  observedIp: z.string().max(64),
  receivedAt: z.number(),
});

/** Parses a queued payload (the queue may hold anything a compromised relay wrote). */
export function parseGrantRequest(payload: unknown): GrantRequest {
  const parsed = grantRequestSchema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; ');
  throw kgwError('KGW_RELAY_MALFORMED', `invalid queued grant request: ${issues}`);
}

export interface GrantRequestSink {
  submit(req: GrantRequest): Promise<void>;
}

/** One entry as read from the queue: its id and the still-untrusted payload. */
export interface QueuedRequest {
  readonly id: string;
  readonly payload: unknown;
}

export interface GrantRequestSource extends AsyncIterable<QueuedRequest> {
  /** Ends the iteration (a pending read returns done). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------- memory (tests, single host)

export interface MemoryRequestQueue extends GrantRequestSink {
  /** A new reader that sees requests submitted from now on (like XREAD from `$`). */
  source(): GrantRequestSource;
  /** Requests dropped because a reader's buffer was full. */
  readonly dropped: number;
}

export function createMemoryRequestQueue(opts: { maxBuffered?: number } = {}): MemoryRequestQueue {
  const maxBuffered = opts.maxBuffered ?? REQUESTS_MAXLEN;
  const readers = new Set<{ push(q: QueuedRequest): void }>();
  let seq = 0;
  let dropped = 0;

  return {
    get dropped() { return dropped; },
    submit(req) {
      if (readers.size === 0) return Promise.resolve();
      // A copy, so a reader cannot observe later mutation and gets the same shape Redis gives.
      const q = { id: `${Date.now()}-${seq++}`, payload: structuredClone(req) };
      for (const r of readers) r.push(q);
      return Promise.resolve();
    },
    source() {
      const buffer: QueuedRequest[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      const reader = {
        push(q: QueuedRequest) {
          if (buffer.length >= maxBuffered) { buffer.shift(); dropped++; }
          buffer.push(q);
          wake?.();
        },
      };
      readers.add(reader);
      return {
        async *[Symbol.asyncIterator]() {
          while (!closed) {
            const next = buffer.shift();
            if (next) { yield next; continue; }
            await new Promise<void>((resolve) => { wake = resolve; });
            wake = undefined;
          }
        },
        close() {
          closed = true;
          readers.delete(reader);
          wake?.();
          return Promise.resolve();
        },
      };
    },
  };
}

// ---------------------------------------------------------------- Redis (any gateway node)

export function createRedisRequestSink(redis: Redis, opts: { stream?: string; maxLen?: number } = {}): GrantRequestSink {
  const stream = opts.stream ?? REQUESTS_STREAM;
  const maxLen = opts.maxLen ?? REQUESTS_MAXLEN;
  return {
    async submit(req) {
      try {
        await redis.xadd(stream, 'MAXLEN', '~', maxLen, '*', 'req', JSON.stringify(req));
      } catch (err) {
        throw kgwError('KGW_STORE_UNAVAILABLE', `cannot queue the grant request in Redis stream ${stream}`, { stream }, err);
      }
    },
  };
}

/** How far back a new reader starts (covers its own connection time and small clock skew). */
const START_LOOKBACK_MS = 10_000;
const READ_BATCH = 100;

export interface RedisSourceOptions {
  readonly stream?: string;
  /** XREAD BLOCK timeout; bounds how long close() may wait on a stuck connection. */
  readonly blockMs?: number;
  /** Called for read errors (the source retries with capped, jittered backoff). */
  readonly onError?: (err: unknown) => void;
}

/**
 * Reads the stream on a dedicated connection (a blocking XREAD would stall every other command
 * sharing the connection). The source owns that duplicate and closes it.
 */
export function createRedisRequestSource(redis: Redis, opts: RedisSourceOptions = {}): GrantRequestSource {
  const stream = opts.stream ?? REQUESTS_STREAM;
  const blockMs = opts.blockMs ?? 5000;
  const conn = redis.duplicate();
  conn.on('error', (err: Error) => opts.onError?.(err));
  let closed = false;
  // Not `$`: that would mean "after the first XREAD reaches Redis", and a request written while
  // this reader connects would be lost. Stream ids are Redis milliseconds, so start a few seconds
  // back: a request seen twice is harmless (the nonce claim and idempotent grants absorb it).
  let cursor = `${Math.max(0, Date.now() - START_LOOKBACK_MS)}-0`;
  let wakeSleep: (() => void) | undefined;
  let signalClosed: () => void = () => undefined;
  const whenClosed = new Promise<'closed'>((resolve) => { signalClosed = () => resolve('closed'); });

  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    wakeSleep = () => { clearTimeout(t); resolve(); };
  });

  return {
    async *[Symbol.asyncIterator]() {
      let failures = 0;
      while (!closed) {
        let result: [string, [string, string[]][]][] | null;
        try {
          const read = conn.xread('COUNT', READ_BATCH, 'BLOCK', blockMs, 'STREAMS', stream, cursor);
          // ioredis may never settle a command queued while reconnecting once disconnect() is
          // called, so close() must not depend on the read settling.
          read.catch(() => undefined);
          const first = await Promise.race([read, whenClosed]);
          if (first === 'closed') return;
          result = first;
          failures = 0;
        } catch (err) {
          if (closed) return;
          opts.onError?.(err);
          failures++;
          await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random() / 2));
          continue;
        }
        for (const [, entries] of result ?? []) {
          for (const [id, fields] of entries) {
            cursor = id;
            yield { id, payload: payloadOf(fields) };
          }
        }
      }
    },
    async close() {
      closed = true;
      signalClosed();
      wakeSleep?.();
      // disconnect() (not quit) interrupts a pending blocking XREAD at once.
      conn.disconnect();
      await Promise.resolve();
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
