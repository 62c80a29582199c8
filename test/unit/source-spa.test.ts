// The SPA proof source in process (no root): packets made by the real fwknop client, the real
// decoder, grant service, intake and memory store; the replay cache is the store backend's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryNonceStore } from '../../gateway/kit/nonces-memory.ts';
import { createFileNonceStore } from '../../gateway/adapters/store/index.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { ATTACKER_LOG_BUDGET } from '../../gateway/core/log-budget.ts';
import type { NonceStore } from '../../gateway/ports.ts';
import { encodeSpa } from '../../gateway/protocol/fwknop.ts';
import { PACKETS } from '../fixtures/fwknop/packets.ts';
import { captureLogger } from '../helpers/redis.ts';
import { KEYS, spaWorld, stanza } from '../helpers/spa-source.ts';
import { MAX_CLAIMS } from '../../gateway/services/source-spa.ts';

const SRC = '203.0.113.9';
const bytes = (name: keyof typeof PACKETS) => Buffer.from(PACKETS[name].packet, 'latin1');
const clockAt = (name: keyof typeof PACKETS, skewS = 0) => {
  let now = (PACKETS[name].timestamp + skewS) * 1000;
  return { now: () => now, set: (v: number) => void (now = v) };
};

/** A NonceStore that counts what reaches it. */
function counting(inner: NonceStore): NonceStore & { claims: number } {
  const c = { claims: 0, claim: (s: string, n: string, ttl: number) => ((c.claims++), inner.claim(s, n, ttl)) };
  return c;
}

void test('a valid packet opens the stanza\'s door for its allow IP with the requested ports and FW_ACCESS_TIMEOUT, once', async (t) => {
  const clock = clockAt('access');
  const w = await spaWorld({ nonces: createMemoryNonceStore({ clock }), clock });
  t.after(() => w.stop());
  await w.send({ src: SRC, payload: bytes('access') });
  const grants = await w.store.list();
  assert.deepEqual(grants.map((g) => ({ id: g.id, ip: g.ip, ports: g.ports, source: g.source, ttl: (g.expiresAt ?? 0) - g.createdAt })), [
    { id: 'laptop@198.51.100.7', ip: '198.51.100.7', ports: [{ port: 22, proto: 'tcp' }], source: 'spa', ttl: 30_000 },
  ]);
  const granted = w.events('spa.granted');
  assert.equal(granted.length, 1);
  assert.deepEqual([granted[0]?.src, granted[0]?.ip, granted[0]?.user], [SRC, '198.51.100.7', 'root']);
  assert.equal(w.metrics.get('spa_accepted_total', { stanza: 'laptop' }), 1);
});

void test('a replay is refused, whoever sends it, and extends nothing', async (t) => {
  const clock = clockAt('access');
  const w = await spaWorld({ nonces: createMemoryNonceStore({ clock }), clock });
  t.after(() => w.stop());
  await w.send({ src: SRC, payload: bytes('access') });
  const before = await w.store.list();
  clock.set(clock.now() + 5000);
  await w.send({ src: '198.51.100.200', payload: bytes('access') }, { src: SRC, payload: bytes('access') });
  assert.deepEqual(await w.store.list(), before, 'the grant did not move');
  assert.deepEqual(w.events('spa.denied').map((e) => e.reason), ['replay', 'replay']);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'replay' }), 2);
});

void test('-s packets open for the sender; client timeouts are capped by MAX_FW_TIMEOUT', async (t) => {
  const clock = clockAt('source-ip');
  const w = await spaWorld({ nonces: createMemoryNonceStore({ clock }), clock, access: [stanza({ maxTtlMs: 120_000 })] });
  t.after(() => w.stop());
  await w.send({ src: SRC, payload: bytes('source-ip') });
  clock.set(PACKETS['client-timeout'].timestamp * 1000);
  await w.send({ src: SRC, payload: bytes('client-timeout') });
  const byIp = new Map((await w.store.list()).map((g) => [g.ip, (g.expiresAt ?? 0) - g.createdAt]));
  assert.equal(byIp.get(SRC), 30_000);
  assert.equal(byIp.get('198.51.100.7'), 120_000, '-f 600 capped at 120 s');
});

void test('garbage, a wrong key and a stale packet are refused, counted, and logged within the attacker budget; garbage never reaches the replay store', async (t) => {
  const clock = clockAt('access');
  const nonces = counting(createMemoryNonceStore({ clock }));
  const w = await spaWorld({ nonces, clock });
  t.after(() => w.stop());
  const garbage = Array.from({ length: 100 }, () => ({ src: `198.18.${Math.floor(Math.random() * 255)}.${Math.floor(Math.random() * 255)}`, payload: randomBytes(180) }));
  const base64ish = Array.from({ length: 50 }, () => ({ src: SRC, payload: Buffer.from(randomBytes(150).toString('base64').replace(/=+$/, ''), 'latin1') }));
  await w.send(...garbage, ...base64ish);
  const wrongKey = encodeSpa({ allowIp: '198.51.100.7', ports: [{ port: 22, proto: 'tcp' }], timestamp: PACKETS.access.timestamp }, { ...KEYS, hmacKeyBase64: Buffer.alloc(64, 7).toString('base64') });
  await w.send({ src: SRC, payload: Buffer.from(wrongKey, 'latin1') }, { src: SRC });
  clock.set((PACKETS.access.timestamp + 121) * 1000);
  await w.send({ src: SRC, payload: bytes('access') });
  assert.deepEqual(await w.store.list(), []);
  assert.equal(nonces.claims, 0, 'nothing unauthenticated or stale reached the replay store');
  assert.equal(w.metrics.get('spa_packets_total'), 153);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'not-base64' }) + w.metrics.get('spa_denied_total', { reason: 'size' }), 100);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'hmac' }), 51);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'truncated' }), 1);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'stale' }), 1);
  // 152 refusals in the first 10 s window: 20 lines and a summary of the rest; the stale one came 121 s later.
  assert.equal(w.events('spa.denied').length, ATTACKER_LOG_BUDGET.perWindow + 1);
  await w.source.stop();
  assert.deepEqual(w.events('log.suppressed').map((e) => [e.of, e.count]), [['spa.denied', 132]]);
});

void test('a replay store that cannot answer refuses the packet (fails closed) and the source carries on', async (t) => {
  const clock = clockAt('access');
  let down = true;
  const flaky: NonceStore = { claim: (s, n, ttl) => (down ? Promise.reject(new Error('connection refused')) : createMemoryNonceStore({ clock }).claim(s, n, ttl)) };
  const w = await spaWorld({ nonces: flaky, clock });
  t.after(() => w.stop());
  await w.send({ src: SRC, payload: bytes('access') });
  assert.deepEqual(await w.store.list(), []);
  assert.equal(w.events('spa.denied')[0]?.reason, 'replay-store');
  down = false;
  await w.send({ src: SRC, payload: bytes('user-alice') });
  assert.equal((await w.store.list()).length, 1);
  assert.equal(w.failure(), undefined);
});

void test('the memory store\'s replay cache survives a restart (state.replay.json, a log of claims), stays bounded, skips a torn last line and refuses a corrupt one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-replay-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'state.replay.json');
  let now = 1_000_000;
  const clock = { now: () => now };
  const { logger } = captureLogger('warn');
  const first = await createFileNonceStore({ file, clock, logger });
  assert.equal(await first.claim('spa', 'digest-1', 10_000), true);
  assert.equal(await first.claim('spa', 'digest-2', 60_000), true);
  // A restart: a new process reads the file.
  const second = await createFileNonceStore({ file, clock, logger });
  assert.equal(await second.claim('spa', 'digest-1', 10_000), false, 'a packet seen before the restart is still a replay');
  now += 20_000;
  const third = await createFileNonceStore({ file, clock, logger });
  assert.equal(await third.claim('spa', 'digest-1', 10_000), true, 'expired entries are not kept');
  assert.equal(await third.claim('spa', 'digest-2', 60_000), false);
  await third.close();
  // A crash mid-append leaves a torn last line: that claim never resolved, so it is skipped.
  await writeFile(file, `${JSON.stringify(['spa\ndigest-2', now + 60_000])}\n["spa\\ndigest-3", 99`);
  const afterCrash = await createFileNonceStore({ file, clock, logger });
  assert.equal(await afterCrash.claim('spa', 'digest-2', 60_000), false);
  assert.equal(await afterCrash.claim('spa', 'digest-3', 60_000), true);
  await afterCrash.close();
  // The log is rewritten with the live entries only: it does not grow with every claim.
  const busy = await createFileNonceStore({ file, clock, logger });
  for (let i = 0; i < 3000; i++) {
    assert.equal(await busy.claim('spa', `d${i}`, 60_000), true);
    now += 60;
  }
  await busy.close();
  const lines = (await readFile(file, 'utf8')).split('\n').length - 1;
  assert.ok(lines < 2100, `${lines} lines for ~1000 live entries`);
  // A bad line that is not the last one is corruption: the start stops, or the file is moved aside.
  await writeFile(file, `not json\n${JSON.stringify(['spa\nx', now + 60_000])}\n`);
  await assert.rejects(createFileNonceStore({ file, clock, logger }), (e: unknown) => isKnockgwError(e, 'KGW_STATE_FILE') && /line 1/.test(e.message));
  const moved = await createFileNonceStore({ file, clock, logger, onCorrupt: 'move-aside' });
  assert.equal(await moved.claim('spa', 'x', 60_000), true);
  await moved.close();
});

void test('authenticated packets waiting for the replay store are bounded: beyond MAX_CLAIMS they are refused as busy, and none is lost once it answers', async (t) => {
  const clock = clockAt('access');
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const inner = createMemoryNonceStore({ clock });
  const slow: NonceStore = { claim: async (s, n, ttl) => (await gate, inner.claim(s, n, ttl)) };
  const w = await spaWorld({ nonces: slow, clock });
  t.after(() => w.stop());
  const packets = Array.from({ length: MAX_CLAIMS + 6 }, () => ({ src: SRC, payload: Buffer.from(encodeSpa({ allowIp: '198.51.100.7', ports: [{ port: 22, proto: 'tcp' }], timestamp: PACKETS.access.timestamp }, KEYS), 'latin1') }));
  await w.send(...packets);
  assert.equal(w.metrics.get('spa_denied_total', { reason: 'busy' }), 6);
  release();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.metrics.get('spa_accepted_total', { stanza: 'laptop' }), MAX_CLAIMS);
  assert.equal((await w.store.list()).length, 1, 'one grant, extended by the rest');
});
