// Carrier-aware scope: how much of the knocking client's network a grant covers. Phones behind
// carrier NAT leave through a pool of public IPv4 addresses (the knock from one, ssh from
// another), and rotate IPv6 privacy addresses inside their /64: a one-address grant misses both.
// A door may widen its grants to a prefix, within hard limits. Pure.
import { kgwError } from './errors.ts';
import type { Family, ParsedIp } from './ip.ts';
import { ipValue, parseIp } from './ip.ts';

/** The grant sources (grant.ts GrantSource; spelt out here so grant.ts can import this file). */
type Source = 'knock' | 'spa' | 'relay' | 'manual';

/** The widest prefix a door may ask for: a /16 of a carrier's IPv4 pool, a /48 (one IPv6 site). */
export const SCOPE_LIMITS = Object.freeze({ v4: 16, v6: 48 });
export const HOST_PREFIX = Object.freeze({ 4: 32, 6: 128 } as const);

/** As written in a door: either family may be left to the default. */
export interface DoorScope {
  readonly v4?: number;
  readonly v6?: number;
}

/**
 * The prefix a grant of `source` on `family` covers. A door's own scope wins; without one, IPv4 is
 * one address, and IPv6 is one address for sequences and SPA (a server or a laptop keeps its
 * address) but the /64 for relay and phone knocks, whose privacy addresses rotate within it.
 */
export function prefixFor(scope: DoorScope | undefined, family: Family, source: Source): number {
  if (family === 4) return scope?.v4 ?? HOST_PREFIX[4];
  return scope?.v6 ?? (source === 'relay' ? 64 : HOST_PREFIX[6]);
}

/** Why a door scope cannot be used, or undefined (config load and grant checks share it). */
export function scopeProblem(scope: DoorScope): string | undefined {
  const check = (value: number | undefined, min: number, max: number, name: string): string | undefined => {
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value > max) return `scope.${name} must be a prefix length ${min}..${max} (got ${value})`;
    if (value < min) return `scope.${name} /${value} is wider than the hard limit /${min} (${name === 'v4' ? `${(2 ** (32 - value)).toLocaleString('en-US')} addresses` : `${(2 ** (64 - value)).toLocaleString('en-US')} subnets of /64`} per grant)`;
    return undefined;
  };
  return check(scope.v4, SCOPE_LIMITS.v4, 32, 'v4') ?? check(scope.v6, SCOPE_LIMITS.v6, 128, 'v6');
}

function formatNetwork(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return parseIp(groups.join(':'))?.address ?? groups.join(':');
}

/** The network address of `ip` under `prefix` (host bits cleared). Throws on a prefix past the hard limit. */
export function networkOf(ip: ParsedIp, prefix: number): string {
  const width = HOST_PREFIX[ip.family];
  const min = ip.family === 4 ? SCOPE_LIMITS.v4 : SCOPE_LIMITS.v6;
  if (!Number.isInteger(prefix) || prefix < min || prefix > width) {
    throw kgwError('KGW_IP_REFUSED', `refusing a /${prefix} grant for ${ip.address}: IPv${ip.family} scopes are /${min}../${width}`, { ip: ip.address, prefix });
  }
  if (prefix === width) return ip.address;
  const bits = BigInt(width - prefix);
  return formatNetwork(ip.family, (ipValue(ip) >> bits) << bits);
}

/** "198.51.100.7" or "2001:db8:1:2::/64": what a grant covers, as firewalls and logs write it. */
export function coverage(ip: string, family: Family, prefix: number | undefined): string {
  return prefix === undefined || prefix === HOST_PREFIX[family] ? ip : `${ip}/${prefix}`;
}

/** The exposure in words, for doctor and status ("one address", "256 addresses (a /24)"). */
export function exposureInWords(family: Family, prefix: number): string {
  const width = HOST_PREFIX[family];
  if (prefix === width) return 'one address';
  if (family === 4) return `${(2 ** (width - prefix)).toLocaleString('en-US')} addresses (a /${prefix}: the carrier's NAT pool around the knocking address)`;
  if (prefix === 64) return "one IPv6 subnet (a /64: every privacy address of the knocking device, and anyone else on that link)";
  if (prefix > 64) return `2^${width - prefix} IPv6 addresses (a /${prefix})`;
  return `${2 ** (64 - prefix)} IPv6 subnets of /64 (a /${prefix})`;
}
