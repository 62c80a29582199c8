// Wires the cloud firewalls configured under `cloud:` into one CloudSync, run by the leader only
// (HA: one node at a time talks to the cloud APIs; the calls are idempotent, so a lease overlap
// is harmless). A sweep runs whenever this node gains the lease, start-up included: the new
// leader lists every cloud and converges it on the full desired set, and world-open rules are
// reported at once rather than a sweep interval later.
import type { Config } from '../config/types.ts';
import type { Clock, LeaderLease, Logger } from '../ports.ts';
import type { Grant } from '../core/grant.ts';
import { createCloudSync } from '../services/cloud-sync.ts';
import type { Metrics } from '../services/metrics.ts';
import { createCloudFirewalls } from './cloud-firewalls.ts';

export interface CloudRuntime {
  reconcile(desired: readonly Grant[]): Promise<unknown>;
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
const LEASE_TTL_MS = 15_000;

export function startCloud(deps: { config: Config; lease: (job: string, opts: { ttlMs: number; logger: Logger }) => LeaderLease; clock: Clock; logger: Logger; metrics: Metrics }): CloudRuntime | undefined {
  const firewalls = createCloudFirewalls(deps.config, deps.logger);
  if (firewalls.length === 0) return undefined;

  const lease = deps.lease('cloud', { ttlMs: LEASE_TTL_MS, logger: deps.logger });
  const sync = createCloudSync({ firewalls, logger: deps.logger, clock: deps.clock, isLeader: () => lease.isLeader(), metrics: deps.metrics });
  // Also fires at once for a node that leads from the start (a memory store always does).
  const unsubscribe = lease.on('gained', () => void sync.sweep());
  sync.start(SWEEP_INTERVAL_MS);
  deps.logger.info({ event: 'cloud.ready', providers: firewalls.map((f) => f.name) }, `cloud firewalls: ${firewalls.map((f) => f.name).join(', ')}`);

  return {
    reconcile: (desired) => sync.reconcile(desired),
    async close() {
      unsubscribe();
      await sync.stop();
      await lease.stop();
      for (const fw of firewalls) await fw.close();
    },
  };
}
