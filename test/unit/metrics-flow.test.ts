// The histograms are fed by the real path: a pcap knock through intake, store and reconciler
// records the packet's stages (path pcap), grant → firewall (source knock) and the store round
// trips; the counters of the knock machine arrive as counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { timedStore } from '../../gateway/services/metrics-timing.ts';
import { createPcapSource } from '../../gateway/services/source-pcap.ts';
import { CLOSE, eventually, handPackets, logCapture, OPEN, syn, testGateway } from '../helpers/in-process.ts';

void test('a knock is measured from its last packet to the firewall, and from its grant to the firewall', async (t) => {
  const metrics = createMetrics();
  const packets = handPackets();
  const source = createPcapSource({
    openCaptures: () => [packets], sequences: [OPEN, CLOSE], machine: { maxTrackedSources: 1024, rateLimit: { perSecond: 20, burst: 40 } },
    clock: { now: () => Date.now() }, logger: logCapture().logger, metrics,
  });
  const g = await testGateway(t, { sources: [source], metrics });
  await g.gateway.start();
  for (const p of [7000, 8000, 9000]) packets.push(syn('203.0.113.7', p));
  assert.ok(await eventually(() => g.firewall.openFor('203.0.113.7').length === 1), 'opened');
  assert.ok(await eventually(async () => (await metrics.get('grant_to_firewall_seconds', { source: 'knock' })) === 1), 'grant → firewall observed');
  assert.equal(await metrics.get('packet_stage_seconds', { path: 'pcap', stage: 'total' }), 1);
  assert.equal(await metrics.get('grants_opened_total', { door: 'openSSH', source: 'knock' }), 1);
  const text = await metrics.render();
  const sum = Number(/^knockgw_grant_to_firewall_seconds_sum\{source="knock"\} (\S+)$/m.exec(text)?.[1]);
  assert.ok(sum >= 0 && sum < 2, `grant → firewall ${sum} s`);
  assert.ok(await eventually(async () => /^knockgw_knock_packets_total 3$/m.test(await metrics.render()), 3000), 'knock machine counters published');
  assert.match(await metrics.render(), /^# TYPE knockgw_knock_packets_total counter$/m);
});

void test('store calls through the timed store are observed per op, failures included', async (t) => {
  const metrics = createMetrics();
  const g = await testGateway(t, { metrics });
  const store = timedStore(g.backend.store, metrics);
  await store.list();
  await store.list();
  await store.remove('nothing');
  assert.equal(await metrics.get('store_round_trip_seconds', { op: 'list' }), 2);
  assert.equal(await metrics.get('store_round_trip_seconds', { op: 'remove' }), 1);
  assert.equal(typeof store.watch, 'function');
});
