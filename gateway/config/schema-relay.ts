// The YAML for phones and relays: a door's carrier-aware `scope`, and the `relay:` section
// (keys, the relay this daemon serves, its family-pinned public URLs, TLS, the device registry file).
import { z } from 'zod';
import { SCOPE_LIMITS } from '../core/scope.ts';

/**
 * How much of the knocking client's network a grant covers (carrier NAT pools, IPv6 /64s).
 * Hard limits: a wider prefix is a config error, never silently narrowed.
 */
export const scopeSchema = z.strictObject({
  v4: z.number().int().max(32, 'scope.v4 is a prefix length, at most 32').min(SCOPE_LIMITS.v4, `scope.v4 must be /${SCOPE_LIMITS.v4} or narrower (hard limit: a grant never covers more than 65,536 IPv4 addresses)`).optional(),
  v6: z.number().int().max(128, 'scope.v6 is a prefix length, at most 128').min(SCOPE_LIMITS.v6, `scope.v6 must be /${SCOPE_LIMITS.v6} or narrower (hard limit: a grant never covers more than one IPv6 site)`).optional(),
});

export function relaySchema(absolutePath: z.ZodType<string>, httpUrl: z.ZodType<string>) {
  return z.strictObject({
    keysFile: absolutePath,
    /** Also serve the relay from this daemon. */
    listen: z.string().regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, 'must be ADDR:PORT, e.g. 0.0.0.0:8080 or [::]:8080').optional(),
    /** Reverse proxies in front of it that append X-Forwarded-For (0 = use the socket address). */
    trustedProxies: z.number().int().min(0).max(10).optional(),
    /**
     * Family-pinned URLs of the relay (a name with only an A record, one with only AAAA), so the
     * knock page knocks over both families and the grant covers whichever ssh uses.
     */
    publicUrls: z.strictObject({ v4: httpUrl.optional(), v6: httpUrl.optional() }).optional(),
    /** TLS for the relay this daemon serves (the knock page needs a secure context). */
    tls: z.strictObject({ certFile: absolutePath, keyFile: absolutePath }).optional(),
    /** Where enrolled devices are kept with a memory store (one host); with Redis they live in Redis. */
    devicesFile: absolutePath.optional(),
  });
}
