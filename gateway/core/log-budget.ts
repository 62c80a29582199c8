// Budgeted logging for what the outside world can cause (resets, denials, unreadable store
// entries, refused requests): at most `perWindow` lines per event name per window, then one
// `log.suppressed` line with the count held back. Pure: the sink and the clock are injected, so
// it serves the daemon's pino logger and the relay's alike.

export interface LogSink {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface LogBudget {
  info(event: string, fields: Record<string, unknown>, msg: string): void;
  warn(event: string, fields: Record<string, unknown>, msg: string): void;
  /** Emits the pending summaries (call on a timer and at shutdown). */
  flush(): void;
}

export interface LogBudgetOptions {
  readonly perWindow: number;
  readonly windowMs: number;
  readonly now: () => number;
}

/** What the gateway allows an attacker per event name: 20 lines per 10 s. */
export const ATTACKER_LOG_BUDGET = { perWindow: 20, windowMs: 10_000 } as const;

interface Window { start: number; logged: number; suppressed: number }

export function createLogBudget(sink: LogSink, opts: LogBudgetOptions): LogBudget {
  const windows = new Map<string, Window>();
  const summarize = (event: string, w: Window): void => {
    if (w.suppressed > 0) {
      sink.warn({ event: 'log.suppressed', of: event, count: w.suppressed, windowMs: opts.windowMs }, `${w.suppressed} more ${event} events in the last window were counted but not logged`);
    }
    w.suppressed = 0;
  };
  const emit = (level: 'info' | 'warn', event: string, fields: Record<string, unknown>, msg: string): void => {
    const now = opts.now();
    let w = windows.get(event);
    if (!w || now - w.start >= opts.windowMs) {
      if (w) summarize(event, w);
      w = { start: now, logged: 0, suppressed: 0 };
      windows.set(event, w);
    }
    if (w.logged < opts.perWindow) {
      w.logged++;
      sink[level]({ event, ...fields }, msg);
    } else {
      w.suppressed++;
    }
  };
  return {
    info: (event, fields, msg) => emit('info', event, fields, msg),
    warn: (event, fields, msg) => emit('warn', event, fields, msg),
    flush() {
      for (const [event, w] of windows) summarize(event, w);
    },
  };
}
