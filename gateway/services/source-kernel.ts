// The kernel engine as a proof source. The kernel completes knocks by itself (core/nft-kernel.ts)
// and reports each completion on NFLOG with a prefix naming the sequence; this reads the reports
// and hands them to the intake like any other proof, so the grant reaches the store, the other
// nodes and the clouds, and is logged.
import { parseNflogPrefix } from '../core/nft-kernel.ts';
import { parseIp } from '../core/ip.ts';
import { kgwError } from '../core/errors.ts';
import type { KnockSequence } from '../core/types.ts';
import type { PacketSource, ProofSource } from '../ports.ts';

export interface KernelSourceDeps {
  /** Opens the reader of the NFLOG group (each packet carries the rule's prefix); called by start(). */
  readonly openReports: () => PacketSource & AsyncIterable<{ readonly src: string; readonly nflogPrefix?: string }>;
  /** The config's sequences: a prefix carries an index into this list. */
  readonly sequences: readonly KnockSequence[];
}

export function createKernelSource(deps: KernelSourceDeps): ProofSource {
  let loop: Promise<void> | undefined;
  let reports: ReturnType<KernelSourceDeps['openReports']> | undefined;
  let stopped = false;
  return {
    name: 'kernel',
    async start(ctx) {
      const r = deps.openReports();
      reports = r;
      loop = (async () => {
        for await (const rec of r) {
          const parsed = parseNflogPrefix(rec.nflogPrefix ?? '');
          const seq = parsed ? deps.sequences[parsed.index] : undefined;
          const ip = parseIp(rec.src);
          if (!parsed || !seq || !ip) continue;
          const action = parsed.action === 'open' ? { kind: 'open' as const } : { kind: 'close' as const };
          await ctx.submit({ kind: 'knock', engine: 'kernel', sequenceId: seq.id, door: seq.door, ip: ip.address, family: ip.family, action });
        }
        if (!stopped) throw kgwError('KGW_CAPTURE_FAILED', 'the NFLOG reader ended on its own');
      })().catch((err: unknown) => {
        if (!stopped) ctx.fail(err);
      });
      await r.ready();
    },
    async stop() {
      stopped = true;
      await reports?.close().catch(() => undefined);
      await loop;
    },
  };
}
