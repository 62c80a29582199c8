// The Debian package as an admin meets it: `npm run package:deb` builds one reproducible .deb that
// lintian accepts; installed into a throwaway root (an overlay over /, in the lab's server
// namespace) it starts nothing, its units verify, /usr/bin/knockgw runs on the package's own
// Node and passes TC1; an upgrade while the daemon runs keeps the grant and at no moment lets
// a client without one reach port 22; removal takes every rule away and purge every file.
import { test, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, sh, type Host } from '../helpers/netns.ts';
import { canConnect, connectsWithin, MAIN, sshLab, startDaemon, type RunningDaemon } from '../helpers/gateway.ts';
import { throwawayRoot, type ThrowawayRoot } from '../helpers/throwaway-root.ts';
import { packageDeb } from '../../scripts/package-deb.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const VERSION = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const CONFIG = '/etc/knockgw/knockgw.yaml';

let deb = '';
let buildMs = 0;
before(async () => {
  if (process.getuid?.() !== 0) return;
  const started = performance.now();
  deb = (await packageDeb()).path;
  buildMs = performance.now() - started;
});

const field = (name: string): string => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();

void test('package:deb writes one reproducible .deb: its own runtime, units, conffile, man pages, Depends from system-tools.ts, lintian clean', { timeout: 240_000 }, async (t) => {
  if (!(await requireRoot(t))) return;
  t.diagnostic(`built ${deb} (${(statSync(deb).size / 2 ** 20).toFixed(1)} MiB) in ${(buildMs / 1000).toFixed(1)} s`);
  assert.deepEqual((await sh('sh', ['-c', `ls ${ROOT}dist/*.deb`])).stdout.trim().split('\n'), [deb]);
  assert.equal(field('Version'), VERSION);
  const depends = field('Depends');
  for (const p of ['tcpdump', 'iproute2', 'nftables | iptables', 'libc6 (>=']) assert.ok(depends.includes(p), `Depends has ${p}: ${depends}`);
  assert.ok(!/\butil-linux\b/.test(depends), 'no unversioned Depends on an essential package');
  assert.match(field('Recommends'), /\bipset\b/);
  assert.match(field('Suggests'), /\bredis-tools\b/);
  const contents = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
  for (const f of ['./usr/bin/knockgw', './usr/lib/knockgw/node', './usr/lib/knockgw/app/main.mjs', './usr/lib/systemd/system/knockgw.service', './usr/lib/systemd/system/knockgw-base.service',
    './usr/lib/systemd/system/knockgw-relay.service', `.${CONFIG}`, './usr/share/man/man8/knockgw.8.gz', './usr/share/man/man5/knockgw.yaml.5.gz', './usr/share/doc/knockgw/copyright']) {
    assert.ok(contents.includes(` ${f}\n`), `the package holds ${f}`);
  }
  assert.ok(!contents.includes('node_modules'), 'no node_modules tree');
  assert.match(execFileSync('dpkg-deb', ['-I', deb, 'conffiles'], { encoding: 'utf8' }), new RegExp(`^${CONFIG}$`, 'm'));

  const lintian = await sh('lintian', ['--tag-display-limit', '0', deb], { allowFail: true });
  const errors = lintian.stdout.split('\n').filter((l) => l.startsWith('E:'));
  assert.deepEqual(errors, [], lintian.stdout);
  t.diagnostic(`lintian: ${lintian.stdout.split('\n').filter((l) => l.startsWith('W:')).length} warnings`);

  const sha = (p: string): string => execFileSync('sha256sum', [p], { encoding: 'utf8' }).split(' ')[0] ?? '';
  const first = sha(deb);
  assert.equal(sha((await packageDeb()).path), first, 'the same checkout builds the same bytes');
});

/** A copy of the .deb with another version: what an upgrade installs. */
async function bumped(dir: string, version: string): Promise<string> {
  const tree = join(dir, 'tree');
  await sh('dpkg-deb', ['-R', deb, tree]);
  const control = join(tree, 'DEBIAN/control');
  await writeFile(control, (await readFile(control, 'utf8')).replace(/^Version: .*$/m, `Version: ${version}`));
  const out = join(dir, `knockgw_${version}.deb`);
  await sh('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', tree, out]);
  return out;
}

/** Connect attempts from `host` to addr:22 every 10 ms until stopped; resolves with how many attempts and how many connected. */
function prober(host: Host, addr: string): { stop(): Promise<{ attempts: number; connected: number }> } {
  const code = `let a=0,c=0;const net=require('node:net');const go=()=>{a++;const s=net.connect({host:'${addr}',port:22});const k=setTimeout(()=>s.destroy(),200);`
    + `s.on('connect',()=>{c++;s.destroy()});s.on('close',()=>{clearTimeout(k);setTimeout(go,10)});s.on('error',()=>{})};go();process.on('SIGTERM',()=>{console.log(JSON.stringify({a,c}));process.exit(0)})`;
  const child = host.spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      const r = JSON.parse(out) as { a: number; c: number };
      return { attempts: r.a, connected: r.c };
    },
  };
}

async function startPackaged(t: TestContext, host: Host, root: ThrowawayRoot): Promise<RunningDaemon> {
  const d = startDaemon(host, ['--config', CONFIG], [...root.chroot, '/usr/bin/knockgw']);
  t.after(() => d.kill());
  await d.waitFor((e) => e.event === 'daemon.ready', 30_000, 'daemon.ready');
  return d;
}

void test('installed into a throwaway root: ships disabled, units verify, TC1 on its own Node, upgrade with no window, an upgrade the config fails leaves the daemon running, remove takes every rule, purge every file', { timeout: 300_000 }, async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab } = await sshLab(t, 2);
  const [a, b] = lab.clients as [Host, Host];
  const srv = lab.server;
  const work = await mkdtemp(join(tmpdir(), 'knockgw-deb-'));
  const root = await throwawayRoot(srv);
  t.after(async () => {
    await root.destroy();
    await rm(work, { recursive: true, force: true });
  });
  const nftTables = async (): Promise<string> => (await srv.exec('nft', ['list', 'tables'])).stdout;

  // A knockd already running where knockgw is installed (a process of that name in the lab).
  const knockd = join(work, 'knockd');
  await copyFile('/bin/sleep', knockd);
  const rival = srv.spawn(knockd, ['300'], { stdio: 'ignore' });
  t.after(() => void rival.kill('SIGKILL'));

  const inRoot = await root.copyIn(deb, 'knockgw.deb');
  const installStarted = performance.now();
  const installed = await root.run(['dpkg', '-i', inRoot]);
  const installMs = performance.now() - installStarted;
  assert.match(installed.stdout, /knockd is running: stop it first/);
  assert.equal((await root.run(['knockgw', '--help'])).code, 0);
  assert.equal(await nftTables(), '', 'installing changes no firewall rule');
  const verify = await root.run(['systemd-analyze', 'verify', ...['knockgw.service', 'knockgw-base.service', 'knockgw-relay.service'].map((u) => `/usr/lib/systemd/system/${u}`)], { allowFail: true });
  assert.equal(verify.code, 0, verify.stderr);
  assert.match((await root.run(['man', '-w', 'knockgw.yaml'])).stdout, /man5\/knockgw\.yaml\.5\.gz/);
  const shipped = await root.run(['knockgw', 'daemon', '--config', CONFIG], { allowFail: true });
  assert.equal(shipped.code, 78, 'the shipped conffile has no door: the daemon refuses to start');

  // The packaged runtime against the checkout's, same command (start-up cost of the bundle).
  const timed = async (argv: readonly string[], runIn: (argv: readonly string[]) => Promise<unknown>): Promise<number> => {
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      await runIn(argv);
      runs.push(performance.now() - s);
    }
    return runs.sort((x, y) => x - y)[2] ?? 0;
  };
  const packagedMs = await timed(['knockgw', '--help'], (argv) => root.run(argv));
  const checkoutMs = await timed([process.execPath, MAIN, '--help'], (argv) => root.run(argv));
  t.diagnostic(`dpkg -i ${(installMs / 1000).toFixed(1)} s; knockgw --help median ${packagedMs.toFixed(0)} ms packaged vs ${checkoutMs.toFixed(0)} ms from the checkout`);

  // TC1 with the packaged daemon: the admin writes a door (the conffile changes) and starts it.
  await root.run(['sh', '-c', `cat > ${CONFIG}`], { input: `interface: ${lab.serverIf(0)}\ndoors:\n  - name: openSSH\n    sequence: ["7000", "8000", "9000"]\n    seqTimeout: 5\n    tcpFlags: syn\n    open: ["22/tcp"]\n    ttl: 600\n` });
  const beside = await root.run(['knockgw', 'daemon', '--config', CONFIG], { allowFail: true });
  assert.equal(beside.code, 1);
  assert.match(beside.stderr, new RegExp(`KGW_RIVAL_RUNNING.*knockd \\(pid ${rival.pid ?? 0}\\)`));
  assert.equal(await nftTables(), '', 'refusing to start beside knockd changes no rule');
  rival.kill('SIGKILL');
  await once(rival, 'exit');
  const v1 = await startPackaged(t, srv, root);
  assert.equal(await canConnect(a, srv.v4, 22), false, 'port 22 closed before the knock');
  await a.exec('knock', [srv.v4, '7000', '8000', '9000']);
  assert.ok(await connectsWithin(a, srv.v4, 22, 3000), 'TC1: the knocking client reaches port 22');
  assert.equal(await canConnect(b, srv.v4, 22), false, 'TC3: another client does not');

  // Upgrade while it runs, then the restart systemd's try-restart does, with B probing all along.
  const probe = prober(b, srv.v4);
  const upgrade = await root.copyIn(await bumped(work, `${VERSION}+1`), 'knockgw-next.deb');
  await root.run(['dpkg', '-i', '--force-confold', upgrade]);
  await v1.stop();
  assert.ok(await canConnect(a, srv.v4, 22), 'the grant holds in the kernel while no daemon runs');
  const v2 = await startPackaged(t, srv, root);
  const seen = await probe.stop();
  assert.equal(seen.connected, 0, `a client without a grant reached port 22 ${seen.connected} times during the upgrade`);
  assert.ok(seen.attempts > 20, `the probe ran (${seen.attempts} attempts)`);
  assert.ok(await canConnect(a, srv.v4, 22), 'the grant survives the upgrade');
  const status = JSON.parse((await root.run(['knockgw', 'status', '--json'])).stdout) as { grants: { ip: string }[] };
  assert.deepEqual(status.grants.map((g) => g.ip), [a.v4], 'the new daemon knows the grant');
  assert.equal((await root.run(['dpkg-query', '-W', '-f=${Version}', 'knockgw'])).stdout, `${VERSION}+1`);
  assert.match((await root.run(['cat', CONFIG])).stdout, /openSSH/, "the admin's conffile is kept");
  t.diagnostic(`upgrade: ${seen.attempts} probes from a client without a grant, ${seen.connected} connected`);

  // An upgrade the running config does not pass (here: a key no version knows) leaves the daemon
  // running and says why, instead of restarting into a refusal that would leave no way in.
  const good = (await root.run(['cat', CONFIG])).stdout;
  await root.run(['sh', '-c', `cat >> ${CONFIG}`], { input: 'unknownKey: 1\n' });
  const refused = await root.run(['dpkg', '-i', '--force-confold', upgrade]);
  assert.match(refused.stderr, /does not accept the configuration[\s\S]*unknownKey[\s\S]*NOT restarted/);
  assert.ok(await canConnect(a, srv.v4, 22), 'the grant holds');
  assert.equal((await root.run(['knockgw', 'status', '--json'])).code, 0, 'the daemon still runs');
  await root.run(['sh', '-c', `cat > ${CONFIG}`], { input: good });

  // Remove: every rule goes (port 22 is plain again), the conffile stays; purge: config and state go.
  await v2.stop();
  await root.run(['dpkg', '-r', 'knockgw']);
  assert.doesNotMatch(await nftTables(), /knockgw/, 'removal deletes the knockgw table');
  assert.ok(await canConnect(b, srv.v4, 22), 'nothing of knockgw keeps port 22 closed after removal');
  assert.notEqual((await root.run(['test', '-e', '/usr/lib/knockgw'], { allowFail: true })).code, 0);
  assert.equal((await root.run(['test', '-e', CONFIG], { allowFail: true })).code, 0, 'remove keeps the conffile');
  await root.run(['dpkg', '-P', 'knockgw']);
  for (const p of ['/etc/knockgw', '/var/lib/knockgw', '/etc/default/knockgw-relay']) assert.notEqual((await root.run(['test', '-e', p], { allowFail: true })).code, 0, `purge removes ${p}`);
  const left = (await root.changedFiles()).filter((f) => !/^(var\/lib\/dpkg\/|var\/log\/|var\/cache\/|tmp\/)/.test(f));
  assert.deepEqual(left, [], 'after purge nothing but dpkg\'s own records differs from the host');
});
