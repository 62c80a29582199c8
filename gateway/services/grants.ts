// Opening and closing grants: the one place that turns a proof (knock, relay, manual) into a
// stored grant and logs grant.open / grant.extend / grant.close with the reason.
import { grantCoverage, grantId, makeGrant, formatPort, type Grant, type GrantSource, type PortSpec } from '../core/grant.ts';
import { grantableIp, ipValue, parseIp } from '../core/ip.ts';
import { exposureInWords, HOST_PREFIX, prefixFor } from '../core/scope.ts';
import { kgwError } from '../core/errors.ts';
import type { Door } from '../core/types.ts';
import type { Clock, GrantStore, Logger } from '../ports.ts';
import type { Metrics } from './metrics.ts';

export type CloseReason = 'sequence' | 'ttl' | 'manual' | 'revoke';

export interface GrantService {
  open(input: { door: string; ip: string; source: GrantSource; ports?: readonly PortSpec[]; ttlMs?: number }): Promise<Grant>;
  close(input: { door: string; ip: string; reason: CloseReason }): Promise<Grant | undefined>;
  /** Closes every grant of one address (knockgw revoke IP), whatever their ids. */
  revokeIp(ip: string, reason: CloseReason): Promise<Grant[]>;
  /** The door's TTL in ms (0 = until closed), or undefined for an unknown door. */
  ttlFor(door: string): number | undefined;
}

function grantFields(g: Grant): Record<string, unknown> {
  return {
    grantId: g.id,
    ip: g.ip,
    // What the firewall lets through, and how much that is (a carrier pool, a /64).
    covers: grantCoverage(g),
    exposure: exposureInWords(g.family, g.prefix ?? HOST_PREFIX[g.family]),
    door: g.door,
    ports: g.ports.map(formatPort),
    source: g.source,
    expiresAt: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString(),
    nodeId: g.nodeId,
  };
}

/** Whether the grant lets `ip` (canonical) through: the address itself, or inside its prefix. */
function covers(g: Grant, ip: string): boolean {
  if (g.prefix === undefined) return g.ip === ip;
  const host = parseIp(ip);
  const net = parseIp(g.ip);
  if (!host || !net || host.family !== net.family) return false;
  const shift = BigInt(HOST_PREFIX[host.family] - g.prefix);
  return ipValue(host) >> shift === ipValue(net) >> shift;
}

export function createGrantService(deps: { store: GrantStore; doors: readonly Door[]; clock: Clock; logger: Logger; nodeId: string; metrics: Metrics }): GrantService {
  const doors = new Map(deps.doors.map((d) => [d.name, d]));
  const log = deps.logger;

  /** The id a knock on `door` from `ip` gets: the same door, the same scope. */
  const knockGrantId = (door: string, ip: string): string => {
    const host = grantableIp(ip);
    const made = makeGrant({ ip: host.address, door, ports: [], source: 'knock', ttlMs: 0, nodeId: deps.nodeId, now: 0, prefix: prefixFor(doors.get(door)?.scope, host.family, 'knock') });
    return grantId(door, made.ip, made.family, made.prefix);
  };

  const closeById = async (id: string, reason: CloseReason): Promise<Grant | undefined> => {
    const removed = await deps.store.remove(id);
    if (removed) {
      deps.metrics.inc('grants_closed_total', 1, { door: removed.door, reason });
      log.info({ event: 'grant.close', reason, ...grantFields(removed) }, `closed ${removed.ports.map(formatPort).join(',')} for ${grantCoverage(removed)} (${removed.door})`);
    }
    return removed;
  };

  return {
    async open(input) {
      const door = doors.get(input.door);
      if (!door) throw kgwError('KGW_CONFIG_INVALID', `no door named "${input.door}"`, { door: input.door });
      const family = grantableIp(input.ip).family;
      const grant = makeGrant({
        ip: input.ip,
        prefix: prefixFor(door.scope, family, input.source),
        door: door.name,
        ports: input.ports ?? door.open,
        source: input.source,
        ttlMs: input.ttlMs ?? door.ttlMs,
        nodeId: deps.nodeId,
        now: deps.clock.now(),
      });
      const stored = await deps.store.put(grant);
      // The store keeps the first createdAt when it merges: an older one means this extended a live grant.
      const extended = stored.createdAt < grant.createdAt;
      const event = extended ? 'grant.extend' : 'grant.open';
      deps.metrics.inc(extended ? 'grants_extended_total' : 'grants_opened_total', 1, { door: door.name, source: input.source });
      log.info({ event, ...grantFields(stored) }, `${event === 'grant.open' ? 'opened' : 'extended'} ${stored.ports.map(formatPort).join(',')} for ${grantCoverage(stored)} (${door.name})`);
      return stored;
    },

    close(input) {
      return closeById(knockGrantId(input.door, input.ip), input.reason);
    },

    async revokeIp(ipText, reason) {
      const ip = grantableIp(ipText).address;
      const closed: Grant[] = [];
      // By the stored id: a grant restored from an older state file or written by another
      // node may carry an id that is not door@ip, and it must be revocable all the same.
      const ids = new Set((await deps.store.list()).filter((g) => covers(g, ip)).map((g) => g.id));
      // And each door's own id for the address, listed or not: a knock another node proved and
      // the store has not shown here yet (a cut, a failover) must meet a close (a tombstone) when
      // it arrives, not a revoke that found nothing.
      for (const door of doors.keys()) ids.add(knockGrantId(door, ip));
      for (const id of ids) {
        const removed = await closeById(id, reason);
        if (removed) closed.push(removed);
      }
      return closed;
    },

    ttlFor: (door) => doors.get(door)?.ttlMs,
  };
}
