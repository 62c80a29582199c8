import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOneTimeSequences, markOneTimeSequenceUsed, oneTimePorts, parseOneTimeSequences } from '../../gateway/adapters/store/index.ts';
import { step } from '../../gateway/core/knock-machine.ts';
import { createKnockState } from '../../gateway/core/knock-state.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

async function tmpFile(t: TestContext, text: string): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), `kgw-ots-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'smtp_sequences');
  await writeFile(path, text);
  return { dir, path };
}

const FILE = [
  '# one time sequences for SMTP',
  '',
  ' 2222,3333,4444',
  '#5555,6666,7777',
  ' 1000:udp, 2000:tcp ,3000',
  'not,a,sequence',
  '8000,9000',
  '',
].join('\n');

void test('parsing follows knockd: comments and blanks skipped, invalid lines reported, line numbers kept', () => {
  const { entries, invalid } = parseOneTimeSequences(FILE);
  assert.deepEqual(entries, [
    { line: 2, ports: [{ port: 2222, proto: 'tcp' }, { port: 3333, proto: 'tcp' }, { port: 4444, proto: 'tcp' }] },
    { line: 4, ports: [{ port: 1000, proto: 'udp' }, { port: 2000, proto: 'tcp' }, { port: 3000, proto: 'tcp' }] },
    { line: 6, ports: [{ port: 8000, proto: 'tcp' }, { port: 9000, proto: 'tcp' }] },
  ]);
  assert.deepEqual(invalid.map((l) => [l.line, l.text]), [[5, 'not,a,sequence']]);
  assert.equal(oneTimePorts(entries).length, 8);
});

void test('a used line is commented out like knockd does: the leading space becomes #', async (t) => {
  const { dir, path } = await tmpFile(t, FILE);
  await chmod(path, 0o640);
  const { entries } = await loadOneTimeSequences(path);
  const first = entries[0];
  assert.ok(first);
  await markOneTimeSequenceUsed(path, first);
  const after = await readFile(path, 'utf8');
  assert.equal(after, FILE.replace(' 2222,3333,4444', '#2222,3333,4444'));
  assert.equal((await stat(path)).mode & 0o777, 0o640, 'the mode is kept');
  assert.deepEqual(await readdir(dir), ['smtp_sequences'], 'no temp file is left behind');
  assert.equal(parseOneTimeSequences(after).entries[0]?.line, 4, 'the next line is live');
});

void test('a line starting with a digit keeps its digit: # is prepended', async (t) => {
  const { path } = await tmpFile(t, '8000,9000\n7000,6000\n');
  const { entries } = await loadOneTimeSequences(path);
  await markOneTimeSequenceUsed(path, entries[0] ?? assert.fail());
  assert.equal(await readFile(path, 'utf8'), '#8000,9000\n7000,6000\n');
});

void test('the used sequence is found by content if the file was edited since loading', async (t) => {
  const { path } = await tmpFile(t, ' 2222,3333\n 4444,5555\n');
  const { entries } = await loadOneTimeSequences(path);
  await writeFile(path, '# added by the admin\n 2222,3333\n 4444,5555\n');
  await markOneTimeSequenceUsed(path, entries[1] ?? assert.fail());
  assert.equal(await readFile(path, 'utf8'), '# added by the admin\n 2222,3333\n#4444,5555\n');
  await writeFile(path, ' 9999,8888\n');
  await assert.rejects(markOneTimeSequenceUsed(path, entries[0] ?? assert.fail()), (e) => isKnockgwError(e, 'KGW_ONE_TIME_SEQUENCES'));
  assert.equal(await readFile(path, 'utf8'), ' 9999,8888\n', 'nothing else was touched');
});

void test('back-to-back marks of the same file are both applied; a symlink keeps pointing at the file', async (t) => {
  const { dir, path } = await tmpFile(t, ' 1,2\n 3,4\n 5,6\n');
  const link = join(dir, 'link');
  await symlink(path, link);
  const { entries } = await loadOneTimeSequences(link);
  await Promise.all([markOneTimeSequenceUsed(link, entries[0] ?? assert.fail()), markOneTimeSequenceUsed(link, entries[2] ?? assert.fail())]);
  assert.equal(await readFile(path, 'utf8'), '#1,2\n 3,4\n#5,6\n');
  assert.ok((await stat(link)).isFile());
});

void test('an unreadable file is KGW_ONE_TIME_SEQUENCES', async () => {
  await assert.rejects(loadOneTimeSequences(`/nonexistent-${process.pid}/seq`), (e) => isKnockgwError(e, 'KGW_ONE_TIME_SEQUENCES') && /ENOENT/.test((e as Error).message));
});

void test('end to end with the machine: the completed line is marked and a reload makes the next one live', async (t) => {
  const { path } = await tmpFile(t, ' 2222,3333\n 4444,5555\n');
  const seq: KnockSequence = { id: 'smtp', door: 'smtp', ports: [], timeoutMs: 5000, tcpFlags: { require: 0, forbid: 0 }, action: { kind: 'open' }, oneTimeSequencesFile: path, origin: 'test' };
  const file = await loadOneTimeSequences(path);
  const state = createKnockState([seq], { maxTrackedSources: 10, oneTimeSequences: new Map([['smtp', file.entries]]) });
  const knock = (dport: number, now: number) => step(state, { src: '203.0.113.7', dst: '198.18.0.1', family: 4, proto: 'tcp', dport, flags: 2 }, now);
  knock(2222, 0);
  const done = knock(3333, 1).find((e) => e.type === 'completed');
  assert.ok(done?.type === 'completed' && done.oneTime);
  await markOneTimeSequenceUsed(path, done.oneTime);
  const reloaded = await loadOneTimeSequences(path);
  assert.deepEqual(reloaded.entries.map((e) => e.line), [1]);
});
