// The console's chart reads this history: it must keep exactly the last hour, per minute, and stay
// small however many odd denial reasons a flood brings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKnockHistory, HISTORY_MINUTES, MAX_KEYS, MINUTE_MS, OTHER_KEY } from '../../gateway/core/knock-history.ts';

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % MINUTE_MS);

void test('counts per minute and outcome, oldest first, empty minutes included', () => {
  const h = createKnockHistory();
  h.record(T0 + 1_000, 'granted', 'knock');
  h.record(T0 + 59_000, 'granted', 'knock');
  h.record(T0 + 2 * MINUTE_MS, 'denied', 'spa: replay');
  const s = h.snapshot(T0 + 2 * MINUTE_MS + 5_000);
  assert.equal(s.minutes.length, HISTORY_MINUTES);
  assert.equal(s.minutes.at(-1)?.at, T0 + 2 * MINUTE_MS);
  assert.deepEqual(s.minutes.at(-3), { at: T0, granted: { knock: 2 }, denied: {} });
  assert.deepEqual(s.minutes.at(-2), { at: T0 + MINUTE_MS, granted: {}, denied: {} });
  assert.deepEqual(s.minutes.at(-1)?.denied, { 'spa: replay': 1 });
});

void test('a minute older than an hour is gone, even when its ring slot was not reused', () => {
  const h = createKnockHistory();
  h.record(T0, 'granted', 'spa');
  const later = h.snapshot(T0 + HISTORY_MINUTES * MINUTE_MS);
  assert.ok(later.minutes.every((m) => Object.keys(m.granted).length === 0));
  assert.equal(later.minutes[0]?.at, T0 + MINUTE_MS);
  h.record(T0 + HISTORY_MINUTES * MINUTE_MS, 'granted', 'relay');
  assert.deepEqual(h.snapshot(T0 + HISTORY_MINUTES * MINUTE_MS).minutes.at(-1)?.granted, { relay: 1 });
});

void test('distinct reasons per minute are capped; the rest count under other', () => {
  const h = createKnockHistory();
  for (let i = 0; i < 1_000; i++) h.record(T0, 'denied', `reason ${i}`);
  const denied = h.snapshot(T0).minutes.at(-1)?.denied ?? {};
  assert.equal(Object.keys(denied).length, MAX_KEYS);
  assert.equal(Object.values(denied).reduce((a, b) => a + b, 0), 1_000);
  assert.equal(denied[OTHER_KEY], 1_000 - (MAX_KEYS - 1));
});
