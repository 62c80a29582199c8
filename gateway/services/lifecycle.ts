// Start-up as a list of named stages run in order, and the stop that undoes exactly what started:
// a stage is registered before it starts, so one that fails half-way (a capture child spawned, its
// first read failed) is still stopped, and a failed start stops everything before it, in reverse.
import { describeError } from '../core/errors.ts';
import type { Logger } from '../ports.ts';

export interface Stage {
  readonly name: string;
  /** Absent for what exists from construction on and only needs its stop. */
  start?(): Promise<void>;
  stop?(): Promise<void> | void;
}

export interface Lifecycle {
  /** Runs every stage in order; on a failure, stops what started and rethrows. */
  start(): Promise<void>;
  /** Stops the started stages in reverse order, each failure logged, never thrown; idempotent. */
  stop(): Promise<void>;
}

export function createLifecycle(stages: readonly Stage[], logger: Logger): Lifecycle {
  const started: Stage[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const s of started.splice(0).reverse()) {
      await Promise.resolve()
        .then(() => s.stop?.())
        .catch((err: unknown) => logger.warn({ event: 'daemon.close_error', stage: s.name, err: describeError(err) }, `stopping ${s.name} failed`));
    }
  };
  return {
    async start() {
      try {
        for (const s of stages) {
          started.push(s);
          await s.start?.();
        }
      } catch (err) {
        await stop();
        throw err;
      }
    },
    stop,
  };
}
