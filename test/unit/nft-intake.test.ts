// The kernel intake program (core/nft-intake.ts) as text: what reaches the daemon, from where,
// in which order. test/integration/kernel-intake.test.ts loads it into a real kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIntake, deferUnsupportedReason, INTAKE_GROUPS, parseIntakePrefix, type IntakeProgram } from '../../gateway/core/nft-intake.ts';
import { compileKernel } from '../../gateway/core/nft-kernel.ts';
import { stepDeferredFirst, step } from '../../gateway/core/knock-machine.ts';
import { createKnockState } from '../../gateway/core/knock-state.ts';
import { TCP, type KnockPacket, type KnockSequence } from '../../gateway/core/types.ts';

const tcp = (port: number) => ({ port, proto: 'tcp' as const });
const seq = (id: string, ports: number[], over: Partial<KnockSequence> = {}): KnockSequence => ({
  id, door: id, ports: ports.map(tcp), timeoutMs: 5000, tcpFlags: { require: TCP.SYN, forbid: 0 }, action: { kind: 'open' }, origin: 'test', ...over,
});
const pcap = (sequences: KnockSequence[], oneTimePorts = [] as ReturnType<typeof tcp>[]) => ({ sequences, oneTimePorts, interfaces: ['eth0', 'br0'], rateLimit: { perSecond: 20, burst: 40 } });
const chain = (p: IntakeProgram | undefined, name: string): readonly string[] => p?.chains.find((c) => c.name === name)?.rules ?? assert.fail(`no chain ${name}`);
const indexOf = (rules: readonly string[], re: RegExp): number => rules.findIndex((r) => re.test(r));

void test('SPA: shape checks, the per-source limit (IPv6 per /64), the total cap, then untracked to the daemon\'s socket; the rest dropped', () => {
  const p = compileIntake({ spa: { port: 62201 } });
  const rules = chain(p, 'spa');
  const order = [/fib saddr type/, /udp length < 148/, /udp length > 1508/, /@th,64,8 != \{ 43, 47-57, 65-90, 97-122 \}/, /@th,88,8/, /update @spa_rate4 \{ ip saddr limit rate over 5\/second/, /update @spa_rate6 \{ ip6 saddr & ffff:ffff:ffff:ffff:: limit/, /^limit rate over 2000\/second/, /^socket transparent 0 notrack counter accept$/, /^counter drop$/];
  const at = order.map((re) => indexOf(rules, re));
  assert.ok(at.every((i) => i >= 0), `every piece is there: ${rules.join(' | ')}`);
  assert.deepEqual(at, [...at].sort((a, b) => a - b), 'in this order');
  assert.equal(rules.at(-1), 'counter drop', 'with no socket bound (the daemon down), dropped too');
  assert.ok(rules.slice(0, -2).every((r) => / drop$/.test(r)), 'every check before the accept drops');
  const hook = chain(p, 'intake');
  assert.deepEqual(hook, ['fib daddr type local udp dport 62201 jump spa'], 'packets to this host only; routed ones are none of ours');
  assert.match(p?.chains.at(-1)?.hook ?? '', /hook prerouting priority raw - 20;/);
});

void test('pcap knocks: a first knock only fills a kernel set; the next packet of the source promotes it (kgw-pf:<i>) and is logged (kgw-pk)', () => {
  const p = compileIntake({ pcap: pcap([seq('open', [7000, 8000, 9000])]) });
  const first = chain(p, 'pcap0_tcp_7000');
  assert.ok(first.some((r) => /ip saddr != @ps0_4 add @ps0_4 \{ ip saddr \} return$/.test(r)), 'a first contact goes into ps0_4');
  assert.ok(first.every((r) => !/kgw-pk/.test(r)));
  assert.ok(first.some((r) => /^meta nfproto ipv4 return$/.test(r)), 'a repeat of a held-back first knock goes no further');
  assert.ok(first.indexOf('tcp flags & 0x2 != 0x2 return') < indexOf(first, /add @ps0_4/), 'flags are checked before any set work');
  const later = chain(p, 'pcap0_tcp_8000');
  assert.ok(later.some((r) => /ip saddr @ps0_4 limit rate 1000\/second burst 1000 packets add @pl0_4 \{ ip saddr \} log prefix "kgw-pf:0" group 7214/.test(r)));
  const port = chain(p, 'pcap_tcp_8000');
  assert.deepEqual(port.slice(0, 1), ['fib daddr type != local return']);
  assert.ok(indexOf(port, /update @pcap_rate4/) < port.indexOf('jump pcap0_tcp_8000'), 'the per-source limit comes first');
  assert.ok(port.some((r) => /ip saddr @pl0_4 ip saddr @ps0_4 counter log prefix "kgw-pk" group 7214 queue-threshold 1 return$/.test(r)), 'live sources inside the deadline are logged');
  assert.ok(port.every((r) => !/drop/.test(r)), 'the knock intake only watches: it never drops');
  assert.deepEqual(chain(p, 'intake'), ['iifname { "eth0", "br0" } meta l4proto . th dport vmap { tcp . 7000 : jump pcap_tcp_7000, tcp . 8000 : jump pcap_tcp_8000, tcp . 9000 : jump pcap_tcp_9000 }']);
  assert.deepEqual(p?.undeferred, []);
});

void test('sequences the kernel cannot hold back have every packet on their ports logged, and say why', () => {
  const oneTime = seq('once', [], { oneTimeSequencesFile: '/etc/knockd/once' });
  const p = compileIntake({ pcap: pcap([seq('single', [7000]), seq('forever', [7100, 7200], { timeoutMs: 0 }), oneTime, seq('open', [7000, 8000])], [tcp(6000), tcp(6001)]) });
  assert.deepEqual(p?.undeferred.map((u) => [u.id, u.reason]), [
    ['single', 'a single knock completes it'], ['forever', 'it has no sequence timeout'], ['once', 'its ports come from a one_time_sequences file'],
  ]);
  assert.equal(chain(p, 'pcap_tcp_6001').at(-1), 'counter log prefix "kgw-pk" group 7214 queue-threshold 1 return');
  const shared = chain(p, 'pcap_tcp_7000');
  assert.ok(shared.includes('jump pcap3_tcp_7000'), 'a deferred sequence on a shared port still keeps its sets');
  assert.equal(shared.at(-1), 'counter log prefix "kgw-pk" group 7214 queue-threshold 1 return');
  assert.equal(deferUnsupportedReason(seq('ok', [1, 2])), undefined);
});

void test('a first port that comes again later in the sequence promotes instead of being swallowed', () => {
  const p = compileIntake({ pcap: pcap([seq('again', [7000, 7000, 8000])]) });
  const rules = chain(p, 'pcap0_tcp_7000');
  assert.ok(!rules.includes('meta nfproto ipv4 return'));
  assert.ok(rules.some((r) => /kgw-pf:0/.test(r)));
});

void test('a knockd target replaces the local-address check, per family', () => {
  const p = compileIntake({ pcap: pcap([seq('t', [7000, 8000], { target: '2001:db8::1' })]) });
  assert.deepEqual(chain(p, 'pcap0_tcp_7000').slice(0, 2), ['meta nfproto ipv4 return', 'ip6 daddr != 2001:db8::1 return']);
  assert.ok(!chain(p, 'pcap_tcp_7000').includes('fib daddr type != local return'));
});

void test('nothing to watch compiles to nothing; names never collide with the kernel engine\'s', () => {
  assert.equal(compileIntake({}), undefined);
  assert.equal(compileIntake({ pcap: pcap([]) }), undefined);
  const sequences = [seq('open', [7000, 8000, 9000])];
  const intake = compileIntake({ pcap: pcap(sequences), spa: { port: 62201 } });
  const kernel = compileKernel({ sequences, doors: [{ name: 'open', open: [tcp(22)], ttlMs: 0 }], nflogGroup: 7213, rateLimit: { perSecond: 20, burst: 40 } });
  const names = (xs: readonly { name: string }[]) => new Set(xs.map((x) => x.name));
  for (const n of names(intake?.sets ?? [])) assert.ok(!names(kernel.sets).has(n), n);
  for (const n of names(intake?.chains ?? [])) assert.ok(!names(kernel.chains).has(n), n);
  assert.notEqual(INTAKE_GROUPS.pcap, 7213);
});

void test('prefixes: what the intake writes, and nothing else', () => {
  assert.deepEqual(parseIntakePrefix('kgw-pk\0\0'), { kind: 'knock' });
  assert.deepEqual(parseIntakePrefix('kgw-pf:12'), { kind: 'first', index: 12 });
  for (const other of ['kgw:0:open', 'kgw-pf:', 'kgw-pf:x', '', 'kgw-spa']) assert.equal(parseIntakePrefix(other), undefined, other);
});

void test('a held-back first knock replayed by the daemon starts its own sequence only, and the knock completes as knockd would', () => {
  const open = seq('open', [7000, 8000, 9000]);
  const other = seq('other', [8000, 7000, 9100]);
  const state = createKnockState([open, other], { maxTrackedSources: 16 });
  const pkt = (dport: number): KnockPacket => ({ ts: 0, src: '203.0.113.7', dst: '198.18.0.1', family: 4, proto: 'tcp', sport: 40000, dport, flags: TCP.SYN });
  const types = (es: readonly { type: string }[]) => es.map((e) => e.type);
  // The kernel held 7000 back; 8000 releases it: kgw-pf:0, then kgw-pk for 8000 itself.
  assert.deepEqual(types(stepDeferredFirst(state, 0, pkt(8000), 1000)), ['progress']);
  const second = step(state, pkt(8000), 1000);
  assert.deepEqual(second.map((e) => ('sequenceId' in e ? `${e.sequenceId}:${e.type}` : e.type)), ['open:progress', 'other:progress'], '"other" sees only the real 8000, as its first knock');
  const done = step(state, pkt(9000), 1100);
  assert.deepEqual(done.map((e) => ('sequenceId' in e ? `${e.sequenceId}:${e.type}` : e.type)), ['open:completed'], '9000 is no port of "other"');
  const spoof = stepDeferredFirst(state, 0, { ...pkt(8000), src: '127.0.0.1' }, 1200);
  assert.deepEqual(spoof, [], 'a bad source is the real packet\'s to report');
  assert.deepEqual(stepDeferredFirst(state, 9, pkt(8000), 1200), [], 'an index the machine does not have');
});
