// Knocks granted and denied over the last hour, per minute: what the console's chart draws the
// moment it opens. Bounded twice over: a fixed ring of minutes, and a fixed number of distinct
// keys (sources, denial reasons) per minute, so a flood of odd reasons cannot grow it. Pure: the
// caller passes the time.

export type Outcome = 'granted' | 'denied';

export const MINUTE_MS = 60_000;
export const HISTORY_MINUTES = 60;
/** Distinct keys per outcome and minute; the rest are counted under OTHER_KEY. */
export const MAX_KEYS = 16;
export const OTHER_KEY = 'other';

export interface MinuteCounts {
  /** Start of the minute, unix ms. */
  readonly at: number;
  readonly granted: Readonly<Record<string, number>>;
  readonly denied: Readonly<Record<string, number>>;
}

export interface HistorySnapshot {
  readonly minuteMs: number;
  /** Oldest first, one entry per minute up to the current one (empty minutes included). */
  readonly minutes: readonly MinuteCounts[];
}

export interface KnockHistory {
  record(now: number, outcome: Outcome, key: string): void;
  snapshot(now: number): HistorySnapshot;
}

interface Slot {
  at: number;
  granted: Map<string, number>;
  denied: Map<string, number>;
}

const minuteOf = (t: number): number => Math.floor(t / MINUTE_MS) * MINUTE_MS;

function bump(counts: Map<string, number>, key: string): void {
  const k = counts.has(key) || counts.size < MAX_KEYS - 1 ? key : OTHER_KEY;
  counts.set(k, (counts.get(k) ?? 0) + 1);
}

export function createKnockHistory(minutes = HISTORY_MINUTES): KnockHistory {
  const ring: (Slot | undefined)[] = Array.from({ length: minutes }, () => undefined);
  const slotFor = (at: number): Slot => {
    const i = (at / MINUTE_MS) % minutes;
    const s = ring[i];
    if (s?.at === at) return s;
    const fresh: Slot = { at, granted: new Map(), denied: new Map() };
    ring[i] = fresh;
    return fresh;
  };
  return {
    record(now, outcome, key) {
      bump(slotFor(minuteOf(now))[outcome], key);
    },
    snapshot(now) {
      const last = minuteOf(now);
      const out: MinuteCounts[] = [];
      for (let at = last - (minutes - 1) * MINUTE_MS; at <= last; at += MINUTE_MS) {
        const s = ring[(at / MINUTE_MS) % minutes];
        out.push(s?.at === at ? { at, granted: Object.fromEntries(s.granted), denied: Object.fromEntries(s.denied) } : { at, granted: {}, denied: {} });
      }
      return { minuteMs: MINUTE_MS, minutes: out };
    },
  };
}
