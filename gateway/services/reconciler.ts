// Convergence of the host firewall (and the cloud) on the set of live grants.
// Two paths, one queue:
// - fast: a store change that names its grant (put/remove) is applied at once as the few
//   firewall ops it implies — no store or firewall listing on the knock → open path;
// - full (level-triggered): any hint without details, a timer, or shortly after fast changes,
//   reads the whole desired set and the actual firewall and repairs every difference.
// Work never overlaps; hints during a full run coalesce into one more run.
import { desiredEntries, planFirewall } from '../core/plan.ts';
import { formatPort, isLive, type Grant } from '../core/grant.ts';
import { describeError } from '../errors.ts';
import type { Clock, FirewallOp, GrantStore, HostFirewall, Logger, StoreChange } from '../ports.ts';
import type { Metrics } from './metrics.ts';

export interface CloudReconciler {
  reconcile(desired: readonly Grant[]): Promise<unknown>;
}

export interface Reconciler {
  start(): void;
  /** Resolves when a full run that started after this call has finished. */
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
  /** A full run follows fast changes after this quiet time (cloud sync, repair). Default 1 s. */
  readonly settleMs?: number;
}

/** Longest a timer may wait: setTimeout overflows past 2^31-1 ms. */
const MAX_TIMER_MS = 2_147_000_000;

const ms = (from: number): number => Math.round((performance.now() - from) * 10) / 10;

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const log = deps.logger;
  const settleMs = deps.settleMs ?? 1000;
  let queue: Promise<void> = Promise.resolve();
  let fullPending: Promise<void> | undefined;
  let stopped = false;
  let unwatch: (() => void) | undefined;
  let periodic: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let settleTimer: NodeJS.Timeout | undefined;
  /** The grants the firewall was last brought in line with. */
  const known = new Map<string, Grant>();

  const logTtlClose = (g: Grant): void => {
    deps.metrics.inc('grants_closed_total', 1, { door: g.door, reason: 'ttl' });
    log.info({ event: 'grant.close', reason: 'ttl', grantId: g.id, ip: g.ip, door: g.door, ports: g.ports.map(formatPort) }, `closed ${g.ports.map(formatPort).join(',')} for ${g.ip} (${g.door}): ttl`);
  };

  const scheduleExpiry = (): void => {
    clearTimeout(expiryTimer);
    const next = Math.min(...[...known.values()].map((g) => g.expiresAt ?? Infinity));
    if (!Number.isFinite(next) || stopped) return;
    const wait = Math.min(Math.max(0, next - deps.clock.now()) + 5, MAX_TIMER_MS);
    expiryTimer = setTimeout(() => void full(), wait);
    expiryTimer.unref();
  };

  const enqueue = (work: () => Promise<void>, what: string): Promise<void> => {
    queue = queue.then(work).catch((err: unknown) => {
      deps.metrics.inc('reconcile_errors_total');
      log.error({ event: 'reconcile.error', what, err: describeError(err) }, `${what} failed; the next full reconcile retries`);
    });
    return queue;
  };

  const applyOps = async (ops: FirewallOp[], timing: Record<string, number>): Promise<void> => {
    if (ops.length === 0) return;
    const t = performance.now();
    await deps.firewall.apply(ops);
    deps.metrics.inc('firewall_ops_total', ops.length);
    log.debug({ event: 'firewall.apply', adds: ops.filter((o) => o.op === 'add').length, removes: ops.filter((o) => o.op === 'remove').length, ...timing, applyMs: ms(t) }, 'firewall converged');
  };

  /** The ops one grant's arrival or departure implies, given every other grant we know. */
  const fastChange = async (change: StoreChange): Promise<void> => {
    const now = deps.clock.now();
    const ip = change.kind === 'put' ? change.grant.ip : known.get(change.id)?.ip;
    if (ip === undefined) return;
    const sameIp = (): Grant[] => [...known.values()].filter((g) => g.ip === ip && isLive(g, now));
    const before = desiredEntries(sameIp(), now);
    if (change.kind === 'put') {
      if (!isLive(change.grant, now)) return;
      known.set(change.grant.id, change.grant);
    } else {
      const gone = known.get(change.id);
      known.delete(change.id);
      if (gone && gone.expiresAt !== null && gone.expiresAt <= now) logTtlClose(gone);
    }
    // `before` stands in for the firewall's state for this one address: the full run repairs any
    // difference between the two.
    await applyOps(planFirewall(desiredEntries(sameIp(), now), before, now), { fast: 1 });
    scheduleExpiry();
  };

  const runFull = async (): Promise<void> => {
    const t0 = performance.now();
    const now = deps.clock.now();
    const live = (await deps.store.list()).filter((g) => isLive(g, now));
    const storeMs = ms(t0);
    const liveIds = new Set(live.map((g) => g.id));
    for (const g of known.values()) if (!liveIds.has(g.id) && g.expiresAt !== null && g.expiresAt <= now) logTtlClose(g);
    known.clear();
    for (const g of live) known.set(g.id, g);
    const t1 = performance.now();
    const actual = await deps.firewall.list();
    await applyOps(planFirewall(desiredEntries(live, now), actual, now), { storeMs, listMs: ms(t1) });
    deps.metrics.set('grants_live', live.length);
    deps.metrics.inc('reconcile_runs_total');
    scheduleExpiry();
    if (deps.cloud) await deps.cloud.reconcile(live);
  };

  /** Queues one full run, unless one is already queued and not yet started. */
  function full(): Promise<void> {
    if (stopped) return Promise.resolve();
    fullPending ??= enqueue(async () => {
      fullPending = undefined;
      await runFull();
    }, 'full reconcile');
    return fullPending;
  }

  const settleLater = (): void => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => void full(), settleMs);
    settleTimer.unref();
  };

  return {
    start() {
      unwatch = deps.store.watch((change) => {
        if (stopped) return;
        if (!change) {
          void full();
          return;
        }
        void enqueue(() => fastChange(change), 'fast apply');
        settleLater();
      });
      periodic = setInterval(() => void full(), deps.periodicMs);
      periodic.unref();
    },
    reconcileNow: full,
    async stop() {
      stopped = true;
      unwatch?.();
      clearInterval(periodic);
      clearTimeout(expiryTimer);
      clearTimeout(settleTimer);
      await queue;
    },
  };
}
