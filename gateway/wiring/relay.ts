// The gateway side of the relay for a Config: relayed knocks from the shared queue (Redis: relays
// anywhere, every gateway node reads every request), and with `relay.listen` a relay served by
// this daemon itself, whose requests go straight to its own intake. Both are verified again by
// the relay source before anything is granted.
import type { Config } from '../config/types.ts';
import type { Clock, Logger, ProofSource } from '../ports.ts';
import { describeError } from '../core/errors.ts';
import type { RelayKeys } from '../protocol/relay-v1.ts';
import { createMemoryRequestQueue } from '../kit/request-queue-memory.ts';
import { createRelaySource } from '../services/source-relay.ts';
import type { Endpoint } from '../gateway.ts';
import { createApp } from '../../relay/app.ts';
import { nodeClientIp, startRelayServer } from '../../relay/server.ts';
import type { StoreBackend } from './store.ts';

export interface RelayWiring {
  readonly sources: readonly ProofSource[];
  readonly endpoints: readonly Endpoint[];
}

export function wireRelay(config: Config, backend: StoreBackend, deps: { keys: RelayKeys | undefined; clock: Clock; logger: Logger }): RelayWiring {
  const { relay } = config;
  const { keys, clock, logger } = deps;
  if (!relay || !keys) return { sources: [], endpoints: [] };
  const check = { keys, nonces: backend.nonces, clock, logger };
  const sources: ProofSource[] = [];
  const endpoints: Endpoint[] = [];
  if (backend.requestSource) {
    const requests = backend.requestSource((err) => logger.warn({ event: 'relay.read_error', err: describeError(err) }, 'reading relay requests failed; retrying'));
    sources.push(createRelaySource({ ...check, requests }));
  }
  const listen = relay.listen;
  if (listen) {
    const queue = createMemoryRequestQueue();
    sources.push(createRelaySource({ ...check, requests: queue.source(), name: 'relay-local' }));
    const doorTtl = new Map(config.doors.map((d) => [d.name, Math.round(d.ttlMs / 1000)]));
    const app = createApp({ keys, nonces: backend.nonces, requests: queue, clock, getClientIp: nodeClientIp(relay.trustedProxies ?? 0), log: logger, doors: doorTtl });
    let server: Awaited<ReturnType<typeof startRelayServer>> | undefined;
    endpoints.push({
      async start() {
        server = await startRelayServer({ listen, app });
        logger.info({ event: 'relay.listening', url: server.url, clients: keys.size }, `relay listening on ${server.url}`);
      },
      stop: () => server?.close() ?? Promise.resolve(),
    });
  }
  return { sources, endpoints };
}
