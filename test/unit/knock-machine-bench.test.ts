// A spoofed-source flood must cost little CPU and bounded memory, and a legitimate knock must
// still get through it.
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import assert from 'node:assert/strict';
import { step } from '../../gateway/core/knock-machine.ts';
import { createKnockState, knockCounters, trackedSources, type KnockInput } from '../../gateway/core/knock-state.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';
import { TCP } from '../../gateway/core/types.ts';

const door: KnockSequence = {
  id: 'openSSH', door: 'openSSH', timeoutMs: 5000, origin: 'bench',
  ports: [{ port: 7000, proto: 'tcp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'tcp' }],
  tcpFlags: { require: TCP.SYN, forbid: TCP.ACK }, action: { kind: 'open' },
};

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function randomSources(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = (Math.random() * 0xdfffffff) >>> 0; // below 224.0.0.0
    out.push(`${(x >>> 24) || 1}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`);
  }
  return out;
}

void test('1M random-source flood packets take < 2 s, state stays at the cap, a legit knock completes', () => {
  const cap = 10_000;
  const state = createKnockState([door], { maxTrackedSources: cap, rateLimit: { perSecond: 5, burst: 10 } });
  // Addresses are formatted before the clock starts: the parser's cost is measured in its own test.
  const sources = randomSources(1_000_000);
  const legit = '203.0.113.7';
  const knock = (src: string, dport: number): KnockInput => ({ src, dst: '198.18.0.1', family: 4, proto: 'tcp', dport, flags: TCP.SYN });
  let completed = 0;
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < sources.length; i++) {
    // 20k packets/s of virtual time; the flood hits every port of the sequence.
    const now = i / 20;
    step(state, knock(sources[i] ?? '', i % 3 === 0 ? 7000 : i % 3 === 1 ? 8000 : 9000), now);
    if (i === 500_000) step(state, knock(legit, 7000), now);
    if (i === 500_000 + 6_000) step(state, knock(legit, 8000), now);
    if (i === 500_000 + 12_000) for (const e of step(state, knock(legit, 9000), now)) if (e.type === 'completed' && e.ip === legit) completed++;
  }
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu0);
  // CPU time, not wall time: CI machines are shared and a busy neighbour must not fail this.
  const ms = (used.user + used.system) / 1000;
  gc();
  const heapAfter = process.memoryUsage().heapUsed;
  assert.equal(sources.length, 1_000_000); // keeps the input alive up to here, so the heap delta is the machine's
  const c = knockCounters(state);
  console.log(`# flood: 1M packets in ${ms.toFixed(0)} ms CPU (${wallMs.toFixed(0)} ms wall, ${(1e6 / ms * 1000).toFixed(0)} pkt/s); tracked ${trackedSources(state).openSSH}; evicted ${c.evicted}; retained heap ${((heapAfter - heapBefore) / 1048576).toFixed(1)} MiB`);
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  assert.ok((trackedSources(state).openSSH ?? 0) <= cap);
  assert.ok(c.evicted > 300_000, 'the flood was evicted, not stored');
  assert.ok(heapAfter - heapBefore < 16 * 1048576, 'retained memory stays near the cap, not the flood size');
  assert.equal(completed, 1, 'the legitimate knock got through the flood');
});
