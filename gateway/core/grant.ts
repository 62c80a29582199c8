// The grant model: who (one IP), which ports, until when. Pure.
import { grantableIp, type Family } from './ip.ts';

export type Proto = 'tcp' | 'udp';
export interface PortSpec { readonly port: number; readonly proto: Proto }
export type GrantSource = 'knock' | 'spa' | 'relay' | 'manual';

export interface Grant {
  /** Deterministic (door + ip), so the same knock on any node is the same grant. */
  readonly id: string;
  readonly ip: string;
  readonly family: Family;
  readonly ports: readonly PortSpec[];
  readonly door: string;
  readonly source: GrantSource;
  /** Unix milliseconds. */
  readonly createdAt: number;
  /** Unix milliseconds; null = until closed (knockd's behaviour without a TTL). */
  readonly expiresAt: number | null;
  readonly nodeId: string;
}

export function grantId(door: string, ip: string): string {
  return `${door}@${ip}`;
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
}

/** Builds a grant, refusing addresses that are not a single routable host (throws KGW_IP_*). */
export function makeGrant(input: NewGrant): Grant {
  const ip = grantableIp(input.ip);
  return Object.freeze({
    id: grantId(input.door, ip.address),
    ip: ip.address,
    family: ip.family,
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

export function formatPort(p: PortSpec): string {
  return `${p.port}/${p.proto}`;
}
