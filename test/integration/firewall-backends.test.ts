// Both host firewall backends against real kernels, inside a namespace lab: what a client can
// and cannot connect to after ensureBase / apply / expiry / revoke / restart / reboot / teardown.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { createLab, requireRoot, type Host, type Lab } from '../helpers/netns.ts';
import { tcpConnects, tcpSession } from '../helpers/tcp.ts';
import { createHostFirewall } from '../../gateway/wiring/firewall.ts';
import { run, type Runner } from '../../gateway/adapters/exec/index.ts';
import { isKnockgwError, kgwError } from '../../gateway/core/errors.ts';
import { detectConflicts } from '../../gateway/adapters/firewall/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import type { HostFirewall } from '../../gateway/ports.ts';
import type { FirewallEntry } from '../../gateway/core/types.ts';
import type { Family } from '../../gateway/core/ip.ts';

const logger = createLogger({ level: 'warn', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
const SSH = [{ port: 22, proto: 'tcp' as const }];

// Echo server on [::]:22 (dual stack) and udp 22, so connect/echo results are observable.
const SERVER = `
const net = require('node:net');
net.createServer((s) => s.pipe(s)).listen({ port: 22, host: '::' }, () => console.log('ready'));
`;

async function startServer(server: Host): Promise<ChildProcess> {
  const child = server.spawn(process.execPath, ['-e', SERVER]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
  });
  return child;
}

async function canConnect(client: Host, family: Family, lab: Lab): Promise<boolean> {
  const addr = family === 4 ? lab.server.v4 : lab.server.v6;
  return tcpConnects(client, addr, 22);
}

function entry(client: Host, family: Family, expiresAt: number | null, proto: 'tcp' | 'udp' = 'tcp'): FirewallEntry {
  return { ip: family === 4 ? client.v4 : client.v6, family, port: 22, proto, expiresAt };
}

interface Backend { readonly label: string; make(ns: string): HostFirewall; readonly kernelExpiry: boolean }

const BACKENDS: readonly Backend[] = [
  { label: 'nftables', make: (ns) => createHostFirewall('nftables', { logger, netns: ns }), kernelExpiry: true },
  { label: 'iptables+ipset', make: (ns) => createHostFirewall('iptables', { logger, netns: ns, useIpset: true }), kernelExpiry: true },
  { label: 'iptables without ipset', make: (ns) => createHostFirewall('iptables', { logger, netns: ns, useIpset: false }), kernelExpiry: false },
];

async function setup(t: TestContext, backend: Backend): Promise<{ lab: Lab; fw: HostFirewall }> {
  const lab = await createLab(2);
  t.after(() => lab.destroy());
  await startServer(lab.server);
  const fw = backend.make(lab.server.ns);
  return { lab, fw };
}

for (const backend of BACKENDS) {
  void test(`${backend.label}: port 22 is closed after ensureBase and opens only for the granted client, per family and proto`, async (t) => {
    if (!(await requireRoot(t))) return;
    const { lab, fw } = await setup(t, backend);
    const [a, b] = lab.clients as [Host, Host];
    for (const f of [4, 6] as const) assert.equal(await canConnect(a, f, lab), true, `before the base, v${f} is open`);
    await fw.ensureBase(SSH);
    for (const f of [4, 6] as const) assert.equal(await canConnect(a, f, lab), false, `v${f} closed after ensureBase`);

    // A udp grant for 22 must not open 22/tcp.
    await fw.apply([{ op: 'add', entry: entry(a, 4, null, 'udp') }, { op: 'add', entry: entry(a, 6, null, 'udp') }]);
    for (const f of [4, 6] as const) assert.equal(await canConnect(a, f, lab), false, `v${f} 22/udp grant leaves 22/tcp closed`);

    const until = Date.now() + 600_000;
    await fw.apply([{ op: 'add', entry: entry(a, 4, null) }, { op: 'add', entry: entry(a, 6, until) }]);
    for (const f of [4, 6] as const) {
      assert.equal(await canConnect(a, f, lab), true, `granted client connects over v${f}`);
      assert.equal(await canConnect(b, f, lab), false, `other client stays out over v${f}`);
    }
    const listed = await fw.list();
    const keys = listed.map((e) => `${e.ip}/${e.proto}`).sort();
    assert.deepEqual(keys, [`${a.v4}/tcp`, `${a.v4}/udp`, `${a.v6}/tcp`, `${a.v6}/udp`].sort());
    const v6tcp = listed.find((e) => e.ip === a.v6 && e.proto === 'tcp');
    assert.ok(v6tcp?.expiresAt && Math.abs(v6tcp.expiresAt - until) < 3000, 'list reports the remaining time');
    assert.equal(listed.find((e) => e.ip === a.v4 && e.proto === 'tcp')?.expiresAt, null);

    // Restart: ensureBase again keeps the grants.
    await fw.ensureBase(SSH);
    assert.equal(await canConnect(a, 4, lab), true, 're-running ensureBase keeps existing grants');
    assert.equal((await fw.list()).length, 4);
  });

  void test(`${backend.label}: revoke closes new connections while an established one stays up`, async (t) => {
    if (!(await requireRoot(t))) return;
    const { lab, fw } = await setup(t, backend);
    const a = lab.clients[0] as Host;
    await fw.ensureBase(SSH);
    await fw.apply([{ op: 'add', entry: entry(a, 4, null) }]);
    const session = tcpSession(a, lab.server.v4, 22);
    let echoed = '';
    session.stdout?.on('data', (d: Buffer) => (echoed += d.toString()));
    const roundTrip = async (word: string): Promise<boolean> => {
      session.stdin?.write(`${word}\n`);
      for (let i = 0; i < 40 && !echoed.includes(word); i++) await new Promise((r) => setTimeout(r, 50));
      return echoed.includes(word);
    };
    assert.equal(await roundTrip('before'), true);
    await fw.apply([{ op: 'remove', entry: entry(a, 4, null) }]);
    assert.equal(await canConnect(a, 4, lab), false, 'new connections refused after revoke');
    assert.equal(await roundTrip('after'), true, 'the established session still echoes');
    session.kill();
    // Removing what is already gone is not an error.
    await fw.apply([{ op: 'remove', entry: entry(a, 4, null) }, { op: 'remove', entry: entry(a, 6, null) }]);
  });

  if (backend.kernelExpiry) {
    void test(`${backend.label}: a timed grant closes on time with no process running`, async (t) => {
      if (!(await requireRoot(t))) return;
      const { lab, fw } = await setup(t, backend);
      const a = lab.clients[0] as Host;
      await fw.ensureBase(SSH);
      await fw.apply([{ op: 'add', entry: entry(a, 4, Date.now() + 2000) }, { op: 'add', entry: entry(a, 6, Date.now() + 2000) }]);
      assert.equal(await canConnect(a, 4, lab), true);
      await new Promise((r) => setTimeout(r, 2600));
      for (const f of [4, 6] as const) assert.equal(await canConnect(a, f, lab), false, `v${f} closed after expiry`);
      assert.deepEqual(await fw.list(), []);
    });
  }

  void test(`${backend.label}: after a reboot (rules gone) ensureBase restores the base, and teardown spares foreign rules`, async (t) => {
    if (!(await requireRoot(t))) return;
    const { lab, fw } = await setup(t, backend);
    const [a, b] = lab.clients as [Host, Host];
    const s = lab.server;
    await s.exec('nft', ['-f', '-'], { input: 'table inet foreign {\n  chain c {\n    type filter hook input priority 10; policy accept;\n    tcp dport 9999 counter accept\n  }\n}\n' });
    await s.exec('iptables', ['-N', 'FOREIGN']);
    await s.exec('iptables', ['-A', 'INPUT', '-j', 'FOREIGN']);
    await fw.ensureBase(SSH);
    await fw.apply([{ op: 'add', entry: entry(a, 4, null) }]);
    await fw.teardown();
    // "Reboot": everything knockgw made is gone; the base must come back whole.
    assert.equal(await canConnect(b, 4, lab), true, 'teardown reopened the port');
    await fw.ensureBase(SSH);
    assert.equal(await canConnect(b, 4, lab), false, 'base restored after the table vanished');
    await fw.teardown();
    await fw.teardown();
    const ruleset = (await s.exec('nft', ['list', 'ruleset'])).stdout;
    assert.match(ruleset, /table inet foreign/);
    assert.match(ruleset, /tcp dport 9999/);
    assert.doesNotMatch(ruleset, /knockgw|KNOCKGW/);
    assert.match((await s.exec('iptables', ['-S'])).stdout, /-A INPUT -j FOREIGN/);
    assert.equal((await s.exec('ipset', ['list', '-n'], { allowFail: true })).stdout.trim(), '');
  });
}

// A base the kernel refuses (nft once said "value too large" to a 50-day timeout and left no
// table at all) must leave the protected ports dropped, not open, and fail loudly.
const LOCKDOWN_CASES = [
  { label: 'nftables', make: (ns: string, runner: Runner) => createHostFirewall('nftables', { logger, netns: ns, runner }), full: /set allowed4/ },
  { label: 'iptables+ipset', make: (ns: string, runner: Runner) => createHostFirewall('iptables', { logger, netns: ns, useIpset: true, runner }), full: /--match-set/ },
];
for (const c of LOCKDOWN_CASES) {
  void test(`${c.label}: when the base cannot be installed the protected ports are dropped for everyone and ensureBase fails`, async (t) => {
    if (!(await requireRoot(t))) return;
    const lab = await createLab(1);
    t.after(() => lab.destroy());
    await startServer(lab.server);
    const a = lab.clients[0] as Host;
    assert.equal(await canConnect(a, 4, lab), true, 'open before knockgw');
    const refusing: Runner = (cmd, args, opts) => (opts?.input !== undefined && c.full.test(opts.input) ? Promise.reject(kgwError('KGW_FW_COMMAND', `${cmd}: value too large`)) : run(cmd, args, opts));
    const fw = c.make(lab.server.ns, refusing);
    await assert.rejects(fw.ensureBase(SSH), (e: unknown) => isKnockgwError(e, 'KGW_FW_COMMAND') && /value too large/.test(e.message));
    for (const f of [4, 6] as const) assert.equal(await canConnect(a, f, lab), false, `v${f}: closed by the lockdown`);
    // A later start that works replaces the lockdown with the real base, grants and all.
    const healthy = c.make(lab.server.ns, run);
    await healthy.ensureBase(SSH);
    await healthy.apply([{ op: 'add', entry: entry(a, 4, null) }]);
    assert.equal(await canConnect(a, 4, lab), true);
    healthy.close?.();
  });
}

void test('detectConflicts finds the guide\'s iptables DROP for port 22 and a drop in another nft table', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await createLab(1);
  t.after(() => lab.destroy());
  const s = lab.server;
  assert.deepEqual(await detectConflicts(SSH, { netns: s.ns }), []);
  await s.exec('iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'DROP']);
  await s.exec('nft', ['-f', '-'], { input: 'table inet other {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport { 22, 443 } drop\n  }\n}\n' });
  const conflicts = await detectConflicts(SSH, { netns: s.ns });
  const ipt = conflicts.find((c) => c.source === 'iptables');
  assert.ok(ipt, JSON.stringify(conflicts));
  assert.match(ipt.rule, /--dport 22 -j DROP/);
  assert.match(ipt.explanation, /iptables -D INPUT -p tcp -m tcp --dport 22 -j DROP/);
  const nft = conflicts.find((c) => c.source === 'nftables');
  assert.ok(nft, JSON.stringify(conflicts));
  assert.match(nft.explanation, /nft delete rule inet other input handle \d+/);
  assert.equal(conflicts.length, 2, 'the iptables-nft table is reported once, in iptables terms');
});

for (const backend of BACKENDS.slice(0, 2)) {
  void test(`${backend.label}: apply of 10k and 100k adds in one batch (time per element)`, async (t) => {
    if (!(await requireRoot(t))) return;
    const lab = await createLab(0);
    t.after(() => lab.destroy());
    const fw = backend.make(lab.server.ns);
    await fw.ensureBase(SSH);
    for (const n of [10_000, 100_000]) {
      const expiresAt = Date.now() + 3_600_000;
      const ops = Array.from({ length: n }, (_, i) => ({
        op: 'add' as const,
        entry: { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, family: 4 as const, port: 22, proto: 'tcp' as const, expiresAt },
      }));
      const start = performance.now();
      await fw.apply(ops);
      const ms = performance.now() - start;
      const listed = await fw.list();
      assert.equal(listed.length, n);
      t.diagnostic(`${backend.label}: ${n} adds in ${ms.toFixed(0)} ms = ${((ms * 1000) / n).toFixed(1)} µs/element`);
      assert.ok(ms / n < 1, `under 1 ms per element (${(ms / n).toFixed(3)} ms)`);
      await fw.apply(listed.map((entry) => ({ op: 'remove' as const, entry })));
      assert.equal((await fw.list()).length, 0);
    }
  });
}
