// The chaos lab: one network namespace per member (client, 3 gateway nodes, 2 redis-servers,
// 3 sentinels), each with an eth0 on one bridge in a hub namespace, 198.18.0.0/24 as in
// test/helpers/netns.ts. Names carry the pid. `destroy()` kills every process it started and
// everything still running in its namespaces, then removes them (with their qdiscs and nft
// tables, which live and die with the namespace); it runs on exit, failure and SIGINT/SIGTERM.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { sh } from '../../test/helpers/netns.ts';

export interface Member {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  exec(cmd: string, args: readonly string[], opts?: { allowFail?: boolean }): Promise<{ stdout: string; stderr: string; code: number }>;
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
}

export interface ChaosLab {
  readonly members: ReadonlyMap<string, Member>;
  member(name: string): Member;
  destroy(): Promise<void>;
}

/** The store side (redis-servers and sentinels): the one block partitions, netem and filters name. */
export const STORE_NET = '198.18.0.32/28';

export const ADDRESSES: Readonly<Record<string, string>> = {
  client: '198.18.0.10',
  gw1: '198.18.0.21', gw2: '198.18.0.22', gw3: '198.18.0.23',
  r1: '198.18.0.33', r2: '198.18.0.34',
  s1: '198.18.0.35', s2: '198.18.0.36', s3: '198.18.0.37',
};

export async function createChaosLab(clientIps: readonly string[]): Promise<ChaosLab> {
  const tag = `${process.pid % 100000}`;
  const hub = `kgxh${tag}`;
  const created: string[] = [];
  const children = new Set<ChildProcess>();
  const members = new Map<string, Member>();
  let destroyed: Promise<void> | undefined;

  const destroy = (): Promise<void> =>
    (destroyed ??= (async () => {
      for (const c of children) c.kill('SIGKILL');
      for (const ns of [...created].reverse()) {
        const pids = await sh('ip', ['netns', 'pids', ns], { allowFail: true });
        for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
          try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
        }
        await sh('ip', ['netns', 'del', ns], { allowFail: true });
      }
    })());

  const onSignal = (signal: NodeJS.Signals): void => {
    void destroy().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A crash that never reaches destroy(): an exit handler may only do synchronous work.
  const onExit = (): void => {
    if (destroyed) return;
    for (const c of children) c.kill('SIGKILL');
    for (const ns of [...created].reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
  };
  process.once('exit', onExit);

  const makeMember = (name: string, ns: string, ip: string): Member => ({
    name, ns, ip,
    exec: (cmd, args, opts) => sh('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    spawn: (cmd, args, opts) => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
  });

  try {
    await sh('ip', ['netns', 'add', hub]);
    created.push(hub);
    await sh('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);
    for (const [i, [name, ip]] of Object.entries(ADDRESSES).entries()) {
      const ns = `kgx${name}${tag}`;
      await sh('ip', ['netns', 'add', ns]);
      created.push(ns);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const port = `kgxv${tag}x${i}`;
      await sh('ip', ['link', 'add', port, 'netns', hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await sh('ip', ['-n', hub, 'link', 'set', port, 'master', 'br0', 'up']);
      await sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      if (name === 'client') for (const extra of clientIps) await sh('ip', ['-n', ns, 'addr', 'add', `${extra}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      members.set(name, makeMember(name, ns, ip));
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    members,
    member(name) {
      const m = members.get(name);
      if (!m) throw new Error(`no lab member ${name}`);
      return m;
    },
    async destroy() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await destroy();
      process.off('exit', onExit);
    },
  };
}
