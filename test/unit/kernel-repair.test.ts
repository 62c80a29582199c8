// Lost NFLOG reports: what the kernel's done sets say against what the store holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lostReports, type RepairInput } from '../../gateway/core/kernel-repair.ts';
import { makeGrant } from '../../gateway/core/grant.ts';
import { CLOSE, DOOR, OPEN, SSH } from '../helpers/in-process.ts';

const NOW = 1_800_000_000_000;
const A = '203.0.113.7';
const held = (ip: string) => ({ ip, family: 4 as const, ...SSH, expiresAt: NOW + 50_000 });

function input(over: Partial<RepairInput>): RepairInput {
  return { completions: [], sequences: [OPEN, CLOSE], doors: new Map([[DOOR.name, DOOR]]), grants: [], allowed: [], since: NOW - 60_000, lastChange: () => undefined, ...over };
}

void test('an open the kernel completed and enforces, but the store never heard of, is adopted with its own completion time', () => {
  const lost = lostReports(input({ completions: [{ sequenceIndex: 0, ip: A, family: 4, completedAt: NOW - 5000 }], allowed: [held(A)] }));
  assert.deepEqual(lost.map((p) => [p.action.kind, p.ip, p.door, p.adopted?.completedAt]), [['open', A, 'openSSH', NOW - 5000]]);
});

void test('nothing is adopted when the store agrees, the report did arrive (then a revoke), the kernel no longer holds it, or it predates the reader', () => {
  const completions = [{ sequenceIndex: 0, ip: A, family: 4 as const, completedAt: NOW - 5000 }];
  const grant = makeGrant({ ip: A, door: 'openSSH', ports: [SSH], source: 'knock', ttlMs: 60_000, nodeId: 'n', now: NOW - 5000 });
  assert.deepEqual(lostReports(input({ completions, allowed: [held(A)], grants: [grant] })), [], 'the store has it');
  assert.deepEqual(lostReports(input({ completions, allowed: [held(A)], lastChange: () => NOW - 4000 })), [], 'seen, then revoked');
  assert.deepEqual(lostReports(input({ completions })), [], 'the kernel no longer enforces it');
  assert.deepEqual(lostReports(input({ completions, allowed: [held(A)], since: NOW - 4000 })), [], 'before this reader started');
});

void test('a completion just after the reader started still counts although the kernel rounds its time down to the second', () => {
  // The reader started at NOW - 5000 + 300; nft's whole seconds put the knock 700 ms before that.
  const completions = [{ sequenceIndex: 0, ip: A, family: 4 as const, completedAt: NOW - 5000 }];
  assert.equal(lostReports(input({ completions, allowed: [held(A)], since: NOW - 4700 })).length, 1);
});

void test('a close the kernel completed after the last open closes the stored grant; an open after that close does not', () => {
  const grant = makeGrant({ ip: A, door: 'openSSH', ports: [SSH], source: 'knock', ttlMs: DOOR.ttlMs, nodeId: 'n', now: NOW - 10_000 });
  const closed = lostReports(input({ completions: [{ sequenceIndex: 1, ip: A, family: 4, completedAt: NOW - 5000 }], grants: [grant] }));
  assert.deepEqual(closed.map((p) => p.action.kind), ['close']);
  const reopened = makeGrant({ ip: A, door: 'openSSH', ports: [SSH], source: 'knock', ttlMs: DOOR.ttlMs, nodeId: 'n', now: NOW - 1000 });
  assert.deepEqual(lostReports(input({ completions: [{ sequenceIndex: 1, ip: A, family: 4, completedAt: NOW - 5000 }], grants: [reopened], allowed: [] })), []);
});
