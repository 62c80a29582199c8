// No grant may live in the kernel that the store does not have. The kernel engine's sequences go
// live when the base is installed; a completion must reach the store (and so the other nodes, the
// clouds and the log) whether it happens while the daemon starts or its NFLOG report is lost.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, requireRoot, type Host } from '../helpers/netns.ts';
import { connectsWithin, GUIDE_KNOCKD_CONF, guideDaemon, MAIN, startSshLike, waitReady } from '../helpers/gateway.ts';
import { startRedis } from '../helpers/redis.ts';
import { eventually, handPackets, logCapture, recordingCloud, recordingFirewall } from '../helpers/in-process.ts';
import { createGateway } from '../../gateway/gateway.ts';
import { compileKnockd } from '../../gateway/config/load.ts';
import { createNftablesFirewall } from '../../gateway/adapters/firewall/index.ts';
import { NFLOG_GROUP } from '../../gateway/core/nft-kernel.ts';
import { createKernelSource } from '../../gateway/services/source-kernel.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { openStore } from '../../gateway/wiring/store.ts';

void test('a knock that completes in the kernel while the daemon starts is recorded, logged and in the store', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, client: a, dir, daemon } = await guideDaemon(t, ['--engine', 'kernel']);
  // Knock the moment the kernel's sequences are live: the daemon is still starting (conflict
  // check, first full repair, control socket) when the knock completes.
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const table = await lab.server.exec('nft', ['list', 'chain', 'inet', 'knockgw', 'knock'], { allowFail: true });
    if (table.code === 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await a.exec('knock', [lab.server.v4, '7000', '8000', '9000']);
  const duringStart = !daemon.events.some((e) => e.event === 'daemon.ready');
  t.diagnostic(`the knock completed ${duringStart ? 'before' : 'after'} daemon.ready`);
  assert.equal(await connectsWithin(a, lab.server.v4, 22), true, 'the kernel opened port 22');
  const grant = await daemon.waitFor((e) => e.event === 'grant.open' && e.ip === a.v4, 5000, 'grant.open for the knocker');
  assert.equal(grant.door, 'openSSH');
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  const status = await lab.server.exec(process.execPath, [MAIN, 'status', '--json', '--control', `${dir.path}/ctl.sock`]);
  assert.ok((JSON.parse(status.stdout) as { grants: { ip: string }[] }).grants.some((g) => g.ip === a.v4), 'the store holds the grant');
});

void test('a kernel completion whose NFLOG report is lost is adopted by the repair: store, clouds and the other node get it', async (t: TestContext) => {
  if (!(await requireRoot(t))) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const lab = await createLab(1);
  await waitReady(startSshLike(lab.server));
  const a = lab.clients[0] as Host;
  const config = compileKnockd(GUIDE_KNOCKD_CONF, 'knockd.conf', 'gw-a');
  const log = logCapture();
  const clock = { now: () => Date.now() };
  const node = (nodeId: string) => {
    return openStore(redis.url, { nodeId, clock, logger: log.logger });
  };
  const storeA = await node('gw-a');
  const storeB = await node('gw-b');
  const firewallA = createNftablesFirewall({ logger: log.logger, netns: lab.server.ns, kernel: { sequences: config.sequences, doors: config.doors, nflogGroup: NFLOG_GROUP, rateLimit: config.knockRateLimit } });
  // Every report is lost: the reader is up, and nothing ever arrives on it.
  const deaf = handPackets();
  const metrics = createMetrics();
  const kernel = createKernelSource({ openReports: () => deaf, sequences: config.sequences, doors: config.doors, firewall: firewallA, store: storeA.store, clock, metrics });
  const cloud = recordingCloud();
  const common = { doors: config.doors, protectedPorts: config.protectedPorts, engines: {}, storeKind: 'redis' as const, clock, logger: log.logger, repairMs: 500 };
  const gwA = createGateway({ ...common, nodeId: 'gw-a', store: storeA.store, firewall: firewallA, sources: [kernel], cloud, cloudSettleMs: 50, metrics });
  const firewallB = recordingFirewall();
  const gwB = createGateway({ ...common, nodeId: 'gw-b', store: storeB.store, firewall: firewallB, sources: [] });
  // One hook, in order: the gateways stop (and tear down their rules) before the lab goes.
  t.after(async () => {
    await gwA.stop({ teardown: true });
    await gwB.stop();
    await storeA.close();
    await storeB.close();
    await lab.destroy();
  });
  await gwA.start();
  await gwB.start();
  await a.exec('knock', [lab.server.v4, '7000', '8000', '9000']);
  assert.equal(await connectsWithin(a, lab.server.v4, 22), true, 'the kernel opened port 22');
  assert.ok(await eventually(async () => (await storeA.store.list()).some((g) => g.ip === a.v4), 15_000), 'the repair put the grant in the store');
  assert.ok(await eventually(() => firewallB.openFor(a.v4).includes('22/tcp'), 10_000), 'the other node opened it');
  assert.ok(await eventually(() => cloud.passes.some((p) => p.some((g) => g.ip === a.v4)), 10_000), 'the cloud got it');
  assert.equal(await metrics.get('kernel_adopted_total', { action: 'open' }), 1);
  assert.equal(log.events('knock.adopted').length, 1);
});
