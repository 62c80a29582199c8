// What of a stored grant this gateway may enforce. Grants come back from a state file, from
// Redis and from other nodes, any of which may be older than the config, written by a node with
// another config, or tampered with: a door that no longer exists, ports the door does not open,
// an expiry in the year 3000. The config decides. Pure.
import type { Grant } from './grant.ts';
import type { Door } from './types.ts';
import { HOST_PREFIX, prefixFor } from './scope.ts';

export type Enforceable =
  | { readonly grant: Grant; readonly changed?: string }
  | { readonly drop: string };

export function enforceable(g: Grant, doors: ReadonlyMap<string, Door>, now: number): Enforceable {
  const door = doors.get(g.door);
  if (!door) return { drop: `door "${g.door}" is not in the config` };
  // Never wider than the door allows this source now (a stored /64 after the door went back to one address).
  const allowed = prefixFor(door.scope, g.family, g.source);
  if ((g.prefix ?? HOST_PREFIX[g.family]) < allowed) return { drop: `it covers a /${g.prefix ?? ''} but door "${door.name}" allows at most a /${allowed} for ${g.source} grants` };
  // A door with no ports of its own (an SPA stanza without OPEN_PORTS) leaves the ports to the request.
  const ports = door.open.length === 0 ? g.ports : g.ports.filter((p) => door.open.some((o) => o.port === p.port && o.proto === p.proto));
  if (ports.length === 0) return { drop: `it opens none of the ports of door "${door.name}"` };
  const changes: string[] = [];
  if (ports.length !== g.ports.length) changes.push(`ports limited to what door "${door.name}" opens`);
  let { expiresAt } = g;
  if (door.ttlMs > 0 && (expiresAt === null || expiresAt > now + door.ttlMs)) {
    expiresAt = now + door.ttlMs;
    changes.push(`expiry cut to the door's TTL of ${Math.round(door.ttlMs / 1000)} s`);
  }
  if (changes.length === 0) return { grant: g };
  return { grant: Object.freeze({ ...g, ports: Object.freeze(ports), expiresAt }), changed: changes.join('; ') };
}
