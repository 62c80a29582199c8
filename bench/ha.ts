// Phase 4: HA propagation through a real redis-server: a grant put on node A, seen by node B's
// watch() (the hint the reconciler acts on), sequentially, p50/p99.
import { startRedis } from '../test/helpers/redis.ts';
import { openStore } from '../gateway/wiring/store.ts';
import type { GrantStore } from '../gateway/ports.ts';
import { makeGrant } from '../gateway/core/grant.ts';
import { kgwError } from '../gateway/core/errors.ts';
import { systemClock } from '../gateway/ports.ts';
import { onCleanup, percentile, round, silentLogger } from './lib.ts';

export interface HaResult { readonly samples: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number }

const SEEN_TIMEOUT_MS = 2000;

export async function benchHa(count: number): Promise<HaResult> {
  const afters: (() => Promise<void> | void)[] = [];
  const drop = onCleanup('redis-server', async () => {
    for (const fn of afters.reverse()) await fn();
  });
  try {
    const redis = await startRedis({
      skip: (msg) => {
        throw kgwError('KGW_TOOL_MISSING', `bench HA phase: ${msg}`);
      },
      after: (fn) => void afters.push(fn),
    });
    if (!redis) throw kgwError('KGW_TOOL_MISSING', 'bench HA phase needs redis-server');
    const open = async (nodeId: string): Promise<GrantStore> => {
      const backend = await openStore(redis.url, { nodeId, namespace: `bench${process.pid}`, clock: systemClock, logger: silentLogger, requireStoreAtStart: true });
      afters.push(() => backend.close());
      return backend.store;
    };
    const a = await open('gw-a');
    const b = await open('gw-b');
    const waiting = new Map<string, () => void>();
    // A watch callback may carry the change or only a hint to re-read: both count as "B knows".
    const unwatch = b.watch((change) => {
      if (change?.kind === 'put') {
        waiting.get(change.grant.id)?.();
        return;
      }
      if (change === undefined && waiting.size > 0) {
        void b.list().then((gs) => {
          for (const g of gs) waiting.get(g.id)?.();
        });
      }
    });
    afters.push(unwatch);
    const latencies: number[] = [];
    // Five unmeasured puts first: the first one can land before B's stream reader is connected.
    for (let i = -5; i < count; i++) {
      const grant = makeGrant({ ip: `198.18.${Math.floor((i + 5) / 250)}.${((i + 5) % 250) + 1}`, door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId: 'gw-a', now: Date.now() });
      const seen = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(kgwError('KGW_INTERNAL', `bench: node B did not see ${grant.id} within ${SEEN_TIMEOUT_MS} ms`)), SEEN_TIMEOUT_MS);
        waiting.set(grant.id, () => {
          clearTimeout(timer);
          resolve(performance.now());
        });
      });
      const t0 = performance.now();
      await a.put(grant);
      const ms = (await seen) - t0;
      if (i >= 0) latencies.push(ms);
      waiting.delete(grant.id);
    }
    return { samples: latencies.length, p50Ms: round(percentile(latencies, 0.5)), p99Ms: round(percentile(latencies, 0.99)), maxMs: round(Math.max(...latencies)) };
  } finally {
    drop();
    for (const fn of afters.reverse()) await fn();
  }
}
