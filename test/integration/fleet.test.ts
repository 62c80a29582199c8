// Five gateways in this process on one real redis-server, each with the real store, reconciler
// and cloud lease, and a recording firewall: what one node does, every node's firewall shows.
// The 50-node version with figures is `npm run bench -- --fleet`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFleetNode, type FleetNode } from '../helpers/fleet-node.ts';
import { wallNow } from '../helpers/recording-firewall.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';

type Ctx = Parameters<typeof startRedis>[0];

const SIZE = 5;
const LEASE_TTL_MS = 1500;
const WAIT_MS = 5000;

async function fleet(t: Ctx): Promise<{ nodes: FleetNode[]; start(id: string): Promise<FleetNode> } | undefined> {
  const redis = await startRedis(t);
  if (!redis) return undefined;
  const start = async (nodeId: string): Promise<FleetNode> => {
    const n = await startFleetNode({ url: redis.url, nodeId, namespace: 'fleet', logger: captureLogger('warn').logger, leaseTtlMs: LEASE_TTL_MS, cloudSettleMs: 50, logOps: true });
    t.after(() => n.stop());
    return n;
  };
  const nodes: FleetNode[] = [];
  for (let i = 0; i < SIZE; i++) nodes.push(await start(`gw-${i}`));
  return { nodes, start };
}

const everywhere = (nodes: readonly FleetNode[], what: string, cond: (n: FleetNode) => boolean): Promise<number[]> =>
  Promise.all(nodes.map((n) => n.firewall.until(() => cond(n), WAIT_MS, `${what} on ${n.nodeId}`)));

async function poll(what: string, cond: () => boolean, timeoutMs = WAIT_MS): Promise<number> {
  const start = wallNow();
  while (!cond()) {
    if (wallNow() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return wallNow() - start;
}

const node = (nodes: readonly FleetNode[], i: number): FleetNode => nodes[i] ?? assert.fail(`no node ${i}`);

void test('a grant on one node opens it on all five; a revoke on another closes it on all', async (t) => {
  const f = await fleet(t);
  if (!f) return;
  await node(f.nodes, 0).grant('198.51.100.7');
  await everywhere(f.nodes, 'the grant', (n) => n.firewall.holds('198.51.100.7'));
  for (const n of f.nodes) assert.deepEqual(n.firewall.ops.filter((o) => o.ip === '198.51.100.7').map((o) => `${o.op} ${o.port}`), ['add 22']);

  await node(f.nodes, 3).revoke('198.51.100.7');
  await everywhere(f.nodes, 'the revoke', (n) => n.firewall.closedAt('198.51.100.7') !== undefined);
  for (const n of f.nodes) assert.equal((await n.gateway.status()).grants.length, 0, `${n.nodeId} still lists a grant`);
});

void test('an expiry closes the grant on every node at its expiry, and the cloud drops it', async (t) => {
  const f = await fleet(t);
  if (!f) return;
  const sent = Date.now();
  await node(f.nodes, 1).grant('198.51.100.8', 'brief');
  await everywhere(f.nodes, 'the brief grant', (n) => n.firewall.holds('198.51.100.8'));
  // A timeout closes it, as in the kernel: no op to wait for, so poll.
  await poll('its expiry everywhere', () => f.nodes.every((n) => n.firewall.closedAt('198.51.100.8') !== undefined));
  for (const n of f.nodes) {
    const closed = n.firewall.closedAt('198.51.100.8') ?? 0;
    // Every node closes it when the origin's 2 s run out, give or take the rebasing on Redis's clock.
    assert.ok(Math.abs(closed - (sent + 2000)) < 250, `${n.nodeId} closed at +${closed - sent} ms`);
  }
  const leader = f.nodes.find((n) => n.lease.isLeader()) ?? assert.fail('no cloud leader');
  await poll('the expired grant gone from the cloud', () => !leader.cloud.rules.has('brief@198.51.100.8'));
});

void test('a node restarted while grants are live catches up: new grants, a revoke it missed, an empty firewall', async (t) => {
  const f = await fleet(t);
  if (!f) return;
  const ips = Array.from({ length: 200 }, (_, i) => `198.51.100.${i + 20}`);
  await Promise.all(ips.map((ip, i) => node(f.nodes, i % SIZE).grant(ip)));
  await everywhere(f.nodes, '200 grants', (n) => n.firewall.size === 200);
  await node(f.nodes, 4).stop();
  // While it is away: 20 more and a revoke.
  const more = Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 1}`);
  await Promise.all(more.map((ip) => node(f.nodes, 0).grant(ip)));
  await node(f.nodes, 1).revoke(ips[0] ?? '');
  const started = wallNow();
  const back = await f.start('gw-4');
  assert.equal(back.firewall.size, 219, 'the firewall holds the live set once start() resolves');
  assert.equal(back.firewall.holds(ips[0] ?? ''), false);
  t.diagnostic(`caught up with 219 live grants in ${(wallNow() - started).toFixed(0)} ms`);
});

void test('exactly one of the five leads the cloud lease, and a leader that dies is replaced by one other', async (t) => {
  const f = await fleet(t);
  if (!f) return;
  const leaders = (): FleetNode[] => f.nodes.filter((n) => n.lease.isLeader());
  await poll('a leader', () => leaders().length > 0);
  for (let i = 0; i < 20; i++) {
    assert.equal(leaders().length, 1, `sample ${i}: ${leaders().map((n) => n.nodeId).join(',')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const dead = leaders()[0] ?? assert.fail('no leader');
  const killedAt = wallNow();
  const stopping = dead.stop({ release: false });
  const rest = f.nodes.filter((n) => n !== dead);
  await poll('another leader', () => rest.some((n) => n.lease.isLeader()), LEASE_TTL_MS * 3);
  const failover = wallNow() - killedAt;
  await stopping;
  t.diagnostic(`failover without release: ${failover.toFixed(0)} ms (lease TTL ${LEASE_TTL_MS} ms)`);
  // Not before the dead leader's lease could have run out (it renewed up to a third of a TTL ago).
  assert.ok(failover >= (LEASE_TTL_MS * 2) / 3 - 50, `took over after ${failover} ms`);
  for (let i = 0; i < 10; i++) {
    assert.equal(rest.filter((n) => n.lease.isLeader()).length, 1);
    await new Promise((r) => setTimeout(r, 25));
  }
});
