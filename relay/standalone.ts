// `knockgw relay` and the Cloud Run container: the Node server until SIGTERM/SIGINT.
import { createLogger } from '../gateway/log.ts';
import { systemClock, type Clock, type Logger } from '../gateway/ports.ts';
import { kgwError } from '../gateway/core/errors.ts';
import { loadKeysFile, type RelayKeys } from './protocol.ts';
import { buildRelay, loadKeysFromEnv } from './runtime.ts';
import { nodeClientIp, startRelayServer } from './server.ts';

export interface StandaloneRelayOptions {
  readonly listen: string;
  readonly store: string;
  readonly keysFile: string;
  readonly trustedProxies: number;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly ttlSeconds?: number;
}

async function serveUntilSignal(opts: Omit<StandaloneRelayOptions, 'keysFile'>, keys: RelayKeys): Promise<number> {
  const relay = buildRelay({
    keys, store: opts.store, getClientIp: nodeClientIp(opts.trustedProxies), clock: opts.clock, logger: opts.logger,
    ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }),
  });
  const server = await startRelayServer({ listen: opts.listen, app: relay.app }).catch(async (err: unknown) => { await relay.close(); throw err; });
  opts.logger.info({ event: 'relay.listening', url: server.url, clients: keys.size, trustedProxies: opts.trustedProxies }, `relay listening on ${server.url}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  opts.logger.info({ event: 'relay.stopping', signal }, 'relay stopping');
  // Bounded: a stuck client or Redis must not keep the process alive past the platform's grace.
  const timer = setTimeout(() => process.exit(1), 5000).unref();
  await server.close();
  await relay.close();
  clearTimeout(timer);
  return 0;
}

export async function runStandaloneRelay(opts: StandaloneRelayOptions): Promise<number> {
  return serveUntilSignal(opts, await loadKeysFile(opts.keysFile));
}

/** Container entry: KNOCKGW_LISTEN (default 0.0.0.0:$PORT or :8080), KNOCKGW_TRUSTED_PROXIES, KNOCKGW_STORE, KNOCKGW_KEYS_FILE. */
export async function runRelayFromEnv(env: NodeJS.ProcessEnv): Promise<number> {
  const logger = createLogger({ level: 'info', format: 'json' });
  const trustedProxies = Number(env.KNOCKGW_TRUSTED_PROXIES ?? '0');
  if (!Number.isInteger(trustedProxies) || trustedProxies < 0) throw kgwError('KGW_CONFIG_INVALID', `KNOCKGW_TRUSTED_PROXIES must be a whole number, not "${env.KNOCKGW_TRUSTED_PROXIES}"`);
  const store = env.KNOCKGW_STORE;
  if (!store) throw kgwError('KGW_CONFIG_INVALID', 'set KNOCKGW_STORE to the Redis URL the gateways read');
  const ttl = env.KNOCKGW_DOOR_TTL === undefined ? undefined : Number(env.KNOCKGW_DOOR_TTL);
  return serveUntilSignal({
    listen: env.KNOCKGW_LISTEN ?? `0.0.0.0:${env.PORT ?? '8080'}`,
    store, trustedProxies, logger, clock: systemClock,
    ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
  }, await loadKeysFromEnv(env));
}
