// Subscribers of a lease's gained/lost events, shared by both lease kinds.
import { describeError } from '../../core/errors.ts';
import type { LeaseEvent, Logger } from '../../ports.ts';

export function listeners(): {
  on(event: LeaseEvent, fn: (reason: string) => void): () => void;
  emit(event: LeaseEvent, reason: string, logger: Logger): void;
} {
  const subs = { gained: new Set<(reason: string) => void>(), lost: new Set<(reason: string) => void>() };
  return {
    on(event, fn) {
      const set = subs[event];
      const wrapped = (reason: string): void => fn(reason);
      set.add(wrapped);
      return () => void set.delete(wrapped);
    },
    emit(event, reason, logger) {
      for (const fn of subs[event]) {
        try {
          fn(reason);
        } catch (err) {
          logger.error({ event: 'lease.listener_failed', err: describeError(err) }, 'a lease listener threw');
        }
      }
    },
  };
}
