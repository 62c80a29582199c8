// Store specs → ioredis connection options, and the redacted form used in logs and errors.
import type { RedisOptions } from 'ioredis';
import { kgwError } from '../../core/errors.ts';

/** The store URL for logs and errors: never the password. */
export function redactUrl(spec: string): string {
  return spec.replace(/\/\/([^@/]*):([^@/]*)@/, '//$1:***@');
}

function hostPort(text: string, defaultPort: number, spec: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
  const host = m?.[1] ?? m?.[2];
  if (!host || port < 1 || port > 65535) throw kgwError('KGW_CONFIG_INVALID', `bad host:port "${text}" in the store URL ${redactUrl(spec)}`, { store: redactUrl(spec) });
  return { host, port };
}

/**
 * ioredis connection options for a store spec: redis://[user:pass@]host[:port][/db],
 * rediss://… (TLS), /path/to/redis.sock or unix:///path, and
 * redis+sentinel://[user:pass@]host:port,host:port/mastername[/db][?sentinelPassword=…]
 * (the credentials are the master's).
 */
export function redisConnection(spec: string): RedisOptions {
  if (spec.startsWith('/')) return { path: spec };
  if (spec.startsWith('unix://')) return { path: spec.slice('unix://'.length) };
  const bad = (why: string): never => {
    throw kgwError('KGW_CONFIG_INVALID', `the store URL ${redactUrl(spec)} is invalid: ${why}`, { store: redactUrl(spec) });
  };
  const sentinel = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([^/?]+)(?:\/(\d+))?\/?(?:\?(.*))?$/.exec(spec);
  if (sentinel) {
    const [, auth, hosts = '', name = '', db, query] = sentinel;
    const [user = '', pass] = auth ? auth.split(':') : [];
    const params = new URLSearchParams(query ?? '');
    const sentinelPassword = params.get('sentinelPassword');
    return {
      sentinels: hosts.split(',').map((h) => hostPort(h, 26379, spec)),
      name: decodeURIComponent(name),
      ...(user ? { username: decodeURIComponent(user) } : {}),
      ...(pass !== undefined ? { password: decodeURIComponent(pass) } : {}),
      ...(db !== undefined ? { db: Number(db) } : {}),
      ...(sentinelPassword ? { sentinelPassword } : {}),
    };
  }
  if (!/^rediss?:\/\//.test(spec)) return bad('expected memory, redis://, rediss://, redis+sentinel:// or a socket path');
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    return bad('not a URL');
  }
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) bad(`"${db}" is not a database number`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== '' ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}
