// The relay's environment (Lambda, Cloud Run, any container), parsed once, the same way on every
// runtime: every variable, its default and its limits are here.
import { z } from 'zod';
import { kgwError } from '../gateway/core/errors.ts';

export const storeSpec = z.string().refine(
  (s) => s === 'memory' || /^redis(s|\+sentinel)?:\/\/\S+$/.test(s) || /^unix:\/\/\/\S+$/.test(s) || (s.startsWith('/') && !/\s/.test(s)),
  'must be "memory", a redis://, rediss:// or redis+sentinel:// URL, or a unix socket path',
);
const wholeNumber = (min: number, max: number) =>
  z.string().regex(/^\d{1,10}$/, 'must be a whole number').transform(Number).refine((n) => n >= min && n <= max, `must be ${min}..${max}`);

export const relayEnvSchema = z
  .object({
    /**
     * Where grant requests and nonces go: the Redis the gateways read (with the relay's own ACL
     * user, gateway/kit/redis/relay-acl.ts), or memory (local tests). On Cloud Run it is injected
     * from Secret Manager; on Lambda use KNOCKGW_STORE_PARAMETER instead.
     */
    KNOCKGW_STORE: storeSpec.optional(),
    /** …or an SSM SecureString holding it, read through the Lambda Parameters and Secrets extension. */
    KNOCKGW_STORE_PARAMETER: z.string().min(1).optional(),
    /** The keys file (protocol v1), e.g. a mounted secret… */
    KNOCKGW_KEYS_FILE: z.string().min(1).optional(),
    /** …or an SSM parameter read through the Lambda Parameters and Secrets extension. */
    KNOCKGW_KEYS_PARAMETER: z.string().min(1).optional(),
    /** The gateways' door TTL in seconds, when the operator states it; otherwise answers claim no expiry. */
    KNOCKGW_DOOR_TTL: wholeNumber(0, 2_147_483).optional(),
    /** Proxies in front that append X-Forwarded-For; 0 = use the socket's peer address. */
    KNOCKGW_TRUSTED_PROXIES: wholeNumber(0, 10).default(0),
    KNOCKGW_LISTEN: z.string().regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, 'must be ADDR:PORT, e.g. 0.0.0.0:8080').optional(),
    /** Set by Cloud Run and most container platforms. */
    PORT: wholeNumber(1, 65535).optional(),
    /** Family-pinned URLs of this relay (an A-only name, an AAAA-only name): the knock page knocks through both. */
    KNOCKGW_PUBLIC_URL_V4: z.string().url().optional(),
    KNOCKGW_PUBLIC_URL_V6: z.string().url().optional(),
    KNOCKGW_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  })
  .superRefine((e, ctx) => {
    if ((e.KNOCKGW_KEYS_FILE === undefined) === (e.KNOCKGW_KEYS_PARAMETER === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['KNOCKGW_KEYS_FILE'], message: 'set exactly one of KNOCKGW_KEYS_FILE (a keys file path) or KNOCKGW_KEYS_PARAMETER (an SSM parameter name)' });
    }
    if ((e.KNOCKGW_STORE === undefined) === (e.KNOCKGW_STORE_PARAMETER === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['KNOCKGW_STORE'], message: 'set exactly one of KNOCKGW_STORE (a store URL) or KNOCKGW_STORE_PARAMETER (an SSM parameter holding it)' });
    }
  });

export type RelayEnv = z.output<typeof relayEnvSchema>;

export function parseRelayEnv(env: Readonly<Record<string, string | undefined>>): RelayEnv {
  const r = relayEnvSchema.safeParse(env);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`);
  throw kgwError('KGW_CONFIG_INVALID', `the relay environment is invalid: ${issues.join('; ')}`, { issues });
}

/** Where the Node server listens: KNOCKGW_LISTEN, else all addresses on $PORT (default 8080). */
export function listenAddress(env: RelayEnv): string {
  return env.KNOCKGW_LISTEN ?? `0.0.0.0:${env.PORT ?? 8080}`;
}
