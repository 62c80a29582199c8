// The grant-request queue inside one process: a relay served by the daemon itself hands its
// requests straight to the daemon's intake (single host, no Redis).
import type { GrantRequestSink, GrantRequestSource, QueuedRequest } from '../protocol/relay-v1.ts';

/** Beyond this many unread requests a reader drops the oldest (counted). */
export const MEMORY_QUEUE_LIMIT = 10_000;

export interface MemoryRequestQueue extends GrantRequestSink {
  /** A new reader that sees requests submitted from now on (like XREAD from `$`). */
  source(): GrantRequestSource;
  /** Requests dropped because a reader's buffer was full. */
  readonly dropped: number;
}

export function createMemoryRequestQueue(opts: { maxBuffered?: number } = {}): MemoryRequestQueue {
  const maxBuffered = opts.maxBuffered ?? MEMORY_QUEUE_LIMIT;
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
