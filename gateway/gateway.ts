// The gateway as one object built from its dependencies, the way the relay is `createApp(deps)`:
// proof sources feed the intake, the intake writes grants to the store, the reconciler makes the
// host firewall and the clouds follow the store. It owns the order things start and stop in;
// wiring/ builds the real adapters from a Config, and tests build it with in-memory ones.
import { formatPort, grantCoverage, type Grant, type PortSpec } from './core/grant.ts';
import { exposureInWords, HOST_PREFIX } from './core/scope.ts';
import { describeError, kgwError } from './core/errors.ts';
import { createKnockHistory, type HistorySnapshot } from './core/knock-history.ts';
import type { Door } from './core/types.ts';
import type { DoorEngine } from './core/engines.ts';
import type { CloudHealth } from './services/cloud-health.ts';
import { rulesOfGrant, type GrantCloudRule, type HeldRules } from './services/cloud-rules.ts';
import type { Clock, FleetRoster, FleetSelf, GrantStore, HostFirewall, Logger, ProofSource, StoreHealth } from './ports.ts';
import { createGrantHygiene } from './services/grant-hygiene.ts';
import { createGrantService } from './services/grants.ts';
import { createIntake, type CommandRunner, type Intake } from './services/intake.ts';
import { createLifecycle, type Stage } from './services/lifecycle.ts';
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
  /** The package version (status, build_info). */
  readonly version?: string;
  readonly doors: readonly Door[];
  readonly protectedPorts: readonly PortSpec[];
  /** sequence id → the engine that runs it (status and logs). */
  readonly engines: Readonly<Record<string, string>>;
  readonly store: GrantStore;
  readonly storeKind: 'memory' | 'redis';
  /** The nodes sharing a Redis store; absent: this node is the whole fleet. */
  readonly fleet?: FleetRoster;
  readonly firewall: HostFirewall;
  readonly cloud?: CloudReconciler & { close(): Promise<void>; status?(): { leader: boolean; clouds: CloudHealth[]; held?: HeldRules[] | null } };
  /** Each door's engine as a code (status); absent: every door reported as engine none. */
  readonly doorEngines?: readonly DoorEngine[];
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

/** The `status --json` contract (README "Status"): fields are added, never renamed or removed. */
export interface GatewayStatus {
  readonly version: string;
  /** Seconds since start() was called; startedAt null before it. */
  readonly uptime: number;
  readonly startedAt: string | null;
  readonly nodeId: string;
  readonly firewall: string;
  /** state/since: whether this node hears the shared store (memory: always connected). */
  readonly store: { readonly kind: 'memory' | 'redis'; readonly state: StoreHealth['state']; readonly since: string | null };
  /** Whether this node holds the cloud lease (writes to the clouds); null without a cloud. */
  readonly leader: boolean | null;
  readonly clouds: readonly CloudHealth[];
  /** The nodes sharing the store, as it last heard them; null when it cannot be read now (cut off). */
  readonly fleet: readonly FleetNodeStatus[] | null;
  readonly doors: readonly DoorEngine[];
  /** sequence id → engine in words (kept from the first status). */
  readonly engines: Readonly<Record<string, string>>;
  /** cloudRules: the provider rules that let the grant through ([] without a cloud; null on a node that does not lead the cloud sync). */
  readonly grants: readonly (Omit<Grant, 'ports' | 'expiresAt'> & { covers: string; exposure: string; ports: string[]; expiresAt: string | null; cloudRules: GrantCloudRule[] | null })[];
}

export interface FleetNodeStatus {
  readonly nodeId: string;
  /** This node (the one answering). */
  readonly self: boolean;
  readonly version: string;
  /** How that node heard the store when it last announced itself. */
  readonly store: StoreHealth['state'];
  readonly startedAt: string | null;
  /** Seconds since the store last heard that node (0 for a memory store's only node). */
  readonly silentFor: number;
  /** Silent for longer than a node ever is while it runs and hears the store: down or cut off. */
  readonly silent: boolean;
}

/** A node announces itself every second; five missed announcements are no accident. */
export const FLEET_SILENT_AFTER_MS = 5000;

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
  const { store, firewall, clock, nodeId, doors } = deps;
  const log = deps.logger;
  const metrics = deps.metrics ?? createMetrics();

  // What is connected to what: sources → intake → grants → store → reconciler → firewall, clouds.
  const grants = createGrantService({ store, doors, clock, logger: log, nodeId, metrics });
  const history = createKnockHistory();
  const onGranted = (via: string): void => history.record(clock.now(), 'granted', via);
  const intake = createIntake({ grants, ...(deps.runCommand ? { runCommand: deps.runCommand } : {}), clock, logger: log, metrics, onGranted });
  const hygiene = createGrantHygiene({ store, doors, nodeId, clock, logger: log, metrics });
  const reconciler = createReconciler({
    store, firewall, ...(deps.cloud ? { cloud: deps.cloud } : {}), admit: (g, now) => hygiene.admit(g, now),
    clock, logger: log.child({ component: 'reconciler' }), metrics,
    periodicMs: deps.repairMs ?? 30_000, ...(deps.cloudSettleMs !== undefined ? { settleMs: deps.cloudSettleMs } : {}),
    // This node's grants held to the config first, then what the sources lost on the way.
    beforeRepair: async () => {
      await hygiene.clean();
      for (const src of deps.sources) await src.repair?.();
    },
  });
  let reportFailure: (err: unknown) => void = () => undefined;
  const failed = new Promise<unknown>((resolve) => (reportFailure = resolve));
  const sourceContext = {
    submit: (p: Parameters<Intake['submit']>[0]) => intake.submit(p),
    fail: (err: unknown) => {
      log.error({ event: 'source.failed', err: describeError(err) }, `a proof source failed: ${describeError(err)}`);
      reportFailure(err);
    },
    deny: (reason: string) => history.record(clock.now(), 'denied', reason),
  };

  // Start-up, in order; a stop undoes what started, in reverse.
  const lifecycle = createLifecycle([
    // Stopped last, whatever else started: they hold a helper process and clients from construction on.
    { name: 'firewall helper', stop: () => firewall.close?.() },
    { name: 'cloud clients', stop: () => deps.cloud?.close() },
    // Listening before the protected ports close, so nothing completed in the kernel goes unheard.
    ...deps.sources.map((src): Stage => ({ name: `source ${src.name}`, start: () => src.start(sourceContext), stop: () => src.stop() })),
    // The protected ports close here; a kernel engine's sequences go live with them.
    { name: 'base rules', start: async () => { await firewall.ensureBase(deps.protectedPorts); await firewall.warm?.(); await warnOfConflicts(deps, log); } },
    // Every unexpired grant re-applied (TC4) before the gateway says it is ready.
    { name: 'grants re-applied', start: async () => { reconciler.start(); await reconciler.reconcileNow(); }, stop: () => reconciler.stop() },
    ...(deps.endpoints ?? []).map((e, i): Stage => ({ name: `endpoint ${i + 1}`, start: () => e.start(), stop: () => e.stop() })),
    // Announced once it serves, so no node lists one that is still starting.
    ...(deps.fleet ? [fleetStage(deps.fleet, () => ({ version: deps.version ?? 'unknown', startedAt: startedAt ?? null, store: store.health?.().state ?? 'connected' }))] : []),
  ], log);

  let state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  let starting: Promise<void> | undefined;
  let startedAt: number | undefined;
  const shutdown = async (): Promise<void> => {
    intake.close();
    await lifecycle.stop();
  };

  return {
    intake,
    metrics,
    failed,

    start() {
      if (state !== 'new') return Promise.reject(kgwError('KGW_INTERNAL', `the gateway was already ${state}`));
      state = 'starting';
      startedAt = clock.now();
      starting = lifecycle.start().then(
        () => { if (state === 'starting') state = 'running'; },
        async (err: unknown) => { await shutdown(); state = 'stopped'; throw err; },
      );
      return starting;
    },

    async stop(opts = {}) {
      if (state === 'stopped') return;
      state = 'stopped';
      // A stop during the start (a signal, a source that died) lets the start settle first.
      await starting?.catch(() => undefined);
      await shutdown();
      if (opts.teardown) {
        await firewall.teardown();
        log.info({ event: 'firewall.teardown', firewall: firewall.name }, 'removed every rule knockgw created');
      }
    },

    async status() {
      const cloud = deps.cloud?.status?.();
      return {
        version: deps.version ?? 'unknown',
        uptime: startedAt === undefined ? 0 : Math.max(0, Math.round((clock.now() - startedAt) / 1000)),
        startedAt: startedAt === undefined ? null : new Date(startedAt).toISOString(),
        nodeId,
        firewall: firewall.name,
        store: { kind: deps.storeKind, ...((h) => ({ state: h?.state ?? 'connected', since: h ? new Date(h.since).toISOString() : null }))(store.health?.()) },
        leader: cloud ? cloud.leader : null,
        clouds: cloud?.clouds ?? [],
        fleet: await fleetStatus(deps, startedAt),
        doors: deps.doorEngines ?? deps.doors.map((d) => ({ name: d.name, engine: 'none' as const })),
        engines: deps.engines,
        // covers/exposure: what a scoped grant lets through, as a range and in words.
        grants: (await store.list()).map((g) => ({
          ...g, covers: grantCoverage(g), exposure: exposureInWords(g.family, g.prefix ?? HOST_PREFIX[g.family]), ports: g.ports.map(formatPort),
          expiresAt: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString(), cloudRules: cloud ? rulesOfGrant(g, cloud.held ?? null) : [],
        })),
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

/** Rules of other tools that would override knockgw's, warned about (never fatal: they are the admin's). */
async function warnOfConflicts(deps: GatewayDeps, log: Logger): Promise<void> {
  if (!deps.conflicts) return;
  const found = await deps.conflicts().catch((err: unknown) => {
    log.warn({ event: 'firewall.conflict_check_failed', err: describeError(err) }, 'could not inspect other firewall rules');
    return [];
  });
  for (const c of found) log.warn({ event: 'firewall.conflict', source: c.source, where: c.where, rule: c.rule }, c.explanation);
}

function fleetStage(fleet: FleetRoster, self: () => FleetSelf): Stage {
  return { name: 'fleet roster', start: () => Promise.resolve(fleet.join(self)), stop: () => fleet.leave() };
}

async function fleetStatus(deps: GatewayDeps, startedAt: number | undefined): Promise<FleetNodeStatus[] | null> {
  const here = (m: FleetSelf & { silentMs: number }, nodeId: string): FleetNodeStatus => ({
    nodeId, self: nodeId === deps.nodeId, version: m.version, store: m.store, startedAt: m.startedAt === null ? null : new Date(m.startedAt).toISOString(), silentFor: Math.round(m.silentMs / 100) / 10, silent: m.silentMs > FLEET_SILENT_AFTER_MS,
  });
  if (!deps.fleet) return [here({ version: deps.version ?? 'unknown', startedAt: startedAt ?? null, store: 'connected', silentMs: 0 }, deps.nodeId)];
  const members = await deps.fleet.members().catch(() => undefined);
  return members ? members.map((m) => here(m, m.nodeId)).sort((a, b) => Number(b.self) - Number(a.self)) : null;
}
