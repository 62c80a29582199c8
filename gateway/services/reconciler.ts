// Convergence of the host firewall (and the cloud) on the set of live grants.
// - fast path: a store change that names its grant (put/remove) becomes the few firewall ops it
//   implies, applied at once — no store or firewall listing between a knock and the open port;
// - refresh: on a bare hint (the store lost track: a reconnect, an unreadable change), re-read
//   the store and apply the differences against what we know, like a batch of fast changes;
// - expiry: a known grant's end is applied from what we know, without reading the store. In a
//   fleet every node sees every expiry: a store read per expiry per node is O(nodes × grants)
//   Redis work for each grant that ends (measured in bench/RESULTS.md, Fleet). An extension this
//   node missed is a missed hint like any other, for the periodic repair;
// - full repair (level-triggered, on a timer): read the store AND the firewall and fix every
//   difference (a rule deleted by hand, a missed hint). Its slow listing runs outside the queue,
//   so it never delays a knock; addresses a fast change touched meanwhile are left to that change;
// - cloud: its own queue, after changes settle — API calls never hold up the host firewall. Its
//   desired set is what the host firewall was just brought in line with (the repair hands over
//   the set it read), not a store read of its own: every node settles after every change, the
//   lease holder alone acts, and a read per node per change is again O(nodes × grants).
import { timerDelay } from '../core/timers.ts';
import { desiredEntries, planFirewall } from '../core/plan.ts';
import { formatPort, isLive, type Grant } from '../core/grant.ts';
import { describeError, kgwError } from '../core/errors.ts';
import type { Clock, GrantStore, HostFirewall, Logger, StoreChange } from '../ports.ts';
import type { FirewallOp } from '../core/types.ts';
import type { Metrics } from './metrics.ts';
import { tracerFor } from './trace.ts';

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
  /** What of a stored grant may be enforced (the config's doors decide); absent = all of it. */
  readonly admit?: (grant: Grant, now: number) => Grant | undefined;
  /** Runs in each full repair after the firewall is listed, before the store is (store clean-up, kernel completions to adopt). */
  readonly beforeRepair?: () => Promise<void>;
}

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
  const tracer = tracerFor(deps.metrics);
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
  /** The grants the firewall was last brought in line with, and the same ids by address. */
  const known = new Map<string, Grant>();
  const byIp = new Map<string, Set<string>>();
  /** When the expiry timer fires (Infinity = not armed). */
  let expiryAt = Infinity;

  const remember = (g: Grant): void => {
    known.set(g.id, g);
    let ids = byIp.get(g.ip);
    if (!ids) byIp.set(g.ip, (ids = new Set()));
    ids.add(g.id);
  };
  const forget = (g: Grant): void => {
    known.delete(g.id);
    const ids = byIp.get(g.ip);
    if (ids?.delete(g.id) && ids.size === 0) byIp.delete(g.ip);
  };
  const knownAt = (ip: string): Grant[] => [...(byIp.get(ip) ?? [])].flatMap((id) => known.get(id) ?? []);

  const logTtlClose = (g: Grant): void => {
    deps.metrics.inc('grants_closed_total', 1, { door: g.door, reason: 'ttl' });
    log.info({ event: 'grant.close', reason: 'ttl', grantId: g.id, ip: g.ip, door: g.door, ports: g.ports.map(formatPort) }, `closed ${g.ports.map(formatPort).join(',')} for ${g.ip} (${g.door}): ttl`);
  };

  /** The live, enforceable part of what the store says. */
  const enforce = (grants: readonly Grant[], now: number): Grant[] =>
    grants.flatMap((g) => {
      const a = deps.admit ? deps.admit(g, now) : g;
      return a && isLive(a, now) ? [a] : [];
    });

  /**
   * A batch is one transaction: one entry the kernel refuses would keep every other out. So a
   * refused batch is split in halves until the bad entries stand alone; those are reported, the
   * rest applied. Returns how many operations were refused.
   */
  const applySplitting = async (ops: readonly FirewallOp[]): Promise<number> => {
    try {
      await deps.firewall.apply(ops);
      return 0;
    } catch (err) {
      if (ops.length === 1) {
        const { op, entry } = ops[0] as FirewallOp;
        deps.metrics.inc('firewall_op_failures_total');
        log.error({ event: 'firewall.op_failed', op, ip: entry.ip, port: entry.port, proto: entry.proto, expiresAt: entry.expiresAt, err: describeError(err) }, `the firewall refused to ${op} ${entry.ip} ${entry.port}/${entry.proto}`);
        return 1;
      }
      const half = Math.ceil(ops.length / 2);
      return (await applySplitting(ops.slice(0, half))) + (await applySplitting(ops.slice(half)));
    }
  };

  const applyOps = async (ops: FirewallOp[], timing: Record<string, number | string>): Promise<void> => {
    if (ops.length === 0) return;
    const t = performance.now();
    const refused = await applySplitting(ops);
    if (refused === ops.length && ops.length > 0) throw kgwError('KGW_FW_COMMAND', `the firewall refused all ${ops.length} operations of a batch`);
    deps.metrics.inc('firewall_ops_total', ops.length - refused);
    log.debug({ event: 'firewall.apply', adds: ops.filter((o) => o.op === 'add').length, removes: ops.filter((o) => o.op === 'remove').length, ...timing, applyMs: ms(t) }, 'firewall converged');
  };

  /** Arms the expiry timer for `at` unless it already fires earlier. */
  const armExpiry = (at: number): void => {
    if (stopped || at >= expiryAt) return;
    clearTimeout(expiryTimer);
    expiryAt = at;
    const wait = timerDelay(at - deps.clock.now() + 5);
    // The kernel drops an expired element by itself; this keeps `known`, the log and the cloud true.
    expiryTimer = setTimeout(() => {
      expiryAt = Infinity;
      void expire();
    }, wait);
    expiryTimer.unref();
  };
  /** Re-arms for the earliest expiry of all known grants (after a refresh or a repair). */
  const rearmExpiry = (): void => {
    clearTimeout(expiryTimer);
    expiryAt = Infinity;
    for (const g of known.values()) if (g.expiresAt !== null) armExpiry(g.expiresAt);
  };

  const cloudLater = (): void => {
    if (!deps.cloud || stopped) return;
    clearTimeout(cloudTimer);
    cloudTimer = setTimeout(() => void cloudNow(), settleMs);
    cloudTimer.unref();
  };

  /** `desired`: what a repair just read; by default the grants the host firewall follows now. */
  function cloudNow(desired?: readonly Grant[]): Promise<void> {
    const cloud = deps.cloud;
    if (!cloud) return Promise.resolve();
    return cloudQueue('cloud reconcile', async () => void (await cloud.reconcile(enforce(desired ?? [...known.values()], deps.clock.now()))));
  }

  /**
   * Makes `next` the known grants of the addresses in `ips` and applies the difference. Costs
   * what those addresses hold, not what the whole table holds: this is the knock → open path.
   */
  const converge = async (next: readonly Grant[], ips: ReadonlySet<string>, timing: Record<string, number | string>): Promise<void> => {
    const now = deps.clock.now();
    const current = [...ips].flatMap(knownAt);
    const live = enforce(next.filter((g) => ips.has(g.ip)), now);
    const keep = new Set(live.map((g) => g.id));
    for (const g of current) {
      if (keep.has(g.id)) continue;
      forget(g);
      if (g.expiresAt !== null && g.expiresAt <= now) logTtlClose(g);
    }
    for (const g of live) remember(g);
    if (touchedDuringFull) for (const ip of ips) touchedDuringFull.add(ip);
    // What we knew of these addresses stands in for the firewall's state of them; the full
    // repair fixes any difference between the two.
    const before = desiredEntries(current.filter((g) => isLive(g, now)), now);
    await applyOps(planFirewall(desiredEntries(live, now), before, now), timing);
    deps.metrics.set('grants_live', known.size);
    for (const g of live) if (g.expiresAt !== null) armExpiry(g.expiresAt);
  };

  const fastChange = (change: StoreChange): Promise<void> => {
    // Called from the store's watch: inside the proof's submission when a packet caused it.
    const span = tracer.current();
    span?.granted();
    return hostQueue('fast apply', async () => {
      const ip = change.kind === 'put' ? change.grant.ip : known.get(change.id)?.ip;
      if (ip === undefined) return;
      const others = knownAt(ip).filter((g) => g.id !== (change.kind === 'put' ? change.grant.id : change.id));
      await converge(change.kind === 'put' ? [...others, change.grant] : others, new Set([ip]), { path: 'fast' });
      span?.applied();
    });
  };

  function refresh(): Promise<void> {
    return hostQueue('refresh', async () => {
      const now = deps.clock.now();
      const live = enforce(await deps.store.list(), now);
      await converge(live, new Set([...byIp.keys(), ...live.map((g) => g.ip)]), { path: 'refresh' });
      rearmExpiry();
      cloudLater();
    });
  }

  /** Forgets (and logs) the known grants whose time ran out; the firewall's timeouts closed them. */
  function expire(): Promise<void> {
    return hostQueue('expiry', async () => {
      const now = deps.clock.now();
      const ips = new Set([...known.values()].filter((g) => !isLive(g, now)).map((g) => g.ip));
      if (ips.size > 0) {
        await converge([...ips].flatMap(knownAt), ips, { path: 'expiry' });
        cloudLater();
      }
      rearmExpiry();
    });
  }

  function full(): Promise<void> {
    if (stopped) return Promise.resolve();
    fullInFlight ??= (async () => {
      try {
        const touched = new Set<string>();
        touchedDuringFull = touched;
        const t0 = performance.now();
        // The firewall first, then the pre-repair (which may adopt kernel completions into the
        // store), then the store: an entry the listing saw was completed before the pre-repair
        // looked, so it is in the store by the time the plan would otherwise remove it.
        const actual = await deps.firewall.list();
        await deps.beforeRepair?.().catch((err: unknown) => onError('pre-repair', err));
        const grants = await deps.store.list();
        const listMs = ms(t0);
        await hostQueue('full repair', async () => {
          touchedDuringFull = undefined;
          const now = deps.clock.now();
          const live = enforce(grants, now).filter((g) => !touched.has(g.ip));
          const untouched = (e: { ip: string }): boolean => !touched.has(e.ip);
          const liveIds = new Set(live.map((g) => g.id));
          for (const g of [...known.values()]) {
            if (touched.has(g.ip) || liveIds.has(g.id)) continue;
            forget(g);
            if (g.expiresAt !== null && g.expiresAt <= now) logTtlClose(g);
          }
          for (const g of live) remember(g);
          const ops = planFirewall(desiredEntries(live, now), actual.filter(untouched), now);
          await applyOps(ops, { path: 'full', listMs });
          deps.metrics.set('grants_live', known.size);
          deps.metrics.inc('reconcile_runs_total');
          rearmExpiry();
        });
        await cloudNow(grants);
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
      for (const t of [expiryTimer, cloudTimer]) clearTimeout(t);
      await fullInFlight;
      await hostQueue('stop', () => Promise.resolve());
      await cloudQueue('stop', () => Promise.resolve());
    },
  };
}
