// AWS Lambda (Function URL, payload v2.0) runtime. The client address is
// requestContext.http.sourceIp, which Lambda sets from the connection; X-Forwarded-For is not
// consulted at all (hono's own getConnInfo would fall back to it).
import type { Context, Hono } from 'hono';
import { handle } from 'hono/aws-lambda';
import { z } from 'zod';
import { describeError, isKnockgwError, kgwError } from '../gateway/core/errors.ts';
import { parseIp } from '../gateway/core/ip.ts';
import { createLogger } from '../gateway/kit/log.ts';
import { systemClock } from '../gateway/ports.ts';
import { parseRelayEnv } from './env.ts';
import { relayFromEnv } from './runtime.ts';

const lambdaEnv = z.object({ requestContext: z.object({ http: z.object({ sourceIp: z.string() }) }) });

export function lambdaClientIp(c: Context): string {
  const env = lambdaEnv.safeParse(c.env);
  const ip = env.success ? parseIp(env.data.requestContext.http.sourceIp) : undefined;
  if (!ip) throw kgwError('KGW_INTERNAL', 'the Lambda event has no requestContext.http.sourceIp (is this a Function URL payload v2.0?)');
  return ip.address;
}

export function createLambdaHandler(app: Hono): ReturnType<typeof handle> {
  return handle(app);
}

type LambdaHandler = ReturnType<typeof handle>;
let built: Promise<LambdaHandler> | undefined;

/** The function's handler: builds the relay from the environment once per cold start. */
export const handler: LambdaHandler = async (event, context) => {
  if (!built) {
    built = (async () => {
      const env = parseRelayEnv(process.env);
      // Lambda ships stdout to CloudWatch Logs: one JSON event per accepted, refused or failed knock.
      const logger = createLogger({ level: env.KNOCKGW_LOG_LEVEL, format: 'json' });
      try {
        return createLambdaHandler((await relayFromEnv(env, process.env, lambdaClientIp, { logger, clock: systemClock, platform: 'AWS Lambda' })).app);
      } catch (err) {
        logger.fatal({ event: 'relay.start_failed', code: isKnockgwError(err) ? err.code : 'KGW_INTERNAL', err: describeError(err) }, describeError(err));
        throw err;
      }
    })();
    // A failed start (SSM or a bad keys file) is retried by the next invocation, not cached.
    built.catch(() => { built = undefined; });
  }
  return (await built)(event, context);
};
