// The bench's command line: bad arguments are usage errors naming the argument. The parser runs
// in-process (no phase, SDK or lab is loaded for it); one real command line checks the exit status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { parseBenchArgs } from '../../bench/args.ts';

const execFileP = promisify(execFile);

void test('bad bench arguments are KGW_CLI_USAGE naming what was wrong', () => {
  for (const [args, mentions] of [[['--bogus'], '--bogus'], [['--only', 'nonsense'], '"nonsense"'], [['--runs', 'many'], '"many"'], [['--fleet-nodes', '5,0'], '"0"']] as const) {
    assert.throws(() => parseBenchArgs(args), (err: unknown) => isKnockgwError(err, 'KGW_CLI_USAGE') && err.message.includes(mentions), args.join(' '));
  }
});

void test('bench arguments: defaults, --quick and --only', () => {
  const full = parseBenchArgs([]);
  assert.deepEqual(full.only, ['knock', 'spa', 'scale', 'ha', 'cloud', 'relay']);
  assert.equal(full.runs, 50);
  const q = parseBenchArgs(['--quick', '--only', 'spa, knock', '--trace', '--flood-seconds', '3']);
  assert.deepEqual([q.only, q.runs, q.floodSeconds, q.trace], [['spa', 'knock'], 10, 3, true]);
  assert.deepEqual(parseBenchArgs(['--fleet']).only, ['fleet']);
});

void test('npm run bench with a bad argument exits 64 with its usage, not a stack', async () => {
  const bench = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
  const r = await execFileP(process.execPath, [bench, '--only', 'nonsense']).then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err);
  assert.equal(r.code, 64, `exit status (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^knockgw bench: unknown bench phase "nonsense".*\nusage: npm run bench/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
