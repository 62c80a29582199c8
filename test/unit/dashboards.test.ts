// What ships for Prometheus and Grafana works against what the daemon exports: promtool checks
// the alert rules and runs their unit tests, and every metric the rules and the dashboard query
// is in a real scrape of a started gateway (served by the metrics.listen listener).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { startMetricsServer } from '../../gateway/services/metrics-server.ts';
import { testGateway } from '../helpers/in-process.ts';

const PROM = fileURLToPath(new URL('../../infra/prometheus/', import.meta.url));
const DASHBOARD = fileURLToPath(new URL('../../infra/grafana/knockgw.json', import.meta.url));
/** Series Prometheus makes itself, not the daemon. */
const PROMETHEUS_OWN = new Set(['up']);

function promtool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: PROM, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Panel { title: string; datasource?: unknown; targets?: { expr: string }[] }

function queried(): Map<string, string> {
  const where = new Map<string, string>();
  const add = (expr: string, from: string): void => {
    for (const m of expr.matchAll(/\b(?:knockgw|process|nodejs)_[a-z0-9_]+|\bup(?=\{)/g)) where.set(m[0], from);
  };
  const rules = readFileSync(`${PROM}alerts.yaml`, 'utf8');
  for (const m of rules.matchAll(/^\s+expr: (.+)$/gm)) add(m[1] ?? '', 'alerts.yaml');
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { query?: unknown }[] } };
  for (const p of dash.panels) for (const t of p.targets ?? []) add(t.expr, `panel "${p.title}"`);
  for (const v of dash.templating.list) if (typeof v.query === 'string') add(v.query, 'dashboard variable');
  return where;
}

void test('promtool checks the alert rules and their unit tests pass', () => {
  const check = promtool(['check', 'rules', 'alerts.yaml']);
  assert.equal(check.status, 0, check.out);
  assert.match(check.out, /SUCCESS: \d+ rules found/);
  const unit = promtool(['test', 'rules', 'alerts.test.yaml']);
  assert.equal(unit.status, 0, unit.out);
});

void test('every metric the dashboard and the alerts query is in a real scrape of the daemon', async (t) => {
  const metrics = createMetrics({ build: { version: '0.0.0-test', node: 'gw-test' }, defaults: true });
  const g = await testGateway(t, { metrics });
  await g.gateway.start();
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, g.gateway.metrics, g.log.logger);
  t.after(() => server.close());
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  const families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
  const used = queried();
  assert.ok(used.size > 25, `the dashboard and rules query ${used.size} metrics`);
  const missing: string[] = [];
  for (const [name, from] of used) {
    if (PROMETHEUS_OWN.has(name)) continue;
    const base = name.replace(/_(bucket|count|sum)$/, '');
    const ok = families.get(name) !== undefined || (base !== name && families.get(base) === 'histogram');
    if (!ok) missing.push(`${name} (${from})`);
  }
  assert.deepEqual(missing, []);
});

void test('the dashboard is Grafana JSON: every panel has a Prometheus datasource and a query', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[] };
  assert.equal(dash.uid, 'knockgw');
  for (const p of dash.panels) {
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
    assert.ok((p.targets ?? []).length > 0 && (p.targets ?? []).every((x) => x.expr.length > 0), p.title);
  }
});
