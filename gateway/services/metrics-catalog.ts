// Every series the daemon exports, with its help text and labels: the one list the code, the
// README, the Grafana dashboard and the alert rules are checked against (test/unit/metrics-*).
// Names are snake_case under knockgw_, counters end in _total, and no label holds an address:
// label values come from the config (door, stanza), from a short fixed list (reason, engine,
// source, provider, operation, state, path, stage) or from the build.

type Def =
  | { readonly type: 'counter' | 'gauge'; readonly help: string; readonly labels?: readonly string[] }
  | { readonly type: 'histogram'; readonly help: string; readonly labels?: readonly string[]; readonly buckets: readonly number[] };

/** From the kernel engine's 0.12 ms to a slow pcap knock (seconds). */
const FAST = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** services/trace.ts: fine below 5 ms, where the targets are. */
const TRACE = [0.00001, 0.000025, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Cloud APIs answer in tens of milliseconds to tens of seconds (GCP waits for its operation). */
const CLOUD = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** A Redis round trip on a LAN is ~0.1–1 ms; a memory store microseconds. */
const STORE = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export const METRICS = {
  build_info: { type: 'gauge', help: 'Always 1; the labels say which knockgw runs on which node.', labels: ['version', 'node'] },

  grants_live: { type: 'gauge', help: 'Grants the host firewall enforces now.' },
  grants_opened_total: { type: 'counter', help: 'Grants opened (a new grant for an address and door).', labels: ['door', 'source'] },
  grants_extended_total: { type: 'counter', help: 'Knocks that extended a live grant.', labels: ['door', 'source'] },
  grants_closed_total: { type: 'counter', help: 'Grants closed, by reason (sequence, ttl, manual, revoke, stale).', labels: ['door', 'reason'] },
  grants_dropped_total: { type: 'counter', help: 'Stored grants dropped because the config no longer allows them.', labels: ['reason'] },
  completion_errors_total: { type: 'counter', help: 'Completed knocks, SPA packets or relay requests the gateway failed to act on.' },
  packet_stage_seconds: { type: 'histogram', help: 'Each stage of a packet that became a grant, kernel arrival to nft reply (stage total: knock to open).', labels: ['path', 'stage'], buckets: TRACE },
  grant_to_firewall_seconds: { type: 'histogram', help: 'From a new grant to the host firewall applying it.', labels: ['source'], buckets: FAST },

  knock_packets_total: { type: 'counter', help: 'Packets the pcap engine examined.' },
  knock_ignored_total: { type: 'counter', help: 'Packets the pcap engine ignored (port, flags or target not matching).', labels: ['reason'] },
  knock_duplicates_total: { type: 'counter', help: 'Immediate duplicates of a knock (retransmitted SYNs) tolerated.' },
  knock_resets_total: { type: 'counter', help: 'Knock attempts reset (a wrong port of the sequence, or the sequence timeout).', labels: ['reason'] },
  knock_completed_total: { type: 'counter', help: 'Knock sequences the pcap engine saw completed.' },
  knock_evicted_total: { type: 'counter', help: 'In-progress knocks evicted because the tracking table was full (a flood).' },
  knock_denied_total: { type: 'counter', help: 'Knock packets denied (bad source address, per-source rate limit).', labels: ['reason'] },
  knock_rate_limit_evicted_total: { type: 'counter', help: 'Per-source rate limiter entries evicted because its table was full (a flood).' },
  knock_released_first_total: { type: 'counter', help: 'First knocks the kernel held back and released to the pcap engine.' },
  kernel_adopted_total: { type: 'counter', help: 'Kernel completions whose report was lost, adopted by the repair.', labels: ['action'] },

  spa_packets_total: { type: 'counter', help: 'SPA packets examined.' },
  spa_accepted_total: { type: 'counter', help: 'SPA packets that authenticated and were granted.', labels: ['stanza'] },
  spa_denied_total: { type: 'counter', help: 'SPA packets refused, by reason (hmac, stale, replay, …).', labels: ['reason'] },

  relay_responses_total: { type: 'counter', help: 'Answers of the relay this daemon serves (relay.listen), by status class.', labels: ['code'] },

  firewall_ops_total: { type: 'counter', help: 'Host firewall operations applied (adds and removes).' },
  firewall_op_failures_total: { type: 'counter', help: 'Host firewall operations the firewall refused.' },
  reconcile_runs_total: { type: 'counter', help: 'Full repairs of the host firewall against the store.' },
  reconcile_errors_total: { type: 'counter', help: 'Failed reconcile passes (retried by the next repair).' },

  store_state: { type: 'gauge', help: '1 for the state this node is in with the shared store (connected, degraded, cut-off), 0 for the others.', labels: ['state'] },
  fleet_nodes: { type: 'gauge', help: 'Nodes on the fleet roster as this node last read it: live (heard within 5 s) and silent (down or cut off; listed for an hour).', labels: ['state'] },
  store_round_trip_seconds: { type: 'histogram', help: 'Grant store calls (put, remove, list) from the gateway, Redis round trips included.', labels: ['op'], buckets: STORE },

  cloud_leader: { type: 'gauge', help: '1 when this node holds the cloud lease (it alone writes to the clouds).' },
  cloud_state: { type: 'gauge', help: '1 for the state of each cloud firewall (unknown, ok, failing, follower), 0 for the others.', labels: ['provider', 'state'] },
  cloud_pending_writes: { type: 'gauge', help: 'Cloud writes the last pass could not make (the next pass retries).', labels: ['provider'] },
  cloud_last_listed_timestamp_seconds: { type: 'gauge', help: 'When each cloud firewall was last listed (Unix seconds; 0 = never).', labels: ['provider'] },
  cloud_call_duration_seconds: { type: 'histogram', help: 'Cloud firewall calls by provider, operation and outcome.', labels: ['provider', 'operation', 'outcome'], buckets: CLOUD },
  cloud_granted_total: { type: 'counter', help: 'Grants written to the cloud firewalls.' },
  cloud_revoked_total: { type: 'counter', help: 'Grants removed from the cloud firewalls.' },
  cloud_swept_total: { type: 'counter', help: 'Expired or unwanted cloud rules removed by a sweep.' },
  cloud_repaired_total: { type: 'counter', help: 'Grants a sweep put back because the cloud had lost them (drift).' },
  cloud_errors_total: { type: 'counter', help: 'Failed cloud calls (retried by a later pass).' },
  cloud_world_open_rules: { type: 'gauge', help: 'Rules outside knockgw that open a protected port to the whole Internet.', labels: ['provider'] },
} as const satisfies Record<string, Def>;

export type MetricName = keyof typeof METRICS;
type OfType<T extends string> = { [K in MetricName]: (typeof METRICS)[K]['type'] extends T ? K : never }[MetricName];
export type CounterName = OfType<'counter'>;
export type GaugeName = OfType<'gauge'>;
export type HistogramName = OfType<'histogram'>;
export const PREFIX = 'knockgw_';
