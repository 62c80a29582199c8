// The gateway side of the relay for a Config: relayed knocks from the shared queue (Redis: relays
// anywhere, every gateway node reads every request), and with `relay.listen` a relay served by
// this daemon itself (API, enrollment and the knock page), whose requests go straight to its own
// intake. Both are verified again by the relay source before anything is granted. Enrolled
// devices live in Redis with a Redis store, else in the devices file (beside the state file).
import { dirname, join } from 'node:path';
import type { Config } from '../config/types.ts';
import type { Clock, Logger, ProofSource } from '../ports.ts';
import { describeError } from '../core/errors.ts';
import { formatPort } from '../core/grant.ts';
import type { RelayKeys } from '../protocol/relay-v1.ts';
import type { DeviceRegistry } from '../protocol/devices.ts';
import { createFileDeviceRegistry } from '../kit/devices-file.ts';
import { createMemoryRequestQueue } from '../kit/request-queue-memory.ts';
import { createRelaySource } from '../services/source-relay.ts';
import type { Endpoint } from '../gateway.ts';
import { createApp } from '../../relay/app.ts';
import { nodeClientIp, startRelayServer } from '../../relay/server.ts';
import type { StoreBackend } from './store.ts';
import { Hono } from 'hono';
import type { Metrics } from '../services/metrics.ts';

export interface RelayWiring {
  readonly sources: readonly ProofSource[];
  readonly endpoints: readonly Endpoint[];
  /** Enrolled devices (`knockgw enroll|devices` reach it through the control socket). */
  readonly devices?: DeviceRegistry;
  /** The URL enrollment links point at by default: relay.publicUrls, else the relay served here. */
  readonly pageUrl?: string;
}

/** Where a memory store keeps devices: relay.devicesFile, else devices.json beside the state file. */
export function devicesFileFor(config: Config): string | undefined {
  return config.relay?.devicesFile ?? (config.stateFile ? join(dirname(config.stateFile), 'devices.json') : undefined);
}

export async function wireRelay(config: Config, backend: StoreBackend, deps: { keys: RelayKeys | undefined; clock: Clock; logger: Logger; metrics?: Metrics }): Promise<RelayWiring> {
  const { relay } = config;
  const { keys, clock, logger } = deps;
  if (!relay || !keys) return { sources: [], endpoints: [] };
  const file = devicesFileFor(config);
  const devices = backend.devices?.() ?? (await createFileDeviceRegistry(file ? { path: file } : {}));
  if (!backend.devices && !file) logger.warn({ event: 'devices.memory_only' }, 'enrolled devices are kept in memory only (no relay.devicesFile and no state file): a restart forgets them');
  const check = { keys, nonces: backend.nonces, clock, logger, devices };
  const sources: ProofSource[] = [];
  const endpoints: Endpoint[] = [];
  if (backend.requestSource) {
    const requests = backend.requestSource((err) => logger.warn({ event: 'relay.read_error', err: describeError(err) }, 'reading relay requests failed; retrying'));
    sources.push(createRelaySource({ ...check, requests }));
  }
  const listen = relay.listen;
  let pageUrl = relay.publicUrls?.v4 ?? relay.publicUrls?.v6;
  if (listen) {
    const queue = createMemoryRequestQueue();
    sources.push(createRelaySource({ ...check, requests: queue.source(), name: 'relay-local' }));
    const doorTtl = new Map(config.doors.map((d) => [d.name, Math.round(d.ttlMs / 1000)]));
    const doorInfo = new Map(config.doors.map((d) => [d.name, { open: d.open.map(formatPort), ...(d.scope ? { scope: d.scope } : {}) }]));
    const app = createApp({
      keys, nonces: backend.nonces, requests: queue, clock, getClientIp: nodeClientIp(relay.trustedProxies ?? 0), log: logger, doors: doorTtl,
      doorInfo, devices, page: relay.publicUrls ? { publicUrls: relay.publicUrls } : {},
    });
    pageUrl ??= `${relay.tls ? 'https' : 'http'}://${listen}`;
    // Answers counted by status class (relay 5xx alert) around the app, which stays metric-free.
    const served = new Hono();
    served.use('*', async (c, next) => {
      await next();
      deps.metrics?.inc('relay_responses_total', 1, { code: `${Math.floor(c.res.status / 100)}xx` });
    });
    served.route('/', app);
    let server: Awaited<ReturnType<typeof startRelayServer>> | undefined;
    endpoints.push({
      async start() {
        server = await startRelayServer({ listen, app: served, ...(relay.tls ? { tls: relay.tls } : {}) });
        logger.info({ event: 'relay.listening', url: server.url, clients: keys.size, page: pageUrl }, `relay listening on ${server.url}`);
      },
      stop: () => server?.close() ?? Promise.resolve(),
    });
  }
  return { sources, endpoints, devices, ...(pageUrl ? { pageUrl } : {}) };
}
