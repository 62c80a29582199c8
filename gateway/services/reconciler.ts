// Convergence of the host firewall (and the cloud) on the set of live grants.
// - fast path: a store change that names its grant (put/remove) becomes the few firewall ops it
//   implies, applied at once — no store or firewall listing between a knock and the open port;
// - refresh: on a bare hint or a grant's expiry, re-read the store (cheap) and apply the
//   differences against what we know, like a batch of fast changes;
// - full repair (level-triggered, on a timer): read the store AND the firewall and fix every
//   difference (a rule deleted by hand, a missed hint). Its slow listing runs outside the queue,
//   so it never delays a knock; addresses a fast change touched meanwhile are left to that change;
// - cloud: its own queue, after changes settle — API calls never hold up the host firewall.
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
  /** A full repair (store + firewall listing); resolves when it has been applied. */
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
  /** Full repair interval. */
  readonly periodicMs: number;
  /** The cloud follows changes after this quiet time (batches a burst of knocks). Default 1 s. */
  readonly settleMs?: number;
}

/** Longest a timer may wait: setTimeout overflows past 2^31-1 ms. */
const MAX_TIMER_MS = 2_147_000_000;

const ms = (from: number): number => Math.round((performance.now() - from) * 10) / 10;

/** A serial queue whose failures are logged and counted, never thrown at the caller's loop. */
function serial(onError: (what: string, err: unknown) => void): (what: string, work: () => Promise<void>) => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  return (what, work) => {
    tail = tail.then(work).catch((err: unknown) => onError(what, err));
    return tail;
  };
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const log = deps.logger;
  const settleMs = deps.settleMs ?? 1000;
  const onError = (what: string, err: unknown): void => {
    deps.metrics.inc('reconcile_errors_total');
    log.error({ event: 'reconcile.error', what, err: describeError(err) }, `${what} failed; the next repair retries`);
  };
  const hostQueue = serial(onError);
  const cloudQueue = serial(onError);
  let stopped = false;
  let unwatch: (() => void) | undefined;
  let periodic: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let cloudTimer: NodeJS.Timeout | undefined;
  let fullInFlight: Promise<void> | undefined;
  /** Addresses changed by the fast path while a full repair was listing. */
  let touchedDuringFull: Set<string> | undefined;
  /** The grants the firewall was last brought in line with. */
  const known = new Map<string, Grant>();

  const logTtlClose = (g: Grant): void => {
    deps.metrics.inc('grants_closed_total', 1, { door: g.door, reason: 'ttl' });
    log.info({ event: 'grant.close', reason: 'ttl', grantId: g.id, ip: g.ip, door: g.door, ports: g.ports.map(formatPort) }, `closed ${g.ports.map(formatPort).join(',')} for ${g.ip} (${g.door}): ttl`);
  };

  const applyOps = async (ops: FirewallOp[], timing: Record<string, number | string>): Promise<void> => {
    if (ops.length === 0) return;
    const t = performance.now();
    await deps.firewall.apply(ops);
    deps.metrics.inc('firewall_ops_total', ops.length);
    log.debug({ event: 'firewall.apply', adds: ops.filter((o) => o.op === 'add').length, removes: ops.filter((o) => o.op === 'remove').length, ...timing, applyMs: ms(t) }, 'firewall converged');
  };

  const scheduleExpiry = (): void => {
    clearTimeout(expiryTimer);
    let next = Infinity;
    for (const g of known.values()) if (g.expiresAt !== null && g.expiresAt < next) next = g.expiresAt;
    if (!Number.isFinite(next) || stopped) return;
    const wait = Math.min(Math.max(0, next - deps.clock.now()) + 5, MAX_TIMER_MS);
    // The kernel drops an expired element by itself; this keeps `known`, the log and the cloud true.
    expiryTimer = setTimeout(() => void refresh(), wait);
    expiryTimer.unref();
  };

  const cloudLater = (): void => {
    if (!deps.cloud || stopped) return;
    clearTimeout(cloudTimer);
    cloudTimer = setTimeout(() => void cloudNow(), settleMs);
    cloudTimer.unref();
  };

  function cloudNow(): Promise<void> {
    const cloud = deps.cloud;
    if (!cloud) return Promise.resolve();
    return cloudQueue('cloud reconcile', async () => {
      const now = deps.clock.now();
      await cloud.reconcile((await deps.store.list()).filter((g) => isLive(g, now)));
    });
  }

  /** Moves `known` to `next` for the addresses in `ips`, applying the difference. */
  const converge = async (next: ReadonlyMap<string, Grant>, ips: ReadonlySet<string>, timing: Record<string, number | string>): Promise<void> => {
    const now = deps.clock.now();
    const of = (m: ReadonlyMap<string, Grant>): Grant[] => [...m.values()].filter((g) => ips.has(g.ip) && isLive(g, now));
    const before = desiredEntries(of(known), now);
    for (const g of known.values()) {
      if (!ips.has(g.ip) || next.has(g.id)) continue;
      known.delete(g.id);
      if (g.expiresAt !== null && g.expiresAt <= now) logTtlClose(g);
    }
    for (const g of next.values()) if (ips.has(g.ip) && isLive(g, now)) known.set(g.id, g);
    if (touchedDuringFull) for (const ip of ips) touchedDuringFull.add(ip);
    // `before` stands in for the firewall's state of these addresses; the full repair fixes any
    // difference between the two.
    await applyOps(planFirewall(desiredEntries(of(known), now), before, now), timing);
    deps.metrics.set('grants_live', known.size);
    scheduleExpiry();
  };

  const fastChange = (change: StoreChange): Promise<void> =>
    hostQueue('fast apply', async () => {
      const next = new Map(known);
      let ip: string | undefined;
      if (change.kind === 'put') {
        ip = change.grant.ip;
        next.set(change.grant.id, change.grant);
      } else {
        ip = known.get(change.id)?.ip;
        next.delete(change.id);
      }
      if (ip !== undefined) await converge(next, new Set([ip]), { path: 'fast' });
    });

  function refresh(): Promise<void> {
    return hostQueue('refresh', async () => {
      const now = deps.clock.now();
      const live = (await deps.store.list()).filter((g) => isLive(g, now));
      const next = new Map(live.map((g) => [g.id, g]));
      const ips = new Set([...known.values(), ...live].map((g) => g.ip));
      await converge(next, ips, { path: 'refresh' });
      cloudLater();
    });
  }

  function full(): Promise<void> {
    if (stopped) return Promise.resolve();
    fullInFlight ??= (async () => {
      try {
        const touched = new Set<string>();
        touchedDuringFull = touched;
        const t0 = performance.now();
        const grants = await deps.store.list();
        const actual = await deps.firewall.list();
        const listMs = ms(t0);
        await hostQueue('full repair', async () => {
          touchedDuringFull = undefined;
          const now = deps.clock.now();
          const live = grants.filter((g) => isLive(g, now) && !touched.has(g.ip));
          const untouched = (e: { ip: string }): boolean => !touched.has(e.ip);
          const liveIds = new Set(live.map((g) => g.id));
          for (const g of [...known.values()]) {
            if (touched.has(g.ip)) continue;
            if (!liveIds.has(g.id)) {
              known.delete(g.id);
              if (g.expiresAt !== null && g.expiresAt <= now) logTtlClose(g);
            }
          }
          for (const g of live) known.set(g.id, g);
          const ops = planFirewall(desiredEntries(live, now), actual.filter(untouched), now);
          await applyOps(ops, { path: 'full', listMs });
          deps.metrics.set('grants_live', known.size);
          deps.metrics.inc('reconcile_runs_total');
          scheduleExpiry();
        });
        await cloudNow();
      } finally {
        touchedDuringFull = undefined;
        fullInFlight = undefined;
      }
    })();
    return fullInFlight;
  }

  return {
    start() {
      unwatch = deps.store.watch((change) => {
        if (stopped) return;
        if (change) void fastChange(change).then(cloudLater);
        else void refresh();
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
      clearTimeout(cloudTimer);
      await fullInFlight;
      await hostQueue('stop', () => Promise.resolve());
      await cloudQueue('stop', () => Promise.resolve());
    },
  };
}
