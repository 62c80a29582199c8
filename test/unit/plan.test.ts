import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredEntries, planFirewall, REFRESH_TOLERANCE_MS } from '../../gateway/core/plan.ts';
import { makeGrant } from '../../gateway/core/grant.ts';
import type { FirewallEntry } from '../../gateway/core/types.ts';

const NOW = 1_800_000_000_000;
const ssh = [{ port: 22, proto: 'tcp' as const }];
const e = (ip: string, expiresAt: number | null, port = 22, proto: 'tcp' | 'udp' = 'tcp'): FirewallEntry => ({ ip, family: ip.includes(':') ? 6 : 4, port, proto, expiresAt });

void test('each grant port becomes one entry; overlapping grants merge to the latest expiry and null wins', () => {
  const grants = [
    makeGrant({ ip: '198.51.100.7', door: 'a', ports: [...ssh, { port: 53, proto: 'udp' }], source: 'knock', ttlMs: 10_000, nodeId: 'n', now: NOW }),
    makeGrant({ ip: '198.51.100.7', door: 'b', ports: ssh, source: 'knock', ttlMs: 60_000, nodeId: 'n', now: NOW }),
    makeGrant({ ip: '2001:db8::7', door: 'a', ports: ssh, source: 'knock', ttlMs: 10_000, nodeId: 'n', now: NOW }),
    makeGrant({ ip: '2001:db8::7', door: 'c', ports: ssh, source: 'manual', ttlMs: 0, nodeId: 'n', now: NOW }),
    makeGrant({ ip: '203.0.113.1', door: 'a', ports: ssh, source: 'knock', ttlMs: 1000, nodeId: 'n', now: NOW - 5000 }),
  ];
  assert.deepEqual(desiredEntries(grants, NOW), [
    e('198.51.100.7', NOW + 60_000),
    e('198.51.100.7', NOW + 10_000, 53, 'udp'),
    e('2001:db8::7', null),
  ]);
});

void test('missing entries are added, undesired ones removed, matching ones left alone', () => {
  const desired = [e('198.51.100.1', NOW + 5000), e('198.51.100.2', null)];
  const actual = [e('198.51.100.2', null), e('198.51.100.3', NOW + 5000)];
  assert.deepEqual(planFirewall(desired, actual, NOW), [
    { op: 'remove', entry: e('198.51.100.3', NOW + 5000) },
    { op: 'add', entry: e('198.51.100.1', NOW + 5000), fresh: true },
  ]);
});

void test('a meaningfully later expiry re-adds (refresh); nft second rounding does not', () => {
  const desired = [e('198.51.100.1', NOW + 60_000), e('198.51.100.2', NOW + 60_000), e('198.51.100.3', null), e('198.51.100.4', NOW + 60_000)];
  const actual = [e('198.51.100.1', NOW + 10_000), e('198.51.100.2', NOW + 60_000 - 999), e('198.51.100.3', NOW + 60_000), e('198.51.100.4', null)];
  const adds = planFirewall(desired, actual, NOW).map((o) => `${o.op} ${o.entry.ip}`);
  assert.deepEqual(adds, ['add 198.51.100.1', 'add 198.51.100.3', 'add 198.51.100.4']);
  assert.ok(planFirewall(desired, actual, NOW).every((o) => o.op !== 'add' || o.fresh !== true), 'a refresh of a present entry is never a plain add');
  assert.ok(REFRESH_TOLERANCE_MS >= 1000);
});

void test('expired entries count as absent on both sides', () => {
  const ops = planFirewall([e('198.51.100.1', NOW - 1)], [e('198.51.100.2', NOW)], NOW);
  assert.deepEqual(ops, []);
});

void test('a udp grant and a tcp grant of the same port are distinct entries', () => {
  const ops = planFirewall([e('198.51.100.1', null, 22, 'udp')], [e('198.51.100.1', null, 22, 'tcp')], NOW);
  assert.deepEqual(ops.map((o) => `${o.op} ${o.entry.proto}`), ['remove tcp', 'add udp']);
});

void test('the plan is deterministic whatever the input order', () => {
  const desired = [e('2001:db8::1', null), e('198.51.100.9', null), e('198.51.100.10', null, 80)];
  const a = planFirewall(desired, [], NOW);
  const b = planFirewall([...desired].reverse(), [], NOW);
  assert.deepEqual(a, b);
  assert.deepEqual(a.map((o) => o.entry.family), [4, 4, 6]);
});
