// The local control endpoint: HTTP over a root-only unix socket (status, revoke, metrics, activity).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { limitServer, type ServerLimits } from '../kit/http-limits.ts';
import { kgwError, describeError, isKnockgwError } from '../core/errors.ts';
import type { Logger } from '../ports.ts';
import type { EnrollmentHandlers } from './enrollment.ts';

export interface ControlHandlers {
  status(): Promise<unknown>;
  revoke(ip: string): Promise<unknown>;
  /** Prometheus text (exposition format 0.0.4). */
  metrics(): string | Promise<string>;
  /** Knocks granted and denied per minute over the last hour (`knockgw console`'s chart). */
  activity(): unknown;
  /** With a relay: enrollment links and enrolled devices. */
  devices?: EnrollmentHandlers | undefined;
}

const MAX_BODY = 4096;

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw kgwError('KGW_CONTROL', 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw kgwError('KGW_CONTROL', 'the request body is not JSON: send {"ip": "<address>"}');
  }
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(type === 'application/json' ? `${JSON.stringify(body)}\n` : String(body));
}

/** Root's own tools on a local socket: small limits, and the whole server shares one budget. */
const CONTROL_LIMITS: ServerLimits = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, connectionsPerIp: 16 };

/**
 * Makes `path` free for a new socket: nothing there, or a stale socket left by a daemon that
 * died. A live socket means another daemon serves it; anything that is not a socket is not ours
 * to delete.
 */
async function claimSocketPath(path: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw kgwError('KGW_CONTROL', `cannot inspect ${path}: ${describeError(err)}`, { path }, err);
  });
  if (!st) return;
  if (!st.isSocket()) throw kgwError('KGW_CONTROL', `${path} exists and is not a socket: refusing to replace it; remove it or choose another --control path`, { path });
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    const done = (v: boolean): void => {
      probe.destroy();
      resolve(v);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
    probe.setTimeout(1000, () => done(true));
  });
  if (live) throw kgwError('KGW_CONTROL', `another knockgw is running on ${path} (it answers there); stop it first, or give this one another --control path`, { path });
  await unlink(path);
}

export async function startControlServer(path: string, handlers: ControlHandlers, logger: Logger): Promise<{ close(): Promise<void> }> {
  await claimSocketPath(path);
  // Check timeouts every second, not Node's default 30 s: a stuck client is let go on time.
  const server: Server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    void (async () => {
      try {
        if (req.method === 'GET' && req.url === '/v1/status') return send(res, 200, await handlers.status());
        if (req.method === 'GET' && req.url === '/v1/activity') return send(res, 200, handlers.activity());
        if (req.method === 'GET' && req.url === '/metrics') return send(res, 200, await handlers.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
        if (req.method === 'POST' && req.url === '/v1/revoke') {
          const parsed = parseJson(await readBody(req));
          const ip = typeof parsed === 'object' && parsed !== null && 'ip' in parsed && typeof parsed.ip === 'string' ? parsed.ip : undefined;
          if (!ip) return send(res, 400, { error: { code: 'KGW_CONTROL', message: 'body must be {"ip": "<address>"}' } });
          return send(res, 200, await handlers.revoke(ip));
        }
        if (req.url === '/v1/enroll' || req.url?.startsWith('/v1/devices')) {
          const d = handlers.devices;
          if (!d) return send(res, 404, { error: { code: 'KGW_CONTROL', message: 'this daemon serves no relay: add a relay: section (keysFile, listen) to its config' } });
          if (req.method === 'POST' && req.url === '/v1/enroll') return send(res, 200, await d.enroll(parseJson(await readBody(req))));
          if (req.method === 'GET' && req.url === '/v1/devices') return send(res, 200, await d.list());
          if (req.method === 'POST' && req.url === '/v1/devices/revoke') {
            const parsed = parseJson(await readBody(req));
            const id = typeof parsed === 'object' && parsed !== null && 'id' in parsed && typeof parsed.id === 'string' ? parsed.id : '';
            return send(res, 200, await d.revoke(id));
          }
        }
        return send(res, 404, { error: { code: 'KGW_CONTROL', message: `no route ${req.method ?? ''} ${req.url ?? ''}` } });
      } catch (err) {
        const status = isKnockgwError(err) ? 400 : 500;
        send(res, status, { error: { code: isKnockgwError(err) ? err.code : 'KGW_INTERNAL', message: describeError(err) } });
      }
    })();
  });
  limitServer(server, CONTROL_LIMITS, () => logger.warn({ event: 'control.busy', path }, 'too many open control connections; refusing one'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(kgwError('KGW_CONTROL', `cannot listen on ${path}: ${describeError(err)}`, { path }, err)));
    // umask-independent: the socket is root-only before anyone can connect.
    const oldMask = process.umask(0o177);
    server.listen(path, () => {
      process.umask(oldMask);
      resolve();
    });
  });
  await chmod(path, 0o600);
  logger.debug({ event: 'control.listen', path }, 'control socket ready');
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => unlink(path).catch(() => undefined)),
  };
}

/** Client side, used by `knockgw status` / `knockgw revoke`. */
export function controlRequest(path: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, headers: { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('timeout', () => req.destroy(kgwError('KGW_CONTROL', `no answer from ${path} within 5 s`)));
    req.on('error', (err) =>
      reject(kgwError('KGW_CONTROL', `cannot reach the daemon at ${path}: ${describeError(err)} (is \`knockgw daemon\` running, and are you root?)`, { path }, err)),
    );
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
