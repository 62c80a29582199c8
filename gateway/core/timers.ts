// Timer arithmetic shared by everything that waits for an expiry. Pure.

/**
 * setTimeout() stores its delay in a signed 32-bit integer: anything longer fires at once (a
 * 30-day TTL would close a grant milliseconds after it opened). Waits are capped here and
 * re-armed when they fire early.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A delay setTimeout() can hold: at least `minMs`, at most MAX_TIMER_MS. */
export function timerDelay(ms: number, minMs = 0): number {
  return Math.min(MAX_TIMER_MS, Math.max(minMs, Math.ceil(ms)));
}

/**
 * The longest TTL or timeout knockgw accepts, in seconds (about 24.8 days): ipset's kernel
 * maximum (2147483 s) and setTimeout's, below nftables' (2^32 ms). Longer values are refused at
 * config load, the same for YAML and knockd.conf; 0 ("until closed") needs no timer at all.
 */
/**
 * How long a node may go without hearing from the shared store before it stops honouring grants
 * it learned from it (seconds): the longest time a revoke can take to reach every node.
 */
export const STALENESS_S = { default: 60, min: 2 } as const;

/** The allowed range of maxStaleness, said the same way by the CLI and the config. */
export const stalenessRange = (): string => `an integer from ${STALENESS_S.min} to ${MAX_TIMEOUT_S} seconds`;

export const MAX_TIMEOUT_S = 2_147_483;
