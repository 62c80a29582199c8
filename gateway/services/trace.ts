// The per-stage trace of a packet that became a grant: when the kernel took the packet in, when
// the daemon read it, parsed it, dequeued it, verified it (knock machine or SPA authorization and
// replay claim), when the grant reached the store's cache, and when the host firewall acknowledged
// it (the nft reply). Each stage's time goes into the histogram knockgw_packet_stage_seconds
// {path, stage} on /metrics, and `npm run bench -- --trace` prints the breakdown from it.
//
// Only packets that became proofs are traced: a span is made after verification, from a few
// numbers the capture stamped on the packet, so a flood of garbage costs no span, no histogram
// work and no allocation here. The span follows the proof into the grant service, the store and
// the reconciler's fast path through the async context, so none of them carries a trace argument.
import { AsyncLocalStorage } from 'node:async_hooks';
import { wallNow } from '../kit/wall-clock.ts';
import type { Metrics } from './metrics.ts';

export type TracePath = 'spa' | 'pcap' | 'kernel';
export const TRACE_STAGES = ['capture', 'parse', 'queue', 'verify', 'grant', 'firewall', 'total'] as const;
export type TraceStage = (typeof TRACE_STAGES)[number];
export const TRACE_METRIC = 'packet_stage_seconds';
/** Seconds; fine below 5 ms, where the targets are. */
export const TRACE_BUCKETS: readonly number[] = [0.00001, 0.000025, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Wall-clock ms, as the capture stamped the packet (pcap record time, or socket receipt). */
export interface PacketTimes {
  /** When the kernel took the packet in (its capture timestamp). */
  readonly arrivedAt: number;
  /** When the daemon read the bytes that hold it. */
  readonly readAt?: number | undefined;
  /** When it was decoded. */
  readonly parsedAt?: number | undefined;
}

export interface TraceSpan {
  /** The grant reached the store's cache (the reconciler heard of it). */
  granted(): void;
  /** The host firewall acknowledged it: the span is recorded (once). */
  applied(): void;
}

export interface Tracer {
  /** The span of a packet that became a proof: `dequeuedAt` when its source took it, verification ends now. */
  span(path: TracePath, packet: PacketTimes, dequeuedAt: number): TraceSpan;
  /** Runs `fn` (the proof's submission) with `span` as the current span of everything it starts. */
  run<T>(span: TraceSpan, fn: () => T): T;
  /** The span of the proof being acted on, if any. */
  current(): TraceSpan | undefined;
}

const context = new AsyncLocalStorage<TraceSpan>();
const tracers = new WeakMap<Metrics, Tracer>();

function createTracer(metrics: Metrics): Tracer {
  const observe = (path: TracePath, stage: TraceStage, fromMs: number | undefined, toMs: number | undefined): void => {
    if (fromMs === undefined || toMs === undefined) return;
    metrics.observe(TRACE_METRIC, Math.max(0, toMs - fromMs) / 1000, { path, stage }, TRACE_BUCKETS);
  };
  return {
    span(path, packet, dequeuedAt) {
      const verifiedAt = wallNow();
      let grantedAt: number | undefined;
      let done = false;
      return {
        granted() {
          grantedAt ??= wallNow();
        },
        applied() {
          if (done) return;
          done = true;
          const appliedAt = wallNow();
          const { arrivedAt, readAt, parsedAt } = packet;
          observe(path, 'capture', arrivedAt, readAt);
          observe(path, 'parse', readAt, parsedAt);
          observe(path, 'queue', parsedAt ?? readAt, dequeuedAt);
          observe(path, 'verify', dequeuedAt, verifiedAt);
          observe(path, 'grant', verifiedAt, grantedAt);
          observe(path, 'firewall', grantedAt ?? verifiedAt, appliedAt);
          observe(path, 'total', arrivedAt, appliedAt);
        },
      };
    },
    run: (span, fn) => context.run(span, fn),
    current: () => context.getStore(),
  };
}

/** The tracer recording into `metrics` (one per metrics registry, so sources and the reconciler share it). */
export function tracerFor(metrics: Metrics): Tracer {
  let t = tracers.get(metrics);
  if (!t) {
    tracers.set(metrics, (t = createTracer(metrics)));
  }
  return t;
}
