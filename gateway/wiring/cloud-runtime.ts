// The leader-gated cloud sync (HA: one node at a time talks to the cloud APIs; the calls are
// idempotent, so a lease overlap is harmless), over cloud firewalls already built. A sweep runs
// whenever this node gains the lease, start-up included: the new leader lists every cloud and
// converges it on the full desired set, and world-open rules are reported at once rather than a
// sweep interval later. Apart from cloud.ts (which builds the SDK adapters from the config) so a
// caller with its own firewalls (the fleet bench's in-memory clouds) loads no cloud SDK.
import type { Clock, LeaderLease, Logger } from '../ports.ts';
import type { Grant } from '../core/grant.ts';
import { createCloudSync } from '../services/cloud-sync.ts';
import { CLOUD_STATES, type CloudHealth } from '../services/cloud-health.ts';
import type { HeldRules } from '../services/cloud-rules.ts';
import type { Metrics } from '../services/metrics.ts';
import { timedCloud } from '../services/metrics-timing.ts';
import type { ClosableCloudFirewall } from './cloud-firewalls.ts';

export interface CloudRuntime {
  /** Held by one node of a fleet at a time; only its holder writes to the clouds. */
  readonly lease: LeaderLease;
  reconcile(desired: readonly Grant[]): Promise<unknown>;
  /** For `status`: whether this node holds the cloud lease, each provider's health, and (leading) the rules held. */
  status(): { leader: boolean; clouds: CloudHealth[]; held: HeldRules[] | null };
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
/** How long a dead leader's lease outlives it: the worst failover (renewed every third of it). */
export const CLOUD_LEASE_TTL_MS = 15_000;

export interface CloudDeps {
  readonly lease: (job: string, opts: { ttlMs: number; logger: Logger }) => LeaderLease;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly leaseTtlMs?: number;
}

export function runCloud(deps: CloudDeps & { firewalls: readonly ClosableCloudFirewall[] }): CloudRuntime {
  const firewalls = deps.firewalls.map((fw) => timedCloud(fw, deps.metrics));
  const lease = deps.lease('cloud', { ttlMs: deps.leaseTtlMs ?? CLOUD_LEASE_TTL_MS, logger: deps.logger });
  const sync = createCloudSync({ firewalls, logger: deps.logger, clock: deps.clock, isLeader: () => lease.isLeader(), metrics: deps.metrics });
  // Also fires at once for a node that leads from the start (a memory store always does).
  const unsubscribe = lease.on('gained', () => void sync.sweep());
  sync.start(SWEEP_INTERVAL_MS);
  deps.metrics.beforeScrape(() => {
    deps.metrics.set('cloud_leader', lease.isLeader() ? 1 : 0);
    for (const h of sync.health()) {
      for (const state of CLOUD_STATES) deps.metrics.set('cloud_state', h.state === state ? 1 : 0, { provider: h.name, state });
      deps.metrics.set('cloud_pending_writes', h.pendingWrites, { provider: h.name });
      deps.metrics.set('cloud_last_listed_timestamp_seconds', h.lastListedAt ? Date.parse(h.lastListedAt) / 1000 : 0, { provider: h.name });
    }
  });
  deps.logger.info({ event: 'cloud.ready', providers: firewalls.map((f) => f.name) }, `cloud firewalls: ${firewalls.map((f) => f.name).join(', ')}`);

  return {
    lease,
    reconcile: (desired) => sync.reconcile(desired),
    status: () => ({ leader: lease.isLeader(), clouds: sync.health(), held: sync.held() }),
    async close() {
      unsubscribe();
      await sync.stop();
      await lease.stop();
      for (const fw of firewalls) await fw.close();
    },
  };
}
