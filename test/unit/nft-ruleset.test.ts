import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderBase, renderOps } from '../../gateway/core/nft-ruleset.ts';
import type { FirewallEntry } from '../../gateway/core/types.ts';

const NOW = 1_800_000_000_000;
const e = (ip: string, expiresAt: number | null, proto: 'tcp' | 'udp' = 'tcp'): FirewallEntry => ({ ip, family: ip.includes(':') ? 6 : 4, port: 22, proto, expiresAt });

void test('the base drops protected ports per proto after the allowed sets and established connections', () => {
  const text = renderBase([{ port: 22, proto: 'tcp' }, { port: 2222, proto: 'tcp' }, { port: 53, proto: 'udp' }], { chains: [], sets: [] });
  assert.match(text, /type filter hook input priority filter - 10; policy accept;/);
  assert.match(text, /set allowed4 \{ type ipv4_addr \. inet_proto \. inet_service; flags dynamic,timeout; size 262144; \}/);
  assert.match(text, /set allowed6 \{ type ipv6_addr \. inet_proto \. inet_service;/);
  const rules = text.slice(text.lastIndexOf('chain input {'));
  const order = ['tcp dport { 22, 2222 } ct state established,related accept', 'ip saddr . meta l4proto . th dport @allowed4 accept', 'ip6 saddr . meta l4proto . th dport @allowed6 accept', 'tcp dport { 22, 2222 } counter drop', 'udp dport { 53 } counter drop'];
  let at = -1;
  for (const r of order) {
    const i = rules.indexOf(r);
    assert.ok(i > at, `${r} in order`);
    at = i;
  }
});

void test('re-rendering over an existing table keeps allowed sets and replaces everything else', () => {
  const text = renderBase([{ port: 22, proto: 'tcp' }], { chains: ['input', 'knock', 'q0_tcp_7000'], sets: ['allowed4', 'allowed6', 'q0_start4'] });
  assert.match(text, /flush chain inet knockgw input/);
  assert.ok(text.indexOf('flush chain inet knockgw q0_tcp_7000') < text.indexOf('delete chain inet knockgw knock'), 'flush all before deleting');
  assert.match(text, /delete set inet knockgw q0_start4/);
  assert.doesNotMatch(text, /delete set inet knockgw allowed/);
  assert.doesNotMatch(text, /delete chain inet knockgw input/);
});

void test('a batch adds, deletes and re-adds every touched element so refreshes and absent removes never fail', () => {
  const text = renderOps([
    { op: 'add', entry: e('198.51.100.1', NOW + 1500) },
    { op: 'add', entry: e('198.51.100.2', null, 'udp') },
    { op: 'remove', entry: e('198.51.100.3', null) },
    { op: 'add', entry: e('198.51.100.4', NOW - 1) },
    { op: 'add', entry: e('2001:db8::1', NOW + 10_000) },
  ], NOW);
  assert.deepEqual(text.trim().split('\n'), [
    'add element inet knockgw allowed4 { 198.51.100.1 . tcp . 22, 198.51.100.2 . udp . 22, 198.51.100.3 . tcp . 22, 198.51.100.4 . tcp . 22 }',
    'delete element inet knockgw allowed4 { 198.51.100.1 . tcp . 22, 198.51.100.2 . udp . 22, 198.51.100.3 . tcp . 22, 198.51.100.4 . tcp . 22 }',
    'add element inet knockgw allowed4 { 198.51.100.1 . tcp . 22 timeout 1500ms, 198.51.100.2 . udp . 22 }',
    'add element inet knockgw allowed6 { 2001:db8::1 . tcp . 22 }',
    'delete element inet knockgw allowed6 { 2001:db8::1 . tcp . 22 }',
    'add element inet knockgw allowed6 { 2001:db8::1 . tcp . 22 timeout 10000ms }',
  ]);
  assert.equal(renderOps([], NOW), '');
});

void test('large batches are split into statements of at most 1000 elements', () => {
  const ops = Array.from({ length: 2500 }, (_, i) => ({ op: 'add' as const, entry: e(`10.0.${i >> 8}.${i & 255}`, null) }));
  const lines = renderOps(ops, NOW).trim().split('\n');
  assert.equal(lines.length, 9);
  assert.equal(lines[0]?.split(',').length, 1000);
});

void test('a fresh add is one plain add; a refresh and a remove keep add/delete/add', () => {
  const fresh = renderOps([{ op: 'add', entry: { ip: '198.51.100.7', family: 4, port: 22, proto: 'tcp', expiresAt: null }, fresh: true }], 0);
  assert.equal(fresh, 'add element inet knockgw allowed4 { 198.51.100.7 . tcp . 22 }\n');
  const mixed = renderOps([
    { op: 'add', entry: { ip: '198.51.100.7', family: 4, port: 22, proto: 'tcp', expiresAt: null }, fresh: true },
    { op: 'add', entry: { ip: '198.51.100.8', family: 4, port: 22, proto: 'tcp', expiresAt: null } },
  ], 0);
  assert.equal(mixed.split('\n').filter(Boolean).length, 3);
  assert.match(mixed, /^add element inet knockgw allowed4 \{ 198\.51\.100\.8 \. tcp \. 22 \}$/m);
  assert.match(mixed, /^delete element inet knockgw allowed4 \{ 198\.51\.100\.8 \. tcp \. 22 \}$/m);
  assert.match(mixed, /^add element inet knockgw allowed4 \{ 198\.51\.100\.7 \. tcp \. 22, 198\.51\.100\.8 \. tcp \. 22 \}$/m);
});

void test('element timeouts never exceed what the kernel holds; the lockdown drops the protected ports and nothing else', async () => {
  const { nftTimeout, renderLockdown } = await import('../../gateway/core/nft-ruleset.ts');
  assert.equal(nftTimeout(50 * 24 * 3600 * 1000), '2147483000ms');
  assert.equal(nftTimeout(0.2), '1ms');
  const text = renderLockdown([{ port: 22, proto: 'tcp' }, { port: 53, proto: 'udp' }]);
  assert.match(text, /^table inet knockgw\ndelete table inet knockgw\n/);
  assert.match(text, /tcp dport \{ 22 \} ct state established,related accept\n\s+udp dport \{ 53 \} ct state established,related accept\n\s+tcp dport \{ 22 \} counter drop\n\s+udp dport \{ 53 \} counter drop/);
  assert.doesNotMatch(text, /allowed4|set /);
});
