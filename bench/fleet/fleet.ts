// The parent's handle on a simulated fleet: N gateway nodes spread over P child processes
// (host.ts), each asked over IPC. Children are killed on stop(), on failure and on Ctrl-C (the
// bench's cleanup registry), and exit by themselves if the parent dies (IPC disconnect).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kgwError } from '../../gateway/core/errors.ts';
import { onCleanup } from '../lib.ts';
import type { Envelope, HostAnswers, HostRequest, Reply } from './protocol.ts';

const HOST = fileURLToPath(new URL('./host.ts', import.meta.url));
/** Longest any single request may take (a restart with 10k grants, a 10k burst's tail). */
const REQUEST_TIMEOUT_MS = 120_000;

type Req<C extends HostRequest['cmd']> = Extract<HostRequest, { cmd: C }>;

export interface Host {
  readonly pid: number;
  readonly nodeIds: readonly string[];
  ask<C extends HostRequest['cmd']>(req: Req<C>): Promise<HostAnswers[C]>;
}

export interface Fleet {
  readonly hosts: readonly Host[];
  readonly nodeIds: readonly string[];
  hostOf(node: string): Host;
  /** The same request to every host, answers in host order. */
  all<C extends HostRequest['cmd']>(req: Req<C>): Promise<HostAnswers[C][]>;
  stop(): Promise<void>;
}

function spawnHost(nodeIds: readonly string[]): { host: Host; child: ChildProcess } {
  const child = fork(HOST, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let next = 0;
  const failAll = (why: string): void => {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(kgwError('KGW_INTERNAL', `fleet host ${child.pid}: ${why}`, { pid: child.pid }));
      pending.delete(id);
    }
  };
  child.on('message', (msg: Reply) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(kgwError('KGW_INTERNAL', `fleet host ${child.pid}: ${msg.error}`, { pid: child.pid }));
  });
  child.on('exit', (code, signal) => failAll(`exited (${code ?? signal})`));
  const host: Host = {
    pid: child.pid ?? 0,
    nodeIds,
    ask<C extends HostRequest['cmd']>(req: Req<C>): Promise<HostAnswers[C]> {
      return new Promise((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(kgwError('KGW_INTERNAL', `fleet host ${child.pid}: no answer to ${req.cmd} within ${REQUEST_TIMEOUT_MS} ms`, { cmd: req.cmd }));
        }, REQUEST_TIMEOUT_MS);
        pending.set(id, { resolve: (v) => resolve(v as HostAnswers[C]), reject, timer });
        child.send({ id, req } satisfies Envelope);
      });
    },
  };
  return { host, child };
}

/**
 * Starts `nodes` nodes named gw-000… round-robin over `processes` children, all against `url` in
 * `namespace`; resolves once every node's gateway has started.
 */
export async function startFleet(opts: { url: string; namespace: string; nodes: number; processes: number; repairMs?: number; leaseTtlMs?: number }): Promise<Fleet> {
  const ids = Array.from({ length: opts.nodes }, (_, i) => `gw-${String(i).padStart(3, '0')}`);
  const groups = Array.from({ length: Math.min(opts.processes, opts.nodes) }, (_, p) => ids.filter((_, i) => i % opts.processes === p));
  const spawned = groups.map(spawnHost);
  const children = spawned.map((s) => s.child);
  const kill = async (): Promise<void> => {
    await Promise.all(
      children.map((c) => {
        if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
        const gone = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGKILL');
        return gone;
      }),
    );
  };
  const drop = onCleanup('fleet child processes', kill);
  const hosts = spawned.map((s) => s.host);
  const byNode = new Map(hosts.flatMap((h) => h.nodeIds.map((id) => [id, h] as const)));
  const fleet: Fleet = {
    hosts,
    nodeIds: ids,
    hostOf(node) {
      const h = byNode.get(node);
      if (!h) throw kgwError('KGW_INTERNAL', `no fleet node ${node}`, { node });
      return h;
    },
    all: (req) => Promise.all(hosts.map((h) => h.ask(req))),
    async stop() {
      // A graceful stop first (leases released, connections quit), bounded; then nothing survives.
      await Promise.race([fleet.all({ cmd: 'stop' }).catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
      await kill();
      drop();
    },
  };
  try {
    // Hosts start in parallel (each starts its own nodes one by one).
    await Promise.all(hosts.map((h) => h.ask({ cmd: 'start', url: opts.url, namespace: opts.namespace, nodeIds: h.nodeIds, ...(opts.repairMs !== undefined ? { repairMs: opts.repairMs } : {}), ...(opts.leaseTtlMs !== undefined ? { leaseTtlMs: opts.leaseTtlMs } : {}) })));
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
