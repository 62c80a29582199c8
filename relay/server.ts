// Node runtime: @hono/node-server on ADDR:PORT, bounded against slow and greedy clients. The
// client address is the socket's peer, or — behind N trusted proxies — the Nth X-Forwarded-For
// entry from the right (each proxy appends the address it saw; everything left of that is
// whatever the client chose to send).
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono } from 'hono';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { kgwError } from '../gateway/core/errors.ts';
import { parseIp } from '../gateway/core/ip.ts';
import type { Logger } from '../gateway/ports.ts';
import { DEFAULT_LIMITS, limitServer, type ServerLimits } from '../gateway/kit/http-limits.ts';

export function nodeClientIp(trustedProxies = 0): (c: Context) => string {
  return (c) => {
    if (trustedProxies > 0) {
      const entries = (c.req.header('x-forwarded-for') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const entry = entries[entries.length - trustedProxies];
      const ip = entry === undefined ? undefined : parseIp(entry);
      if (!ip) {
        throw kgwError('KGW_RELAY_MALFORMED', `expected the client address in X-Forwarded-For from ${trustedProxies} trusted prox${trustedProxies === 1 ? 'y' : 'ies'}`, { xff: entries.join(', ') });
      }
      return ip.address;
    }
    const addr = getConnInfo(c).remote.address;
    const ip = addr === undefined ? undefined : parseIp(addr);
    if (!ip) throw kgwError('KGW_INTERNAL', `the socket has no usable peer address (${String(addr)})`);
    return ip.address;
  };
}

export interface RelayServer {
  readonly url: string;
  close(): Promise<void>;
}

function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw kgwError('KGW_CLI_USAGE', `--listen "${listen}" must be ADDR:PORT, e.g. 0.0.0.0:8080 or [::]:8080`, { listen });
  return { hostname: m[1] ?? m[2] ?? '', port };
}

export async function startRelayServer(opts: { listen: string; app: Hono; limits?: ServerLimits; logger?: Logger; tls?: { certFile: string; keyFile: string } }): Promise<RelayServer> {
  const { hostname, port } = parseListen(opts.listen);
  // TLS gives the knock page its secure context (WebCrypto exists only there).
  const tls = opts.tls ? { cert: await readFile(opts.tls.certFile), key: await readFile(opts.tls.keyFile) } : undefined;
  // Check timeouts every second, not Node's default 30 s: a slow client is let go on time.
  const server = (tls
    ? serve({ fetch: opts.app.fetch, hostname, port, createServer: createHttpsServer, serverOptions: { ...tls, connectionsCheckingInterval: 1000 } })
    : serve({ fetch: opts.app.fetch, hostname, port, serverOptions: { connectionsCheckingInterval: 1000 } })) as Server;
  limitServer(server, opts.limits ?? DEFAULT_LIMITS, (ip) => opts.logger?.debug({ event: 'relay.connection_refused', ip }, 'too many open connections from one address'));
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err: Error) => reject(kgwError('KGW_CLI_USAGE', `cannot listen on ${opts.listen}: ${err.message}`, { listen: opts.listen }, err)));
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${addr.port}`,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // Keep-alive clients must not hold shutdown open.
      server.closeAllConnections();
    }),
  };
}
