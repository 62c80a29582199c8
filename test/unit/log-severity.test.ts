// Log lines a pipeline reads: the level as a word and Cloud Logging's severity on every line of
// the daemon and the relay (one helper, kit/log.ts), in the JSON, in the pretty console and in
// the log file alike; event names unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../gateway/kit/log.ts';

function capture(format: 'json' | 'pretty', file?: string): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({ write(c: Buffer, _e, done) { lines.push(...c.toString('utf8').split('\n').filter(Boolean)); done(); } });
  return { lines, logger: createLogger({ level: 'debug', format, destination, ...(file ? { file } : {}) }) };
}

void test('every level is a word with its Cloud Logging severity', () => {
  const { lines, logger } = capture('json');
  logger.debug({ event: 'knock.progress' }, 'd');
  logger.info({ event: 'grant.open' }, 'i');
  logger.warn({ event: 'cloud.world_open' }, 'w');
  logger.error({ event: 'cloud.error' }, 'e');
  logger.fatal({ event: 'daemon.fatal' }, 'f');
  const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(recs.map((r) => [r.event, r.level, r.severity]), [
    ['knock.progress', 'debug', 'DEBUG'], ['grant.open', 'info', 'INFO'], ['cloud.world_open', 'warn', 'WARNING'],
    ['cloud.error', 'error', 'ERROR'], ['daemon.fatal', 'fatal', 'CRITICAL'],
  ]);
});

void test('the pretty console and the log file keep working with word levels', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-log-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'knockgw.log');
  const { lines, logger } = capture('pretty', file);
  logger.warn({ event: 'grant.close', ip: '203.0.113.7' }, 'closed');
  assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARN {2}grant\.close ip=203\.0\.113\.7 — closed$/);
  const rec = JSON.parse((await readFile(file, 'utf8')).trim()) as Record<string, unknown>;
  assert.deepEqual([rec.level, rec.severity, rec.event], ['warn', 'WARNING', 'grant.close']);
});

void test('the relay entry points log through the same helper', () => {
  for (const f of ['../../relay/main.ts', '../../relay/lambda.ts']) {
    assert.match(readFileSync(new URL(f, import.meta.url), 'utf8'), /import \{ createLogger \} from '\.\.\/gateway\/kit\/log\.ts'/, f);
  }
});
