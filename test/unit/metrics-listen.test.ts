// metrics.listen: Prometheus over TCP, loopback unless the operator says otherwise. A wider
// address without allowRemote is a config error naming the risk (--metrics-listen: a usage
// error); the listener serves GET /metrics only, and what it serves is the gateway's registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../gateway/config/load.ts';
import { isLoopbackHost, parseListen } from '../../gateway/config/schema-metrics.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { startMetricsServer } from '../../gateway/services/metrics-server.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { logCapture } from '../helpers/in-process.ts';

const DOORS = 'doors:\n  - name: openSSH\n    sequence: ["7000", "8000", "9000"]\n    open: ["22/tcp"]\n';

async function yaml(t: { after(fn: () => Promise<void>): void }, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-metrics-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'knockgw.yaml');
  await writeFile(path, DOORS + text);
  return path;
}

const failure = async (p: Promise<unknown>): Promise<{ code: string; message: string }> => {
  try {
    await p;
  } catch (err) {
    assert.ok(isKnockgwError(err), String(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('expected an error');
};

void test('addresses: loopback v4/v6/localhost are loopback; ADDR:PORT is parsed strictly', () => {
  for (const h of ['127.0.0.1', '127.8.9.10', '::1', '0:0:0:0:0:0:0:1', 'localhost']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '198.18.0.1', 'fd00::1', 'gw.example']) assert.ok(!isLoopbackHost(h), h);
  assert.deepEqual(parseListen('[::1]:9464'), { host: '::1', port: 9464 });
  for (const bad of ['127.0.0.1', '127.0.0.1:99999', ':9464', '[nothex]:1', '::1:9464']) assert.equal(parseListen(bad), undefined, bad);
});

void test('metrics.listen on loopback loads; a non-loopback address needs allowRemote: true', async (t) => {
  const ok = await loadConfig({ yamlPath: await yaml(t, 'metrics: { listen: "127.0.0.1:9464" }\n'), hostname: 'gw-a' });
  assert.deepEqual(ok.metrics, { host: '127.0.0.1', port: 9464, allowRemote: false });
  const refused = await failure(loadConfig({ yamlPath: await yaml(t, 'metrics: { listen: "0.0.0.0:9464" }\n'), hostname: 'gw-a' }));
  assert.equal(refused.code, 'KGW_CONFIG_INVALID');
  assert.match(refused.message, /metrics\.listen/);
  assert.match(refused.message, /0\.0\.0\.0:9464 is not a loopback address: anyone who reaches it reads/);
  assert.match(refused.message, /allowRemote: true/);
  const remote = await loadConfig({ yamlPath: await yaml(t, 'metrics: { listen: "[::]:9464", allowRemote: true }\n'), hostname: 'gw-a' });
  assert.deepEqual(remote.metrics, { host: '::', port: 9464, allowRemote: true });
  const malformed = await failure(loadConfig({ yamlPath: await yaml(t, 'metrics: { listen: "9464" }\n'), hostname: 'gw-a' }));
  assert.match(malformed.message, /must be ADDR:PORT/);
});

void test('--metrics-listen: loopback is fine, a wider address is a usage error unless the config allows it', async (t) => {
  const path = await yaml(t, '');
  assert.deepEqual((await loadConfig({ yamlPath: path, hostname: 'gw-a', overrides: { metricsListen: '[::1]:0' } })).metrics, { host: '::1', port: 0, allowRemote: false });
  const refused = await failure(loadConfig({ yamlPath: path, hostname: 'gw-a', overrides: { metricsListen: '198.18.0.1:9464' } }));
  assert.equal(refused.code, 'KGW_CLI_USAGE');
  assert.match(refused.message, /--metrics-listen: 198\.18\.0\.1:9464 is not a loopback address/);
  const allowed = await yaml(t, 'metrics: { listen: "127.0.0.1:9464", allowRemote: true }\n');
  assert.equal((await loadConfig({ yamlPath: allowed, hostname: 'gw-a', overrides: { metricsListen: '0.0.0.0:9465' } })).metrics?.port, 9465);
});

void test('the TCP listener serves GET /metrics (Prometheus text) and nothing else', async (t) => {
  const metrics = createMetrics({ build: { version: '9.9.9', node: 'gw-a' } });
  metrics.inc('grants_opened_total', 1, { door: 'openSSH', source: 'knock' });
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, logCapture().logger);
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^knockgw_build_info\{version="9\.9\.9",node="gw-a"\} 1$/m);
  assert.match(text, /^knockgw_grants_opened_total\{door="openSSH",source="knock"\} 1$/m);
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status, 405);
  const busy = await failure(startMetricsServer({ host: '127.0.0.1', port: server.port }, metrics, logCapture().logger));
  assert.match(busy.message, /the port is in use/);
});
