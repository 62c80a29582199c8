// One gateway node of a simulated fleet: the real store (openStore on a shared redis-server), the
// real gateway (intake, grant service, reconciler) and the real cloud lease and sync, with a
// recording host firewall and an in-memory cloud in place of nftables and a provider. No packet
// sources: grants arrive as relay proofs through the intake, the way a relayed knock does.
import { describeError } from '../../gateway/core/errors.ts';
import type { Door } from '../../gateway/core/types.ts';
import { createGateway, type Gateway } from '../../gateway/gateway.ts';
import { systemClock, type LeaderLease, type Logger } from '../../gateway/ports.ts';
import { runCloud } from '../../gateway/wiring/cloud-runtime.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { createMemoryCloud, type MemoryCloud } from './memory-cloud.ts';
import { createRecordingFirewall, type RecordingFirewall } from './recording-firewall.ts';

const SSH = [{ port: 22, proto: 'tcp' as const }];

/** `ssh`: an hour (catch-up, propagation); `brief`: 2 s (expiry). */
export const FLEET_DOORS: readonly Door[] = [
  { name: 'ssh', open: SSH, ttlMs: 3_600_000 },
  { name: 'brief', open: SSH, ttlMs: 2000 },
];

export interface FleetNodeOptions {
  readonly url: string;
  readonly nodeId: string;
  readonly namespace: string;
  readonly logger: Logger;
  /** The reconciler's full repair and the store's full read (production default: 30 s each). */
  readonly repairMs?: number;
  readonly leaseTtlMs?: number;
  /** The cloud follows changes after this quiet time (production default 1 s). */
  readonly cloudSettleMs?: number;
  /** How long a start waits for Redis (default 5 s; a loaded bench machine needs more). */
  readonly connectTimeoutMs?: number;
  /** Keep the firewall's op log (tests); the bench keeps only per-address times. */
  readonly logOps?: boolean;
}

export interface FleetNode {
  readonly nodeId: string;
  readonly gateway: Gateway;
  readonly firewall: RecordingFirewall;
  readonly cloud: MemoryCloud;
  readonly lease: LeaderLease;
  /** Opens `door` for `ip` on this node, as a relayed knock would. */
  grant(ip: string, door?: string): Promise<void>;
  revoke(ip: string): Promise<void>;
  /** release false: as if the process died, the lease stays in Redis until its TTL runs out. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

let requests = 0;

export async function startFleetNode(opts: FleetNodeOptions): Promise<FleetNode> {
  const { logger, nodeId } = opts;
  const backend = await openStore(opts.url, {
    nodeId,
    namespace: opts.namespace,
    clock: systemClock,
    logger,
    requireStoreAtStart: true,
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.repairMs !== undefined ? { fullReconcileMs: opts.repairMs } : {}),
  });
  const metrics = createMetrics();
  const firewall = createRecordingFirewall({ log: opts.logOps ?? false });
  const cloud = createMemoryCloud();
  const runtime = runCloud({ firewalls: [cloud], lease: backend.lease, clock: systemClock, logger, metrics, ...(opts.leaseTtlMs !== undefined ? { leaseTtlMs: opts.leaseTtlMs } : {}) });
  const gateway = createGateway({
    nodeId,
    doors: FLEET_DOORS,
    protectedPorts: SSH,
    engines: {},
    store: backend.store,
    storeKind: backend.kind,
    ...(backend.fleet ? { fleet: backend.fleet } : {}),
    firewall,
    cloud: runtime,
    sources: [],
    clock: systemClock,
    logger,
    metrics,
    ...(opts.repairMs !== undefined ? { repairMs: opts.repairMs } : {}),
    ...(opts.cloudSettleMs !== undefined ? { cloudSettleMs: opts.cloudSettleMs } : {}),
  });
  try {
    await gateway.start();
  } catch (err) {
    await backend.close();
    throw err;
  }
  let stopped = false;
  return {
    nodeId,
    gateway,
    firewall,
    cloud,
    lease: runtime.lease,
    grant: (ip, door = 'ssh') => gateway.intake.submit({ kind: 'relay', door, ip, client: 'fleet', requestId: `${nodeId}-${++requests}` }),
    async revoke(ip) {
      await gateway.revoke(ip);
    },
    async stop({ release = true } = {}) {
      if (stopped) return;
      stopped = true;
      if (!release) await runtime.lease.stop({ release: false });
      await gateway.stop().catch((err: unknown) => logger.warn({ event: 'fleet.stop_failed', nodeId, err: describeError(err) }, 'stopping a fleet node failed'));
      await backend.close();
    },
  };
}
