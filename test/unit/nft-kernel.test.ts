import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileKernel, kernelUnsupportedReason, parseNflogPrefix } from '../../gateway/core/nft-kernel.ts';
import type { Door, KnockSequence } from '../../gateway/core/types.ts';

const tcp = (port: number) => ({ port, proto: 'tcp' as const });
const doors: Door[] = [{ name: 'ssh', open: [tcp(22)], ttlMs: 3_600_000 }];
const seq = (over: Partial<KnockSequence> = {}): KnockSequence => ({
  id: 'open', door: 'ssh', ports: [tcp(7000), tcp(8000), { port: 9000, proto: 'udp' }], timeoutMs: 5000,
  tcpFlags: { require: 0x02, forbid: 0x10 }, action: { kind: 'open' }, origin: 'test', ...over,
});
const compile = (sequences: KnockSequence[]) => compileKernel({ sequences, doors, nflogGroup: 5, rateLimit: { perSecond: 20, burst: 40 } });

void test('doors with commands or one-time sequences are left to the pcap engine, keeping their index', () => {
  const program = compile([seq({ id: 'cmd', action: { kind: 'command', start: { text: 'x', argv: ['x'] } } }), seq({ id: 'otp', oneTimeSequencesFile: '/etc/otp' }), seq()]);
  assert.deepEqual(program.skipped.map((s) => [s.index, s.id]), [[0, 'cmd'], [1, 'otp']]);
  assert.deepEqual(program.sequences, [{ index: 2, id: 'open', door: 'ssh', action: 'open' }]);
  assert.match(program.chains.map((c) => c.rules.join('\n')).join('\n'), /log prefix "kgw:2:open" group 5/);
  assert.equal(kernelUnsupportedReason(seq({ door: 'nope' }), doors), 'its door "nope" is not defined');
});

void test('every stage set is sized for floods and times out with seq_timeout, per family', () => {
  const { sets } = compile([seq()]);
  assert.deepEqual(sets.map((s) => s.name), ['q0_start4', 'q0_s1_4', 'q0_s2_4', 'q0_done4', 'q0_start6', 'q0_s1_6', 'q0_s2_6', 'q0_done6', 'knock_rate4', 'knock_rate6']);
  for (const s of sets.filter((x) => !x.name.includes('done') && !x.name.startsWith('knock_rate'))) assert.match(s.body, /flags dynamic,timeout; timeout 5000ms; size 262144;/);
  // The kernel's record of completions outlives several repairs, and no more.
  for (const s of sets.filter((x) => x.name.includes('done'))) assert.match(s.body, /flags dynamic,timeout; timeout 120000ms; size 262144;/);
});

void test('the last knock grants the door ports with the door TTL and logs; a close sequence deletes them', () => {
  const program = compile([seq(), seq({ id: 'close', ports: [tcp(9000), tcp(8000), tcp(7000)], action: { kind: 'close' } })]);
  const rules = (name: string) => program.chains.find((c) => c.name === name)?.rules ?? [];
  assert.ok(rules('q0_udp_9000').some((r) => r.startsWith('meta nfproto ipv4 ip saddr @q0_start4 ip saddr @q0_s2_4') && r.includes('update @allowed4 { ip saddr . 6 . 22 timeout 3600000ms }') && r.includes('log prefix "kgw:0:open" group 5 queue-threshold 1')));
  assert.ok(rules('q1_tcp_7000').some((r) => r.includes('delete @allowed6 { ip6 saddr . 6 . 22 }') && r.includes('kgw:1:close')));
  assert.ok(rules('q0_udp_9000').some((r) => r.includes('update @q0_done4 { ip saddr } log prefix "kgw:0:open"')), 'the completion is recorded before it is reported');
  // UDP steps ignore TCP flags; TCP steps ignore (do not reset on) packets with other flags.
  assert.equal(rules('q0_udp_9000').some((r) => r.includes('tcp flags')), false);
  assert.equal(rules('q0_tcp_7000')[0], 'tcp flags & 0x12 != 0x2 return');
  // Port 7000 runs both sequences, then the knock is dropped.
  const dispatch = rules('knock_tcp_7000');
  assert.deepEqual(dispatch.filter((r) => r.startsWith('jump')), ['jump q0_tcp_7000', 'jump q1_tcp_7000']);
  assert.equal(dispatch.at(-1), 'counter drop');
  assert.match(program.chains.at(-1)?.hook ?? '', /hook prerouting priority raw - 10/);
});

void test('a wrong port resets, a duplicate of the last knock is tolerated, a stranger exits early', () => {
  const program = compile([seq()]);
  const r8000 = program.chains.find((c) => c.name === 'q0_tcp_8000')?.rules ?? [];
  const v4 = r8000.filter((r) => r.startsWith('meta nfproto ipv4'));
  assert.deepEqual(v4, [
    'meta nfproto ipv4 ip saddr != @q0_start4 return',
    'meta nfproto ipv4 ip saddr @q0_start4 ip saddr @q0_s1_4 delete @q0_s1_4 { ip saddr } update @q0_s2_4 { ip saddr } return',
    'meta nfproto ipv4 ip saddr @q0_start4 ip saddr @q0_s2_4 return',
    'meta nfproto ipv4 delete @q0_s1_4 { ip saddr } delete @q0_s2_4 { ip saddr } delete @q0_start4 { ip saddr } return',
  ]);
});

void test('NFLOG prefixes round-trip (with the NUL padding tcpdump may show)', () => {
  assert.deepEqual(parseNflogPrefix('kgw:3:close\0\0'), { index: 3, action: 'close' });
  assert.equal(parseNflogPrefix('other:1:open'), undefined);
});
