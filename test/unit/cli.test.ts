// The command line: argument parsing (knockd's `knock` shape kept), exit codes and messages for
// bad input, install --root writing the units, doctor's lock-out warning, and the control socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommand } from '../../gateway/cli.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { compileKnockd } from '../../gateway/config/load.ts';
import { pcapIntakeFinding, sshSessionFinding, toolFindings } from '../../gateway/commands/doctor.ts';
import { launcher } from '../../gateway/commands/install.ts';
import { packageInfo } from '../../gateway/commands/package-info.ts';
import { startControlServer, controlRequest } from '../../gateway/services/control-server.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { MAIN, GUIDE_KNOCKD_CONF } from '../helpers/gateway.ts';

const execFileP = promisify(execFile);
const runCli = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await execFileP(process.execPath, [MAIN, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

void test('knock takes knockd\'s `knock` arguments', () => {
  const c = parseCommand(['knock', '-u', '-d', '200', '-6', 'host.example', '7000', '8000:tcp', '9000']);
  assert.deepEqual(c, {
    cmd: 'knock', host: 'host.example', delayMs: 200, family: 6, verbose: false,
    knocks: [{ port: 7000, proto: 'udp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'udp' }],
  });
});

void test('bad arguments are coded usage errors', () => {
  for (const argv of [['knock', 'h', '70000'], ['knock', 'h'], ['daemon', '-d'], ['daemon', '-c', 'a.yaml', '--config', 'b.yaml'], ['revoke', '1.2.3'], ['ssh', 'h', '--sequence', '7000,abc'], ['daemon', '--config', 'a', '--knockd-config', 'b'], ['daemon', '--config', 'a', '--firewall', 'pf'], ['frobnicate'], ['knock', '-4', '-6', 'h', '1']]) {
    assert.throws(() => parseCommand(argv), (e) => isKnockgwError(e, 'KGW_CLI_USAGE') || isKnockgwError(e, 'KGW_PORT_INVALID'), argv.join(' '));
  }
});

void test('a bad config exits 78 with the file and line, never a stack trace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const conf = join(dir, 'knockd.conf');
  await writeFile(conf, '[openSSH]\n sequence = 7000,80000\n command = /bin/true %IP%\n');
  const r = await runCli(['daemon', '--knockd-config', conf]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, /^knockgw: KGW_CONFIG_KNOCKD: .*knockd\.conf:2/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const usage = await runCli(['knock']);
  assert.equal(usage.code, 64);
});

void test('install --root writes the boot unit and the daemon unit; uninstall --root removes them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-install-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const conf = join(dir, 'knockd.conf');
  await writeFile(conf, GUIDE_KNOCKD_CONF);
  const r = await runCli(['install', '--knockd-config', conf, '--firewall', 'iptables', '--root', dir]);
  assert.equal(r.code, 0, r.stderr);
  const base = await readFile(join(dir, 'etc/systemd/system/knockgw-base.service'), 'utf8');
  const daemon = await readFile(join(dir, 'etc/systemd/system/knockgw.service'), 'utf8');
  assert.match(base, /Before=network-pre\.target/);
  assert.match(base, /^TimeoutStartSec=30s$/m, 'a boot never waits on it forever');
  assert.match(base, new RegExp(`ExecStart=.* base --knockd-config ${conf} --firewall iptables`));
  assert.match(daemon, new RegExp(`ExecStart=.* daemon --knockd-config ${conf} --firewall iptables`));
  assert.match(daemon, /Restart=always/);
  assert.match(daemon, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'systemctl reload sends SIGHUP');
  for (const unit of [base, daemon]) {
    const [node = '', bin = ''] = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.split(' ') ?? [];
    assert.ok((await stat(node)).isFile() && (await stat(bin)).isFile(), `ExecStart names files that exist: ${node} ${bin}`);
    assert.match(bin, /\/bin\/knockgw\.js$/, "package.json's launcher");
  }
  const un = await runCli(['uninstall', '--root', dir]);
  assert.equal(un.code, 0, un.stderr);
  await assert.rejects(stat(join(dir, 'etc/systemd/system/knockgw.service')));
});

void test('doctor warns when the operator\'s own SSH session comes in on a protected port', () => {
  const config = compileKnockd(GUIDE_KNOCKD_CONF, 'knockd.conf', 'gw');
  const f = sshSessionFinding('203.0.113.9 51234 198.51.100.1 22', config);
  assert.equal(f?.level, 'warn');
  assert.match(f?.text ?? '', /203\.0\.113\.9.*NEW connection/);
  assert.equal(sshSessionFinding('203.0.113.9 51234 198.51.100.1 2222', config), undefined, 'another port is not protected');
  assert.equal(sshSessionFinding(undefined, config), undefined);
});

void test('doctor says what the pcap engine costs on iptables (tcpdump on the interface), and that nftables has the intake', () => {
  const config = compileKnockd(GUIDE_KNOCKD_CONF, 'knockd.conf', 'gw');
  const nft = pcapIntakeFinding({ ...config, firewall: 'nftables' });
  assert.equal(nft.level, 'ok');
  assert.match(nft.text, /nftables intake \(NFLOG group \d+\)/);
  const ipt = pcapIntakeFinding({ ...config, firewall: 'iptables' });
  assert.equal(ipt.level, 'warn');
  assert.match(ipt.text, /tcpdump on .*knock → open p50 [\d.]+ ms .*% of a core.*--firewall nftables has the intake/);
});

void test('doctor checks the runtime tools of the one tool list, as the backend needs them', () => {
  const present = new Set(['tcpdump', 'setpriv', 'ip', 'ipset', 'systemctl', 'iptables-save', 'ip6tables-save']);
  const nft = toolFindings('nftables', '', (t) => present.has(t));
  assert.deepEqual(nft.filter((f) => f.level === 'error').map((f) => f.text), ['nft is missing: the nftables backend and the kernel knock engine; apt-get install nftables']);
  assert.ok(!nft.some((f) => f.text.startsWith('iptables ')), 'the iptables tools are not needed with nftables');
  const ipt = toolFindings('iptables', '', (t) => present.has(t) || t.startsWith('ip'));
  assert.equal(ipt.filter((f) => f.level === 'error').length, 0);
  assert.ok(ipt.some((f) => f.text.startsWith('iptables-restore found')));
  const bare = toolFindings('none', '', () => false);
  assert.deepEqual(bare.filter((f) => f.level === 'error').map((f) => f.text.split(' ')[0]), ['tcpdump', 'setpriv', 'ip']);
  assert.ok(bare.some((f) => f.level === 'warn' && /ipset is missing \(optional\)/.test(f.text)));
});

void test('the control socket is root-only and serves status, revoke, metrics and activity', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-ctl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'ctl.sock');
  const revoked: string[] = [];
  const server = await startControlServer(path, {
    status: () => Promise.resolve({ nodeId: 'gw', grants: [] }),
    revoke: (ip) => {
      revoked.push(ip);
      return Promise.resolve({ closed: [] });
    },
    metrics: () => 'knockgw_grants_live 0\n',
    activity: () => ({ minuteMs: 60_000, minutes: [{ at: 0, granted: { knock: 1 }, denied: {} }] }),
  }, createLogger({ level: 'error', format: 'json' }));
  t.after(() => server.close());
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse((await controlRequest(path, 'GET', '/v1/status')).body), { nodeId: 'gw', grants: [] });
  assert.equal((await controlRequest(path, 'POST', '/v1/revoke', { ip: '198.18.0.10' })).status, 200);
  assert.deepEqual(revoked, ['198.18.0.10']);
  const activity = JSON.parse((await controlRequest(path, 'GET', '/v1/activity')).body) as { minutes: { granted: unknown }[] };
  assert.deepEqual(activity.minutes[0]?.granted, { knock: 1 });
  assert.equal((await controlRequest(path, 'POST', '/v1/revoke', { nope: 1 })).status, 400);
  assert.match((await controlRequest(path, 'GET', '/metrics')).body, /knockgw_grants_live 0/);
  assert.equal((await controlRequest(path, 'GET', '/nope')).status, 404);
});

void test('--max-staleness takes an integer from 2 s to the grant TTL limit; anything else is a usage error naming the range', () => {
  const daemon = (v: string) => parseCommand(['daemon', '--config', 'k.yaml', ...(v.startsWith('=') ? [`--max-staleness${v}`] : ['--max-staleness', v])]);
  const ok = daemon('3');
  assert.equal(ok.cmd === 'daemon' && ok.overrides.maxStalenessS, 3);
  for (const bad of ['0', '1', '=-5', '-5', 'abc', '2.5', '2147484']) {
    assert.throws(() => daemon(bad), (err: Error & { code?: string }) => err.code === 'KGW_CLI_USAGE' && /from 2 to 2147483 seconds/.test(err.message), bad);
  }
});

void test('the units start package.json\'s launcher, found from the package root (checkout or compiled dist/), on a Node that satisfies engines', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-pkg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'knockgw', version: '9.9.9', engines: { node: '>=22.18' }, bin: { knockgw: './bin/knockgw.js' } }));
  const info = packageInfo(join(dir, 'dist/gateway/commands/install.js'));
  assert.deepEqual(info, { version: '9.9.9', nodeRange: '>=22.18', bin: join(dir, 'bin/knockgw.js'), ownRuntime: false });
  assert.throws(() => launcher('/usr/bin/node', 'v20.19.2'), (e) => isKnockgwError(e, 'KGW_TOOL_MISSING') && /v20\.19\.2.*>=22\.18/.test((e as Error).message));
  assert.equal(launcher()[0], process.execPath);
});
