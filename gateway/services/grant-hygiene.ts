// The config's word on stored grants. A grant in the store may predate the config that runs now
// (a door removed, its ports or TTL changed): the firewall only enforces what the config allows,
// and this node's own stored grants are rewritten to it. Other nodes' grants are only left
// unenforced here: their own node fixes them (HA nodes share the config).
import type { Grant } from '../core/grant.ts';
import { enforceable } from '../core/grant-policy.ts';
import type { Door } from '../core/types.ts';
import type { Clock, GrantStore, Logger } from '../ports.ts';
import type { Metrics } from './metrics.ts';

export interface GrantHygiene {
  /** The part of a stored grant the config allows now, or undefined for none of it. */
  admit(g: Grant, now: number): Grant | undefined;
  /** Drops or cuts this node's stored grants the config does not allow, and logs each. */
  clean(): Promise<void>;
}

export function createGrantHygiene(deps: { store: GrantStore; doors: readonly Door[]; nodeId: string; clock: Clock; logger: Logger; metrics: Metrics }): GrantHygiene {
  const { store, logger: log, metrics } = deps;
  const doors = new Map(deps.doors.map((d) => [d.name, d]));
  return {
    admit(g, now) {
      const r = enforceable(g, doors, now);
      return 'grant' in r ? r.grant : undefined;
    },
    async clean() {
      const now = deps.clock.now();
      for (const g of await store.list()) {
        if (g.nodeId !== deps.nodeId) continue;
        const r = enforceable(g, doors, now);
        if ('drop' in r) {
          await store.remove(g.id);
          metrics.inc('grants_dropped_total', 1, { reason: 'config' });
          log.warn({ event: 'grant.dropped', grantId: g.id, ip: g.ip, door: g.door, reason: r.drop }, `dropped the stored grant ${g.id}: ${r.drop}`);
        } else if (r.changed) {
          await store.remove(g.id);
          await store.put(r.grant);
          log.warn({ event: 'grant.clamped', grantId: g.id, ip: g.ip, door: g.door, reason: r.changed }, `cut the stored grant ${g.id} to what its door allows: ${r.changed}`);
        }
      }
    },
  };
}
