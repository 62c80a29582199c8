// What the GCP adapters act on, declared here rather than borrowed from the config: the wiring
// maps `cloud.gcp` onto it, so the config's shape can change without touching an adapter.
export interface GcpTarget {
  readonly project: string;
  /** A network name, or its full resource path. */
  readonly network: string;
  /** Exactly one of the two is non-empty: what knockgw's rules apply to (the gateway instances). */
  readonly targetTags: readonly string[];
  readonly targetServiceAccounts: readonly string[];
  readonly priority: number;
  /** aggregated: a few rules per door and family holding many source ranges; per-grant: one rule per grant and family. */
  readonly mode: 'aggregated' | 'per-grant';
  /** A Compute endpoint other than Google's (a test's fake). */
  readonly endpoint?: string;
}
