// The fleet bench's measurements, each against a running fleet and the shared redis-server:
// propagation of grants (and of expiry and revoke), a burst of live grants, the background load,
// the catch-up of a restarted node, and the cloud lease's failover.
import type { Redis } from 'ioredis';
import { kgwError } from '../../gateway/core/errors.ts';
import { percentile, round, sleep } from '../lib.ts';
import type { Fleet } from './fleet.ts';
import type { PerNode } from './protocol.ts';
import { redisDelta, sampleRedis, type RedisDelta } from './redis-stats.ts';

export interface Ctx {
  readonly fleet: Fleet;
  readonly redis: Redis;
  readonly log: (line: string) => void;
}

/** Latencies of one change as applied on every node: per change the last node, and every (change, node). */
export interface Spread {
  readonly changes: number;
  /** (change, node) pairs never applied within the wait. */
  readonly lost: number;
  /** Closes not needed: the node never opened the address (it expired before reaching it). */
  readonly neverOpened: number;
  readonly lastP50: number;
  readonly lastP99: number;
  readonly lastMax: number;
  readonly allP50: number;
  readonly allP99: number;
}

export interface Load {
  readonly redis: RedisDelta;
  /** CPU of all node processes over the phase, % of one core. */
  readonly nodesCpuPct: number;
  readonly nodesCpuMs: number;
}

export interface PhaseResult extends Spread, Load {
  readonly name: string;
  readonly nodes: number;
  readonly perSecond: number;
  readonly commandsPerChange: number;
}

let nextIp = 1;
/** Fresh addresses for every phase (10.0.0.1, 10.0.0.2, …): no phase sees another's grants. */
export function freshIps(n: number): string[] {
  return Array.from({ length: n }, () => {
    const i = nextIp++;
    return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  });
}

export function spread(sentAt: ReadonlyMap<string, number>, ips: readonly string[], applied: readonly PerNode[]): Spread {
  const last: number[] = [];
  const all: number[] = [];
  let lost = 0;
  let neverOpened = 0;
  ips.forEach((ip, i) => {
    const t0 = sentAt.get(ip) ?? Number.NaN;
    let worst = 0;
    for (const host of applied) {
      for (const times of Object.values(host)) {
        const at = times[i];
        if (at === null || at === undefined) {
          lost++;
          continue;
        }
        if (Number.isNaN(at)) {
          neverOpened++;
          continue;
        }
        all.push(at - t0);
        worst = Math.max(worst, at - t0);
      }
    }
    last.push(worst);
  });
  return { changes: ips.length, lost, neverOpened, lastP50: round(percentile(last, 0.5), 2), lastP99: round(percentile(last, 0.99), 2), lastMax: round(Math.max(...last), 2), allP50: round(percentile(all, 0.5), 2), allP99: round(percentile(all, 0.99), 2) };
}

/** Runs `body` and reports what Redis and the node processes spent meanwhile. */
export async function measured<T>(ctx: Ctx, body: () => Promise<T>): Promise<{ value: T; load: Load }> {
  const cpu0 = (await ctx.fleet.all({ cmd: 'cpu' })).reduce((a, b) => a + b, 0);
  const r0 = await sampleRedis(ctx.redis);
  const value = await body();
  const r1 = await sampleRedis(ctx.redis);
  const cpu1 = (await ctx.fleet.all({ cmd: 'cpu' })).reduce((a, b) => a + b, 0);
  // The bench's own INFO calls are not the fleet's.
  const redis = redisDelta(r0, r1, { exclude: ['info'] });
  const nodesCpuMs = (cpu1 - cpu0) / 1000;
  return { value, load: { redis, nodesCpuMs, nodesCpuPct: round((nodesCpuMs / (redis.seconds * 1000)) * 100, 1) } };
}

/** Grants `ips` from origins spread round-robin over the fleet, `perSecond` in all; when each was sent. */
async function sendGrants(ctx: Ctx, ips: readonly string[], perSecond: number, door?: string): Promise<Map<string, number>> {
  const { nodeIds } = ctx.fleet;
  const byNode = new Map<string, string[]>();
  ips.forEach((ip, i) => {
    const node = nodeIds[i % nodeIds.length] ?? '';
    byNode.set(node, [...(byNode.get(node) ?? []), ip]);
  });
  const rate = perSecond / byNode.size;
  const sent = new Map<string, number>();
  await Promise.all(
    [...byNode].map(async ([node, mine], k) => {
      const times = await ctx.fleet.hostOf(node).ask({ cmd: 'grant', node, ips: mine, perSecond: rate, offsetMs: (k * 1000) / perSecond, ...(door ? { door } : {}) });
      mine.forEach((ip, i) => sent.set(ip, times[i] ?? Number.NaN));
    }),
  );
  return sent;
}

const result = (name: string, nodes: number, perSecond: number, s: Spread, load: Load): PhaseResult => ({
  name, nodes, perSecond, ...s, ...load, commandsPerChange: round(load.redis.totalCalls / Math.max(1, s.changes), 1),
});

/** Grants at a steady rate; per grant the time until the last of the fleet's nodes applied it. */
export async function propagation(ctx: Ctx, name: string, count: number, perSecond: number): Promise<PhaseResult> {
  const ips = freshIps(count);
  const { value, load } = await measured(ctx, async () => {
    const sent = await sendGrants(ctx, ips, perSecond);
    return spread(sent, ips, await ctx.fleet.all({ cmd: 'applied', ips, op: 'add', timeoutMs: 30_000 }));
  });
  return result(name, ctx.fleet.nodeIds.length, perSecond, value, load);
}

/** Short grants (door `brief`, 2 s); per grant the time from its expiry to the last node closing it. */
export async function expiry(ctx: Ctx, name: string, count: number, perSecond: number): Promise<PhaseResult> {
  const ips = freshIps(count);
  const ttl = 2000;
  const { value, load } = await measured(ctx, async () => {
    const sent = await sendGrants(ctx, ips, perSecond, 'brief');
    const expiresAt = new Map([...sent].map(([ip, t]) => [ip, t + ttl]));
    return spread(expiresAt, ips, await ctx.fleet.all({ cmd: 'applied', ips, op: 'remove', timeoutMs: ttl + 30_000 }));
  });
  return result(name, ctx.fleet.nodeIds.length, perSecond, value, load);
}

/** Revokes, one at a time, each from a node other than the one that granted. */
export async function revokes(ctx: Ctx, name: string, count: number): Promise<PhaseResult> {
  const ips = freshIps(count);
  await sendGrants(ctx, ips, 200);
  await ctx.fleet.all({ cmd: 'applied', ips, op: 'add', timeoutMs: 30_000 });
  const { nodeIds } = ctx.fleet;
  const { value, load } = await measured(ctx, async () => {
    const sent = new Map<string, number>();
    for (const [i, ip] of ips.entries()) {
      const node = nodeIds[(i + 1) % nodeIds.length] ?? '';
      sent.set(ip, await ctx.fleet.hostOf(node).ask({ cmd: 'revoke', node, ip }));
      await sleep(50);
    }
    return spread(sent, ips, await ctx.fleet.all({ cmd: 'applied', ips, op: 'remove', timeoutMs: 30_000 }));
  });
  return result(name, nodeIds.length, 20, value, load);
}

export interface Burst { readonly grants: number; readonly allHoldMs: number; readonly perSecondAccepted: number; readonly load: Load; readonly commandsPerGrant: number }

/** `count` grants as fast as the origins take them; until every node holds them all. */
export async function burst(ctx: Ctx, count: number, alreadyHeld: number): Promise<Burst> {
  const ips = freshIps(count);
  const { value, load } = await measured(ctx, async () => {
    const t0 = performance.now();
    await sendGrants(ctx, ips, 1_000_000);
    const sentMs = performance.now() - t0;
    const held = await ctx.fleet.all({ cmd: 'holding', size: alreadyHeld + count, timeoutMs: 110_000 });
    if (held.some((h) => Object.values(h).includes(null))) throw kgwError('KGW_INTERNAL', `not every node held ${alreadyHeld + count} entries within 110 s`);
    return { sentMs, allHoldMs: performance.now() - t0 };
  });
  return { grants: count, allHoldMs: round(value.allHoldMs, 0), perSecondAccepted: round(count / (value.sentMs / 1000), 0), load, commandsPerGrant: round(load.redis.totalCalls / count, 1) };
}

/** What the fleet costs Redis with nothing happening (lease renewals, blocked reads, full repairs). */
export async function idle(ctx: Ctx, seconds: number): Promise<Load> {
  return (await measured(ctx, () => sleep(seconds * 1000))).load;
}

/** A node stopped and started again with an empty firewall while `live` grants are live. */
export async function catchUp(ctx: Ctx, live: number): Promise<{ startMs: number; caughtUpMs: number }> {
  const node = ctx.fleet.nodeIds[ctx.fleet.nodeIds.length - 1] ?? '';
  const r = await ctx.fleet.hostOf(node).ask({ cmd: 'restart', node, expect: live, timeoutMs: 60_000 });
  return { startMs: round(r.startMs, 0), caughtUpMs: round(r.caughtUpMs, 0) };
}

export interface Failover { readonly contenders: number; readonly failoverMs: number; readonly leaseTtlMs: number; readonly leaders: number }

/** Kills the cloud lease's holder without release; until another node leads. */
export async function failover(ctx: Ctx, leaseTtlMs: number): Promise<Failover> {
  const leading = (await ctx.fleet.all({ cmd: 'leaders' })).flatMap((l) => l.leading);
  const leader = leading[0];
  if (leading.length !== 1 || leader === undefined) throw kgwError('KGW_INTERNAL', `expected one cloud leader, found ${leading.length}`, { leading });
  const killedAt = await ctx.fleet.hostOf(leader).ask({ cmd: 'kill', node: leader });
  const deadline = performance.now() + leaseTtlMs * 2 + 5000;
  while (performance.now() < deadline) {
    const now = await ctx.fleet.all({ cmd: 'leaders' });
    const gained = now.flatMap((l) => l.gains).filter((g) => g.at > killedAt);
    if (gained.length > 0) {
      const first = Math.min(...gained.map((g) => g.at));
      await sleep(500);
      const after = (await ctx.fleet.all({ cmd: 'leaders' })).flatMap((l) => l.leading);
      return { contenders: ctx.fleet.nodeIds.length - 1, failoverMs: round(first - killedAt, 0), leaseTtlMs, leaders: after.length };
    }
    await sleep(50);
  }
  throw kgwError('KGW_INTERNAL', `no node took the cloud lease within ${leaseTtlMs * 2 + 5000} ms of the leader's death`);
}
