// The gateway as one object built from its dependencies, the way the relay is `createApp(deps)`:
// proof sources feed the intake, the intake writes grants to the store, the reconciler makes the
// host firewall and the clouds follow the store. It owns the order things start and stop in;
// wiring/ builds the real adapters from a Config, and tests build it with in-memory ones.
import { formatPort, grantCoverage, type Grant, type PortSpec } from './core/grant.ts';
import { exposureInWords, HOST_PREFIX } from './core/scope.ts';
import { enforceable } from './core/grant-policy.ts';
import { describeError, kgwError } from './core/errors.ts';
import { createKnockHistory, type HistorySnapshot } from './core/knock-history.ts';
import type { Door } from './core/types.ts';
import type { Clock, GrantStore, HostFirewall, Logger, ProofSource, StoreHealth } from './ports.ts';
import { createGrantService } from './services/grants.ts';
import { createIntake, type CommandRunner, type Intake } from './services/intake.ts';
import { createMetrics, type Metrics } from './services/metrics.ts';
import { createReconciler, type CloudReconciler } from './services/reconciler.ts';

/** Something served alongside the gateway (the in-process relay), started once the sources read. */
export interface Endpoint {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ForeignRule { readonly source: string; readonly where: string; readonly rule: string; readonly explanation: string }

export interface GatewayDeps {
  readonly nodeId: string;
  readonly doors: readonly Door[];
  readonly protectedPorts: readonly PortSpec[];
  /** sequence id → the engine that runs it (status and logs). */
  readonly engines: Readonly<Record<string, string>>;
  readonly store: GrantStore;
  readonly storeKind: 'memory' | 'redis';
  readonly firewall: HostFirewall;
  readonly cloud?: CloudReconciler & { close(): Promise<void> };
  readonly sources: readonly ProofSource[];
  readonly endpoints?: readonly Endpoint[];
  readonly runCommand?: CommandRunner;
  /** Rules of other tools that would override knockgw's (warned about at start). */
  readonly conflicts?: () => Promise<readonly ForeignRule[]>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Full repair interval (default 30 s). */
  readonly repairMs?: number;
  /** The cloud follows changes after this quiet time (default 1 s). */
  readonly cloudSettleMs?: number;
}

export interface GatewayStatus {
  readonly nodeId: string;
  readonly firewall: string;
  /** state/since: whether this node hears the shared store (memory: always connected). */
  readonly store: { readonly kind: 'memory' | 'redis'; readonly state: StoreHealth['state']; readonly since: string | null };
  readonly engines: Readonly<Record<string, string>>;
  readonly grants: readonly (Omit<Grant, 'ports' | 'expiresAt'> & { covers: string; exposure: string; ports: string[]; expiresAt: string | null })[];
}

export interface Gateway {
  /**
   * Starts in order — proof sources (so nothing completed in the kernel goes unheard), the base
   * rules, the reconciler with every unexpired grant re-applied (TC4), endpoints — and resolves
   * when all of it holds. On failure it stops what it started and rejects.
   */
  start(): Promise<void>;
  stop(opts?: { teardown?: boolean }): Promise<void>;
  status(): Promise<GatewayStatus>;
  /** Closes every grant of an address; the firewall follows before this resolves. */
  revoke(ip: string): Promise<Grant[]>;
  /** This node's proofs over the last hour: granted (by how they came) and denied (by reason), per minute. */
  activity(): HistorySnapshot;
  /** Resolves with the error when a source dies on its own (the daemon stops and exits 1). */
  readonly failed: Promise<unknown>;
  readonly intake: Intake;
  readonly metrics: Metrics;
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { store, firewall, clock } = deps;
  const log = deps.logger;
  const metrics = deps.metrics ?? createMetrics();
  const grants = createGrantService({ store, doors: deps.doors, clock, logger: log, nodeId: deps.nodeId, metrics });
  const history = createKnockHistory();
  const onGranted = (via: string): void => history.record(clock.now(), 'granted', via);
  const intake = createIntake({ grants, ...(deps.runCommand ? { runCommand: deps.runCommand } : {}), clock, logger: log, metrics, onGranted });
  /** What has been started, so that a stop (or a failed start) stops exactly that. */
  const sources: ProofSource[] = [];
  const endpoints: Endpoint[] = [];
  const doorMap = new Map(deps.doors.map((d) => [d.name, d]));
  const admit = (g: Grant, now: number): Grant | undefined => {
    const r = enforceable(g, doorMap, now);
    return 'grant' in r ? r.grant : undefined;
  };
  /**
   * Rewrites this node's stored grants that the config does not allow (a door gone, ports the
   * door does not open, an expiry past the door's TTL): dropped or cut, and logged. Other nodes'
   * grants are only left unenforced here: their own node fixes them (HA nodes share the config).
   */
  const cleanStore = async (): Promise<void> => {
    const now = clock.now();
    for (const g of await store.list()) {
      if (g.nodeId !== deps.nodeId) continue;
      const r = enforceable(g, doorMap, now);
      if ('drop' in r) {
        await store.remove(g.id);
        metrics.inc('grants_dropped_total', 1, { reason: 'config' });
        log.warn({ event: 'grant.dropped', grantId: g.id, ip: g.ip, door: g.door, reason: r.drop }, `dropped the stored grant ${g.id}: ${r.drop}`);
      } else if (r.changed) {
        await store.remove(g.id);
        await store.put(r.grant);
        log.warn({ event: 'grant.clamped', grantId: g.id, ip: g.ip, door: g.door, reason: r.changed }, `cut the stored grant ${g.id} to what its door allows: ${r.changed}`);
      }
    }
  };
  const reconciler = createReconciler({
    store,
    firewall,
    admit,
    ...(deps.cloud ? { cloud: deps.cloud } : {}),
    clock,
    logger: log.child({ component: 'reconciler' }),
    metrics,
    periodicMs: deps.repairMs ?? 30_000,
    ...(deps.cloudSettleMs !== undefined ? { settleMs: deps.cloudSettleMs } : {}),
    // This node's grants held to the config first, then what the sources lost on the way.
    beforeRepair: async () => {
      await cleanStore();
      for (const src of sources) await src.repair?.();
    },
  });
  let reconciling = false;
  let reportFailure: (err: unknown) => void = () => undefined;
  const failed = new Promise<unknown>((resolve) => (reportFailure = resolve));
  let state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  let starting: Promise<void> | undefined;

  const ctx = {
    submit: (p: Parameters<Intake['submit']>[0]) => intake.submit(p),
    fail: (err: unknown) => {
      log.error({ event: 'source.failed', err: describeError(err) }, `a proof source failed: ${describeError(err)}`);
      reportFailure(err);
    },
    deny: (reason: string) => history.record(clock.now(), 'denied', reason),
  };

  const quietly = (what: () => Promise<void> | void): Promise<void> =>
    Promise.resolve()
      .then(what)
      .catch((err: unknown) => log.warn({ event: 'daemon.close_error', err: describeError(err) }, 'closing a component failed'));

  /** Stops whatever started, outside in: endpoints, sources, reconciler, cloud, helper processes. */
  let stoppedAll = false;
  const stopAll = async (): Promise<void> => {
    if (stoppedAll) return;
    stoppedAll = true;
    intake.close();
    for (const e of endpoints.splice(0).reverse()) await quietly(() => e.stop());
    for (const src of sources.splice(0).reverse()) await quietly(() => src.stop());
    if (reconciling) await quietly(() => reconciler.stop());
    reconciling = false;
    if (deps.cloud) await quietly(() => deps.cloud?.close());
    await quietly(() => firewall.close?.());
  };

  const checkConflicts = async (): Promise<void> => {
    if (!deps.conflicts) return;
    const found = await deps.conflicts().catch((err: unknown) => {
      log.warn({ event: 'firewall.conflict_check_failed', err: describeError(err) }, 'could not inspect other firewall rules');
      return [];
    });
    for (const c of found) log.warn({ event: 'firewall.conflict', source: c.source, where: c.where, rule: c.rule }, c.explanation);
  };

  async function startInOrder(): Promise<void> {
    try {
      for (const src of deps.sources) {
        // Registered first: a source whose start fails half-way is still stopped (no orphan capture).
        sources.push(src);
        await src.start(ctx);
      }
      // The protected ports close here; a kernel engine's sequences go live with them.
      await firewall.ensureBase(deps.protectedPorts);
      await firewall.warm?.();
      await checkConflicts();
      reconciler.start();
      reconciling = true;
      await reconciler.reconcileNow();
      for (const e of deps.endpoints ?? []) {
        endpoints.push(e);
        await e.start();
      }
      if (state === 'starting') state = 'running';
    } catch (err) {
      await stopAll();
      state = 'stopped';
      throw err;
    }
  }

  return {
    intake,
    metrics,
    failed,

    start() {
      if (state !== 'new') return Promise.reject(kgwError('KGW_INTERNAL', `the gateway was already ${state}`));
      state = 'starting';
      starting = startInOrder();
      return starting;
    },

    async stop(opts = {}) {
      if (state === 'stopped') return;
      state = 'stopped';
      // A stop during the start (a signal, a source that died) lets the start settle first.
      await starting?.catch(() => undefined);
      await stopAll();
      if (opts.teardown) {
        await firewall.teardown();
        log.info({ event: 'firewall.teardown', firewall: firewall.name }, 'removed every rule knockgw created');
      }
    },

    async status() {
      return {
        nodeId: deps.nodeId,
        firewall: firewall.name,
        store: { kind: deps.storeKind, ...((h) => ({ state: h?.state ?? 'connected', since: h ? new Date(h.since).toISOString() : null }))(store.health?.()) },
        engines: deps.engines,
        // covers/exposure: what a scoped grant lets through, as a range and in words.
        grants: (await store.list()).map((g) => ({ ...g, covers: grantCoverage(g), exposure: exposureInWords(g.family, g.prefix ?? HOST_PREFIX[g.family]), ports: g.ports.map(formatPort), expiresAt: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString() })),
      };
    },

    activity() {
      return history.snapshot(clock.now());
    },

    async revoke(ip) {
      const closed = await grants.revokeIp(ip, 'revoke');
      await reconciler.reconcileNow();
      return closed;
    },
  };
}
