// Wires the cloud firewalls configured under `cloud:` into one CloudSync, run by the leader only
// (HA: one node at a time talks to the cloud APIs; the calls are idempotent, so a lease overlap
// is harmless).
import { createAwsCloudFirewall } from '../adapters/cloud-aws.ts';
import { createGcpCloudFirewall } from '../adapters/cloud-gcp.ts';
import type { Store } from '../adapters/store.ts';
import type { Config } from '../config/types.ts';
import type { CloudFirewall, Clock, Logger } from '../ports.ts';
import type { Grant } from '../core/grant.ts';
import { createCloudSync } from './cloud-sync.ts';
import { createLeaderLease } from './leader-lease.ts';
import type { Metrics } from './metrics.ts';

export interface CloudRuntime {
  reconcile(desired: readonly Grant[]): Promise<unknown>;
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
const LEASE_TTL_MS = 15_000;

export function startCloud(deps: { config: Config; store: Store; clock: Clock; logger: Logger; metrics: Metrics }): CloudRuntime | undefined {
  const { aws, gcp } = deps.config.cloud;
  const firewalls: (CloudFirewall & { close(): unknown })[] = [];
  if (aws) firewalls.push(createAwsCloudFirewall({ config: aws, logger: deps.logger, protectedPorts: deps.config.protectedPorts }));
  if (gcp) firewalls.push(createGcpCloudFirewall({ config: gcp, logger: deps.logger, protectedPorts: deps.config.protectedPorts }));
  if (firewalls.length === 0) return undefined;

  const lease = createLeaderLease({ store: deps.store, key: 'cloud', nodeId: deps.config.nodeId, ttlMs: LEASE_TTL_MS, logger: deps.logger });
  const sync = createCloudSync({ firewalls, logger: deps.logger, clock: deps.clock, isLeader: () => lease.isLeader() });
  sync.start(SWEEP_INTERVAL_MS);
  deps.logger.info({ event: 'cloud.ready', providers: firewalls.map((f) => f.name) }, `cloud firewalls: ${firewalls.map((f) => f.name).join(', ')}`);

  return {
    async reconcile(desired) {
      const report = await sync.reconcile(desired);
      const c = sync.counters();
      deps.metrics.set('cloud_granted_total', c.granted);
      deps.metrics.set('cloud_revoked_total', c.revoked);
      deps.metrics.set('cloud_errors_total', c.errors);
      return report;
    },
    async close() {
      await sync.stop();
      await lease.stop();
      for (const fw of firewalls) await fw.close();
    },
  };
}
