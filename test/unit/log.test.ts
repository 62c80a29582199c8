// Log lines carry attacker-chosen strings; the operator's terminal and log viewers must show them
// as text, never act on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../gateway/kit/log.ts';

function capture(format: 'json' | 'pretty'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({ write(c: Buffer, _e, done) { lines.push(...c.toString('utf8').split('\n').filter(Boolean)); done(); } });
  return { lines, logger: createLogger({ level: 'info', format, destination }) };
}

const HOSTILE = 'mallory\u202Egnp.exe\u001b[2J\u0085\u2066x\nFAKE 2026-01-01 INFO grant.open ip=6.6.6.6';

void test('control characters, C1 codes and bidi overrides in log strings come out as visible escapes', () => {
  for (const format of ['json', 'pretty'] as const) {
    const { lines, logger } = capture(format);
    logger.info({ event: 'relay.denied', client: HOSTILE, detail: { nested: [HOSTILE] } }, `refused ${HOSTILE}`);
    const out = lines.join('\n');
    // eslint-disable-next-line no-control-regex -- finding control characters is the point
    assert.doesNotMatch(out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, `${format}: no raw control or bidi character`);
    assert.ok(out.includes('\\u202e') && out.includes('\\u001b[2J') && out.includes('\\u0085'), `${format}: the escapes are visible`);
    assert.ok(out.includes('mallory'), `${format}: the rest of the text stays`);
    assert.equal(lines.length, 1, `${format}: a newline in a value cannot forge a second line`);
  }
});
