// Every Lua script knockgw runs in Redis, and the one way to run them (EVALSHA, falling back to
// EVAL once after a Redis restart or failover flushed the script cache). Scripts are how the
// grant store merges atomically and how the leader lease compares before it renews or releases.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { describeError } from '../../core/errors.ts';

export interface Script { readonly lua: string; readonly sha: string }

export function defineScript(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export async function runScript(client: Redis, s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!describeError(err).startsWith('NOSCRIPT')) throw err;
    return client.eval(s.lua, keys.length, ...keys, ...args);
  }
}

// ---------------------------------------------------------------- grant store (see adapters/store/redis/)

// The generation (key 'gen'): every change to the set of grants adds one, in the same script, so
// a node that read the whole set at generation g and sees g again knows nothing changed (grants
// that expire by PX aside: every node closes those on its own timers). A missing or foreign value
// is born again from Redis's clock in µs, so a Redis that restarted empty or was flushed never
// repeats a generation a node remembers.
const BUMP_LUA = `
local function bump(k)
  local g = redis.pcall('INCR', k)
  if type(g) ~= 'number' or g < 1000000 then
    local t = redis.call('TIME')
    g = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', k, string.format('%.0f', g))
  end
  return string.format('%.0f', g)
end
`;

// Keys: 1 grant, 2 index, 3 stream, 4 generation. Args: id, JSON head (every field but the two
// below, without its closing brace), createdAt, expiresAt ('null' = until closed), px ('' = until
// closed), stream maxlen, node id. Merge rule (= mergeGrant): first createdAt, the longer
// remaining TTL. The reply and the stream entry carry the generation it made.
// Key 5 is the grant's tombstone and arg 8 the proof's age (ms, by the writer's clock, so no
// clock is compared with another): a proof older than the last close of this grant is refused
// ({'', 'closed', 0, ''}) — it was queued somewhere while another node closed the grant.
// Arg 9 is when the writer sent it, in Redis's clock by the writer's estimate ('' = none yet): a
// command that TCP delivers late (sent into a silent cut, retransmitted after the heal) would
// otherwise date its proof from when it ran and outrank the close made in between.
const GRANT_PUT_LUA = BUMP_LUA + `
local function kind(k) return redis.call('TYPE', k).ok end
if kind(KEYS[2]) ~= 'zset' and kind(KEYS[2]) ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[2] .. ' is not a sorted set') end
if kind(KEYS[3]) ~= 'stream' and kind(KEYS[3]) ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[3] .. ' is not a stream') end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tomb = redis.call('GET', KEYS[5])
local sent = tonumber(ARGV[9])
if sent == nil or sent > now then sent = now end
if tomb and sent - tonumber(ARGV[8]) <= tonumber(tomb) then return {'', 'closed', 0, ''} end
local created, expires, px = ARGV[3], ARGV[4], ARGV[5]
local mode = 'new'
if px == '' then mode = 'unlimited' end
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then
  redis.call('DEL', KEYS[1])
elseif cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and type(old.createdAt) == 'number' then
    created = string.format('%.0f', old.createdAt)
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl == -1 then
      mode = 'unlimited'
    elseif mode == 'new' and pttl > tonumber(px) and type(old.expiresAt) == 'number' then
      mode = 'kept'
      expires = string.format('%.0f', old.expiresAt)
    end
  end
end
if mode == 'unlimited' then expires = 'null' end
local value = ARGV[2] .. ',"createdAt":' .. created .. ',"expiresAt":' .. expires .. '}'
local pttl, score
if mode == 'unlimited' then
  redis.call('SET', KEYS[1], value)
  pttl, score = -1, '+inf'
elseif mode == 'kept' then
  redis.call('SET', KEYS[1], value, 'KEEPTTL')
  pttl = redis.call('PTTL', KEYS[1])
  score = now + pttl
else
  redis.call('SET', KEYS[1], value, 'PX', px)
  pttl = tonumber(px)
  score = now + pttl
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local gen = bump(KEYS[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'op', 'put', 'id', ARGV[1], 'node', ARGV[7], 'grant', value, 'pttl', string.format('%d', pttl), 'gen', gen)
return {value, mode, pttl, gen}
`;

// Keys: 1 grant, 2 index, 3 stream, 4 generation, 5 tombstone. Args: id, node id, stream maxlen,
// tombstone PX. Returns {old JSON or '', generation}, or nil: removing nothing changes nothing
// (no generation, no entry) but the tombstone, which is written either way: a close on a node
// that never heard of the grant still outranks the knock queued on another (GRANT_PUT).
const GRANT_REMOVE_LUA = BUMP_LUA + `
local t = redis.call('TIME')
redis.call('SET', KEYS[5], string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)), 'PX', ARGV[4])
local cur = redis.pcall('GET', KEYS[1])
local n = redis.call('DEL', KEYS[1])
if redis.call('TYPE', KEYS[2]).ok == 'zset' then redis.call('ZREM', KEYS[2], ARGV[1]) end
if n == 0 then return false end
local gen = bump(KEYS[4])
if redis.call('TYPE', KEYS[3]).ok ~= 'stream' and redis.call('TYPE', KEYS[3]).ok ~= 'none' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[3] .. ' is not a stream') end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'remove', 'id', ARGV[1], 'node', ARGV[2], 'gen', gen)
if type(cur) ~= 'string' then cur = '' end
return {cur, gen}
`;

// Keys: 1 index, 2 generation. Args: grant key prefix, ZSCAN cursor ('0' = start), chunk size.
// Returns {redis now ms, next cursor ('0' = done), generation, id, json ('' = not a string), pttl,
// …}: the first chunk's generation is one the whole read saw (or a later one). A namespace without
// one gets one born here, so the first change after the read is the next one. One chunk of
// the index per call: a script blocks every other client of Redis while it runs, and a single
// read of 10k grants held a 50-node fleet's changes for ~100 ms a time (bench/RESULTS.md, Fleet).
// ZSCAN returns every grant that is there for the whole read (some maybe twice: the caller
// dedupes); one that comes or goes meanwhile is a change the stream brings. The first chunk
// prunes index entries that expired; each chunk drops those whose key is gone.
const GRANT_LIST_LUA = `
local k = redis.call('TYPE', KEYS[1]).ok
local t = redis.call('TIME')
local gen = redis.pcall('GET', KEYS[2])
if type(gen) ~= 'string' then
  gen = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', KEYS[2], gen)
end
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), '0', gen}
if k == 'none' then return out end
if k ~= 'zset' then return redis.error_reply('KGW_STORE_DATA ' .. KEYS[1] .. ' is not a sorted set') end
if ARGV[2] == '0' then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. out[1]) end
local scan = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
out[2] = scan[1]
local items = scan[2]
for i = 1, #items, 2 do
  local id = items[i]
  local key = ARGV[1] .. id
  local v = redis.pcall('GET', key)
  if not v then
    redis.call('ZREM', KEYS[1], id)
  else
    if type(v) ~= 'string' then v = '' end
    out[#out + 1] = id
    out[#out + 1] = v
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out
`;

// Keys: 1 generation. Returns {redis now ms, generation ('' = none)}: what a read asks first, and
// a sample of Redis's clock (a full read no longer comes often enough to be the only one).
const GRANT_GEN_LUA = `
local t = redis.call('TIME')
local g = redis.pcall('GET', KEYS[1])
if type(g) ~= 'string' then g = '' end
return {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), g}
`;

export const GRANT_GEN = defineScript(GRANT_GEN_LUA);
export const GRANT_PUT = defineScript(GRANT_PUT_LUA);
export const GRANT_REMOVE = defineScript(GRANT_REMOVE_LUA);
export const GRANT_LIST = defineScript(GRANT_LIST_LUA);

// ---------------------------------------------------------------- leader lease (see adapters/lease/redis.ts)

// Acquire or renew: take a free lease, or extend our own; never touch another node's.
const LEASE_ACQUIRE_LUA = `
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;
const LEASE_RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
export const LEASE_ACQUIRE = defineScript(LEASE_ACQUIRE_LUA);
export const LEASE_RELEASE = defineScript(LEASE_RELEASE_LUA);

// ---------------------------------------------------------------- fleet roster (see adapters/store/redis/fleet.ts)

// Keys: 1 the roster hash (node id → what it says of itself), 2 the sorted set of node ids by
// when Redis last heard them. ARGV: node id, its JSON, how long a silent node stays listed (ms).
// Dated by Redis's clock, so a node whose clock is off neither hides itself nor looks silent.
const FLEET_ANNOUNCE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[3])))
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
`;
// Keys as above. Returns {redis now ms, id, last heard ms, JSON, id, …}.
const FLEET_MEMBERS_LUA = `
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local seen = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #seen, 2 do
  local said = redis.call('HGET', KEYS[1], seen[i])
  if said then
    out[#out + 1] = seen[i]
    out[#out + 1] = seen[i + 1]
    out[#out + 1] = said
  end
end
return out
`;
const FLEET_LEAVE_LUA = `
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
`;
export const FLEET_ANNOUNCE = defineScript(FLEET_ANNOUNCE_LUA);
export const FLEET_MEMBERS = defineScript(FLEET_MEMBERS_LUA);
export const FLEET_LEAVE = defineScript(FLEET_LEAVE_LUA);
