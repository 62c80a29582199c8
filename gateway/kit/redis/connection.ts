// One Redis connection as knockgw uses it: ioredis underneath, our backoff for reconnects, and an
// explicit status (ioredis's own has seven states; callers only ever ask "can I send now?",
// "did it go away?" and "is it over?"). Owners queue their own work while it is down, so by
// default commands fail fast instead of waiting in ioredis's offline queue.
import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay, type Backoff } from '../../core/backoff.ts';
import { kgwError, type KnockgwError } from '../../core/errors.ts';
import { redactUrl, redisConnection } from './url.ts';

export type RedisStatus = 'connecting' | 'ready' | 'down' | 'closed';

export interface RedisConnectionOptions {
  /** A store spec: redis://, rediss://, redis+sentinel://, unix:// or a socket path. */
  readonly spec: string;
  /** CLIENT SETNAME, visible in CLIENT LIST. */
  readonly name?: string;
  /**
   * true (default): no offline queue and no per-command retries: a command sent while Redis is
   * away fails at once, and the owner decides (queue, serve from cache, refuse). false: commands
   * wait for a reconnect, bounded by commandTimeoutMs.
   */
  readonly failFast?: boolean;
  readonly connectTimeoutMs?: number;
  readonly commandTimeoutMs?: number;
  /** Reconnect backoff; default 50 ms doubling to 400 ms, half jitter. */
  readonly reconnect?: Backoff;
  /** Extra ioredis options (TLS CA, sentinelPassword, …), applied last. */
  readonly redisOptions?: RedisOptions;
}

export interface RedisConnection {
  readonly client: Redis;
  /** The spec without its password, for logs and errors. */
  readonly target: string;
  status(): RedisStatus;
  /** Called on every transition to `ready` and to `down`. Returns an unsubscribe. */
  on(event: 'ready' | 'down', fn: () => void): () => void;
  /** Starts connecting and waits for the first ready, a refused password, or the timeout. */
  connect(timeoutMs: number): Promise<'ready' | 'timeout' | KnockgwError>;
  /** A second connection to the same server (a blocking XREAD needs its own). */
  duplicate(name: string): RedisConnection;
  /**
   * QUIT when ready (pending replies arrive), else drop the socket. drop: drop it at once, for a
   * connection whose only command is a blocking read (QUIT would wait out the whole BLOCK).
   */
  close(opts?: { drop?: boolean }): Promise<void>;
}

/** Low: nodes must converge within a second of Redis returning, and a retry against a Redis that is still down costs next to nothing. */
export const DEFAULT_RECONNECT: Backoff = { baseMs: 50, capMs: 400, jitter: 'half' };

const AUTH_ERROR = /WRONGPASS|NOAUTH|invalid password|invalid username-password/i;

export function isAuthError(err: unknown): boolean {
  return err instanceof Error && AUTH_ERROR.test(err.message);
}

export function createRedisConnection(opts: RedisConnectionOptions): RedisConnection {
  const reconnect = opts.reconnect ?? DEFAULT_RECONNECT;
  const failFast = opts.failFast ?? true;
  const client = new Redis({
    ...redisConnection(opts.spec),
    lazyConnect: true,
    ...(failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : { maxRetriesPerRequest: 1 }),
    ...(opts.name ? { connectionName: opts.name } : {}),
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
    // Short: after a silent cut heals, the next attempt (not a SYN retransmit) must be soon.
    connectTimeout: opts.connectTimeoutMs ?? 1000,
    retryStrategy: (times) => backoffDelay(reconnect, times),
    sentinelRetryStrategy: (times) => backoffDelay(reconnect, times),
    // After a Sentinel failover the old master turns replica: reconnect to find the new one.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    ...opts.redisOptions,
  });
  const target = redactUrl(opts.spec);
  let status: RedisStatus = 'connecting';
  const subs = { ready: new Set<() => void>(), down: new Set<() => void>() };
  const emit = (event: 'ready' | 'down'): void => {
    for (const fn of subs[event]) fn();
  };

  client.on('ready', () => {
    if (status === 'closed') return;
    status = 'ready';
    emit('ready');
  });
  client.on('close', () => {
    if (status !== 'ready') return;
    status = 'down';
    emit('down');
  });
  // Without a listener ioredis prints every error; owners log what they care about through on().
  client.on('error', () => undefined);

  return {
    client,
    target,
    status: () => status,
    on(event, fn) {
      subs[event].add(fn);
      return () => void subs[event].delete(fn);
    },
    connect(timeoutMs) {
      return new Promise((resolve) => {
        const done = (r: 'ready' | 'timeout' | KnockgwError): void => {
          clearTimeout(timer);
          client.off('ready', onReady);
          client.off('error', onError);
          resolve(r);
        };
        const onReady = (): void => done('ready');
        const onError = (err: Error): void => {
          if (isAuthError(err)) done(kgwError('KGW_STORE_AUTH', `Redis at ${target} refused the credentials (${err.message}); check the password in the store URL`, { target }, err));
        };
        const timer = setTimeout(() => done('timeout'), timeoutMs);
        client.on('ready', onReady);
        client.on('error', onError);
        if (client.status === 'ready') done('ready');
        else if (client.status === 'wait') client.connect().catch(() => undefined);
      });
    },
    duplicate(name) {
      return createRedisConnection({ ...opts, name });
    },
    async close({ drop = false } = {}) {
      const wasReady = client.status === 'ready';
      status = 'closed';
      if (wasReady && !drop) await client.quit().catch(() => client.disconnect());
      else client.disconnect();
    },
  };
}
