// Bounded per-source bookkeeping for the knock machine: the LRU slot table that holds attempts,
// and the per-source rate limiter. Pure.
//
// Source addresses are attacker-controlled (spoofing is free), so nothing here grows with the
// number of sources: the attempt table has a fixed capacity and evicts, the rate limiter is a
// fixed-size sketch.
import { kgwError } from './errors.ts';

/**
 * A fixed-capacity LRU of string keys over preallocated slots, with several recency lists
 * (tiers) sharing the slots. Callers keep their values in typed arrays indexed by slot, so a
 * flood of new sources allocates nothing that outlives the packet but the key itself: per-entry
 * objects that live a few thousand packets are exactly what makes V8's young-generation GC
 * expensive. (A bare Map used as a queue is worse still: reaching its first live key walks
 * over every deleted slot until the next rehash.)
 */
export class SlabLru {
  readonly capacity: number;
  readonly #index = new Map<string, number>();
  readonly #keys: string[];
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  readonly #list: Uint8Array;
  readonly #oldest: Int32Array;
  readonly #newest: Int32Array;
  readonly #count: Int32Array;
  readonly #free: Int32Array;
  #freeTop = 0;
  /** Slots below this have been handed out at least once (pages are touched lazily). */
  #highWater = 0;

  constructor(capacity: number, lists = 1) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw kgwError('KGW_CONFIG_INVALID', `a source table needs a positive capacity, got ${capacity}`, { capacity });
    }
    this.capacity = capacity;
    this.#keys = new Array<string>(capacity).fill('');
    this.#prev = new Int32Array(capacity);
    this.#next = new Int32Array(capacity);
    this.#list = new Uint8Array(capacity);
    this.#oldest = new Int32Array(lists).fill(-1);
    this.#newest = new Int32Array(lists).fill(-1);
    this.#count = new Int32Array(lists);
    this.#free = new Int32Array(capacity);
  }

  get size(): number {
    return this.#index.size;
  }

  /** Entries in one list. */
  count(list: number): number {
    return this.#count[list] ?? 0;
  }

  /** The slot of `key`, or -1. */
  find(key: string): number {
    return this.#index.get(key) ?? -1;
  }

  keyOf(slot: number): string {
    return this.#keys[slot] ?? '';
  }

  listOf(slot: number): number {
    return this.#list[slot] ?? 0;
  }

  /** Adds an absent key as the newest entry of `list`; -1 when full (evict first). */
  add(key: string, list = 0): number {
    let slot: number;
    if (this.#freeTop > 0) slot = this.#free[--this.#freeTop] ?? -1;
    else if (this.#highWater < this.capacity) slot = this.#highWater++;
    else return -1;
    this.#keys[slot] = key;
    this.#index.set(key, slot);
    this.#append(slot, list);
    return slot;
  }

  /** Makes `slot` the newest entry of `list` (its own list: a plain touch). */
  move(slot: number, list: number): void {
    this.#unlink(slot);
    this.#append(slot, list);
  }

  remove(slot: number): void {
    this.#unlink(slot);
    this.#index.delete(this.#keys[slot] ?? '');
    this.#keys[slot] = '';
    this.#free[this.#freeTop++] = slot;
  }

  /** The least recently used slot of `list`, or -1. */
  oldest(list = 0): number {
    return this.#oldest[list] ?? -1;
  }

  /** The next newer slot in the same list, or -1 (for iterating oldest first). */
  newer(slot: number): number {
    return this.#next[slot] ?? -1;
  }

  clear(): void {
    for (const slot of this.#index.values()) this.remove(slot);
  }

  #append(slot: number, list: number): void {
    const tail = this.#newest[list] ?? -1;
    this.#list[slot] = list;
    this.#prev[slot] = tail;
    this.#next[slot] = -1;
    if (tail >= 0) this.#next[tail] = slot;
    else this.#oldest[list] = slot;
    this.#newest[list] = slot;
    this.#count[list] = (this.#count[list] ?? 0) + 1;
  }

  #unlink(slot: number): void {
    const list = this.#list[slot] ?? 0;
    const prev = this.#prev[slot] ?? -1;
    const next = this.#next[slot] ?? -1;
    if (prev >= 0) this.#next[prev] = next;
    else this.#oldest[list] = next;
    if (next >= 0) this.#prev[next] = prev;
    else this.#newest[list] = prev;
    this.#count[list] = (this.#count[list] ?? 0) - 1;
  }
}

export interface RateLimit {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size: how many packets a quiet source may send at once. */
  readonly burst: number;
}

/**
 * Per-source token buckets in two layers, so that the common case costs a hash and no map:
 * - a count-min style sketch: each source hashes (seeded, so collisions cannot be aimed
 *   offline) to two cells of a fixed table and passes while either cell has a token; every
 *   packet spends from both. A random-source flood spreads thinly and empties nothing, which is
 *   right: each spoofed address sends one packet.
 * - when both cells are empty the source *may* be a flooder or may merely share its cells with
 *   flooders, so it gets an exact bucket (starting full) in a small LRU table, and that bucket
 *   decides. An innocent source is therefore never refused for someone else's packets.
 * Memory is fixed: the sketch has 4x `sources` cells, the exact table `sources` entries.
 */
export interface RateLimiter {
  readonly perMs: number;
  readonly burst: number;
  readonly bits: number;
  readonly seed: number;
  /** Sketch cells: tokens left and time (ms) of the last refill (none when bits is 0). */
  readonly cellTokens: Float64Array;
  readonly cellAt: Float64Array;
  /** Exact buckets by slot of `exact`: tokens, last refill, 1 while refusing. */
  readonly exact: SlabLru;
  readonly tokens: Float64Array;
  readonly at: Float64Array;
  readonly limited: Uint8Array;
  evicted: number;
}

/** 'ok' = allowed; 'first-refusal' = refused after being allowed; 'refused' = still refused. */
export type TakeResult = 'ok' | 'first-refusal' | 'refused';

/**
 * `sources`: how many concurrently active sources the limiter is sized for. `sketch: false`
 * gives every key its exact bucket from the first request (the relay: a few thousand requests a
 * second, where a key is a client id or an address and exactness is worth more than the sketch's
 * speed).
 */
export function createRateLimiter(limit: RateLimit, sources: number, seed: number, opts: { sketch?: boolean } = {}): RateLimiter {
  if (!(limit.perSecond > 0) || !Number.isFinite(limit.perSecond)) {
    throw kgwError('KGW_CONFIG_INVALID', `knock rate limit perSecond must be a positive number, got ${limit.perSecond}`, { perSecond: limit.perSecond });
  }
  if (!Number.isInteger(limit.burst) || limit.burst < 1) {
    throw kgwError('KGW_CONFIG_INVALID', `knock rate limit burst must be an integer >= 1, got ${limit.burst}`, { burst: limit.burst });
  }
  if (!Number.isInteger(sources) || sources < 1) {
    throw kgwError('KGW_CONFIG_INVALID', `the rate limiter needs a positive source count, got ${sources}`, { sources });
  }
  const bits = opts.sketch === false ? 0 : Math.min(24, Math.max(10, Math.ceil(Math.log2(sources * 4))));
  const cells = bits === 0 ? 0 : 1 << bits;
  return {
    perMs: limit.perSecond / 1000,
    burst: limit.burst,
    bits,
    seed: seed >>> 0,
    cellTokens: new Float64Array(cells).fill(limit.burst),
    cellAt: new Float64Array(cells),
    exact: new SlabLru(sources),
    tokens: new Float64Array(sources),
    at: new Float64Array(sources),
    limited: new Uint8Array(sources),
    evicted: 0,
  };
}

/** Seeded FNV-1a over the UTF-16 code units. */
function hash(seed: number, key: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Refills bucket `i` of (tokens, at) to time `now`; returns its tokens. */
function refill(tokens: Float64Array, at: Float64Array, i: number, now: number, rl: RateLimiter): number {
  const elapsed = now - (at[i] ?? now);
  let t = tokens[i] ?? 0;
  // A clock that steps back must not mint tokens; one that jumps ahead only fills the bucket.
  if (elapsed > 0) {
    t = Math.min(rl.burst, t + elapsed * rl.perMs);
    tokens[i] = t;
    at[i] = now;
  }
  return t;
}

/** Spends one packet of `key` at time `now` (ms). Mutates `rl`. */
export function take(rl: RateLimiter, key: string, now: number): TakeResult {
  return rl.bits === 0 || sketchRefuses(rl, key, now) ? takeExact(rl, key, now) : 'ok';
}

/** Spends from the source's two sketch cells; true when both were empty. */
function sketchRefuses(rl: RateLimiter, key: string, now: number): boolean {
  const h = hash(rl.seed, key);
  const mask = (1 << rl.bits) - 1;
  const a = h & mask;
  // The second cell from a remix of the hash, independent of the first.
  const b = (Math.imul((h >>> 16) | (h << 16), 0x9e3779b1) >>> 0) & mask;
  const ta = refill(rl.cellTokens, rl.cellAt, a, now, rl);
  const tb = refill(rl.cellTokens, rl.cellAt, b, now, rl);
  rl.cellTokens[a] = Math.max(0, ta - 1);
  rl.cellTokens[b] = Math.max(0, tb - 1);
  return ta < 1 && tb < 1;
}

function takeExact(rl: RateLimiter, key: string, now: number): TakeResult {
  const x = rl.exact;
  let slot = x.find(key);
  if (slot < 0) {
    slot = x.add(key);
    if (slot < 0) {
      x.remove(x.oldest());
      rl.evicted++;
      slot = x.add(key);
    }
    rl.tokens[slot] = rl.burst;
    rl.at[slot] = now;
    rl.limited[slot] = 0;
  } else {
    x.move(slot, 0);
  }
  const t = refill(rl.tokens, rl.at, slot, now, rl);
  if (t >= 1) {
    rl.tokens[slot] = t - 1;
    rl.limited[slot] = 0;
    return 'ok';
  }
  if (rl.limited[slot] === 1) return 'refused';
  rl.limited[slot] = 1;
  return 'first-refusal';
}
