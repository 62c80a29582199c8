// The issue-20 harness, seeded and bounded: 60 s of faults (every kind at least once) over three
// real daemons on a Sentinel-managed Redis, checked by what the client namespace observes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.ts';
import { requireRedisServer } from '../helpers/redis.ts';
import { runChaos } from '../../bench/chaos/drive.ts';
import { formatFigures } from '../../bench/chaos/report.ts';
import { FAULT_KINDS } from '../../bench/chaos/faults.ts';

const SEED = 20;

void test('a 60 s seeded chaos run loses no acknowledged grant and leaves no zombie, with every fault kind exercised', { timeout: 120_000 }, async (t) => {
  if (!(await requireRoot(t)) || !requireRedisServer(t)) return;
  const started = Date.now();
  const r = await runChaos({ seconds: 60, seed: SEED, log: (l) => t.diagnostic(l) });
  for (const line of formatFigures(r).trimEnd().split('\n')) t.diagnostic(line);
  t.diagnostic(`the whole run took ${Date.now() - started} ms`);
  assert.ok(r.acknowledged >= 10, `enough acknowledged knocks to mean something (${r.acknowledged})`);
  assert.deepEqual(r.lost, [], 'no lost grants');
  assert.deepEqual(r.zombies, [], 'no zombie grants');
  for (const kind of FAULT_KINDS) assert.ok((r.faults[kind]?.exercised ?? 0) >= 1, `${kind} was exercised`);
  assert.ok(r.convergence.every((c) => c.ms !== null && c.ms <= 2000), `every heal converged within 2 s: ${JSON.stringify(r.convergence)}`);
});
