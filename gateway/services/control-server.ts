// The local control endpoint: HTTP over a root-only unix socket (status, revoke, metrics).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import { kgwError, describeError, isKnockgwError } from '../core/errors.ts';
import type { Logger } from '../ports.ts';

export interface ControlHandlers {
  status(): Promise<unknown>;
  revoke(ip: string): Promise<unknown>;
  metrics(): string;
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

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(type === 'application/json' ? `${JSON.stringify(body)}\n` : String(body));
}

export async function startControlServer(path: string, handlers: ControlHandlers, logger: Logger): Promise<{ close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'GET' && req.url === '/v1/status') return send(res, 200, await handlers.status());
        if (req.method === 'GET' && req.url === '/metrics') return send(res, 200, handlers.metrics(), 'text/plain; version=0.0.4');
        if (req.method === 'POST' && req.url === '/v1/revoke') {
          const parsed: unknown = JSON.parse(await readBody(req));
          const ip = typeof parsed === 'object' && parsed !== null && 'ip' in parsed && typeof parsed.ip === 'string' ? parsed.ip : undefined;
          if (!ip) return send(res, 400, { error: { code: 'KGW_CONTROL', message: 'body must be {"ip": "<address>"}' } });
          return send(res, 200, await handlers.revoke(ip));
        }
        return send(res, 404, { error: { code: 'KGW_CONTROL', message: `no route ${req.method ?? ''} ${req.url ?? ''}` } });
      } catch (err) {
        const status = isKnockgwError(err) ? 400 : 500;
        send(res, status, { error: { code: isKnockgwError(err) ? err.code : 'KGW_INTERNAL', message: describeError(err) } });
      }
    })();
  });
  // A stale socket from a killed daemon would make listen fail with EADDRINUSE.
  await unlink(path).catch(() => undefined);
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
