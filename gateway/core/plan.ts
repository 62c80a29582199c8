// Desired grants vs what the host firewall holds -> the ops that converge them. Pure.
import type { Grant } from './grant.ts';
import type { FirewallEntry, FirewallOp } from './types.ts';

/**
 * Expiries closer than this count as equal. nft reports `expires` in whole seconds (truncated),
 * so an entry added a moment ago can read up to 1 s early; re-adding it on every reconcile would
 * churn the kernel for nothing.
 */
export const REFRESH_TOLERANCE_MS = 2000;

export function entryKey(e: Pick<FirewallEntry, 'ip' | 'proto' | 'port' | 'prefix'>): string {
  return `${e.ip}${e.prefix === undefined ? '' : `/${e.prefix}`}|${e.proto}|${e.port}`;
}

function later(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.max(a, b);
}

function isLiveEntry(e: FirewallEntry, now: number): boolean {
  return e.expiresAt === null || e.expiresAt > now;
}

function compareEntries(a: FirewallEntry, b: FirewallEntry): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  if (a.prefix !== b.prefix) return (a.prefix ?? 129) - (b.prefix ?? 129);
  if (a.proto !== b.proto) return a.proto < b.proto ? -1 : 1;
  return a.port - b.port;
}

/** One entry per (ip, proto, port) of every live grant; overlapping grants merge (latest expiry, null wins). */
export function desiredEntries(grants: readonly Grant[], now: number): FirewallEntry[] {
  const byKey = new Map<string, FirewallEntry>();
  for (const g of grants) {
    if (g.expiresAt !== null && g.expiresAt <= now) continue;
    for (const p of g.ports) {
      const entry: FirewallEntry = { ip: g.ip, family: g.family, ...(g.prefix !== undefined ? { prefix: g.prefix } : {}), port: p.port, proto: p.proto, expiresAt: g.expiresAt };
      const key = entryKey(entry);
      const seen = byKey.get(key);
      byKey.set(key, seen ? { ...entry, expiresAt: later(seen.expiresAt, entry.expiresAt) } : entry);
    }
  }
  return [...byKey.values()].sort(compareEntries);
}

function needsRefresh(want: FirewallEntry, have: FirewallEntry): boolean {
  if (want.expiresAt === null || have.expiresAt === null) return want.expiresAt !== have.expiresAt;
  // Either way: a longer grant must refresh the kernel timeout, and a shortened one (a manual
  // grant replaced by a timed one) must not outlive what the store says.
  return Math.abs(want.expiresAt - have.expiresAt) > REFRESH_TOLERANCE_MS;
}

/**
 * Removes first, then adds, each sorted by family, ip, proto, port, so the same inputs always
 * give the same batch. Entries already expired in `actual` are treated as absent (the kernel
 * drops them on its own).
 */
export function planFirewall(desired: readonly FirewallEntry[], actual: readonly FirewallEntry[], now: number): FirewallOp[] {
  const want = new Map<string, FirewallEntry>();
  for (const e of desired) if (isLiveEntry(e, now)) want.set(entryKey(e), e);
  const have = new Map<string, FirewallEntry>();
  for (const e of actual) if (isLiveEntry(e, now)) have.set(entryKey(e), e);

  const removes: FirewallEntry[] = [];
  for (const [key, e] of have) if (!want.has(key)) removes.push(e);
  const adds: FirewallEntry[] = [];
  const fresh = new Set<FirewallEntry>();
  for (const [key, e] of want) {
    const current = have.get(key);
    if (!current) fresh.add(e);
    if (!current || needsRefresh(e, current)) adds.push(e);
  }
  return [
    ...removes.sort(compareEntries).map((entry): FirewallOp => ({ op: 'remove', entry })),
    ...adds.sort(compareEntries).map((entry): FirewallOp => (fresh.has(entry) ? { op: 'add', entry, fresh: true } : { op: 'add', entry })),
  ];
}
