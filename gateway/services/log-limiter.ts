// Bounded logging for events an attacker can cause (resets, denials): at most `perWindow` lines
// per event name per window, then one summary line with the count that was held back.
import type { Logger } from '../ports.ts';

export interface LogLimiter {
  info(event: string, fields: Record<string, unknown>, msg: string): void;
  /** Emits the pending summaries (call on a timer and at shutdown). */
  flush(): void;
}

export function createLogLimiter(logger: Logger, opts: { perWindow: number; windowMs: number; now: () => number }): LogLimiter {
  const windows = new Map<string, { start: number; logged: number; suppressed: number }>();
  const summarize = (event: string, w: { suppressed: number }): void => {
    if (w.suppressed > 0) logger.warn({ event: 'log.suppressed', of: event, count: w.suppressed, windowMs: opts.windowMs }, `${w.suppressed} more ${event} events in the last window were counted but not logged`);
    w.suppressed = 0;
  };
  return {
    info(event, fields, msg) {
      const now = opts.now();
      let w = windows.get(event);
      if (!w || now - w.start >= opts.windowMs) {
        if (w) summarize(event, w);
        w = { start: now, logged: 0, suppressed: 0 };
        windows.set(event, w);
      }
      if (w.logged < opts.perWindow) {
        w.logged++;
        logger.info({ event, ...fields }, msg);
      } else {
        w.suppressed++;
      }
    },
    flush() {
      for (const [event, w] of windows) summarize(event, w);
    },
  };
}
