// `npm run bench -- --fleet`: a simulated fleet of gateway nodes against ONE real redis-server.
//
// Nodes are real gateways (test/helpers/fleet-node.ts: real store, reconciler, cloud lease and
// sync; recording host firewall, in-memory cloud) hosted by several child processes, 10 to a
// process at 50 nodes: one event loop serving all 50 would serialise their reactions to each
// grant and measure itself, not the fleet; one process per node would be 50 Node runtimes
// fighting over 2 cores. The ladder (5 → 10 → 25 → 50 nodes) runs the same phases at each size,
// so what grows with the fleet shows; the largest size adds 10k live grants, a node restart and
// a leader failover. Everything is bounded in time and torn down on exit, failure and Ctrl-C.
import { Redis } from 'ioredis';
import { kgwError } from '../../gateway/core/errors.ts';
import { startRedis } from '../../test/helpers/redis.ts';
import { onCleanup } from '../lib.ts';
import { startFleet } from './fleet.ts';
import { burst, catchUp, expiry, failover, idle, propagation, revokes, type Burst, type Ctx, type Failover, type Load, type PhaseResult } from './scenarios.ts';

export interface FleetSettings {
  readonly ladder: readonly number[];
  readonly processes: number;
  /** Grants and rate of the steady propagation phase at each size. */
  readonly grants: number;
  readonly perSecond: number;
  /** A faster phase at each size (where queues build up first). */
  readonly fastPerSecond: number;
  /** Live grants for the largest size (catch-up, background load). */
  readonly live: number;
  readonly idleSeconds: number;
  readonly leaseTtlMs: number;
}

export interface SizeResult {
  readonly nodes: number;
  readonly idle: Load;
  readonly phases: PhaseResult[];
}

/** Filled as the phases finish: a phase that fails leaves what came before it to print. */
export interface FleetResult {
  readonly sizes: SizeResult[];
  live?: { burst: Burst; idle?: Load; phases: PhaseResult[]; catchUp?: { startMs: number; caughtUpMs: number } };
  failover?: Failover;
}

async function withRedis<T>(body: (url: string, probe: Redis) => Promise<T>): Promise<T> {
  const afters: (() => Promise<void> | void)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const fn of afters.splice(0).reverse()) await fn();
  };
  const drop = onCleanup('fleet redis-server', stopAll);
  try {
    const skip = (msg: string): never => {
      throw kgwError('KGW_TOOL_MISSING', `fleet bench: ${msg}`);
    };
    const redis = await startRedis({ skip, after: (fn) => void afters.push(fn) });
    if (!redis) throw kgwError('KGW_TOOL_MISSING', 'the fleet bench needs redis-server');
    const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    probe.on('error', () => undefined);
    afters.push(() => void probe.disconnect());
    return await body(redis.url, probe);
  } finally {
    drop();
    await stopAll();
  }
}

export async function benchFleet(s: FleetSettings, log: (line: string) => void, out: FleetResult): Promise<void> {
  const largest = Math.max(...s.ladder);
  const report = (nodes: number, p: PhaseResult): void => log(`fleet ${nodes}: ${p.name} ${p.perSecond}/s last-node p50 ${p.lastP50} ms p99 ${p.lastP99} ms, ${p.commandsPerChange} cmds/change, redis ${p.redis.cpuPct.toFixed(0)}% CPU`);
  await withRedis(async (url, probe) => {
    for (const nodes of s.ladder) {
      const t0 = performance.now();
      const fleet = await startFleet({ url, namespace: `fleet${nodes}`, nodes, processes: s.processes, leaseTtlMs: s.leaseTtlMs });
      log(`fleet: ${nodes} nodes in ${fleet.hosts.length} processes started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const ctx: Ctx = { fleet, redis: probe, log };
      try {
        const size: SizeResult = { nodes, idle: await idle(ctx, s.idleSeconds), phases: [] };
        out.sizes.push(size);
        const phase = async (run: () => Promise<PhaseResult>): Promise<void> => {
          const p = await run();
          size.phases.push(p);
          report(nodes, p);
        };
        await phase(() => propagation(ctx, 'grant', s.grants, s.perSecond));
        await phase(() => propagation(ctx, 'grant fast', s.grants * 5, s.fastPerSecond));
        await phase(() => revokes(ctx, 'revoke', Math.min(20, s.grants)));
        await phase(() => expiry(ctx, 'expiry', s.grants, s.perSecond));
        if (nodes === largest && s.live > 0) await withLive(ctx, s, out, (p) => report(nodes, p));
      } finally {
        await fleet.stop();
        await probe.flushall();
      }
    }
  });
}

/** The largest fleet with `s.live` live grants: the burst, the background, a restart, a failover. */
async function withLive(ctx: Ctx, s: FleetSettings, out: FleetResult, report: (p: PhaseResult) => void): Promise<void> {
  const { log } = ctx;
  await ctx.fleet.all({ cmd: 'forget' });
  log(`fleet: a burst of ${s.live} live grants…`);
  const live: NonNullable<FleetResult['live']> = { burst: await burst(ctx, s.live, 0), phases: [] };
  out.live = live;
  log(`fleet: all nodes hold ${s.live} after ${live.burst.allHoldMs} ms; idle ${s.idleSeconds * 3} s with them live…`);
  live.idle = await idle(ctx, s.idleSeconds * 3);
  for (const run of [() => propagation(ctx, `grant (${s.live} live)`, s.grants, s.perSecond), () => expiry(ctx, `expiry (${s.live} live)`, s.grants, s.perSecond)]) {
    const p = await run();
    live.phases.push(p);
    report(p);
  }
  log(`fleet: restarting one node with ${s.live} live grants…`);
  live.catchUp = await catchUp(ctx, s.live);
  log(`fleet: killing the cloud leader (lease TTL ${s.leaseTtlMs} ms)…`);
  out.failover = await failover(ctx, s.leaseTtlMs);
}
