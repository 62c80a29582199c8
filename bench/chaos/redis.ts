// The store side of the chaos lab: two redis-servers (primary r1, replica r2), never persisting,
// and three redis-sentinels (quorum 2) that fail over within about 2 s of a primary's death.
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosLab, Member } from './lab.ts';

export const MASTER_NAME = 'mymaster';
const REDIS_PORT = 6379;
const SENTINEL_PORT = 26379;
export const REDIS_NODES = ['r1', 'r2'] as const;
const SENTINELS = ['s1', 's2', 's3'] as const;

export interface RedisSide {
  /** The store URL every gateway node uses. */
  readonly url: string;
  /** The redis-server the sentinels name as primary now ('r1' or 'r2'). */
  primary(): Promise<string>;
  /** SIGKILL a redis-server. */
  kill(name: string): Promise<void>;
  /** Starts it again, empty, as a replica of `of` (or as a primary when `of` is itself). */
  start(name: string, of: string): Promise<void>;
  /** Waits until the sentinels name another primary than `old`; the new one's name. */
  awaitFailover(old: string, timeoutMs: number): Promise<string>;
  /** Waits until `name` answers PING. */
  awaitUp(name: string, timeoutMs: number): Promise<void>;
}

export async function startRedisSide(lab: ChaosLab, dir: string): Promise<RedisSide> {
  const procs = new Map<string, ChildProcess>();
  const byIp = new Map(REDIS_NODES.map((n) => [lab.member(n).ip, n]));

  const cli = (m: Member, port: number, args: readonly string[]) => m.exec('redis-cli', ['-h', m.ip, '-p', String(port), ...args], { allowFail: true });

  const start = async (name: string, of: string): Promise<void> => {
    const m = lab.member(name);
    const replica = of === name ? [] : ['--replicaof', lab.member(of).ip, String(REDIS_PORT)];
    const child = m.spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', m.ip, '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `${name}.rdb`, '--daemonize', 'no', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', ...replica]);
    child.stdout?.resume();
    child.stderr?.resume();
    procs.set(name, child);
    await awaitUp(name, 5000);
  };

  const awaitUp = async (name: string, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await cli(lab.member(name), REDIS_PORT, ['PING'])).stdout.trim() === 'PONG') return;
      await sleep(50);
    }
    throw new Error(`redis-server ${name} did not answer PING within ${timeoutMs} ms`);
  };

  const primary = async (): Promise<string> => {
    for (const s of SENTINELS) {
      const r = await cli(lab.member(s), SENTINEL_PORT, ['SENTINEL', 'get-master-addr-by-name', MASTER_NAME]);
      const name = byIp.get(r.stdout.split('\n')[0]?.trim() ?? '');
      if (name) return name;
    }
    throw new Error('no sentinel names a primary');
  };

  await start('r1', 'r1');
  await start('r2', 'r1');
  for (const s of SENTINELS) {
    const m = lab.member(s);
    const conf = join(dir, `${s}.conf`);
    await writeFile(conf, [
      `port ${SENTINEL_PORT}`, `bind ${m.ip}`, 'protected-mode no', `dir ${dir}`,
      `sentinel monitor ${MASTER_NAME} ${lab.member('r1').ip} ${REDIS_PORT} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
      `sentinel failover-timeout ${MASTER_NAME} 3000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`, '',
    ].join('\n'));
    const child = m.spawn('redis-sentinel', [conf]);
    child.stdout?.resume();
    child.stderr?.resume();
  }
  // Every sentinel must know the replica and its peers before the first primary kill.
  const deadline = Date.now() + 15_000;
  for (const s of SENTINELS) {
    for (;;) {
      const r = await cli(lab.member(s), SENTINEL_PORT, ['SENTINEL', 'master', MASTER_NAME]);
      const fields = r.stdout.trim().split('\n');
      const field = (k: string): string => fields[fields.indexOf(k) + 1] ?? '';
      if (field('num-slaves') === '1' && field('num-other-sentinels') === '2') break;
      if (Date.now() > deadline) throw new Error(`sentinel ${s} did not discover the replica and its peers: ${r.stdout}`);
      await sleep(200);
    }
  }

  return {
    url: `redis+sentinel://${SENTINELS.map((s) => `${lab.member(s).ip}:${SENTINEL_PORT}`).join(',')}/${MASTER_NAME}`,
    primary,
    async kill(name) {
      const child = procs.get(name);
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
    start,
    awaitUp,
    async awaitFailover(old, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const now = await primary().catch(() => old);
        if (now !== old) return now;
        await sleep(100);
      }
      throw new Error(`no failover away from ${old} within ${timeoutMs} ms`);
    },
  };
}
