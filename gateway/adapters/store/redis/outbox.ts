// Changes made while Redis could not take them, replayed in order once it can. One entry per
// grant id (the last change wins, and moves to the end: the replay follows the order of the last
// changes); an entry leaves only when Redis took exactly that change.
import { isLive, mergeGrant, type Grant } from '../../../core/grant.ts';
import type { Clock } from '../../../ports.ts';
import type { GrantCache } from '../grant-cache.ts';

export type QueuedOp = { readonly op: 'put'; readonly grant: Grant } | { readonly op: 'remove'; readonly id: string };

export const opId = (op: QueuedOp): string => (op.op === 'put' ? op.grant.id : op.id);

export interface Outbox {
  readonly size: number;
  has(id: string): boolean;
  /** The change queued for this grant, if any. */
  get(id: string): QueuedOp | undefined;
  add(op: QueuedOp): void;
  /** The queued changes in replay order (local reads overlay them on what Redis says). */
  pending(): IterableIterator<QueuedOp>;
  /**
   * Replays in order while `canSend()`; stops at the first failure (`onFail`, then the rest waits
   * for the next flush). Concurrent calls share one pass. Resolves with how many were replayed.
   */
  flush(send: (op: QueuedOp) => Promise<void>, canSend: () => boolean, onFail: (op: QueuedOp, err: unknown) => void): Promise<number>;
  /** Waits for a flush in flight. */
  idle(): Promise<void>;
}

export function createOutbox(): Outbox {
  const queue = new Map<string, QueuedOp>();
  let flushing: Promise<number> | undefined;

  const flushOnce = async (send: (op: QueuedOp) => Promise<void>, canSend: () => boolean, onFail: (op: QueuedOp, err: unknown) => void): Promise<number> => {
    let flushed = 0;
    for (const [id, op] of [...queue]) {
      if (!canSend()) break;
      try {
        await send(op);
      } catch (err) {
        onFail(op, err);
        break;
      }
      // A newer change of the same grant arrived during the send: it stays queued.
      if (queue.get(id) === op) queue.delete(id);
      flushed++;
    }
    return flushed;
  };

  return {
    get size() {
      return queue.size;
    },
    has: (id) => queue.has(id),
    get: (id) => queue.get(id),
    add(op) {
      const id = opId(op);
      queue.delete(id);
      queue.set(id, op);
    },
    pending: () => queue.values(),
    flush(send, canSend, onFail) {
      flushing ??= flushOnce(send, canSend, onFail).finally(() => (flushing = undefined));
      return flushing;
    },
    async idle() {
      while (flushing) await flushing.catch(() => undefined);
    },
  };
}

/** put/remove on the local cache, queued for Redis: while it is away, and a knock's first step. */
export function localWrites(cache: GrantCache, outbox: Outbox, clock: Clock): { put(grant: Grant): Grant; remove(id: string): Grant | undefined } {
  return {
    put(grant) {
      const merged = mergeGrant(cache.get(grant.id), grant);
      if (isLive(merged, clock.now())) {
        cache.set(merged);
        outbox.add({ op: 'put', grant: merged });
      }
      return merged;
    },
    remove(id) {
      outbox.add({ op: 'remove', id });
      return cache.delete(id);
    },
  };
}
