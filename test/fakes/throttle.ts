// The cloud fakes' request throttle: a token bucket, as both providers meter API calls.
export interface BucketOptions { readonly burst: number; readonly refillPerSec: number }

/** Returns take(): true when a call may go through now. No options = never throttled. */
export function createThrottle(opts: BucketOptions | undefined): () => boolean {
  if (!opts) return () => true;
  let tokens = opts.burst;
  let at = Date.now();
  return () => {
    const now = Date.now();
    tokens = Math.min(opts.burst, tokens + ((now - at) / 1000) * opts.refillPerSec);
    at = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}
