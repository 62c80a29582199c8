// `knockgw console` end to end: a real daemon in a lab namespace, real knocks from a client
// namespace, the console on this host's loopback and Debian's chromium on the page. A knock shows
// within a second, a revoke from the page closes the port (a real TCP connect), and requests
// without the session token, or with a foreign Host, are refused and logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { chromium } from 'playwright-core';
import { requireRoot, type Host } from '../helpers/netns.ts';
import { canConnect, connectsWithin, MAIN, refusedWithin, sshLab, startDaemon } from '../helpers/gateway.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { startRedis } from '../helpers/redis.ts';
import { startCloudFakes } from '../helpers/cloud-fakes.ts';
import { useDummyAwsCredentials } from '../helpers/cloud.ts';
import { createRedisConnection } from '../../gateway/kit/redis/connection.ts';
import { createRedisFleetRoster } from '../../gateway/adapters/store/index.ts';
import { controlRequest } from '../../gateway/services/control-server.ts';

const SG = 'sg-0123456789abcdef0';

const YAML = (iface: string, ec2: string): string => `interface: ${iface}
cloud:
  aws: { region: eu-west-1, securityGroupIds: [${SG}], mode: rules, endpoint: "${ec2}" }
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    seqTimeout: 5
    tcpFlags: syn
    open: ["22/tcp"]
    ttl: 600
`;

/** A raw request, so the Host header and cookies are exactly what the test says. */
function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

void test('the console shows a knock within 1 s with its cloud rule and the fleet, a revoke from the page closes the port, and a request without the session token is 403 and logged', { timeout: 120_000 }, async (t) => {
  if (!(await requireRoot(t))) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const { lab, dir } = await sshLab(t, 2);
  const [a, b] = lab.clients as [Host, Host];
  const srv = lab.server;
  const control = `${dir.path}/ctl.sock`;
  const fakes = await startCloudFakes(srv, { socketPath: `${dir.path}/fakes.sock`, securityGroups: [SG] });
  t.after(() => fakes.stop());
  useDummyAwsCredentials();
  // The daemon reaches this host's Redis through its unix socket (a file: no route needed).
  const daemon = startDaemon(srv, ['--config', await dir.write('knockgw.yaml', YAML(lab.serverIf(0), fakes.ec2)), '--store', redis.socketPath, '--node-id', 'gw-a', '--control', control]);
  t.after(() => daemon.kill());
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  // A second node of the fleet: only its roster entry, which goes silent when its link drops.
  const peerConn = createRedisConnection({ spec: redis.url, name: 'gw-b' });
  assert.equal(await peerConn.connect(2000), 'ready');
  const peer = createRedisFleetRoster({ conn: peerConn, nodeId: 'gw-b' });
  peer.join(() => ({ version: '0.1.0', startedAt: Date.now(), store: 'connected' }));
  t.after(async () => {
    await peer.leave();
    await peerConn.close({ drop: true });
  });

  const consoleProc = spawn(process.execPath, [MAIN, 'console', '--listen', '127.0.0.1:0', '--control', control], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => void consoleProc.kill('SIGKILL'));
  let out = '', err = '';
  consoleProc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    consoleProc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /knockgw console: (http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    consoleProc.once('exit', (code) => reject(new Error(`console exited ${code}: ${err}`)));
  });
  const base = new URL(url).origin;

  // Without the token: nothing, and a log line; a wrong token, a foreign Host, a revoke without the header: the same.
  assert.equal((await raw(`${base}/api/status`)).status, 403);
  assert.equal((await raw(`${base}/`)).status, 403);
  assert.equal((await raw(`${base}/?token=wrong`)).status, 403);
  const login = await raw(url);
  assert.equal(login.status, 303);
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
  assert.match(String(login.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
  assert.equal((await raw(`${base}/api/status`, { headers: { cookie } })).status, 200);
  assert.equal((await raw(`${base}/api/status`, { headers: { cookie, host: 'rebound.example:80' } })).status, 403, 'a DNS-rebinding Host');
  const csrf = await raw(`${base}/api/revoke`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ ip: a.v4 }) });
  assert.equal(csrf.status, 403, 'a revoke with the cookie but without the token header (what a cross-site form sends)');
  assert.match(err, /console request refused: no session token/);
  assert.match(err, /console request refused: revoke without the session token header/);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-proxy-server'], timeout: 30_000 });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const problems: string[] = [];
  page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
  page.on('pageerror', (e) => void problems.push(e.message));
  page.on('response', (r) => void (r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`)));
  const first = await page.goto(url);
  assert.equal(first?.url(), `${base}/`, 'the token left the address bar');
  assert.match((await first?.allHeaders())?.['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'/);
  await page.locator('#none').waitFor({ state: 'visible', timeout: 5000 });
  assert.equal(await canConnect(a, srv.v4, 22), false, 'closed before the knock');

  await a.exec('knock', [srv.v4, '7000', '8000', '9000']);
  const knocked = performance.now();
  const row = page.locator(`#grants tr[data-ip="${a.v4}"]`);
  await row.waitFor({ timeout: 1000 });
  const shownMs = performance.now() - knocked;
  t.diagnostic(`a knock appeared in the page ${shownMs.toFixed(0)} ms after the knock client returned`);
  assert.ok(await connectsWithin(a, srv.v4, 22), 'the knocking client reaches port 22');
  assert.match(await row.innerText(), /openSSH[\s\S]*22\/tcp[\s\S]*knock[\s\S]*(9|10) min/);
  await row.locator('td.cloud', { hasText: new RegExp(`^aws ${SG}/sgr-[0-9a-f]+$`) }).waitFor({ timeout: 10_000 });
  t.diagnostic(`cloud rule shown: ${await row.locator('td.cloud').innerText()}`);
  const fleet = page.locator('#fleet');
  await fleet.locator('li[data-node="gw-b"]', { hasText: /heard \d/ }).waitFor({ timeout: 5000 });
  assert.match(await fleet.innerText(), /node gw-a \(this node\): \S+ · store connected · leads the cloud sync/);
  // gw-b's link drops without a goodbye: the page shows it silent within a few seconds.
  await peerConn.close({ drop: true });
  await fleet.locator('li[data-node="gw-b"] .state-bad', { hasText: /SILENT for/ }).waitFor({ timeout: 9000 });
  const scrape = (await controlRequest(control, 'GET', '/metrics')).body;
  assert.match(scrape, /^knockgw_fleet_nodes\{state="live"\} 1$/m);
  assert.match(scrape, /^knockgw_fleet_nodes\{state="silent"\} 1$/m, 'the silent node is a series the other nodes export');
  await page.locator('#chart rect').first().waitFor({ timeout: 10_000 });
  if (process.env.KNOCKGW_SCREENSHOTS) await page.screenshot({ path: 'docs/console.png', fullPage: true });

  await row.locator('button').click();
  await row.locator('button.armed').waitFor({ timeout: 2000 });
  await row.locator('button').click();
  await row.waitFor({ state: 'detached', timeout: 3000 });
  assert.ok(await refusedWithin(a, srv.v4, 22, 3000), 'the revoke from the page closed port 22');
  assert.equal(await canConnect(b, srv.v4, 22), false, 'and nobody else got in');
  assert.match(await page.locator('#msg').innerText(), new RegExp(`revoked ${a.v4.replace(/\./g, '\\.')}: 1 grant`));
  await daemon.waitFor((e) => e.event === 'grant.close' && e.ip === a.v4, 5000, 'grant.close');
  assert.match(err, new RegExp(`revoke of ${a.v4.replace(/\./g, '\\.')} from the console`));
  t.diagnostic(err.split('\n').filter((l) => /failed/.test(l)).join(' / '));
  assert.deepEqual(problems, [], 'no script error and no CSP violation in the page');
});
