// The one XREAD BLOCK loop: the grant store's change feed and the relay's request queue both read
// a Redis stream this way. It runs on a dedicated connection (a blocking read stalls every other
// command on its connection), keeps its cursor in memory, waits while the connection is down or
// the cursor is not placed yet, and backs off on errors. Entries are handed over in order.
import { z } from 'zod';
import { backoffDelay, type Backoff } from '../../core/backoff.ts';
import type { RedisConnection } from './connection.ts';

const XReadReply = z.array(z.tuple([z.string(), z.array(z.tuple([z.string(), z.array(z.string())]))])).nullable();

const XRangeHead = z.array(z.tuple([z.string(), z.array(z.string())]));

/** Orders two stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

export interface StreamReaderOptions {
  /** A connection of its own; the reader does not close it. */
  readonly conn: RedisConnection;
  readonly stream: string;
  /** The id to read after; absent = wait for seek(). */
  readonly from?: string;
  readonly onEntry: (id: string, fields: readonly string[]) => void;
  /** Read errors; the reader retries with `backoff`. */
  readonly onError: (err: unknown) => void;
  /**
   * Entries may have been trimmed (XADD MAXLEN) before this reader saw them: it fell behind by
   * more than the stream keeps, e.g. in a burst. The reader has already jumped to the stream's
   * end (what it skipped is older than the owner's next read), and the owner now re-reads what
   * the stream was a hint of. Without the jump a reader that far behind stays behind, and reads
   * everything again after every batch.
   */
  readonly onGap?: () => void;
  /** A batch this long means the reader is behind: then it checks for a gap (default: count). */
  readonly lagAt?: number;
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

  const count = opts.count ?? 500;
  /** True when the stream's oldest entry is newer than `id`: what followed `id` may be trimmed. */
  const trimmedPast = async (id: string | undefined): Promise<boolean> => {
    const first = XRangeHead.parse(await conn.client.xrange(opts.stream, '-', '+', 'COUNT', 1))[0]?.[0];
    return id !== undefined && first !== undefined && compareIds(id, first) < 0;
  };

  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!closed) {
      if (conn.status() !== 'ready' || cursor === undefined) {
        await pause(IDLE_CHECK_MS);
        continue;
      }
      try {
        const reading = conn.client.xread('COUNT', count, 'BLOCK', opts.blockMs ?? 5000, 'STREAMS', opts.stream, cursor);
        // ioredis may never settle a read once the connection is dropped: close() must not wait on it.
        reading.catch(() => undefined);
        const raw = await Promise.race([reading, whenClosed]);
        if (raw === 'closed') return;
        const from = cursor;
        let read = 0;
        for (const [, entries] of XReadReply.parse(raw) ?? []) {
          for (const [id, fields] of entries) {
            cursor = id;
            read++;
            opts.onEntry(id, fields);
          }
        }
        // Only a long batch means we are behind; then an entry after `from` may be gone already.
        if (read >= (opts.lagAt ?? count) && opts.onGap && (await trimmedPast(from))) {
          cursor = XRangeHead.parse(await conn.client.xrevrange(opts.stream, '+', '-', 'COUNT', 1))[0]?.[0] ?? cursor;
          opts.onGap();
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
