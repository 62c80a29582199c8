// The store's generation bookkeeping (adapters/store-redis/generation.ts): when a full read may
// ask Redis "still the same?" instead of reading every grant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generation } from '../../gateway/adapters/store-redis/generation.ts';

const G = 1_795_000_000_000_000;

void test('nothing read whole yet, or no generation in Redis: read everything', () => {
  const g = generation(1000);
  assert.equal(g.since(0, false), undefined);
  g.read('', 0);
  assert.equal(g.since(1, false), undefined);
  g.applied(String(G + 1));
  assert.equal(g.since(2, false), undefined, 'an entry cannot stand in for a read');
});

void test('a whole read at g: ask for g until force or the age says otherwise', () => {
  const g = generation(1000);
  g.read(String(G), 100);
  assert.equal(g.since(500, false), String(G));
  assert.equal(g.since(500, true), undefined);
  assert.equal(g.since(1099, false), String(G));
  assert.equal(g.since(1100, false), undefined);
});

void test('entries move it on one at a time; a hole, an old entry or one without a generation do not', () => {
  const g = generation(60_000);
  g.read(String(G), 0);
  g.applied(String(G - 3));
  g.applied(String(G));
  assert.equal(g.since(1, false), String(G), 'older entries (a read overtook them) change nothing');
  g.applied(String(G + 1));
  g.applied(String(G + 2));
  assert.equal(g.since(1, false), String(G + 2));
  g.applied(String(G + 4));
  g.applied(String(G + 5));
  assert.equal(g.since(1, false), String(G + 2), 'a hole waits for a whole read');
  g.read(String(G + 5), 2);
  g.applied(undefined);
  assert.equal(g.since(3, false), undefined, 'an older writer: read everything');
});
