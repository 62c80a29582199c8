// The exposition the daemon serves: every series of the catalog with HELP and the right TYPE,
// snake_case under knockgw_, counters ending in _total, build_info, the process metrics, and
// promtool's own linter (Debian's prometheus package) finding nothing wrong with knockgw's series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { METRICS, PREFIX } from '../../gateway/services/metrics-catalog.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';

void test('every catalog series is exported with HELP and its TYPE; names follow the conventions', async () => {
  const text = await createMetrics({ build: { version: '1.2.3', node: 'gw-a' } }).render();
  for (const [name, def] of Object.entries(METRICS)) {
    assert.match(name, /^[a-z][a-z0-9_]*$/, `${name} is snake_case`);
    assert.equal(name.endsWith('_total'), def.type === 'counter', `${name}: counters and only counters end in _total`);
    assert.match(text, new RegExp(`^# HELP ${PREFIX}${name} \\S`, 'm'), `${name} has HELP`);
    assert.match(text, new RegExp(`^# TYPE ${PREFIX}${name} ${def.type}$`, 'm'), `${name} is a ${def.type}`);
    assert.ok(!('labels' in def) || !def.labels.some((l) => /ip|addr|src|client/.test(l)), `${name}: no address label`);
  }
  assert.match(text, /^knockgw_build_info\{version="1\.2\.3",node="gw-a"\} 1$/m);
});

void test('promtool check metrics finds nothing wrong with the knockgw series; process metrics are there', async () => {
  const m = createMetrics({ build: { version: '1.2.3', node: 'gw-a' }, defaults: true });
  m.inc('grants_opened_total', 1, { door: 'openSSH', source: 'knock' });
  m.observe('packet_stage_seconds', 0.0002, { path: 'kernel', stage: 'total' });
  m.observe('cloud_call_duration_seconds', 0.3, { provider: 'aws', operation: 'grant', outcome: 'ok' });
  m.set('store_state', 1, { state: 'connected' });
  const text = await m.render();
  assert.match(text, /^process_cpu_seconds_total /m);
  assert.match(text, /^process_resident_memory_bytes /m);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 3, `promtool ran: ${r.stderr}`);
  const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.startsWith(PREFIX));
  assert.deepEqual(problems, [], 'lint findings on knockgw series');
});

void test('counters fed as running totals stay counters: increases add, a smaller total is a reset', async () => {
  const m = createMetrics();
  m.total('knock_packets_total', 10);
  m.total('knock_packets_total', 25);
  assert.equal(await m.get('knock_packets_total'), 25);
  m.total('knock_packets_total', 4);
  assert.equal(await m.get('knock_packets_total'), 4);
  m.total('knock_denied_total', 0, { reason: 'bad_source' });
  assert.match(await m.render(), /^knockgw_knock_denied_total\{reason="bad_source"\} 0$/m);
});

void test('histograms count observations per label set; gauges read at scrape time', async () => {
  const m = createMetrics();
  m.observe('grant_to_firewall_seconds', 0.001, { source: 'knock' });
  m.observe('grant_to_firewall_seconds', 0.002, { source: 'knock' });
  assert.equal(await m.get('grant_to_firewall_seconds', { source: 'knock' }), 2);
  assert.equal(await m.get('grant_to_firewall_seconds', { source: 'spa' }), 0);
  let leader = 0;
  m.beforeScrape(() => m.set('cloud_leader', leader));
  leader = 1;
  assert.match(await m.render(), /^knockgw_cloud_leader 1$/m);
});
