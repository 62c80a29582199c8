// A child process of the fleet bench: hosts a few gateway nodes (test/helpers/fleet-node.ts) and
// does what the parent asks over IPC (protocol.ts). Several of these share the machine's cores,
// so no single event loop serialises all 50 nodes' reactions to one grant. It exits when the
// parent goes away, whatever state it is in.
import { describeError, kgwError } from '../../gateway/core/errors.ts';
import { startFleetNode, type FleetNode } from '../../test/helpers/fleet-node.ts';
import { wallNow } from '../../test/helpers/recording-firewall.ts';
import { silentLogger, sleep } from '../lib.ts';
import type { Envelope, HostAnswers, HostRequest, Leaders, PerNode, Reply, StartNodes } from './protocol.ts';

const nodes = new Map<string, FleetNode>();
const gains: { node: string; at: number }[] = [];
let started: StartNodes | undefined;
const POLL_MS = 20;

function nodeOf(id: string): FleetNode {
  const n = nodes.get(id);
  if (!n) throw kgwError('KGW_INTERNAL', `fleet host ${process.pid} has no node ${id}`, { node: id });
  return n;
}

async function launch(spec: StartNodes, nodeId: string): Promise<FleetNode> {
  const n = await startFleetNode({
    url: spec.url,
    nodeId,
    namespace: spec.namespace,
    logger: silentLogger,
    // 49 other nodes and whatever else shares the machine: a connect may take longer than 5 s.
    connectTimeoutMs: 30_000,
    ...(spec.repairMs !== undefined ? { repairMs: spec.repairMs } : {}),
    ...(spec.leaseTtlMs !== undefined ? { leaseTtlMs: spec.leaseTtlMs } : {}),
  });
  n.lease.on('gained', () => void gains.push({ node: nodeId, at: wallNow() }));
  nodes.set(nodeId, n);
  return n;
}

/** Sends `ips` paced at `perSecond`, without waiting for one grant before the next. */
async function paced(n: FleetNode, ips: readonly string[], perSecond: number, offsetMs: number, door: string | undefined): Promise<number[]> {
  const sentAt: number[] = [];
  const pending: Promise<void>[] = [];
  const t0 = wallNow() + offsetMs;
  for (const [i, ip] of ips.entries()) {
    const due = t0 + (i * 1000) / perSecond;
    if (due - wallNow() > 1) await sleep(due - wallNow());
    sentAt.push(wallNow());
    pending.push(n.grant(ip, door));
  }
  await Promise.all(pending);
  return sentAt;
}

/**
 * Polls rather than checking on every apply: the check must not sit in the path it measures (the
 * recorded time is taken in apply() itself, so polling late costs nothing in precision).
 */
async function applied(ips: readonly string[], op: 'add' | 'remove', timeoutMs: number): Promise<PerNode> {
  // A node that never opened the address (a brief grant that reached it expired) never has to
  // close it: NaN, told apart from a close that never came (null).
  const at = (n: FleetNode, ip: string): number | undefined => {
    if (op === 'add') return n.firewall.holds(ip) ? n.firewall.openedAt(ip) : undefined;
    return n.firewall.openedAt(ip) === undefined ? Number.NaN : n.firewall.closedAt(ip);
  };
  const done = (n: FleetNode, ip: string): boolean => at(n, ip) !== undefined;
  const deadline = wallNow() + timeoutMs;
  let waiting = [...nodes.values()].flatMap((n) => ips.map((ip) => ({ n, ip })));
  while (waiting.length > 0 && wallNow() < deadline) {
    waiting = waiting.filter(({ n, ip }) => !done(n, ip));
    if (waiting.length > 0) await sleep(POLL_MS);
  }
  const out: Record<string, (number | null)[]> = {};
  for (const [id, n] of nodes) out[id] = ips.map((ip) => at(n, ip) ?? null);
  return out;
}

async function holding(size: number, timeoutMs: number): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  await Promise.all(
    [...nodes].map(async ([id, n]) => {
      out[id] = await n.firewall.until(() => n.firewall.size >= size, timeoutMs, `${size} entries`).then(() => wallNow(), () => null);
    }),
  );
  return out;
}

async function restart(id: string, expect: number, timeoutMs: number): Promise<HostAnswers['restart']> {
  await nodeOf(id).stop();
  if (!started) throw kgwError('KGW_INTERNAL', 'restart before start');
  const t0 = wallNow();
  const n = await launch(started, id);
  const startMs = wallNow() - t0;
  await n.firewall.until(() => n.firewall.size >= expect, timeoutMs, `${expect} entries after a restart`);
  return { startMs, caughtUpMs: wallNow() - t0 };
}

async function handle(req: HostRequest): Promise<HostAnswers[HostRequest['cmd']]> {
  switch (req.cmd) {
    case 'start':
      started = req;
      // One at a time: 10 nodes connecting at once would measure the connect storm, not the fleet.
      for (const id of req.nodeIds) await launch(req, id);
      return null;
    case 'grant':
      return paced(nodeOf(req.node), req.ips, req.perSecond, req.offsetMs, req.door);
    case 'revoke': {
      const at = wallNow();
      await nodeOf(req.node).revoke(req.ip);
      return at;
    }
    case 'applied':
      return applied(req.ips, req.op, req.timeoutMs);
    case 'holding':
      return holding(req.size, req.timeoutMs);
    case 'restart':
      return restart(req.node, req.expect, req.timeoutMs);
    case 'leaders':
      return { leading: [...nodes].filter(([, n]) => n.lease.isLeader()).map(([id]) => id), gains: [...gains] } satisfies Leaders;
    case 'kill': {
      const at = wallNow();
      await nodeOf(req.node).stop({ release: false });
      nodes.delete(req.node);
      return at;
    }
    case 'cpu': {
      const u = process.cpuUsage();
      return u.user + u.system;
    }
    case 'forget':
      for (const n of nodes.values()) n.firewall.forget();
      return null;
    case 'stop':
      await Promise.all([...nodes.values()].map((n) => n.stop()));
      nodes.clear();
      return null;
  }
}

process.on('message', (msg: Envelope) => {
  void handle(msg.req).then(
    (value) => process.send?.({ id: msg.id, ok: true, value } satisfies Reply),
    (err: unknown) => process.send?.({ id: msg.id, ok: false, error: describeError(err) } satisfies Reply),
  );
});
// The parent died or closed the channel: nothing here may outlive it.
process.on('disconnect', () => process.exit(0));
