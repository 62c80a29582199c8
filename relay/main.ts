// The container entry point (Cloud Run or any platform): `node relay/main.ts`, configured only
// through the environment (relay/env.ts).
import { describeError } from '../gateway/core/errors.ts';
import { createLogger } from '../gateway/kit/log.ts';
import { systemClock } from '../gateway/ports.ts';
import { listenAddress, parseRelayEnv } from './env.ts';
import { relayFromEnv } from './runtime.ts';
import { serveUntilSignal } from './serve.ts';
import { nodeClientIp } from './server.ts';

try {
  const env = parseRelayEnv(process.env);
  const logger = createLogger({ level: env.KNOCKGW_LOG_LEVEL, format: 'json' });
  const relay = await relayFromEnv(env, process.env, nodeClientIp(env.KNOCKGW_TRUSTED_PROXIES), { logger, clock: systemClock });
  process.exitCode = await serveUntilSignal(relay, { listen: listenAddress(env), trustedProxies: env.KNOCKGW_TRUSTED_PROXIES, logger });
} catch (err) {
  process.stderr.write(`knockgw relay: ${describeError(err)}\n`);
  process.exitCode = 1;
}
