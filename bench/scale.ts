// Phase 3: grants through the nftables backend's apply() in a namespace, in batches of 10k and
// 100k (per-element cost), plus the per-change costs the pcap path pays on every knock: one
// apply() of a single grant and the list() the reconciler runs before it.
import { createLab } from '../test/helpers/netns.ts';
import { createNftablesFirewall } from '../gateway/adapters/firewall/index.ts';
import { kgwError } from '../gateway/core/errors.ts';
import type { FirewallOp } from '../gateway/core/types.ts';
import { onCleanup, percentile, round, silentLogger } from './lib.ts';

export interface BatchResult { readonly n: number; readonly addMs: number; readonly removeMs: number; readonly addUsPerElem: number; readonly removeUsPerElem: number }

export interface ScaleResult {
  readonly batches: readonly BatchResult[];
  /** apply() of one add (one `nft -f -` spawn), p50 over samples. */
  readonly singleApplyMs: number;
  /** list() (two `nft -j list set` spawns) with an empty table and with the largest batch loaded. */
  readonly listEmptyMs: number;
  readonly listFullMs: number;
}

const SSH = [{ port: 22, proto: 'tcp' as const }];

function addOps(n: number, offset = 0): FirewallOp[] {
  const expiresAt = Date.now() + 3_600_000;
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    return { op: 'add' as const, entry: { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, family: 4 as const, port: 22, proto: 'tcp' as const, expiresAt } };
  });
}

const timed = async (fn: () => Promise<unknown>): Promise<number> => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};

export async function benchScale(sizes: readonly number[]): Promise<ScaleResult> {
  const lab = await createLab(0);
  const drop = onCleanup('scale namespace', () => lab.destroy());
  try {
    const fw = createNftablesFirewall({ logger: silentLogger, netns: lab.server.ns });
    await fw.ensureBase(SSH);
    const singles: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [op] = addOps(1, 200_000 + i);
      if (!op) continue;
      singles.push(await timed(() => fw.apply([op])));
      await fw.apply([{ op: 'remove', entry: op.entry }]);
    }
    const listEmptyMs = await timed(() => fw.list());
    const batches: BatchResult[] = [];
    let listFullMs = listEmptyMs;
    for (const n of sizes) {
      const ops = addOps(n);
      const addMs = await timed(() => fw.apply(ops));
      let listed = 0;
      listFullMs = await timed(async () => (listed = (await fw.list()).length));
      if (listed !== n) throw kgwError('KGW_INTERNAL', `bench: ${n} grants applied but ${listed} listed`);
      const removeMs = await timed(() => fw.apply(ops.map((o) => ({ op: 'remove' as const, entry: o.entry }))));
      const left = (await fw.list()).length;
      if (left !== 0) throw kgwError('KGW_INTERNAL', `bench: ${left} grants left after removing ${n}`);
      batches.push({ n, addMs: round(addMs, 1), removeMs: round(removeMs, 1), addUsPerElem: round((addMs * 1000) / n, 2), removeUsPerElem: round((removeMs * 1000) / n, 2) });
    }
    await fw.teardown();
    return { batches, singleApplyMs: round(percentile(singles, 0.5)), listEmptyMs: round(listEmptyMs), listFullMs: round(listFullMs, 1) };
  } finally {
    drop();
    await lab.destroy();
  }
}
