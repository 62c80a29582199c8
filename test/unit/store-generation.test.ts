// The store's generation bookkeeping (adapters/store/redis/generation.ts): when a full read may
// trust the cache instead of reading every grant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generation } from '../../gateway/adapters/store/index.ts';

const G = 1_795_000_000_000_000;
const s = (n: number): string => String(G + n);

void test('nothing read whole yet, or no generation in Redis: read everything', async () => {
  const g = generation(1000);
  assert.equal(g.since(0, false), undefined);
  g.read('', 0, g.mark());
  assert.equal(g.since(1, false), undefined);
  g.applied(s(1));
  assert.equal(g.since(2, false), undefined, 'an entry cannot stand in for a read');
  assert.equal(await g.reach('', s(1), 10), false);
});

void test('a whole read at g: g is held until force or the age says otherwise', async () => {
  const g = generation(1000);
  g.read(s(0), 100, g.mark());
  assert.equal(g.since(500, false), s(0));
  assert.equal(g.since(500, true), undefined);
  assert.equal(g.since(1099, false), s(0));
  assert.equal(g.since(1100, false), undefined);
  assert.equal(await g.reach(s(0), s(0), 10), true);
  assert.equal(await g.reach(s(0), s(-1), 10), false, 'Redis behind what the cache held: another history');
  assert.equal(await g.reach(s(0), s(5000), 10), false, 'far behind: not waited for');
  g.applied(s(1));
  g.applied(s(2));
  assert.equal(await g.reach(s(0), s(1), 10), true, 'the feed passed what Redis said meanwhile');
});

void test('entries move it on one at a time; a hole, an old entry or one without a generation do not', () => {
  const g = generation(60_000);
  g.read(s(0), 0, g.mark());
  g.applied(s(-3));
  g.applied(s(0));
  assert.equal(g.since(1, false), s(0), 'older entries (a read overtook them) change nothing');
  g.applied(s(1));
  g.applied(s(2));
  assert.equal(g.since(1, false), s(2));
  g.applied(s(4));
  g.applied(s(5));
  assert.equal(g.since(1, false), s(2), 'a hole waits for a whole read');
  g.read(s(5), 2, g.mark());
  g.applied(undefined);
  assert.equal(g.since(3, false), undefined, 'an older writer: read everything');
});

void test('a read the feed overtook without a hole holds the feed\'s last entry; with a hole, its own', () => {
  const g = generation(60_000);
  g.applied(s(9));
  g.applied(s(10));
  let mark = g.mark();
  g.applied(s(11));
  g.applied(s(12));
  g.read(s(10), 0, mark);
  assert.equal(g.since(1, false), s(12));
  g.applied(s(13));
  assert.equal(g.since(1, false), s(13));
  mark = g.mark();
  g.applied(s(20));
  g.read(s(14), 0, mark);
  assert.equal(g.since(1, false), s(14));
  g.applied(s(21));
  assert.equal(g.since(1, false), s(14), 'stays until the next whole read');
});

void test('a cache a little behind Redis is waited for, up to the limit', async () => {
  const g = generation(60_000);
  g.read(s(0), 0, g.mark());
  const caught = g.reach(s(0), s(2), 1000);
  g.applied(s(1));
  g.applied(s(2));
  assert.equal(await caught, true);
  const started = Date.now();
  assert.equal(await g.reach(s(2), s(3), 50), false, 'the feed never brought it');
  assert.ok(Date.now() - started >= 45);
  const lost = g.reach(s(2), s(4), 1000);
  g.applied(undefined);
  assert.equal(await lost, false, 'forgotten meanwhile');
});

void test('a change of a grant older than the one in the cache is not taken, whichever came first', () => {
  const g = generation(60_000);
  assert.equal(g.claim('a', s(2)), true, "another node's later change, from the feed");
  assert.equal(g.claim('a', s(1)), false, 'our own reply for an earlier write, arriving after it');
  assert.equal(g.claim('b', s(1)), true, 'another grant is another order');
  assert.equal(g.claim('a', s(3)), true);
  assert.equal(g.claim('a', undefined), true, 'an entry without a generation: taken as before');
});
