import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expire, step } from '../../gateway/core/knock-machine.ts';
import { createKnockState, knockCounters, trackedSources, exhaustedSequences, type KnockEvent, type KnockInput, type KnockMachineOptions } from '../../gateway/core/knock-state.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';
import type { PortSpec } from '../../gateway/core/grant.ts';
import { TCP } from '../../gateway/core/types.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

const SYN = TCP.SYN;
const SYNACK = TCP.SYN | TCP.ACK;

function ports(spec: string): PortSpec[] {
  return spec.split(',').map((s) => {
    const [port = '', proto = 'tcp'] = s.split(':');
    return { port: Number(port), proto: proto === 'udp' ? 'udp' : 'tcp' };
  });
}

function seq(id: string, spec: string, extra: Partial<KnockSequence> = {}): KnockSequence {
  return {
    id,
    door: extra.door ?? id,
    ports: spec === '' ? [] : ports(spec),
    timeoutMs: 5000,
    tcpFlags: { require: SYN, forbid: TCP.ACK },
    action: { kind: 'open' },
    origin: 'test',
    ...extra,
  };
}

const A = '203.0.113.7';
const B = '198.51.100.9';
const SERVER = '198.18.0.1';

/** [time ms, src, "port[:udp]", flags?, dst?] */
type Row = readonly [number, string, string, number?, string?];

function pkt(src: string, spec: string, flags: number = SYN, dst = SERVER): KnockInput {
  const [port = '', proto = 'tcp'] = spec.split(':');
  const v6 = src.includes(':');
  return { src, dst: v6 && dst === SERVER ? 'fd00:198:18::1' : dst, family: v6 ? 6 : 4, proto: proto === 'udp' ? 'udp' : 'tcp', dport: Number(port), flags: proto === 'udp' ? 0 : flags };
}

function run(sequences: readonly KnockSequence[], rows: readonly Row[], opts: Partial<KnockMachineOptions> = {}): { events: KnockEvent[]; state: ReturnType<typeof createKnockState> } {
  const state = createKnockState(sequences, { maxTrackedSources: 100, ...opts });
  const events: KnockEvent[] = [];
  for (const [t, src, spec, flags, dst] of rows) events.push(...step(state, pkt(src, spec, flags, dst), t));
  return { events, state };
}

const completions = (events: readonly KnockEvent[]): string[] =>
  events.flatMap((e) => (e.type === 'completed' ? [`${e.sequenceId}:${e.ip}`] : []));
const resets = (events: readonly KnockEvent[]): string[] =>
  events.flatMap((e) => (e.type === 'reset' ? [`${e.ip}:${e.reason}@${e.stage}`] : []));

const open3 = seq('openSSH', '7000,8000,9000');

void test('the right sequence in order completes with door, ip, family and action', () => {
  const { events } = run([open3], [[0, A, '7000'], [100, A, '8000'], [200, A, '9000']]);
  assert.deepEqual(events.map((e) => e.type), ['progress', 'progress', 'completed']);
  assert.deepEqual(events[2], { type: 'completed', sequenceId: 'openSSH', door: 'openSSH', ip: A, family: 4, action: { kind: 'open' } });
  assert.deepEqual(events[1], { type: 'progress', sequenceId: 'openSSH', door: 'openSSH', ip: A, family: 4, stage: 2, of: 3 });
});

void test('an IPv6 knock completes as family 6', () => {
  const { events } = run([open3], [[0, '2001:db8::5', '7000'], [1, '2001:db8::5', '8000'], [2, '2001:db8::5', '9000']]);
  assert.deepEqual(completions(events), ['openSSH:2001:db8::5']);
  assert.equal(events.at(-1)?.type === 'completed' && events.at(-1)?.family, 6);
});

void test('a wrong-order knock resets and does not complete', () => {
  const { events, state } = run([open3], [[0, A, '7000'], [1, A, '9000'], [2, A, '8000']]);
  assert.deepEqual(completions(events), []);
  assert.deepEqual(resets(events), [`${A}:wrong-port@1`]);
  assert.equal(knockCounters(state).resetWrongPort, 1);
});

void test('a port outside the sequence neither advances nor resets', () => {
  const { events, state } = run([open3], [[0, A, '7000'], [1, A, '7001'], [2, A, '8000'], [3, A, '9000']]);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
  assert.equal(knockCounters(state).ignoredPort, 1);
});

void test('restarting the sequence after a mistake works at once', () => {
  const { events } = run([open3], [[0, A, '7000'], [1, A, '8000'], [2, A, '7000'], [3, A, '8000'], [4, A, '9000']]);
  assert.deepEqual(resets(events), [`${A}:wrong-port@2`]);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
});

void test('a retransmitted SYN of the last accepted knock is tolerated', () => {
  const { events, state } = run([open3], [[0, A, '7000'], [1000, A, '7000'], [1100, A, '8000'], [3100, A, '8000'], [3200, A, '9000']]);
  assert.deepEqual(resets(events), []);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
  assert.equal(knockCounters(state).duplicates, 2);
});

void test('an earlier knock repeated later still resets', () => {
  const { events } = run([open3], [[0, A, '7000'], [1, A, '8000'], [2, A, '8000'], [3, A, '7000'], [4, A, '9000']]);
  assert.deepEqual(completions(events), []);
  // The repeated 7000 resets and restarts; 9000 is then the wrong next port.
  assert.deepEqual(resets(events), [`${A}:wrong-port@2`, `${A}:wrong-port@1`]);
});

void test('the timeout counts from the first knock, not the last', () => {
  const { events } = run([open3], [[0, A, '7000'], [3000, A, '8000'], [5000, A, '9000']]);
  assert.deepEqual(completions(events), []);
  assert.deepEqual(resets(events), [`${A}:timeout@2`]);
  const ok = run([open3], [[0, A, '7000'], [3000, A, '8000'], [4999, A, '9000']]);
  assert.deepEqual(completions(ok.events), [`openSSH:${A}`]);
});

void test('a late first-port knock after a timeout starts a new attempt', () => {
  const { events } = run([open3], [[0, A, '7000'], [6000, A, '7000'], [6001, A, '8000'], [6002, A, '9000']]);
  assert.deepEqual(resets(events), [`${A}:timeout@1`]);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
});

void test('expire() reports timed-out attempts and forgets them', () => {
  const { state } = run([open3], [[0, A, '7000'], [4000, B, '7000']]);
  assert.deepEqual(resets(expire(state, 5000)), [`${A}:timeout@1`]);
  assert.deepEqual(trackedSources(state), { openSSH: 1 });
  assert.deepEqual(resets(expire(state, 9000)), [`${B}:timeout@1`]);
  assert.deepEqual(trackedSources(state), { openSSH: 0 });
});

void test('one source timing out does not drop another source in progress', () => {
  const { events } = run([open3], [
    [0, A, '7000'],
    [3000, B, '7000'],
    [4000, B, '8000'],
    [6000, A, '8000'], // A is late: reset(timeout) — B must survive it
    [7000, B, '9000'],
  ]);
  assert.deepEqual(resets(events), [`${A}:timeout@1`]);
  assert.deepEqual(completions(events), [`openSSH:${B}`]);
});

void test('two sources interleaved keep separate progress', () => {
  const { events } = run([open3], [[0, A, '7000'], [1, B, '7000'], [2, B, '8000'], [3, A, '8000'], [4, A, '9000'], [5, B, '9000']]);
  assert.deepEqual(completions(events), [`openSSH:${A}`, `openSSH:${B}`]);
  assert.deepEqual(resets(events), []);
});

void test('tcpflags syn,!ack: packets with other flags are ignored, not resets', () => {
  const { events, state } = run([open3], [[0, A, '7000'], [1, A, '9000', SYNACK], [2, A, '8000', TCP.ACK], [3, A, '8000'], [4, A, '9000']]);
  assert.deepEqual(resets(events), []);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
  assert.equal(knockCounters(state).ignoredFlags, 2);
});

void test('tcpflags fin: a SYN does not count', () => {
  const fin = seq('fin', '7000,8000', { tcpFlags: { require: TCP.FIN, forbid: 0 } });
  assert.deepEqual(completions(run([fin], [[0, A, '7000'], [1, A, '8000']]).events), []);
  assert.deepEqual(completions(run([fin], [[0, A, '7000', TCP.FIN | TCP.ACK], [1, A, '8000', TCP.FIN]]).events), [`fin:${A}`]);
});

void test('UDP steps match on protocol: the same port over TCP is not the UDP knock', () => {
  const mixed = seq('mixed', '7000,9000:udp,8000');
  const ok = run([mixed], [[0, A, '7000'], [1, A, '9000:udp'], [2, A, '8000']]);
  assert.deepEqual(completions(ok.events), [`mixed:${A}`]);
  const wrong = run([mixed], [[0, A, '7000'], [1, A, '9000'], [2, A, '8000']]);
  assert.deepEqual(completions(wrong.events), []);
  assert.equal(knockCounters(wrong.state).ignoredPort, 1);
});

void test('several sequences on shared ports advance independently; a close sequence completes with its action', () => {
  const close = seq('closeSSH', '9000,8000,7000', { door: 'openSSH', action: { kind: 'close' } });
  const { events } = run([open3, close], [[0, A, '7000'], [1, A, '8000'], [2, A, '9000'], [3, A, '8000'], [4, A, '7000']]);
  const done = events.filter((e) => e.type === 'completed');
  assert.deepEqual(done.map((e) => [e.sequenceId, e.door, e.type === 'completed' ? e.action.kind : '']), [['openSSH', 'openSSH', 'open'], ['closeSSH', 'openSSH', 'close']]);
});

void test('a one-port sequence completes on its single knock', () => {
  assert.deepEqual(completions(run([seq('one', '4444:udp')], [[0, A, '4444:udp']]).events), [`one:${A}`]);
});

void test('target: only knocks sent to the target address count', () => {
  const wol = seq('wol', '7000,8000', { target: '198.18.0.50' });
  assert.deepEqual(completions(run([wol], [[0, A, '7000'], [1, A, '8000']]).events), []);
  const { events, state } = run([wol], [[0, A, '7000', SYN, '198.18.0.50'], [1, A, '8000', SYN, '198.18.0.51'], [2, A, '8000', SYN, '198.18.0.50']]);
  assert.deepEqual(completions(events), [`wol:${A}`]);
  assert.equal(knockCounters(state).ignoredTarget, 1);
});

void test('localAddresses: without a target, knocks to other hosts are ignored', () => {
  const rows: Row[] = [[0, A, '7000', SYN, '198.18.0.99'], [1, A, '8000', SYN, '198.18.0.99'], [2, A, '9000', SYN, '198.18.0.99']];
  assert.deepEqual(completions(run([open3], rows, { localAddresses: [SERVER] }).events), []);
  assert.deepEqual(completions(run([open3], rows).events), [`openSSH:${A}`]);
});

void test('bad sources are denied, never tracked', () => {
  for (const src of ['0.0.0.0', '127.0.0.1', '224.0.0.5', '255.255.255.255', '::', '::1', 'ff02::1']) {
    const { events, state } = run([open3], [[0, src, '7000'], [1, src, '8000'], [2, src, '9000']]);
    assert.equal(events.length, 3, src);
    assert.ok(events.every((e) => e.type === 'denied' && e.reason === 'bad-source' && e.ip === src), src);
    assert.deepEqual(trackedSources(state), { openSSH: 0 });
  }
});

void test('spoofs the kernel would drop are denied early: IPv4-mapped IPv6 sources and this host\'s own addresses', () => {
  // The parser writes IPv6 sources in RFC 5952 text: ::ffff:127.0.0.1 arrives as ::ffff:7f00:1.
  for (const src of ['::ffff:7f00:1', '::ffff:cb00:7107', SERVER, 'fd00:198:18::1']) {
    const { events, state } = run([open3], [[0, src, '7000'], [1, src, '8000'], [2, src, '9000']], { ownAddresses: [SERVER, 'fd00:198:18::1'] });
    assert.ok(events.every((e) => e.type === 'denied' && e.reason === 'bad-source'), src);
    assert.deepEqual(trackedSources(state), { openSSH: 0 });
  }
  // A neighbour of the host's own address is a legitimate knocker.
  assert.deepEqual(completions(run([open3], [[0, '198.18.0.2', '7000'], [1, '198.18.0.2', '8000'], [2, '198.18.0.2', '9000']], { ownAddresses: [SERVER] }).events), ['openSSH:198.18.0.2']);
});

void test('rate limit: a source beyond its burst is denied once, counted always, and recovers', () => {
  const rows: Row[] = [];
  for (let i = 0; i < 10; i++) rows.push([i, A, '7000']);
  rows.push([2000, A, '7000'], [2001, A, '8000'], [2002, A, '9000']);
  const { events, state } = run([open3], rows, { rateLimit: { perSecond: 2, burst: 3 } });
  const denied = events.filter((e) => e.type === 'denied');
  assert.deepEqual(denied, [{ type: 'denied', ip: A, family: 4, reason: 'rate-limited', detail: 'knock packet rate limit exceeded' }]);
  // The sketch lets the burst through, then the source's exact bucket starts full: at most 2x burst.
  assert.equal(knockCounters(state).deniedRateLimited, 4);
  assert.deepEqual(completions(events), [`openSSH:${A}`]);
});

void test('rate limit does not affect another source', () => {
  const rows: Row[] = [];
  for (let i = 0; i < 50; i++) rows.push([i, A, '7000']);
  rows.push([60, B, '7000'], [61, B, '8000'], [62, B, '9000']);
  const { events } = run([open3], rows, { rateLimit: { perSecond: 1, burst: 3 } });
  assert.deepEqual(completions(events), [`openSSH:${B}`]);
});

void test('the rate limiter never limits an innocent source sharing sketch cells with flooders', () => {
  let collided = 0;
  for (let hashSeed = 1; hashSeed <= 16; hashSeed++) {
    const rows: Row[] = [];
    for (let round = 0; round < 20; round++) for (let i = 0; i < 250; i++) rows.push([round, `10.${i >> 8}.${i & 255}.1`, '7000']);
    rows.push([30, B, '7000'], [31, B, '8000'], [32, B, '9000']);
    const { events, state } = run([open3], rows, { rateLimit: { perSecond: 1, burst: 3 }, rateLimitSources: 256, hashSeed });
    assert.deepEqual(completions(events), [`openSSH:${B}`], `seed ${hashSeed}`);
    assert.ok(knockCounters(state).deniedRateLimited >= 250 * 14, 'every flooder was limited after 2x burst');
    assert.equal(state.limiter?.cellTokens.length, 1024, 'the sketch has a fixed size');
    if ((state.limiter?.exact.find(B) ?? -1) >= 0) collided++;
  }
  assert.ok(collided > 0, 'some seed put the innocent source on two drained cells');
});

void test('the rate limiter keeps at most its exact-bucket cap and counts evictions', () => {
  const rows: Row[] = [];
  for (let round = 0; round < 10; round++) for (let i = 0; i < 500; i++) rows.push([round, `10.${i >> 8}.${i & 255}.1`, '7000']);
  const { state } = run([open3], rows, { rateLimit: { perSecond: 1, burst: 1 }, rateLimitSources: 50, hashSeed: 1 });
  assert.equal(state.limiter?.exact.size, 50);
  assert.ok(knockCounters(state).rateLimitEvicted > 0);
});

void test('the cap evicts the oldest stage-1 attempts first and counts evictions', () => {
  const rows: Row[] = [[0, A, '7000'], [1, A, '8000']];
  for (let i = 0; i < 10; i++) rows.push([2 + i, `192.0.2.${i + 1}`, '7000']);
  rows.push([20, A, '9000']);
  const { events, state } = run([open3], rows, { maxTrackedSources: 4 });
  assert.deepEqual(completions(events), [`openSSH:${A}`], 'the advanced attempt survives the stage-1 flood');
  assert.equal(knockCounters(state).evicted, 7);
  assert.deepEqual(trackedSources(state), { openSSH: 3 });
});

void test('when only advanced attempts are left the oldest of them is evicted', () => {
  const rows: Row[] = [];
  for (let i = 0; i < 3; i++) rows.push([i, `192.0.2.${i + 1}`, '7000'], [i, `192.0.2.${i + 1}`, '8000']);
  rows.push([10, B, '7000'], [11, '192.0.2.1', '9000'], [12, '192.0.2.2', '9000']);
  const { events, state } = run([open3], rows, { maxTrackedSources: 3 });
  assert.deepEqual(completions(events), ['openSSH:192.0.2.2']);
  assert.equal(knockCounters(state).evicted, 1);
});

void test('one-time sequences: the live line completes once, then the next line is live', () => {
  const otp = seq('otp', '', { oneTimeSequencesFile: '/etc/knockd/otp' });
  const oneTimeSequences = new Map([['otp', [{ line: 2, ports: ports('1111,2222') }, { line: 4, ports: ports('3333,4444:udp') }]]]);
  const { events, state } = run([otp], [
    [0, A, '3333'], [1, A, '4444:udp'], // not live yet: ignored
    [2, A, '1111'], [3, A, '2222'],
    [4, B, '1111'], [5, B, '2222'], // used: no longer a sequence
    [6, B, '3333'], [7, B, '4444:udp'],
  ], { oneTimeSequences });
  const done = events.filter((e) => e.type === 'completed');
  assert.deepEqual(done.map((e) => [e.ip, e.type === 'completed' ? e.oneTime : undefined]), [[A, { line: 2, ports: ports('1111,2222'), remaining: 1 }], [B, { line: 4, ports: ports('3333,4444:udp'), remaining: 0 }]]);
  assert.deepEqual(exhaustedSequences(state), ['otp']);
  assert.equal(step(state, pkt(A, '3333'), 8).length, 0);
});

void test('a one-time sequence without loaded entries is a coded configuration error', () => {
  const otp = seq('otp', '', { oneTimeSequencesFile: '/etc/knockd/otp' });
  assert.throws(() => createKnockState([otp], { maxTrackedSources: 10 }), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
  assert.throws(() => createKnockState([open3], { maxTrackedSources: 0 }), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
  assert.throws(() => createKnockState([open3], { maxTrackedSources: 5, rateLimit: { perSecond: 0, burst: 1 } }), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
});
