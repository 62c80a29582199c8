// A real, throwaway redis-server (the Debian package) on a free 127.0.0.1 port and a unix socket
// in a temp dir. Killed in t.after, and on process exit if the test runner dies first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../gateway/kit/log.ts';
import type { Logger } from '../../gateway/ports.ts';

export interface RedisServerOptions {
  readonly password?: string;
  /** Persist through restart() (appendonly, fsync always); default: no persistence at all. */
  readonly persist?: boolean;
}

export interface RedisServer {
  readonly port: number;
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string;
  readonly socketPath: string;
  readonly dir: string;
  readonly running: boolean;
  /** SIGTERM (a clean shutdown) or SIGKILL; resolves once the process is gone. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts again on the same port and socket. */
  start(): Promise<void>;
  restart(): Promise<void>;
}

interface TestContext {
  skip(msg: string): void;
  after(fn: () => Promise<void> | void): void;
}

/** Outside CI a missing redis-server skips (with the reason); in CI it fails. */
export function requireRedisServer(t: { skip(msg: string): void }): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (probe.status === 0) return true;
  const why = 'needs redis-server on PATH (Debian: apt-get install redis-server)';
  if (process.env.CI) throw new Error(`CI is set but ${why}`);
  t.skip(why);
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function waitReady(child: ChildProcess, timeoutMs: number, marker = 'Ready to accept connections'): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => finish(new Error(`redis-server not ready (${marker}) after ${timeoutMs} ms: ${out.slice(-500)}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes(marker)) finish();
    };
    const onExit = (code: number | null): void => finish(new Error(`redis-server exited (${code}) before ready: ${out.slice(-500)}`));
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining so a chatty server never blocks on a full pipe.
      child.stdout?.resume();
      if (err) reject(err);
      else resolve();
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Starts redis-server, or returns undefined when the test was skipped for lack of it. */
export async function startRedis(t: TestContext, opts: RedisServerOptions = {}): Promise<RedisServer | undefined> {
  if (!requireRedisServer(t)) return undefined;
  const dir = await mkdtemp(join(tmpdir(), `kgw-redis-${process.pid}-`));
  const port = await freePort();
  const socketPath = join(dir, 'redis.sock');
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--unixsocket', socketPath, '--unixsocketperm', '700',
    '--dir', dir, '--save', '', '--daemonize', 'no', '--logfile', '',
    ...(opts.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(opts.password ? ['--requirepass', opts.password] : []),
  ];
  let child: ChildProcess | undefined;
  const killOnExit = (): void => void child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    if (child) return;
    const c = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    child = c;
    c.once('exit', () => {
      if (child === c) child = undefined;
    });
    await waitReady(c, 5000);
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
    const c = child;
    if (!c) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    await gone;
  };

  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  const server: RedisServer = {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    socketPath,
    dir,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
  };
  t.after(async () => {
    await stop('SIGKILL');
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  });
  await start();
  return server;
}

export interface CapturedLog {
  readonly logger: Logger;
  /** Every record so far, parsed. */
  readonly records: Record<string, unknown>[];
  events(name: string): Record<string, unknown>[];
}

/** A pino logger whose records tests read as objects (not from stdout). */
export function captureLogger(level: 'debug' | 'info' | 'warn' = 'debug'): CapturedLog {
  const records: Record<string, unknown>[] = [];
  let pending = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l) records.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger({ level, format: 'json', destination });
  return { logger, records, events: (name) => records.filter((r) => r.event === name) };
}

/** A redis-server in Sentinel mode monitoring `master` as "mymaster" (on `port`, default a free one); killed in t.after. */
export async function startSentinel(t: TestContext, master: RedisServer, port?: number): Promise<{ url: string }> {
  port ??= await freePort();
  const conf = join(master.dir, `sentinel-${port}.conf`);
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${master.dir}`, `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`, 'sentinel down-after-milliseconds mymaster 1000', ''].join('\n'));
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  t.after(async () => {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    if (child.exitCode === null) await gone;
    process.off('exit', killOnExit);
  });
  await waitReady(child, 5000, '+monitor master mymaster');
  return { url: `redis+sentinel://127.0.0.1:${port}/mymaster` };
}
