// The fleet roster in Redis: every node announces itself once a second (what version it runs,
// since when, how it hears the store), so any node's status and console can say which nodes share
// the store and how long each has been silent. Layout (under the store's namespace):
//   fleet       hash: node id → what it said of itself (JSON)
//   fleet-seen  sorted set: node id by when Redis last heard it (Redis's clock)
// A node that stops leaves the roster; one that dies or is cut off stays, ageing, for an hour:
// the silent node is what an operator most needs to see.
import { z } from 'zod';
import { describeError, kgwError } from '../../../core/errors.ts';
import type { FleetMember, FleetRoster, FleetSelf } from '../../../ports.ts';
import type { RedisConnection } from '../../../kit/redis/connection.ts';
import { keyspace } from '../../../kit/redis/keys.ts';
import { FLEET_ANNOUNCE, FLEET_LEAVE, FLEET_MEMBERS, runScript } from '../../../kit/redis/lua.ts';

const ANNOUNCE_EVERY_MS = 1000;
/** A node silent this long leaves the roster by itself. */
const REMEMBER_MS = 3_600_000;
/** status and the console must answer even when Redis does not. */
const READ_DEADLINE_MS = 500;

const Said = z.object({ version: z.string(), startedAt: z.number().nullable(), store: z.enum(['connected', 'degraded', 'cut-off']) });
const MembersReply = z.array(z.union([z.string(), z.number()]));

export function createRedisFleetRoster(opts: { conn: RedisConnection; nodeId: string; namespace?: string }): FleetRoster {
  const { conn, nodeId } = opts;
  const key = keyspace(opts.namespace);
  const keys = [key('fleet'), key('fleet-seen')];
  let timer: NodeJS.Timeout | undefined;
  let self: (() => FleetSelf) | undefined;

  const announce = (): void => {
    // Not heard is the state others see: a cut-off node cannot announce itself.
    if (!self || conn.status() !== 'ready') return;
    runScript(conn.client, FLEET_ANNOUNCE, keys, [nodeId, JSON.stringify(self()), REMEMBER_MS]).catch(() => undefined);
  };

  return {
    join(next) {
      self = next;
      clearInterval(timer);
      timer = setInterval(announce, ANNOUNCE_EVERY_MS);
      timer.unref();
      announce();
    },
    async leave() {
      clearInterval(timer);
      timer = undefined;
      if (!self) return;
      self = undefined;
      if (conn.status() === 'ready') await runScript(conn.client, FLEET_LEAVE, keys, [nodeId]).catch(() => undefined);
    },
    async members() {
      if (conn.status() !== 'ready') throw kgwError('KGW_STORE_UNAVAILABLE', `cannot read the fleet roster: Redis at ${conn.target} is not connected`);
      let timeout: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timeout = setTimeout(() => reject(kgwError('KGW_STORE_UNAVAILABLE', `Redis at ${conn.target} did not answer the fleet roster within ${READ_DEADLINE_MS} ms`)), READ_DEADLINE_MS);
      });
      try {
        const reply = MembersReply.parse(await Promise.race([runScript(conn.client, FLEET_MEMBERS, keys, []), late]));
        return parseMembers(reply);
      } catch (err) {
        throw kgwError('KGW_STORE_UNAVAILABLE', `cannot read the fleet roster from Redis at ${conn.target}: ${describeError(err)}`, {}, err);
      } finally {
        clearTimeout(timeout);
      }
    },
  };
}

/** {now, id, heard, JSON, …} → members; an entry that does not parse (a foreign writer) is left out. */
function parseMembers(reply: readonly (string | number)[]): FleetMember[] {
  const now = Number(reply[0]);
  const out: FleetMember[] = [];
  for (let i = 1; i + 2 < reply.length; i += 3) {
    const said = parseSaid(String(reply[i + 2]));
    if (!said) continue;
    out.push({ nodeId: String(reply[i]), ...said, silentMs: Math.max(0, now - Number(reply[i + 1])) });
  }
  return out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
}

function parseSaid(text: string): FleetSelf | undefined {
  try {
    const r = Said.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
