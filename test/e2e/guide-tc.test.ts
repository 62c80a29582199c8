// The seed guide's acceptance tests, end to end: a real daemon in a server namespace, real
// knocks from client namespaces (Debian `knock` and `knockgw knock`), real TCP connects to a
// listener on port 22. Every backend/engine combination runs the same suite.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, requireRoot, type Host, type Lab } from '../helpers/netns.ts';
import { canConnect, connectsWithin, refusedWithin, GUIDE_KNOCKD_CONF, MAIN, startDaemon, startSshLike, tempDir, waitReady, type RunningDaemon } from '../helpers/gateway.ts';

const COMBOS = [
  { firewall: 'nftables', engine: 'pcap' },
  { firewall: 'nftables', engine: 'kernel' },
  { firewall: 'iptables', engine: 'pcap' },
] as const;

const TTL_YAML = (iface: string) => `interface: ${iface}
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    seqTimeout: 5
    tcpFlags: syn
    open: ["22/tcp"]
    ttl: 60
    closeSequence: ["9000", "8000", "7000"]
  - name: shortSSH
    sequence: ["7100", "8100", "9100"]
    seqTimeout: 5
    tcpFlags: syn
    open: ["22/tcp"]
    ttl: 3
`;

interface World { lab: Lab; a: Host; b: Host; dir: Awaited<ReturnType<typeof tempDir>> }

async function world(t: TestContext, clients = 2): Promise<World> {
  const lab = await createLab(clients);
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  const sshd = startSshLike(lab.server);
  await waitReady(sshd);
  const [a, b] = lab.clients;
  assert.ok(a && b);
  return { lab, a, b, dir };
}

function daemonArgs(w: World, combo: (typeof COMBOS)[number], config: string[]): string[] {
  return [...config, '--interface', w.lab.serverIf(0), '--firewall', combo.firewall, '--engine', combo.engine, '--state', `${w.dir.path}/state.json`, '--control', `${w.dir.path}/ctl.sock`];
}

async function launch(t: TestContext, w: World, args: string[]): Promise<RunningDaemon> {
  const d = startDaemon(w.lab.server, args);
  t.after(() => d.kill());
  await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  return d;
}

const ggknock = (h: Host, args: string[]) => h.exec(process.execPath, [MAIN, 'knock', ...args]);
const isOpen = (e: Record<string, unknown>, ip: string) => e.event === 'grant.open' && e.ip === ip;

/** Removes everything the backend created, as a reboot would. */
async function simulateReboot(w: World, firewall: string): Promise<void> {
  if (firewall === 'nftables') {
    await w.lab.server.exec('nft', ['delete', 'table', 'inet', 'knockgw']);
  } else {
    for (const ipt of ['iptables', 'ip6tables']) {
      await w.lab.server.exec(ipt, ['-D', 'INPUT', '-j', 'KNOCKGW'], { allowFail: true });
      await w.lab.server.exec(ipt, ['-F', 'KNOCKGW'], { allowFail: true });
      await w.lab.server.exec(ipt, ['-X', 'KNOCKGW'], { allowFail: true });
    }
    const sets = await w.lab.server.exec('ipset', ['list', '-n'], { allowFail: true });
    for (const s of sets.stdout.split('\n').filter((n) => n.startsWith('knockgw'))) await w.lab.server.exec('ipset', ['destroy', s]);
  }
}

for (const combo of COMBOS) {
  const name = `${combo.firewall}/${combo.engine}`;

  void test(`[${name}] TC1–TC3 and the close sequence with the guide's knockd.conf, IPv4 and IPv6`, async (t) => {
    if (!(await requireRoot(t))) return;
    const w = await world(t);
    const conf = await w.dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
    const d = await launch(t, w, daemonArgs(w, combo, ['--knockd-config', conf]));
    const srv = w.lab.server;

    assert.equal(await canConnect(w.a, srv.v4, 22), false, 'port 22 is closed before any knock');

    // TC1 with the Debian knock client.
    await w.a.exec('knock', [srv.v4, '7000', '8000', '9000']);
    await d.waitFor((e) => isOpen(e, w.a.v4), 5000, 'grant.open for a');
    assert.equal(await connectsWithin(w.a, srv.v4, 22), true, 'TC1: the knocking client connects');

    // TC3: another IP stays blocked.
    assert.equal(await canConnect(w.b, srv.v4, 22), false, 'TC3: another client is still blocked');

    // TC2: wrong order.
    await w.b.exec('knock', [srv.v4, '8000', '7000', '9000']);
    await sleep(300);
    assert.equal(await canConnect(w.b, srv.v4, 22), false, 'TC2: a wrong-order knock leaves port 22 closed');

    // TC1 over IPv6 with knockgw's own client.
    assert.equal(await canConnect(w.a, srv.v6, 22), false, 'IPv6 is closed until an IPv6 knock');
    await ggknock(w.a, ['-6', srv.v6, '7000', '8000', '9000']);
    await d.waitFor((e) => isOpen(e, w.a.v6), 5000, 'grant.open for a over IPv6');
    assert.equal(await connectsWithin(w.a, srv.v6, 22), true, 'TC1 (IPv6): the knocking client connects');
    assert.equal(await canConnect(w.b, srv.v6, 22), false, 'TC3 (IPv6): another client is still blocked');

    // The close sequence closes it.
    await ggknock(w.a, [srv.v4, '9000', '8000', '7000']);
    const closed = await d.waitFor((e) => e.event === 'grant.close' && e.ip === w.a.v4, 5000, 'grant.close');
    assert.equal(closed.reason, 'sequence');
    assert.equal(closed.door, 'openSSH');
    assert.equal(await refusedWithin(w.a, srv.v4, 22), true, 'the close sequence closes port 22');

    const opened = d.events.find((e) => isOpen(e, w.a.v4));
    assert.equal(opened?.door, 'openSSH');
    assert.deepEqual(opened?.ports, ['22/tcp']);
  });

  void test(`[${name}] TC2: a too-slow sequence leaves port 22 closed`, async (t) => {
    if (!(await requireRoot(t))) return;
    const w = await world(t);
    const conf = await w.dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
    const d = await launch(t, w, daemonArgs(w, combo, ['--knockd-config', conf]));
    await ggknock(w.a, [w.lab.server.v4, '7000', '8000']);
    await sleep(5300);
    await ggknock(w.a, [w.lab.server.v4, '9000']);
    await sleep(300);
    assert.equal(await canConnect(w.a, w.lab.server.v4, 22), false);
    assert.equal(d.events.some((e) => e.event === 'grant.open'), false);
  });

  void test(`[${name}] TC4: after SIGKILL and a wiped firewall, base rules and unexpired grants come back, expired ones do not; a TTL closes with the daemon dead`, async (t) => {
    if (!(await requireRoot(t))) return;
    const w = await world(t, 3);
    const c = w.lab.clients[2];
    assert.ok(c);
    const yaml = await w.dir.write('knockgw.yaml', TTL_YAML(w.lab.serverIf(0)));
    const args = daemonArgs(w, combo, ['--config', yaml]);
    const srv = w.lab.server;

    let d = await launch(t, w, args);
    await ggknock(w.a, [srv.v4, '7000', '8000', '9000']);
    await ggknock(w.b, [srv.v4, '7100', '8100', '9100']);
    await d.waitFor((e) => isOpen(e, w.a.v4), 5000, 'grant.open a');
    const short = await d.waitFor((e) => isOpen(e, w.b.v4), 5000, 'grant.open b');
    assert.equal(short.door, 'shortSSH');
    assert.equal(await connectsWithin(w.b, srv.v4, 22), true);

    await d.kill();
    // The kernel holds the TTL: b's grant closes on time with no daemon running.
    await sleep(3500);
    assert.equal(await canConnect(w.b, srv.v4, 22), false, 'a TTL closes port 22 with the daemon dead');
    assert.equal(await canConnect(w.a, srv.v4, 22), true, 'an unexpired grant stays while the daemon is dead');

    await simulateReboot(w, combo.firewall);
    assert.equal(await canConnect(w.lab.clients[2]!, srv.v4, 22), true, 'with the rules gone, port 22 is open to anyone (the reboot we simulate)');

    d = await launch(t, w, args);
    assert.equal(await canConnect(c, srv.v4, 22), false, 'TC4: the base rules are back');
    assert.equal(await connectsWithin(w.a, srv.v4, 22), true, 'TC4: the unexpired grant is back');
    assert.equal(await canConnect(w.b, srv.v4, 22), false, 'TC4: the expired grant is not');
    await d.stop();
  });
}
