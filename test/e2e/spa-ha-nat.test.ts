// SPA across nodes and NATs: a packet granted by one HA node is a replay to the other (two
// daemons, one redis-server), and a client behind a masquerading NAT learns its public address
// from the relay's GET /v1/ip with fwknop's own --resolve-url, so the grant is for the address
// the server sees.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { createLab, requireRoot, type Lab } from '../helpers/netns.ts';
import { createNatLab } from '../helpers/nat-lab.ts';
import { canConnect, connectsWithin, startDaemon, startSshLike, tempDir, waitReady, type LogEvent, type RunningDaemon } from '../helpers/gateway.ts';
import { startRedis } from '../helpers/redis.ts';
import { fwknop, sendUdp, spaYaml } from '../helpers/spa.ts';

async function launch(t: TestContext, lab: { server: Lab['server'] }, args: string[]): Promise<RunningDaemon> {
  const d = startDaemon(lab.server, args);
  t.after(() => d.kill());
  await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  return d;
}

const spaEvent = (d: RunningDaemon, name: string) => d.waitFor((e: LogEvent) => e.event === name, 5000, name);

void test('HA: a packet one node granted opens the other node too, and is refused there as a replay (one redis-server between them)', async (t) => {
  if (!(await requireRoot(t))) return;
  const redis = await startRedis(t);
  assert.ok(redis, 'redis-server is required');
  const dir = await tempDir();
  t.after(() => dir.remove());
  const config = await dir.write('knockgw.yaml', `interface: br0\n${spaYaml()}`);
  const nodes: { lab: Lab; daemon: RunningDaemon }[] = [];
  for (const name of ['a', 'b']) {
    const lab = await createLab(1);
    t.after(() => lab.destroy());
    await waitReady(startSshLike(lab.server));
    const daemon = await launch(t, lab, ['--config', config, '--store', redis.socketPath, '--node-id', `gw-${name}`, '--control', join(dir.path, `${name}.sock`), '--state', join(dir.path, `${name}.json`)]);
    nodes.push({ lab, daemon });
  }
  const [a, b] = nodes;
  const ca = a?.lab.clients[0];
  const cb = b?.lab.clients[0];
  assert.ok(a && b && ca && cb);

  // The client in A's lab sends a real packet to node A and keeps a copy of it.
  const saved = join(dir.path, 'sent.spa');
  assert.equal((await fwknop(ca, a.lab.server.v4, ['-a', ca.v4, '-B', saved])).code, 0);
  assert.equal((await spaEvent(a.daemon, 'spa.granted')).ip, ca.v4);
  assert.equal(await connectsWithin(ca, a.lab.server.v4, 22), true, 'node A opened');
  // The grant is the fleet's: through Redis node B opens for the same address (its lab's client).
  assert.equal(await connectsWithin(cb, b.lab.server.v4, 22), true, 'node B opened too');

  // An eavesdropper replays it to node B (same addresses in both labs).
  await sendUdp(cb, b.lab.server.v4, [(await readFile(saved, 'latin1')).trim()]);
  const denied = await spaEvent(b.daemon, 'spa.denied');
  assert.equal(denied.reason, 'replay');
  assert.equal(b.daemon.events.some((e) => e.event === 'spa.granted'), false, 'node B granted nothing itself');
});

void test('fwknop --resolve-url through the relay\'s GET /v1/ip from behind a NAT: the grant is for the NAT\'s address', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await createNatLab();
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  const keys = await dir.write('keys.json', '{"clients": []}');
  // Port 80: fwknop's own HTTP client (--resolve-http-only) takes no port in the URL. Without
  // it, -R fetches the URL with wget (the https:// case of a real relay).
  const relay = `relay:\n  keysFile: ${keys}\n  listen: "${lab.server.v4}:80"\n`;
  const config = await dir.write('knockgw.yaml', `interface: eth0\n${spaYaml({ extra: relay })}`);
  await waitReady(startSshLike(lab.server));
  const daemon = await launch(t, lab, ['--config', config, '--state', join(dir.path, 'state.json'), '--control', join(dir.path, 'ctl.sock')]);
  await daemon.waitFor((e) => e.event === 'relay.listening', 2000, 'relay.listening');

  // -R asks the URL for the client's public address and puts it in the packet as the allow IP.
  const r = await fwknop(lab.client, lab.server.v4, ['-R', '--resolve-http-only', '--resolve-url', `http://${lab.server.v4}/v1/ip`]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const granted = await spaEvent(daemon, 'spa.granted');
  assert.deepEqual([granted.ip, granted.src], [lab.nat.v4, lab.nat.v4], 'the NAT address is both the allow IP and the source the server saw');
  assert.equal(await connectsWithin(lab.client, lab.server.v4, 22), true, 'the client connects through the NAT');
  assert.equal(daemon.events.some((e) => e.event === 'grant.open' && e.ip === lab.client.v4), false, 'nothing for the private address');
  assert.equal(await canConnect(lab.client, lab.server.v6, 22), false, 'nor over IPv6');
});
