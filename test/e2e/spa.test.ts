// SPA end to end with Debian's fwknop client: the real daemon in a lab's server namespace takes
// SPA packets only through its own kernel rule (checks and limits, then its UDP socket) and opens port 22 for the
// address the packet names. The same suite runs with the YAML `spa:` section and with fwknopd's
// own access.conf and fwknopd.conf, unchanged (Debian's defaults, keys filled in), and once on
// the iptables backend.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireRoot, type Lab } from '../helpers/netns.ts';
import { canConnect, connectsWithin, MAIN, refusedWithin, sshLab, startDaemon, type LogEvent, type TempDir, type RunningDaemon } from '../helpers/gateway.ts';
import { encodeIn, FIXTURES, fwknop, sendUdp, spaYaml } from '../helpers/spa.ts';
import { controlRequest } from '../../gateway/services/control-server.ts';
import { TRACE_STAGES } from '../../gateway/services/trace.ts';

interface World { lab: Lab; daemon: RunningDaemon; dir: TempDir; control: string; restart(): Promise<void> }

const FLAVORS = [
  { name: 'YAML spa:', firewall: 'nftables', files: false },
  { name: "fwknopd's own access.conf and fwknopd.conf", firewall: 'nftables', files: true },
] as const;

async function world(t: TestContext, opts: { files: boolean; firewall: 'nftables' | 'iptables' }): Promise<World> {
  const { lab, dir } = await sshLab(t, 2);
  const control = join(dir.path, 'ctl.sock');
  // The fwknopd files as Debian installs them (keys filled in); FW_ACCESS_TIMEOUT is its 30 s default there.
  const config = opts.files
    ? ['--fwknop-access', join(FIXTURES, 'debian-access-keys.conf'), '--fwknop-config', join(FIXTURES, 'debian-fwknopd.conf')]
    : ['--config', await dir.write('knockgw.yaml', `interface: br0\n${spaYaml({ ttl: 2 })}`)];
  const args = [...config, '--firewall', opts.firewall, '--state', join(dir.path, 'state.json'), '--control', control];
  const launch = async (): Promise<RunningDaemon> => {
    const d = startDaemon(lab.server, args);
    t.after(() => d.kill());
    await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
    return d;
  };
  const w: World = {
    lab, dir, control, daemon: await launch(),
    async restart() {
      await w.daemon.stop();
      w.daemon = await launch();
    },
  };
  return w;
}

const clients = (w: World) => {
  const [a, b] = w.lab.clients;
  assert.ok(a && b);
  return { a, b, server: w.lab.server };
};
const after = (w: World) => w.daemon.events.length;
const since = (w: World, mark: number, pred: (e: LogEvent) => boolean) => w.daemon.waitFor((e) => w.daemon.events.indexOf(e) >= mark && pred(e), 5000, 'event');
const revoke = (w: World, ip: string) => w.lab.server.exec(process.execPath, [MAIN, 'revoke', ip, '--control', w.control]);

for (const flavor of FLAVORS) {
  void test(`SPA with ${flavor.name}: Debian's fwknop client opens port 22 for the address it names, once`, async (t) => {
    if (!(await requireRoot(t))) return;
    const w = await world(t, flavor);
    const { a, b, server } = clients(w);

    await t.test('port 22 starts closed; garbage on the SPA port opens nothing (text: dropped in the kernel; base64: refused by the HMAC)', async () => {
      assert.equal(await canConnect(a, server.v4, 22), false);
      const mark = after(w);
      await sendUdp(a, server.v4, ['not an SPA packet at all, but long enough to pass the size check of the kernel rule '.repeat(2), 'QUJD'.repeat(50)]);
      const denied = await since(w, mark, (e) => e.event === 'spa.denied');
      assert.deepEqual([denied.reason, denied.src], ['hmac', a.v4]);
      await sleep(200);
      assert.equal(w.daemon.events.slice(mark).filter((e) => e.event === 'spa.denied').length, 1, 'the text never reached the daemon');
      assert.equal(await canConnect(a, server.v4, 22), false);
    });

    await t.test('access for the sending IP only (-a own address)', async () => {
      const mark = after(w);
      const r = await fwknop(a, server.v4, ['-a', a.v4, '-B', join(w.dir.path, 'saved.spa')]);
      assert.equal(r.code, 0, r.stderr);
      const granted = await since(w, mark, (e) => e.event === 'grant.open');
      assert.deepEqual([granted.ip, granted.source, granted.ports], [a.v4, 'spa', ['22/tcp']]);
      assert.equal(await connectsWithin(a, server.v4, 22), true, 'the sender connects');
      assert.equal(await canConnect(b, server.v4, 22), false, 'another address does not');
      await revoke(w, a.v4);
      assert.equal(await refusedWithin(a, server.v4, 22), true);
    });

    await t.test('the trace: /metrics holds that packet\'s stage histograms, from socket receipt to the nft reply', async () => {
      const text = (await controlRequest(w.control, 'GET', '/metrics')).body;
      for (const stage of TRACE_STAGES) assert.match(text, new RegExp(`^knockgw_packet_stage_seconds_count\\{path="spa",stage="${stage}"\\} [1-9]`, 'm'), stage);
    });

    await t.test('a replay of that packet is refused', async () => {
      const mark = after(w);
      const saved = await readFile(join(w.dir.path, 'saved.spa'), 'latin1');
      await sendUdp(b, server.v4, [saved.trim()]);
      const denied = await since(w, mark, (e) => e.event === 'spa.denied');
      assert.equal(denied.reason, 'replay');
      assert.equal(await canConnect(a, server.v4, 22), false, 'nothing reopened');
      assert.equal(w.daemon.events.slice(mark).some((e) => e.event === 'grant.open' || e.event === 'grant.extend'), false);
    });

    await t.test('and after a restart: the replay cache is kept on disk with the state file', async () => {
      await w.restart();
      const mark = after(w);
      await sendUdp(a, server.v4, [(await readFile(join(w.dir.path, 'saved.spa'), 'latin1')).trim()]);
      assert.equal((await since(w, mark, (e) => e.event === 'spa.denied')).reason, 'replay');
      assert.equal(await canConnect(a, server.v4, 22), false);
    });

    await t.test('-a naming another address opens for that address only', async () => {
      const mark = after(w);
      assert.equal((await fwknop(a, server.v4, ['-a', b.v4])).code, 0);
      assert.equal((await since(w, mark, (e) => e.event === 'grant.open')).ip, b.v4);
      assert.equal(await connectsWithin(b, server.v4, 22), true, 'the named address connects');
      assert.equal(await canConnect(a, server.v4, 22), false, 'the sender does not');
      await revoke(w, b.v4);
    });

    await t.test('-s opens for the packet\'s source address', async () => {
      const mark = after(w);
      assert.equal((await fwknop(b, server.v4, ['-s'])).code, 0);
      assert.equal((await since(w, mark, (e) => e.event === 'grant.open')).ip, b.v4);
      assert.equal(await connectsWithin(b, server.v4, 22), true);
      assert.equal(await canConnect(a, server.v4, 22), false);
      await revoke(w, b.v4);
    });

    await t.test('IPv6 (our encoder: the Debian client sends IPv4 only)', async () => {
      const mark = after(w);
      await sendUdp(a, server.v6, [await encodeIn(a, '0.0.0.0')]);
      assert.equal((await since(w, mark, (e) => e.event === 'grant.open')).ip, a.v6);
      assert.equal(await connectsWithin(a, server.v6, 22), true, 'the sender connects over IPv6');
      assert.equal(await canConnect(b, server.v6, 22), false);
      assert.equal(await canConnect(a, server.v4, 22), false, 'and only over IPv6');
      await revoke(w, a.v6);
    });

    await t.test('the access timeout closes the port with no daemon action', async () => {
      // YAML: FW_ACCESS_TIMEOUT (ttl) 2 s; Debian's unchanged files: 30 s, so the client asks for 2 s (-f).
      const mark = after(w);
      assert.equal((await fwknop(a, server.v4, ['-a', a.v4, ...(flavor.files ? ['-f', '2'] : [])])).code, 0);
      await since(w, mark, (e) => e.event === 'grant.open');
      assert.equal(await connectsWithin(a, server.v4, 22), true);
      await w.daemon.kill();
      await sleep(2500);
      assert.equal(await canConnect(a, server.v4, 22), false, 'the kernel closed it when the timeout ran out');
    });
  });
}

void test('SPA on the iptables backend: the raw-table rule hands packets to the daemon, which opens for the sender only', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t, { files: false, firewall: 'iptables' });
  const { a, b, server } = clients(w);
  assert.equal(await canConnect(a, server.v4, 22), false);
  const mark = after(w);
  assert.equal((await fwknop(a, server.v4, ['-a', a.v4])).code, 0);
  assert.equal((await since(w, mark, (e) => e.event === 'grant.open')).ip, a.v4);
  assert.equal(await connectsWithin(a, server.v4, 22), true);
  assert.equal(await canConnect(b, server.v4, 22), false);
  const raw = await server.exec('iptables', ['-t', 'raw', '-S']);
  assert.match(raw.stdout, /-A KNOCKGW_SPA -m limit --limit 2000\/sec --limit-burst 500 -j KNOCKGW_SPA_PASS/);
  assert.match(raw.stdout, /-A KNOCKGW_SPA_PASS -j CT --notrack/);
});
