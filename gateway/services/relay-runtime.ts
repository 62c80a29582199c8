// The gateway side of the relay: verify relayed knocks (again: a compromised relay cannot mint
// grants) and open the door. Requests come from Redis (relays anywhere, any gateway node) or,
// with `relay.listen`, from a relay served by this very daemon.
import type { Config } from '../config/types.ts';
import type { Clock, Logger } from '../ports.ts';
import { createNonceStore, type Store } from '../adapters/store.ts';
import { loadKeysFile } from '../../relay/protocol.ts';
import { createApp } from '../../relay/app.ts';
import { createMemoryRequestQueue, createRedisRequestSource, type GrantRequestSource } from '../../relay/requests.ts';
import { nodeClientIp, startRelayServer } from '../../relay/server.ts';
import { startRelayIntake } from './relay-intake.ts';
import type { GrantService } from './grants.ts';
import { describeError } from '../core/errors.ts';

export interface RelayRuntime {
  close(): Promise<void>;
}

export async function startRelayRuntime(deps: { config: Config; store: Store; grants: GrantService; clock: Clock; logger: Logger }): Promise<RelayRuntime | undefined> {
  const relay = deps.config.relay;
  if (!relay) return undefined;
  const { clock, logger } = deps;
  const keys = await loadKeysFile(relay.keysFile);
  const nonces = createNonceStore(deps.store, { clock });
  const closers: (() => Promise<void>)[] = [];

  const sources: GrantRequestSource[] = [];
  if (deps.store.kind === 'redis') {
    sources.push(createRedisRequestSource(deps.store.client, { onError: (err) => logger.warn({ event: 'relay.read_error', err: describeError(err) }, 'reading relay requests failed; retrying') }));
  }
  if (relay.listen) {
    // In-process relay: its requests go straight to this daemon's intake (and, with Redis, to
    // the other nodes too through the shared stream).
    const queue = createMemoryRequestQueue();
    sources.push(queue.source());
    const doorTtl = new Map(deps.config.doors.map((d) => [d.name, Math.round(d.ttlMs / 1000)]));
    const app = createApp({ keys, nonces, requests: queue, clock, getClientIp: nodeClientIp(relay.trustedProxies ?? 0), log: logger, ttlSecondsForDoor: (door) => doorTtl.get(door) ?? 0 });
    const server = await startRelayServer({ listen: relay.listen, app });
    logger.info({ event: 'relay.listening', url: server.url, clients: keys.size }, `relay listening on ${server.url}`);
    closers.push(() => server.close());
  }

  const intakes = sources.map((source) =>
    startRelayIntake({ keys, nonces, clock, log: logger, source, openDoor: async (req) => void (await deps.grants.open({ door: req.door, ip: req.ip, source: 'relay' })) }),
  );
  return {
    async close() {
      for (const c of closers) await c();
      for (const i of intakes) await i.stop();
    },
  };
}
