// The one backoff formula: capped exponential growth with jitter. Pure (the random source is a
// parameter), so every retry loop — Redis reconnects, stream readers, cloud calls — spreads out
// the same way and tests can pin the jitter.

export interface Backoff {
  /** Delay of the first retry before jitter. */
  readonly baseMs: number;
  /** No delay grows beyond this. */
  readonly capMs: number;
  /**
   * 'full': uniform in [0, d] (AWS's "full jitter": many callers throttled together spread
   * widest); 'half': uniform in [d/2, d] (a reconnect never retries at once, yet nodes that lost
   * Redis together do not return in lockstep).
   */
  readonly jitter: 'full' | 'half';
}

/** Delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(0, attempt - 1), 30);
  const d = Math.min(b.capMs, b.baseMs * 2 ** exp);
  return Math.round(b.jitter === 'full' ? d * random() : d * (0.5 + random() / 2));
}
