// The grant store's three operations as Redis runs them (the Lua scripts of kit/redis/lua.ts),
// with the replies parsed and re-based on this node's clock (codec.ts). No cache, no queue: the
// store (index.ts) decides what to do when Redis is away.
import { z } from 'zod';
import { isLive, type Grant } from '../../../core/grant.ts';
import { kgwError } from '../../../core/errors.ts';
import type { LogBudget } from '../../../core/log-budget.ts';
import type { Clock } from '../../../ports.ts';
import type { RedisConnection } from '../../../kit/redis/connection.ts';
import type { KeySpace } from '../../../kit/redis/keys.ts';
import { GRANT_GEN, GRANT_LIST, GRANT_PUT, GRANT_REMOVE, runScript } from '../../../kit/redis/lua.ts';
import { decodeGrant, encodeGrant } from './codec.ts';

const PutReply = z.tuple([z.string(), z.enum(['new', 'kept', 'unlimited', 'closed']), z.number(), z.string()]);
/** How long a close outranks a proof older than it: longer than any queued knock waits. */
const TOMBSTONE_MS = 24 * 3600_000;
const RemoveReply = z.tuple([z.string(), z.string()]).nullable();
const ListReply = z.array(z.union([z.string(), z.number()]));
const GenReply = z.tuple([z.number(), z.string()]);
/** Clock samples kept; the one with the shortest round trip is the estimate. */
const CLOCK_SAMPLES = 8;

/** Grants per GRANT_LIST call: ~2 ms of Redis time each, so no one waits long behind a full read. */
const LIST_CHUNK = 250;

export interface RemoteGrants {
  /**
   * Merges and stores (GRANT_PUT); the grant as Redis keeps it, and the generation it made;
   * `closed` when the grant was closed after this proof was made (a tombstone): nothing stored.
   */
  put(grant: Grant): Promise<{ grant: Grant; gen: string } | { closed: true }>;
  /** The removed grant (undefined: none, or unreadable) and the generation; undefined when nothing was there. */
  remove(id: string): Promise<{ old: Grant | undefined; gen: string } | undefined>;
  /** Every live grant, a chunk per round trip, and the generation the first chunk saw (a later chunk may see later changes). */
  list(): Promise<{ gen: string; grants: Grant[] }>;
  /** The generation now ('' = none, or unreadable: then a full read follows and the next put repairs it). */
  generation(): Promise<string>;
  /** Redis's clock minus ours: of the last few reads, the one with the shortest round trip. */
  offsetMs(): number;
}

export function remoteGrants(deps: { conn: RedisConnection; key: KeySpace; nodeId: string; clock: Clock; maxLen: string; budget: LogBudget }): RemoteGrants {
  const { conn, clock, nodeId, maxLen, budget } = deps;
  const grantPrefix = deps.key('grant:');
  const indexKey = deps.key('grants');
  const streamKey = deps.key('changes');
  const genKey = deps.key('gen');
  const tombPrefix = deps.key('tomb:');
  let offsetMs = 0;
  const samples: { offset: number; rtt: number }[] = [];
  /** One reading of Redis's clock (ms) taken between our `before` and `after`. */
  const sample = (redisNow: number, before: number, after: number): void => {
    samples.push({ offset: redisNow - Math.round((before + after) / 2), rtt: after - before });
    if (samples.length > CLOCK_SAMPLES) samples.shift();
    offsetMs = samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
  };

  const decode = (id: string, json: string, pttl: number | undefined, localNow: number): Grant | undefined => {
    const r = decodeGrant(id, json, pttl, localNow);
    if ('grant' in r) return r.grant;
    budget.warn('store.bad_grant', { key: grantPrefix + id, why: r.why }, `ignoring the unreadable grant key ${grantPrefix + id} (${r.why})`);
    return undefined;
  };

  return {
    offsetMs: () => offsetMs,

    async put(grant) {
      const now = clock.now();
      if (grant.expiresAt !== null && grant.expiresAt <= now) return { grant, gen: '' };
      const e = encodeGrant(grant, now);
      // Dates the proof from now, not from when Redis runs it (GRANT_PUT): only an estimate we have.
      const sentAt = samples.length > 0 ? String(now + offsetMs) : '';
      const reply = PutReply.parse(await runScript(conn.client, GRANT_PUT, [grantPrefix + grant.id, indexKey, streamKey, genKey, tombPrefix + grant.id], [grant.id, e.head, e.createdAt, e.expiresAt, e.px, maxLen, nodeId, String(Math.max(0, now - grant.createdAt)), sentAt]));
      const [json, mode, pttl, gen] = reply;
      if (mode === 'closed') return { closed: true };
      const stored = decode(grant.id, json, pttl, now);
      if (!stored) throw kgwError('KGW_STORE_DATA', `Redis returned an unreadable grant for ${grant.id}`, { id: grant.id });
      // The TTL we sent is exact in our own clock; only an older, longer grant is re-based.
      return { grant: mode === 'new' ? Object.freeze({ ...stored, expiresAt: grant.expiresAt }) : stored, gen };
    },

    async remove(id) {
      const reply = RemoveReply.parse(await runScript(conn.client, GRANT_REMOVE, [grantPrefix + id, indexKey, streamKey, genKey, tombPrefix + id], [id, nodeId, maxLen, String(TOMBSTONE_MS)]));
      if (!reply) return undefined;
      return { old: reply[0] === '' ? undefined : decode(id, reply[0], undefined, clock.now()), gen: reply[1] };
    },

    async generation() {
      const before = clock.now();
      const reply = GenReply.safeParse(await runScript(conn.client, GRANT_GEN, [genKey], []).catch(() => undefined));
      if (!reply.success) return '';
      sample(reply.data[0], before, clock.now());
      return reply.data[1];
    },

    async list() {
      const grants = new Map<string, Grant>();
      let cursor = '0';
      let gen: string | undefined;
      do {
        const before = clock.now();
        const reply = ListReply.parse(await runScript(conn.client, GRANT_LIST, [indexKey, genKey], [grantPrefix, cursor, LIST_CHUNK]));
        const after = clock.now();
        sample(Number(reply[0]), before, after);
        cursor = String(reply[1]);
        // The first chunk's generation: every later chunk sees that state or a newer one.
        gen ??= String(reply[2]);
        for (let i = 3; i + 2 < reply.length; i += 3) {
          // PTTL was read between before and after: counting from before never stretches a grant.
          const g = decode(String(reply[i]), String(reply[i + 1]), Number(reply[i + 2]), before);
          if (g && isLive(g, after)) grants.set(g.id, g);
        }
      } while (cursor !== '0');
      return { gen: gen ?? '', grants: [...grants.values()] };
    },
  };
}
