// Feeds captured packets through the pure knock machine and hands completed sequences to the
// daemon. Attacker-controlled outcomes (resets, denials) are counted always and logged within
// a budget, so a flood cannot turn into a log flood.
import { createKnockState, expire, knockCounters, step, type KnockEvent, type KnockMachineOptions } from '../core/knock-machine.ts';
import { describeError } from '../core/errors.ts';
import type { KnockSequence } from '../core/types.ts';
import type { Clock, Logger } from '../ports.ts';
import type { KnockPacket } from '../core/types.ts';
import type { Metrics } from './metrics.ts';
import { createLogLimiter } from './log-limiter.ts';

export type CompletedKnock = Extract<KnockEvent, { type: 'completed' }>;

export interface KnockListenerDeps {
  readonly packets: AsyncIterable<KnockPacket>;
  readonly sequences: readonly KnockSequence[];
  readonly machine: KnockMachineOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  onCompleted(event: CompletedKnock): Promise<void>;
}

const COUNTER_METRICS = ['packets', 'ignoredPort', 'ignoredFlags', 'ignoredTarget', 'duplicates', 'resetWrongPort', 'resetTimeout', 'completed', 'evicted', 'deniedBadSource', 'deniedRateLimited', 'rateLimitEvicted'] as const;

export function startKnockListener(deps: KnockListenerDeps): { done: Promise<void>; stop(): void } {
  const state = createKnockState(deps.sequences, deps.machine);
  const log = deps.logger;
  const limited = createLogLimiter(log, { perWindow: 20, windowMs: 10_000, now: () => deps.clock.now() });

  const handle = (e: KnockEvent): void => {
    switch (e.type) {
      case 'progress':
        log.debug({ event: 'knock.progress', sequence: e.sequenceId, ip: e.ip, stage: e.stage, of: e.of }, `${e.ip}: ${e.sequenceId} stage ${e.stage}/${e.of}`);
        return;
      case 'reset':
        // A stage-1 timeout is what every stray or spoofed packet leaves behind: count it only.
        if (e.reason === 'timeout' && e.stage <= 1) return;
        limited.info('knock.reset', { sequence: e.sequenceId, ip: e.ip, reason: e.reason, stage: e.stage }, `${e.ip}: ${e.sequenceId} reset (${e.reason}) at stage ${e.stage}`);
        return;
      case 'denied':
        limited.info('knock.denied', { ip: e.ip, reason: e.reason, detail: e.detail }, `${e.ip}: knock denied (${e.reason})`);
        return;
      case 'completed':
        log.info({ event: 'knock.completed', sequence: e.sequenceId, door: e.door, ip: e.ip, action: e.action.kind }, `${e.ip}: ${e.sequenceId} completed`);
        deps.onCompleted(e).catch((err: unknown) => {
          deps.metrics.inc('completion_errors_total');
          log.error({ event: 'knock.error', sequence: e.sequenceId, ip: e.ip, err: describeError(err) }, `acting on ${e.sequenceId} for ${e.ip} failed`);
        });
        return;
    }
  };

  const publish = (): void => {
    const c = knockCounters(state);
    for (const name of COUNTER_METRICS) deps.metrics.set(`knock_${name}`, c[name]);
  };
  const housekeeping = setInterval(() => {
    for (const e of expire(state, deps.clock.now())) handle(e);
    limited.flush();
    publish();
  }, 1000);
  housekeeping.unref();

  let stopped = false;
  const done = (async () => {
    try {
      for await (const packet of deps.packets) {
        if (stopped) break;
        for (const e of step(state, packet, deps.clock.now())) handle(e);
      }
    } finally {
      clearInterval(housekeeping);
      limited.flush();
      publish();
    }
  })();

  return {
    done,
    stop() {
      stopped = true;
    },
  };
}
