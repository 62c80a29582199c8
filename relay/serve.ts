// The Node relay until SIGTERM/SIGINT (`knockgw relay` and the container), with a bounded stop.
import type { Logger } from '../gateway/ports.ts';
import type { RelayRuntime } from './runtime.ts';
import { DEFAULT_LIMITS } from '../gateway/kit/http-limits.ts';
import { startRelayServer } from './server.ts';

/** Past this a stuck client or Redis must not keep the process alive beyond the platform's grace. */
const STOP_DEADLINE_MS = 5000;

export async function serveUntilSignal(relay: RelayRuntime, opts: { listen: string; trustedProxies: number; logger: Logger }): Promise<number> {
  const { logger } = opts;
  // Behind a proxy every connection comes from the proxy: a per-address cap would cap everyone.
  const limits = opts.trustedProxies > 0 ? { ...DEFAULT_LIMITS, connectionsPerIp: 0 } : DEFAULT_LIMITS;
  const server = await startRelayServer({ listen: opts.listen, app: relay.app, limits, logger }).catch(async (err: unknown) => {
    await relay.close();
    throw err;
  });
  logger.info({ event: 'relay.listening', url: server.url, clients: relay.clients, trustedProxies: opts.trustedProxies }, `relay listening on ${server.url}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ event: 'relay.stopping', signal }, 'relay stopping');
  const timer = setTimeout(() => process.exit(1), STOP_DEADLINE_MS).unref();
  await server.close();
  await relay.close();
  clearTimeout(timer);
  return 0;
}
