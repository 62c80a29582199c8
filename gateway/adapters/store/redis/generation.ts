// Which generation of the grant set the cache holds (the `gen` key: one more per change, see
// kit/redis/lua.ts), so that a full read can ask Redis for one number instead of reading every
// grant: in a fleet, every node's periodic read of every grant is O(nodes × grants).
//
// A complete read sets it: to the generation its first chunk saw (every later chunk sees that
// state or a newer one), or, when the change feed handed over every entry from before the read
// to past that generation without a hole meanwhile, to the feed's last entry. Entries come in
// order, one per generation: the next one moves it on, so a trickle of changes does not cost
// every node a read of every grant. A hole (entries trimmed, entries older than a read that
// overtook them) waits for the next whole read; an entry without a generation (an older knockgw
// in a rolling upgrade) forgets it. Grants that expire by PX change no generation: every node
// closes those on its own timers. A hand edit with redis-cli changes none either: hence a whole
// read at least every maxAgeMs.

export interface Generation {
  /** The generation held, unless a full read starting at `now` must read everything. */
  since(now: number, force: boolean): string | undefined;
  /** Before a whole read: what read() needs to know whether the feed kept up meanwhile. */
  mark(): number;
  /** A complete read that started at `at` (mark `mark`) found generation `gen` ('' = none yet). */
  read(gen: string, at: number, mark: number): void;
  /** A change entry with this generation reached the cache. */
  applied(gen: string | undefined): void;
  /**
   * Whether a change of grant `id` made at generation `gen` may go into the cache: not when a
   * later change of the same grant is already there. Our own write's reply can come after the feed
   * handed over another node's later change of that grant (or the reverse): the cache follows
   * Redis's order, not the order of arrival.
   */
  claim(id: string, gen: string | undefined): boolean;
  /**
   * Whether the cache holds generation `target` (Redis's now, asked when since() said `from`), or
   * a later one, within `waitMs`: at once when it does (the feed may have passed it meanwhile),
   * after waiting for the feed when it is a little behind, false when Redis is behind `from`
   * (another history: a replica, a restore) or far ahead.
   */
  reach(from: string, target: string, waitMs: number): Promise<boolean>;
}

/** Further behind than this, the feed is not waited for: a whole read is sooner. */
const MAX_BEHIND = 1000;
/** Grants whose last change's generation is remembered before the oldest are forgotten. */
const MAX_IDS = 100_000;

export function generation(maxAgeMs: number): Generation {
  let held: string | undefined;
  let readAt = -Infinity;
  /** The feed's last entry, and how many times it skipped a generation. */
  let last: number | undefined;
  let holes = 0;
  const waiters = new Set<() => void>();
  /** Per grant, the generation of its last change in the cache (pruned far behind the feed). */
  const byId = new Map<string, number>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  return {
    since: (now, force) => (force || now - readAt >= maxAgeMs || !held ? undefined : held),
    mark: () => holes,
    read(gen, at, mark) {
      held = gen !== '' && mark === holes && last !== undefined && last >= Number(gen) ? String(last) : gen;
      readAt = at;
      wake();
    },
    applied(gen) {
      const g = gen === undefined ? NaN : Number(gen);
      if (last === undefined || g !== last + 1) holes++;
      last = Number.isFinite(g) ? g : undefined;
      if (gen === undefined) held = undefined;
      else if (held && g === Number(held) + 1) held = gen;
      wake();
    },
    claim(id, gen) {
      const g = Number(gen);
      if (gen === undefined || !Number.isFinite(g)) return true;
      if ((byId.get(id) ?? -Infinity) > g) return false;
      byId.set(id, g);
      if (byId.size > MAX_IDS && last !== undefined) for (const [k, v] of byId) if (v < last - MAX_IDS / 2) byId.delete(k);
      return true;
    },
    reach(from, target, waitMs) {
      const behind = (): number => (held ? Number(target) - Number(held) : NaN);
      if (!(Number(target) >= Number(from))) return Promise.resolve(false);
      if (behind() <= 0) return Promise.resolve(true);
      if (!(behind() <= MAX_BEHIND)) return Promise.resolve(false);
      return new Promise((resolve) => {
        const done = (ok: boolean): void => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(ok);
        };
        const check = (): void => {
          const b = behind();
          if (b <= 0) done(true);
          else if (!(b > 0)) done(false);
        };
        const timer = setTimeout(() => done(false), waitMs);
        waiters.add(check);
      });
    },
  };
}
