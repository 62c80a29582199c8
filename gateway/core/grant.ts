// The grant model: who (one address, or a prefix once a door has a scope), which ports, until
// when. Pure.
import { grantableIp, type Family } from './ip.ts';
import { coverage, HOST_PREFIX, networkOf } from './scope.ts';

export type Proto = 'tcp' | 'udp';
export interface PortSpec { readonly port: number; readonly proto: Proto }
export type GrantSource = 'knock' | 'spa' | 'relay' | 'manual';

export interface Grant {
  /** Deterministic (door + ip), so the same knock on any node is the same grant. */
  readonly id: string;
  /** The address; for a prefix grant the network address (host bits cleared). */
  readonly ip: string;
  readonly family: Family;
  /**
   * Present only when the grant covers a network (the door's scope): its prefix length, narrower
   * than the host width. Absent = exactly `ip` (what every grant before scopes was).
   */
  readonly prefix?: number;
  readonly ports: readonly PortSpec[];
  readonly door: string;
  readonly source: GrantSource;
  /** Unix milliseconds. */
  readonly createdAt: number;
  /** Unix milliseconds; null = until closed (knockd's behaviour without a TTL). */
  readonly expiresAt: number | null;
  readonly nodeId: string;
}

export function grantId(door: string, ip: string, family?: Family, prefix?: number): string {
  return `${door}@${family === undefined ? ip : coverage(ip, family, prefix)}`;
}

export interface NewGrant {
  readonly ip: string;
  readonly door: string;
  readonly ports: readonly PortSpec[];
  readonly source: GrantSource;
  /** Milliseconds; 0 = until closed. */
  readonly ttlMs: number;
  readonly nodeId: string;
  readonly now: number;
  /** The prefix to cover (core/scope.ts prefixFor); absent or the host width = the address alone. */
  readonly prefix?: number;
}

/**
 * Builds a grant, refusing addresses that are not a single routable host (throws KGW_IP_*). With
 * a prefix the knocking host is checked first, then widened to its network within the hard limits.
 */
export function makeGrant(input: NewGrant): Grant {
  const host = grantableIp(input.ip);
  const prefix = input.prefix !== undefined && input.prefix !== HOST_PREFIX[host.family] ? input.prefix : undefined;
  const ip = prefix === undefined ? host.address : networkOf(host, prefix);
  return Object.freeze({
    id: grantId(input.door, ip, host.family, prefix),
    ip,
    family: host.family,
    ...(prefix !== undefined ? { prefix } : {}),
    ports: Object.freeze(input.ports.map((p) => Object.freeze({ ...p }))),
    door: input.door,
    source: input.source,
    createdAt: input.now,
    expiresAt: input.ttlMs > 0 ? input.now + input.ttlMs : null,
    nodeId: input.nodeId,
  });
}

/** Granting the same ip+door again extends it: keep the first createdAt, take the later expiry. */
export function mergeGrant(existing: Grant | undefined, next: Grant): Grant {
  if (!existing) return next;
  const expiresAt = existing.expiresAt === null || next.expiresAt === null ? null : Math.max(existing.expiresAt, next.expiresAt);
  return Object.freeze({ ...next, createdAt: existing.createdAt, expiresAt });
}

export function isLive(grant: Grant, now: number): boolean {
  return grant.expiresAt === null || grant.expiresAt > now;
}

/** What the grant covers: "198.51.100.7" or "2001:db8:1:2::/64". */
export function grantCoverage(g: Pick<Grant, 'ip' | 'family' | 'prefix'>): string {
  return coverage(g.ip, g.family, g.prefix);
}

export function formatPort(p: PortSpec): string {
  return `${p.port}/${p.proto}`;
}
