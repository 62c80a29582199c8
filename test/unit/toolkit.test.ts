// The lowest toolkit: one backoff formula, timer limits, the log budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../gateway/core/backoff.ts';
import { MAX_TIMER_MS, timerDelay } from '../../gateway/core/timers.ts';
import { createLogBudget } from '../../gateway/core/log-budget.ts';

void test('backoff grows from its base, never past its cap, and jitters within its band', () => {
  const b = { baseMs: 100, capMs: 1000, jitter: 'half' as const };
  assert.deepEqual([1, 2, 3, 4, 5, 30].map((n) => backoffDelay(b, n, () => 1)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffDelay(b, 3, () => 0), 200, 'half jitter keeps at least half');
  assert.equal(backoffDelay({ ...b, jitter: 'full' }, 3, () => 0), 0, 'full jitter may retry at once');
});

void test('a timer never gets a delay setTimeout would overflow', () => {
  assert.equal(timerDelay(30 * 24 * 3600 * 1000), MAX_TIMER_MS);
  assert.equal(timerDelay(-5), 0);
  assert.equal(timerDelay(0, 1), 1);
});

void test('the log budget lets N lines through per window, then one summary with the count', () => {
  const lines: string[] = [];
  let now = 0;
  const sink = { info: (f: Record<string, unknown>) => lines.push(String(f.event)), warn: (f: Record<string, unknown>) => lines.push(`${String(f.event)}:${String(f.count)}`) };
  const budget = createLogBudget(sink, { perWindow: 2, windowMs: 1000, now: () => now });
  for (let i = 0; i < 10; i++) budget.info('knock.denied', {}, 'x');
  now = 1500;
  budget.info('knock.denied', {}, 'x');
  assert.deepEqual(lines, ['knock.denied', 'knock.denied', 'log.suppressed:8', 'knock.denied']);
});
