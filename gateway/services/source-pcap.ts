// The pcap engine as a proof source: captured packets (one capture per interface) run through
// the pure knock machine; completed sequences become proofs. Attacker-controlled outcomes (resets,
// denials) are counted always and logged within a budget, so a flood cannot become a log flood.
// It also keeps knockd's one_time_sequences bookkeeping: the machine consumes a line, this marks
// it used in the file.
import { expire, step, stepDeferredFirst } from '../core/knock-machine.ts';
import { parseIntakePrefix } from '../core/nft-intake.ts';
import { createKnockState, knockCounters, type KnockEvent, type KnockState, type KnockMachineOptions, type OneTimeSequence, type UsedOneTimeSequence } from '../core/knock-state.ts';
import { describeError, kgwError } from '../core/errors.ts';
import { ATTACKER_LOG_BUDGET, createLogBudget } from '../core/log-budget.ts';
import type { KnockPacket, KnockSequence } from '../core/types.ts';
import type { Clock, Logger, PacketSource, ProofSource, SourceContext } from '../ports.ts';
import type { Metrics } from './metrics.ts';
import { wallNow } from '../kit/wall-clock.ts';
import { tracerFor, type TraceSpan } from './trace.ts';

export interface OneTimeBook {
  /** Unused lines per sequence id, in file order. */
  readonly entries: ReadonlyMap<string, readonly OneTimeSequence[]>;
  /** Marks a line used in its file. */
  markUsed(sequenceId: string, used: UsedOneTimeSequence): Promise<void>;
}

/** A capture of knock packets; NFLOG records carry their rule's prefix. */
export type KnockCapture = PacketSource & AsyncIterable<KnockPacket & { readonly nflogPrefix?: string; readonly readAt?: number | undefined; readonly parsedAt?: number | undefined }>;

export interface PcapSourceDeps {
  /**
   * Opens the captures; called by start(). Either the kernel intake's NFLOG group (one for every
   * interface: its "kgw-pf:<i>" records are first knocks the kernel held back, core/nft-intake.ts)
   * or one tcpdump per interface (a knock arrives whole on one interface).
   */
  readonly openCaptures: () => readonly KnockCapture[];
  readonly sequences: readonly KnockSequence[];
  readonly machine: Omit<KnockMachineOptions, 'oneTimeSequences'>;
  readonly oneTime?: OneTimeBook;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

const COUNTER_METRICS = ['packets', 'ignoredPort', 'ignoredFlags', 'ignoredTarget', 'duplicates', 'resetWrongPort', 'resetTimeout', 'completed', 'evicted', 'deniedBadSource', 'deniedRateLimited', 'rateLimitEvicted'] as const;

export function createPcapSource(deps: PcapSourceDeps): ProofSource {
  const log = deps.logger;
  const budget = createLogBudget(log, { ...ATTACKER_LOG_BUDGET, now: () => deps.clock.now() });
  let captures: readonly KnockCapture[] = [];
  const states: KnockState[] = [];
  const loops: Promise<void>[] = [];
  let housekeeping: NodeJS.Timeout | undefined;
  let stopped = false;

  const publish = (): void => {
    const totals: Record<string, number> = {};
    for (const s of states) {
      const c = knockCounters(s);
      for (const name of COUNTER_METRICS) totals[name] = (totals[name] ?? 0) + c[name];
    }
    for (const name of COUNTER_METRICS) deps.metrics.set(`knock_${name}`, totals[name] ?? 0);
  };

  const tracer = tracerFor(deps.metrics);

  const handle = (ctx: SourceContext, e: KnockEvent, span?: TraceSpan): void => {
    switch (e.type) {
      case 'progress':
        log.debug({ event: 'knock.progress', sequence: e.sequenceId, ip: e.ip, stage: e.stage, of: e.of }, `${e.ip}: ${e.sequenceId} stage ${e.stage}/${e.of}`);
        return;
      case 'reset':
        // A stage-1 timeout is what every stray or spoofed packet leaves behind: count it only.
        if (e.reason === 'timeout' && e.stage <= 1) return;
        budget.info('knock.reset', { sequence: e.sequenceId, ip: e.ip, reason: e.reason, stage: e.stage }, `${e.ip}: ${e.sequenceId} reset (${e.reason}) at stage ${e.stage}`);
        return;
      case 'denied':
        budget.info('knock.denied', { ip: e.ip, reason: e.reason, detail: e.detail }, `${e.ip}: knock denied (${e.reason})`);
        return;
      case 'completed': {
        const used = e.oneTime;
        const proof = { kind: 'knock', engine: 'pcap', sequenceId: e.sequenceId, door: e.door, ip: e.ip, family: e.family, action: e.action } as const;
        void (span ? tracer.run(span, () => ctx.submit(proof)) : ctx.submit(proof));
        if (used && deps.oneTime) {
          deps.oneTime.markUsed(e.sequenceId, used).then(
            () => log.info({ event: 'knock.one_time_used', sequence: e.sequenceId, line: used.line + 1, remaining: used.remaining }, `one-time sequence on line ${used.line + 1} used`),
            (err: unknown) => log.error({ event: 'knock.error', sequence: e.sequenceId, err: describeError(err) }, 'marking the one-time sequence used failed'),
          );
        }
        return;
      }
    }
  };

  return {
    name: 'pcap',
    async start(ctx) {
      captures = deps.openCaptures();
      for (const _ of captures) states.push(createKnockState(deps.sequences, { ...deps.machine, ...(deps.oneTime ? { oneTimeSequences: deps.oneTime.entries } : {}) }));
      housekeeping = setInterval(() => {
        for (const s of states) for (const e of expire(s, deps.clock.now())) handle(ctx, e);
        budget.flush();
        publish();
      }, 1000);
      housekeeping.unref();
      captures.forEach((packets, i) => {
        const state = states[i];
        if (!state) return;
        loops.push(
          (async () => {
            for await (const packet of packets) {
              if (stopped) break;
              const dequeuedAt = wallNow();
              const rec = packet.nflogPrefix === undefined ? undefined : parseIntakePrefix(packet.nflogPrefix);
              if (rec?.kind === 'first') deps.metrics.inc('knock_released_first_total');
              const events = rec?.kind === 'first' ? stepDeferredFirst(state, rec.index, packet, deps.clock.now()) : step(state, packet, deps.clock.now());
              for (const e of events) handle(ctx, e, e.type === 'completed' ? tracer.span('pcap', { arrivedAt: packet.ts, readAt: packet.readAt, parsedAt: packet.parsedAt }, dequeuedAt) : undefined);
            }
            if (!stopped) throw kgwError('KGW_CAPTURE_FAILED', 'the knock capture ended on its own');
          })().catch((err: unknown) => {
            if (!stopped) ctx.fail(err);
          }),
        );
      });
      await Promise.all(captures.map((c) => c.ready()));
    },
    async stop() {
      stopped = true;
      clearInterval(housekeeping);
      for (const c of captures) await c.close().catch(() => undefined);
      await Promise.all(loops);
      budget.flush();
      publish();
    },
  };
}
