// The change stream as this node reads it: another node's put or remove is applied to the local
// cache at once (which wakes the reconciler), our own entries are skipped, and an entry we cannot
// read is reported and turned into a bare hint (the reconciler then re-reads the whole set).
// The stream is only a hint: the periodic full read repairs anything missed or trimmed.
// Each entry that reached the cache (or was ours, or lost to our queued change) is reported with
// its generation, so the store knows the cache is the set of that generation when the generations
// run on without a hole (index.ts).
import { isLive } from '../../../core/grant.ts';
import type { LogBudget } from '../../../core/log-budget.ts';
import type { Clock } from '../../../ports.ts';
import type { GrantCache } from '../grant-cache.ts';
import { decodeGrant } from './codec.ts';
import type { Outbox } from './outbox.ts';

export interface ChangeFeedDeps {
  readonly nodeId: string;
  readonly stream: string;
  readonly cache: GrantCache;
  /** Our own queued changes win over what the stream says of the same grant. */
  readonly outbox: Outbox;
  readonly clock: Clock;
  /** Redis's clock minus ours: turns a stream id (Redis ms) into our time. */
  readonly offsetMs: () => number;
  readonly budget: LogBudget;
  /** The entry's generation (undefined: written by a knockgw without generations) is in the cache. */
  readonly applied: (gen: string | undefined) => void;
  /** False when a later change of this grant is in the cache already (our own write's reply). */
  readonly claim: (id: string, gen: string | undefined) => boolean;
}

export function changeFeed(deps: ChangeFeedDeps): (id: string, fields: readonly string[]) => void {
  const { cache, outbox, clock } = deps;
  return (entryId, fields) => {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] ?? '', fields[i + 1] ?? '');
    const gen = f.get('gen');
    if (f.get('node') === deps.nodeId) return deps.applied(gen);
    const id = f.get('id');
    const op = f.get('op');
    if (id && (outbox.has(id) || !deps.claim(id, gen))) return deps.applied(gen);
    if (id && op === 'remove') {
      cache.delete(id);
      return deps.applied(gen);
    }
    if (id && op === 'put') {
      // The TTL left when the entry was written, minus the entry's age.
      const writtenAt = Number(entryId.split('-')[0]) - deps.offsetMs();
      const at = Number.isFinite(writtenAt) ? Math.min(writtenAt, clock.now()) : clock.now();
      const decoded = decodeGrant(id, f.get('grant') ?? '', Number(f.get('pttl') ?? -1), at);
      if ('grant' in decoded) {
        if (isLive(decoded.grant, clock.now())) cache.set(decoded.grant);
        else cache.delete(id);
        return deps.applied(gen);
      }
    }
    deps.budget.warn('store.bad_change', { stream: deps.stream, entry: entryId }, `ignoring an unreadable change ${entryId} in ${deps.stream}`);
    cache.emit(undefined);
  };
}
