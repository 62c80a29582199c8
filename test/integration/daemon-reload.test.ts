// SIGHUP reloads the config the way knockd does, without a window and without losing a grant:
// a real daemon (nftables, kernel engine) in a lab namespace, a real knock, the config edited,
// `kill -HUP`; the new door opens, the old grant still connects, the control socket stays; a
// broken config is refused with its code in the log and the old one keeps running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { createLab, requireRoot } from '../helpers/netns.ts';
import { connectsWithin, canConnect, MAIN, startDaemon, startSshLike, tempDir, waitReady } from '../helpers/gateway.ts';

// argv: address, port. Connects again and again until stdin ends; prints 1 (handshake within 300 ms) or 0 per attempt.
const PROBER = `const [a,p]=process.argv.slice(1);const net=require('node:net');let on=true;process.stdin.on('end',()=>{on=false});process.stdin.resume();`
  + `const once=()=>new Promise(r=>{const s=net.connect({host:a,port:+p});const k=setTimeout(()=>{s.destroy();r('0')},300);s.on('connect',()=>{clearTimeout(k);s.destroy();r('1')});s.on('error',()=>{clearTimeout(k);r('0')})});`
  + `(async()=>{while(on){process.stdout.write(await once());await new Promise(r=>setTimeout(r,10))}process.exit(0)})();`;

const door = (name: string, seq: string[], open: string): string => `  - name: ${name}\n    sequence: [${seq.map((s) => `"${s}"`).join(', ')}]\n    seqTimeout: 5\n    open: ["${open}"]\n    ttl: 600\n`;

for (const [firewall, engine] of [['nftables', 'kernel'], ['iptables', 'pcap']] as const) void test(`[${firewall}/${engine}] SIGHUP: a new door works, every grant is kept, a bad config is refused and logged, the daemon never exits`, async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await createLab(2);
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  const [a, b] = lab.clients;
  assert.ok(a && b);
  const srv = lab.server;
  for (const port of [22, 2222]) await waitReady(startSshLike(srv, port));
  const head = `interface: ${lab.serverIf(0)}\nfirewall: ${firewall}\nengine: ${engine}\nlog: { file: ${dir.path}/knockgw.log }\ndoors:\n`;
  const config = await dir.write('knockgw.yaml', head + door('ssh', ['7000', '8000'], '22/tcp'));
  const control = `${dir.path}/ctl.sock`;
  const pidFile = `${dir.path}/knockgw.pid`;
  const d = startDaemon(srv, ['--config', config, '--state', `${dir.path}/state.json`, '--control', control, '--pidfile', pidFile]);
  t.after(() => d.kill());
  await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  assert.equal(await readFile(pidFile, 'utf8'), `${d.child.pid ?? ''}\n`, 'knockd -p: the pid file names the daemon');
  const knock = (h: typeof a, ports: string[]) => h.exec(process.execPath, [MAIN, 'knock', srv.v4, ...ports]);

  await knock(a, ['7000', '8000']);
  await d.waitFor((e) => e.event === 'grant.open' && e.ip === a.v4 && e.door === 'ssh', 5000, 'grant for a');
  assert.equal(await connectsWithin(a, srv.v4, 22), true, 'a knocked and connects');

  // A second door, and the log file moved away as logrotate does.
  await dir.write('knockgw.yaml', head + door('ssh', ['7000', '8000'], '22/tcp') + door('admin', ['7100', '8100'], '2222/tcp'));
  await srv.exec('mv', [`${dir.path}/knockgw.log`, `${dir.path}/knockgw.log.1`]);
  // a keeps opening new connections through the reload (one every 10 ms, 300 ms each): its grant must hold at every moment.
  const prober = a.spawn(process.execPath, ['-e', PROBER, srv.v4, '22'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let probes = '';
  prober.stdout?.on('data', (c: Buffer) => (probes += c.toString()));
  await new Promise((r) => setTimeout(r, 300));
  const hupAt = Date.now();
  d.child.kill('SIGHUP');
  await d.waitFor((e) => e.event === 'daemon.reloaded', 20_000, 'daemon.reloaded');
  const reloadMs = Date.now() - hupAt;
  await new Promise((r) => setTimeout(r, 300));
  prober.stdin?.end();
  await new Promise((r) => prober.once('exit', r));
  t.diagnostic(`reload took ${reloadMs} ms; new connections from a meanwhile: ${probes.split('').filter((c) => c === '1').length} of ${probes.length} completed`);
  assert.ok(probes.length > 10 && !probes.includes('0'), `every new connection of a granted client completes during the reload: ${probes}`);
  assert.equal(d.child.exitCode, null, 'still running');
  assert.ok((await stat(control)).isSocket(), 'the control socket stays');
  assert.equal(await connectsWithin(a, srv.v4, 22), true, "a's grant survived the reload");
  assert.equal(await canConnect(b, srv.v4, 2222), false, 'the new port is closed for b until it knocks');
  await knock(b, ['7100', '8100']);
  await d.waitFor((e) => e.event === 'grant.open' && e.ip === b.v4 && e.door === 'admin', 5000, 'grant on the new door');
  assert.equal(await connectsWithin(b, srv.v4, 2222), true, 'the new door opens its port');
  assert.equal(await canConnect(b, srv.v4, 22), false, "b's grant is for 2222 only");
  assert.ok((await stat(`${dir.path}/knockgw.log`)).size > 0, 'the log file was opened anew');

  // A config with a typo: refused, coded, the running one stays.
  await dir.write('knockgw.yaml', `${head}  - name: broken\n    sequense: [1]\n`);
  d.child.kill('SIGHUP');
  const failed = await d.waitFor((e) => e.event === 'daemon.reload_failed', 20_000, 'daemon.reload_failed');
  assert.equal(failed.code, 'KGW_CONFIG_INVALID');
  assert.match(String(failed.err), /knockgw\.yaml/);
  assert.equal(d.child.exitCode, null, 'a bad config does not stop the daemon');
  assert.equal(await connectsWithin(a, srv.v4, 22), true, 'grants still hold');
  assert.equal(await connectsWithin(b, srv.v4, 2222), true, 'the running config still holds');
  const status = await srv.exec(process.execPath, [MAIN, 'status', '--json', '--control', control]);
  const grants = (JSON.parse(status.stdout) as { grants: { ip: string; door: string }[] }).grants.map((g) => `${g.door}@${g.ip}`).sort();
  assert.deepEqual(grants, [`admin@${b.v4}`, `ssh@${a.v4}`]);
  assert.equal(await d.stop(), 0, 'SIGTERM still stops it in order');
  await assert.rejects(stat(pidFile), 'the pid file is removed on stop');
});
