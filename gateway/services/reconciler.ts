// Level-triggered convergence: whatever hinted (a store change, a timer, an expiry), the
// reconciler reads the whole desired set and makes the host firewall (and the cloud) match it.
// Runs never overlap; hints during a run coalesce into one more run.
import { desiredEntries, planFirewall } from '../core/plan.ts';
import { formatPort, type Grant } from '../core/grant.ts';
import { describeError } from '../errors.ts';
import type { Clock, GrantStore, HostFirewall, Logger } from '../ports.ts';
import type { Metrics } from './metrics.ts';

export interface CloudReconciler {
  reconcile(desired: readonly Grant[]): Promise<unknown>;
}

export interface Reconciler {
  start(): void;
  /** Resolves when a run that started after this call has finished. */
  reconcileNow(): Promise<void>;
  stop(): Promise<void>;
}

export interface ReconcilerDeps {
  readonly store: GrantStore;
  readonly firewall: HostFirewall;
  readonly cloud?: CloudReconciler;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Full repair interval (anything missed, a rule deleted by hand). */
  readonly periodicMs: number;
}

/** Longest a timer may wait: setTimeout overflows past 2^31-1 ms. */
const MAX_TIMER_MS = 2_147_000_000;

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const log = deps.logger;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let unwatch: (() => void) | undefined;
  let periodic: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  /** Grants applied by the last run, to log the ones that expired since. */
  let known = new Map<string, Grant>();

  const scheduleExpiry = (grants: readonly Grant[]): void => {
    clearTimeout(expiryTimer);
    const next = Math.min(...grants.map((g) => g.expiresAt ?? Infinity));
    if (!Number.isFinite(next) || stopped) return;
    const wait = Math.min(Math.max(0, next - deps.clock.now()) + 5, MAX_TIMER_MS);
    expiryTimer = setTimeout(() => void trigger(), wait);
    expiryTimer.unref();
  };

  const runOnce = async (): Promise<void> => {
    const now = deps.clock.now();
    const grants = await deps.store.list();
    const live = grants.filter((g) => g.expiresAt === null || g.expiresAt > now);
    const liveIds = new Set(live.map((g) => g.id));
    for (const [id, g] of known) {
      if (!liveIds.has(id) && g.expiresAt !== null && g.expiresAt <= now) {
        deps.metrics.inc('grants_closed_total', 1, { door: g.door, reason: 'ttl' });
        log.info({ event: 'grant.close', reason: 'ttl', grantId: g.id, ip: g.ip, door: g.door, ports: g.ports.map(formatPort) }, `closed ${g.ports.map(formatPort).join(',')} for ${g.ip} (${g.door}): ttl`);
      }
    }
    known = new Map(live.map((g) => [g.id, g]));
    const ops = planFirewall(desiredEntries(live, now), await deps.firewall.list(), now);
    if (ops.length > 0) {
      await deps.firewall.apply(ops);
      deps.metrics.inc('firewall_ops_total', ops.length);
      log.debug({ event: 'firewall.apply', adds: ops.filter((o) => o.op === 'add').length, removes: ops.filter((o) => o.op === 'remove').length }, 'firewall converged');
    }
    deps.metrics.set('grants_live', live.length);
    scheduleExpiry(live);
    if (deps.cloud) await deps.cloud.reconcile(live);
  };

  const loop = async (): Promise<void> => {
    do {
      again = false;
      try {
        await runOnce();
        deps.metrics.inc('reconcile_runs_total');
      } catch (err) {
        deps.metrics.inc('reconcile_errors_total');
        log.error({ event: 'reconcile.error', err: describeError(err) }, 'reconcile failed; will retry on the next hint or timer');
      }
    } while (again && !stopped);
  };

  function trigger(): Promise<void> {
    if (stopped) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = loop().finally(() => (running = undefined));
    return running;
  }

  return {
    start() {
      unwatch = deps.store.watch(() => void trigger());
      periodic = setInterval(() => void trigger(), deps.periodicMs);
      periodic.unref();
    },
    // A run in flight may have read the store before the caller's change: trigger() then
    // queues one more pass and the promise covers it.
    reconcileNow: trigger,
    async stop() {
      stopped = true;
      unwatch?.();
      clearInterval(periodic);
      clearTimeout(expiryTimer);
      await running;
    },
  };
}
