// The one XREAD BLOCK loop: the grant store's change feed and the relay's request queue both read
// a Redis stream this way. It runs on a dedicated connection (a blocking read stalls every other
// command on its connection), keeps its cursor in memory, waits while the connection is down or
// the cursor is not placed yet, and backs off on errors. Entries are handed over in order.
import { z } from 'zod';
import { backoffDelay, type Backoff } from '../../core/backoff.ts';
import type { RedisConnection } from './connection.ts';

const XReadReply = z.array(z.tuple([z.string(), z.array(z.tuple([z.string(), z.array(z.string())]))])).nullable();

export interface StreamReaderOptions {
  /** A connection of its own; the reader does not close it. */
  readonly conn: RedisConnection;
  readonly stream: string;
  /** The id to read after; absent = wait for seek(). */
  readonly from?: string;
  readonly onEntry: (id: string, fields: readonly string[]) => void;
  /** Read errors; the reader retries with `backoff`. */
  readonly onError: (err: unknown) => void;
  /** XREAD BLOCK timeout, also how long a stuck read can hold close() (default 5 s). */
  readonly blockMs?: number;
  /** Entries per read (default 500). */
  readonly count?: number;
  /** Default 100 ms doubling to 5 s, half jitter. */
  readonly backoff?: Backoff;
}

export interface StreamReader {
  /** Places the cursor if it is not placed yet. */
  seek(id: string): void;
  /** The id of the last entry handed over (or the starting point). */
  position(): string | undefined;
  /** Stops reading; a pending read is abandoned, not awaited. */
  close(): Promise<void>;
}

const READ_ERROR_BACKOFF: Backoff = { baseMs: 100, capMs: 5000, jitter: 'half' };
/** While down or unplaced, how often the loop looks again (a ready event wakes it sooner). */
const IDLE_CHECK_MS = 200;

export function startStreamReader(opts: StreamReaderOptions): StreamReader {
  const { conn } = opts;
  const backoff = opts.backoff ?? READ_ERROR_BACKOFF;
  let cursor = opts.from;
  let closed = false;
  let wake: (() => void) | undefined;
  let signalClosed: () => void = () => undefined;
  const whenClosed = new Promise<'closed'>((resolve) => {
    signalClosed = () => resolve('closed');
  });
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const off = conn.on('ready', done);
      function done(): void {
        clearTimeout(t);
        off();
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!closed) {
      if (conn.status() !== 'ready' || cursor === undefined) {
        await pause(IDLE_CHECK_MS);
        continue;
      }
      try {
        const read = conn.client.xread('COUNT', opts.count ?? 500, 'BLOCK', opts.blockMs ?? 5000, 'STREAMS', opts.stream, cursor);
        // ioredis may never settle a read once the connection is dropped: close() must not wait on it.
        read.catch(() => undefined);
        const raw = await Promise.race([read, whenClosed]);
        if (raw === 'closed') return;
        for (const [, entries] of XReadReply.parse(raw) ?? []) {
          for (const [id, fields] of entries) {
            cursor = id;
            opts.onEntry(id, fields);
          }
        }
        failures = 0;
      } catch (err) {
        if (closed) return;
        opts.onError(err);
        failures++;
        await pause(backoffDelay(backoff, failures));
      }
    }
  };
  const done = loop();

  return {
    seek(id) {
      cursor ??= id;
      wake?.();
    },
    position: () => cursor,
    async close() {
      closed = true;
      signalClosed();
      wake?.();
      await done;
    },
  };
}
