// The kernel engine as a proof source. The kernel completes knocks by itself (core/nft-kernel.ts)
// and reports each completion on NFLOG with a prefix naming the sequence; this reads the reports
// and hands them to the intake like any other proof, so the grant reaches the store, the other
// nodes and the clouds, and is logged. Before each full repair it also compares the kernel's own
// record of recent completions with the store and resubmits reports that were lost
// (core/kernel-repair.ts), counted and logged as knock.adopted.
import { DONE_WINDOW_MS, parseNflogPrefix } from '../core/nft-kernel.ts';
import { lostReports } from '../core/kernel-repair.ts';
import { parseIp } from '../core/ip.ts';
import { kgwError } from '../core/errors.ts';
import type { Door, KnockSequence } from '../core/types.ts';
import type { Clock, GrantStore, HostFirewall, PacketSource, ProofSource, SourceContext } from '../ports.ts';
import type { Metrics } from './metrics.ts';
import { wallNow } from '../kit/wall-clock.ts';
import { tracerFor } from './trace.ts';

export interface KernelSourceDeps {
  /** Opens the reader of the NFLOG group (each packet carries the rule's prefix); called by start(). */
  readonly openReports: () => PacketSource & AsyncIterable<{ readonly src: string; readonly nflogPrefix?: string; readonly ts?: number; readonly readAt?: number | undefined; readonly parsedAt?: number | undefined }>;
  /** The config's sequences: a prefix carries an index into this list. */
  readonly sequences: readonly KnockSequence[];
  readonly doors: readonly Door[];
  /** The firewall the kernel program lives in: its done sets and allowed sets. */
  readonly firewall: Pick<HostFirewall, 'kernelCompletions' | 'list'>;
  readonly store: GrantStore;
  readonly clock: Clock;
  readonly metrics: Metrics;
}

export function createKernelSource(deps: KernelSourceDeps): ProofSource {
  let loop: Promise<void> | undefined;
  let reports: ReturnType<KernelSourceDeps['openReports']> | undefined;
  let ctx: SourceContext | undefined;
  let stopped = false;
  let startedAt = Infinity;
  const doors = new Map(deps.doors.map((d) => [d.name, d]));
  /** When the gateway last saw each grant change: a report that did arrive is not repeated. */
  const changes = new Map<string, number>();
  const tracer = tracerFor(deps.metrics);
  let unwatch: (() => void) | undefined;

  return {
    name: 'kernel',
    async start(c) {
      ctx = c;
      startedAt = deps.clock.now();
      unwatch = deps.store.watch((change) => {
        if (change) changes.set(change.kind === 'put' ? change.grant.id : change.id, deps.clock.now());
      });
      const r = deps.openReports();
      reports = r;
      loop = (async () => {
        for await (const rec of r) {
          const dequeuedAt = wallNow();
          const parsed = parseNflogPrefix(rec.nflogPrefix ?? '');
          const seq = parsed ? deps.sequences[parsed.index] : undefined;
          const ip = parseIp(rec.src);
          if (!parsed || !seq || !ip) continue;
          const action = parsed.action === 'open' ? { kind: 'open' as const } : { kind: 'close' as const };
          const span = tracer.span('kernel', { arrivedAt: rec.ts ?? rec.readAt ?? dequeuedAt, readAt: rec.readAt, parsedAt: rec.parsedAt }, dequeuedAt);
          await tracer.run(span, () => c.submit({ kind: 'knock', engine: 'kernel', sequenceId: seq.id, door: seq.door, ip: ip.address, family: ip.family, action }));
        }
        if (!stopped) throw kgwError('KGW_CAPTURE_FAILED', 'the NFLOG reader ended on its own');
      })().catch((err: unknown) => {
        if (!stopped) c.fail(err);
      });
      await r.ready();
    },
    async repair() {
      if (!ctx || !deps.firewall.kernelCompletions) return;
      const now = deps.clock.now();
      for (const [id, at] of changes) if (now - at > DONE_WINDOW_MS) changes.delete(id);
      const completions = await deps.firewall.kernelCompletions();
      if (completions.length === 0) return;
      const lost = lostReports({
        completions,
        sequences: deps.sequences,
        doors,
        grants: await deps.store.list(),
        allowed: await deps.firewall.list(),
        since: startedAt,
        lastChange: (id) => changes.get(id),
      });
      for (const proof of lost) {
        deps.metrics.inc('kernel_adopted_total', 1, { action: proof.action.kind });
        await ctx.submit(proof);
      }
    },
    async stop() {
      stopped = true;
      unwatch?.();
      await reports?.close().catch(() => undefined);
      await loop;
    },
  };
}
