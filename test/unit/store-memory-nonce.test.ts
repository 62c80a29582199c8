import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { createMemoryNonceStore } from '../../gateway/kit/nonces-memory.ts';

void test('a nonce is accepted once per scope until it expires', async () => {
  let now = 1_000;
  const nonces = createMemoryNonceStore({ clock: { now: () => now } });
  assert.equal(await nonces.claim('relay', 'n1', 60_000), true);
  assert.equal(await nonces.claim('relay', 'n1', 60_000), false);
  assert.equal(await nonces.claim('spa', 'n1', 60_000), true);
  now += 60_000;
  assert.equal(await nonces.claim('relay', 'n1', 60_000), true);
});

void test('the nonce store is bounded: expired nonces make room, live ones are never forgotten', async () => {
  let now = 0;
  const nonces = createMemoryNonceStore({ clock: { now: () => now }, maxEntries: 100 });
  for (let i = 0; i < 100; i++) assert.equal(await nonces.claim('relay', `a${i}`, 1_000), true);
  await assert.rejects(nonces.claim('relay', 'overflow', 1_000), (err: unknown) => isKnockgwError(err, 'KGW_STORE_FULL'));
  // Refusing is safe; forgetting a live nonce would reopen a replay window.
  assert.equal(await nonces.claim('relay', 'a0', 1_000), false);
  now = 1_000;
  assert.equal(await nonces.claim('relay', 'b0', 1_000), true);
  assert.equal(nonces.size, 1);
});
