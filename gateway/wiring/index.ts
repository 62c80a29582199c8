// The composition root of the gateway: builds every adapter a Config asks for — host firewall
// (with the kernel engine and the packet intakes compiled in), store backend, cloud firewalls,
// knock, SPA and relay sources — and hands them to createGateway(). The daemon, `base`, `doctor` and `install` come here, never
// to each other.
import { doorEngines, planEngines, type EnginePlan } from '../core/engines.ts';
import { spaDoor } from '../core/spa.ts';
import type { Config } from '../config/types.ts';
import type { Clock, Logger } from '../ports.ts';
import { detectConflicts } from '../adapters/firewall/index.ts';
import { runCommand } from '../adapters/exec/index.ts';
import { createGateway, FLEET_SILENT_AFTER_MS, type Gateway } from '../gateway.ts';
import { createMetrics } from '../services/metrics.ts';
import { VERSION } from '../kit/version.ts';
import { timedStore } from '../services/metrics-timing.ts';
import { hostFirewallFor } from './firewall.ts';
import { openStore } from './store.ts';
import { wireRelay } from './relay.ts';
import type { DeviceRegistry } from '../protocol/devices.ts';
import { knockSources } from './sources.ts';
import { readConfigFiles } from './files.ts';

export interface Assembly {
  readonly gateway: Gateway;
  readonly engines: EnginePlan;
  /** Releases what the gateway does not own (the store backend); call after gateway.stop(). */
  readonly release: () => Promise<void>;
  /** Enrolled devices and the default enrollment URL, when the relay is configured. */
  readonly devices?: DeviceRegistry;
  readonly pageUrl?: string;
}

export async function assembleGateway(config: Config, opts: { clock: Clock; logger: Logger }): Promise<Assembly> {
  const { clock, logger } = opts;
  const engines = planEngines(config);
  const files = await readConfigFiles(config, logger);
  const metrics = createMetrics({ build: { version: VERSION, node: config.nodeId }, defaults: true });
  const backend = await openStore(config.store, { stateFile: config.stateFile, nodeId: config.nodeId, clock, logger: logger.child({ component: 'store' }),
    maxStalenessMs: config.maxStalenessS * 1000,
    onStale: (grants) => { for (const g of grants) metrics.inc('grants_closed_total', 1, { door: g.door, reason: 'stale' }); },
  });
  metrics.beforeScrape(async () => {
    const state = backend.store.health?.().state ?? 'connected';
    for (const s of ['connected', 'degraded', 'cut-off'] as const) metrics.set('store_state', s === state ? 1 : 0, { state: s });
    // A roster that cannot be read now keeps the last count: store_state says why.
    const members = backend.fleet ? await backend.fleet.members().catch(() => undefined) : [];
    if (!members) return;
    const silent = members.filter((m) => m.silentMs > FLEET_SILENT_AFTER_MS).length;
    metrics.set('fleet_nodes', backend.fleet ? members.length - silent : 1, { state: 'live' });
    metrics.set('fleet_nodes', silent, { state: 'silent' });
  });
  try {
    const relay = await wireRelay(config, backend, { keys: files.relayKeys, clock, logger: logger.child({ component: 'relay' }), metrics });
    const firewall = hostFirewallFor(config, engines, logger.child({ component: 'firewall' }), files.oneTime?.ports);
    const knocks = knockSources(config, engines, { oneTime: files.oneTime, firewall, store: backend.store, nonces: backend.nonces, clock, logger, metrics });
    // Last (it starts timers), and only when configured: the cloud SDKs take seconds to load.
    const cloud = config.cloud.aws || config.cloud.gcp
      ? await (await import('./cloud.ts')).startCloud({ config, lease: backend.lease, clock, logger: logger.child({ component: 'cloud' }), metrics })
      : undefined;
    const gateway = createGateway({
      nodeId: config.nodeId,
      version: VERSION,
      // SPA stanzas are doors too: their grants open, extend and close like any other.
      doors: [...config.doors, ...(config.spa?.access.map(spaDoor) ?? [])],
      protectedPorts: config.protectedPorts,
      engines: engines.describe,
      doorEngines: doorEngines(engines, config.doors.map((d) => d.name), config.spa?.access.map((a) => a.name) ?? []),
      store: timedStore(backend.store, metrics),
      storeKind: backend.kind,
      ...(backend.fleet ? { fleet: backend.fleet } : {}),
      firewall,
      ...(cloud ? { cloud } : {}),
      sources: [...knocks, ...relay.sources],
      endpoints: relay.endpoints,
      runCommand: async (spec, ip, family) => (await runCommand(spec, ip, family, { timeoutMs: 30_000, logger })).code,
      ...(config.firewall !== 'none' ? { conflicts: () => detectConflicts(config.protectedPorts) } : {}),
      clock,
      logger,
      metrics,
    });
    const devices = relay.devices;
    return {
      gateway, engines,
      release: async () => {
        await devices?.close();
        await backend.close();
      },
      ...(devices ? { devices } : {}), ...(relay.pageUrl ? { pageUrl: relay.pageUrl } : {}),
    };
  } catch (err) {
    await backend.close();
    throw err;
  }
}
