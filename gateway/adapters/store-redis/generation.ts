// Which generation of the grant set the cache holds (the `gen` key: one more per change, see
// kit/redis/lua.ts), so that a full read can ask Redis "still that one?" instead of reading every
// grant: in a fleet, every node's periodic read of every grant is O(nodes × grants).
//
// A complete read sets it (the generation its first chunk saw: every later chunk sees that state
// or a newer one, so the cache is at least that set). Stream entries come in order, one per
// generation: the next one moves it on, so a trickle of changes does not cost every node a read
// of every grant. A hole (entries trimmed, or entries older than a read that overtook them) waits
// for the next whole read. An entry without a generation (an older knockgw in a rolling upgrade)
// forgets it. Grants that expire by PX change no generation: every node closes them on its own
// timers. A hand edit with redis-cli changes none either: hence a whole read at least every maxAgeMs.

export interface Generation {
  /** What to ask a full read starting at `now`: the generation held, or undefined = read everything. */
  since(now: number, force: boolean): string | undefined;
  /** A complete read that started at `at` found generation `gen` ('' = none yet). */
  read(gen: string, at: number): void;
  /** A stream entry with this generation reached the cache. */
  applied(gen: string | undefined): void;
}

export function generation(maxAgeMs: number): Generation {
  let held: string | undefined;
  let readAt = -Infinity;
  return {
    since: (now, force) => (force || now - readAt >= maxAgeMs || !held ? undefined : held),
    read(gen, at) {
      held = gen;
      readAt = at;
    },
    applied(gen) {
      if (gen === undefined) held = undefined;
      else if (held && Number(gen) === Number(held) + 1) held = gen;
    },
  };
}
