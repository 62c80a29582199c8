// Token buckets keyed by IP or client id, with a hard cap on tracked keys so a flood of
// distinct sources costs bounded memory (the least recently used bucket is forgotten).

export interface BucketSpec {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size: how many requests may come at once. */
  readonly burst: number;
}

export interface RateLimitOptions {
  readonly perIp: BucketSpec;
  readonly perKey: BucketSpec;
  /** Per limiter; beyond it the least recently seen key is evicted. */
  readonly maxTracked: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = Object.freeze({
  perIp: { perSecond: 2, burst: 20 },
  perKey: { perSecond: 1, burst: 10 },
  maxTracked: 100_000,
});

interface Bucket { tokens: number; at: number }

export class TokenBuckets {
  readonly #spec: BucketSpec;
  readonly #max: number;
  // Map iteration order is insertion order: re-inserting on use makes the first entry the LRU.
  readonly #buckets = new Map<string, Bucket>();
  #evictions = 0;

  constructor(spec: BucketSpec, maxTracked: number) {
    this.#spec = spec;
    this.#max = Math.max(1, maxTracked);
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, nowMs: number): boolean {
    const found = this.#buckets.get(key);
    let b: Bucket;
    if (found) {
      this.#buckets.delete(key);
      b = found;
      b.tokens = Math.min(this.#spec.burst, b.tokens + ((nowMs - b.at) / 1000) * this.#spec.perSecond);
      b.at = nowMs;
    } else {
      b = { tokens: this.#spec.burst, at: nowMs };
      if (this.#buckets.size >= this.#max) {
        const oldest = this.#buckets.keys().next();
        if (!oldest.done) this.#buckets.delete(oldest.value);
        this.#evictions++;
      }
    }
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number { return this.#buckets.size; }
  get evictions(): number { return this.#evictions; }
}
