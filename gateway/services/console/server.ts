// `knockgw console`: a page on loopback that shows who can reach what, read from the daemon's
// control socket, and can revoke. Reached with `ssh -L`, so the port is only loopback; and as
// every local user can reach loopback too, nothing is served without the session token the
// command prints (in the URL once, then an HttpOnly SameSite=Strict cookie). A revoke also needs
// the token in a header, which a cross-site form cannot send, and a Host that is a loopback
// name or address (a DNS-rebinding page has its own host name). Refusals are 403 and logged.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, kgwError } from '../../core/errors.ts';
import type { Logger } from '../../ports.ts';
import { CONSOLE_CSS, consoleHtml } from './page.ts';
import { CONSOLE_JS } from './app.ts';

/** The two control-socket calls the page needs; a status/activity read and a revoke. */
export interface ConsoleBackend {
  request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: string }>;
}

export interface ConsoleServer {
  readonly port: number;
  /** The URL to open (with the session token). */
  readonly url: string;
  close(): Promise<void>;
}

const COOKIE = 'knockgw_console';
const MAX_BODY = 1024;
const CSP = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join('; ');
const HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  // The first URL carries the token: never send it on.
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

/** 127.0.0.0/8, ::1 or localhost: what a browser at the near end of `ssh -L` sends as Host. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return value.join('=');
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(kgwError('KGW_CONTROL', `a console request body over ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startConsoleServer(opts: { host: string; port: number; backend: ConsoleBackend; logger: Logger; token?: string }): Promise<ConsoleServer> {
  const { backend, logger } = opts;
  const token = opts.token ?? randomBytes(32).toString('base64url');
  const send = (res: ServerResponse, status: number, body: string, type: string, extra: Record<string, string> = {}): void =>
    void res.writeHead(status, { ...HEADERS, 'Content-Type': type, ...extra }).end(body);
  const deny = (req: IncomingMessage, res: ServerResponse, reason: string): void => {
    logger.warn({ event: 'console.denied', reason, method: req.method, path: (req.url ?? '').split('?')[0], remote: req.socket.remoteAddress }, `console request refused: ${reason}`);
    send(res, 403, `refused: ${reason}\n`, 'text/plain; charset=utf-8');
  };
  const passOn = async (res: ServerResponse, method: 'GET' | 'POST', path: string, body?: unknown): Promise<void> => {
    const answer = await backend.request(method, path, body);
    send(res, answer.status, answer.body, 'application/json');
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    if (!isLoopbackHost(req.headers.host)) return deny(req, res, 'Host is not a loopback name or address');
    if (req.method === 'GET' && url.pathname === '/console.css') return send(res, 200, CONSOLE_CSS, 'text/css; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/console.js') return send(res, 200, CONSOLE_JS, 'text/javascript; charset=utf-8');
    // Browsers ask for it unasked; there is none.
    if (req.method === 'GET' && url.pathname === '/favicon.ico') return send(res, 204, '', 'image/x-icon');
    if (req.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
      if (!sameToken(url.searchParams.get('token') ?? undefined, token)) return deny(req, res, 'wrong session token');
      // Into a cookie and out of the address bar (and the history).
      return send(res, 303, '', 'text/plain', { Location: '/', 'Set-Cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/` });
    }
    if (!sameToken(cookieOf(req), token)) return deny(req, res, 'no session token (open the URL knockgw console printed)');
    if (req.method === 'GET' && url.pathname === '/') return send(res, 200, consoleHtml(token), 'text/html; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/api/status') return passOn(res, 'GET', '/v1/status');
    if (req.method === 'GET' && url.pathname === '/api/activity') return passOn(res, 'GET', '/v1/activity');
    if (req.method === 'POST' && url.pathname === '/api/revoke') {
      const header = req.headers['x-knockgw-token'];
      if (!sameToken(typeof header === 'string' ? header : undefined, token)) return deny(req, res, 'revoke without the session token header');
      let ip: unknown;
      try {
        ip = (JSON.parse(await readBody(req)) as { ip?: unknown }).ip;
      } catch {
        return send(res, 400, JSON.stringify({ error: { code: 'KGW_CONTROL', message: 'the body must be JSON {"ip": "…"}' } }), 'application/json');
      }
      if (typeof ip !== 'string') return send(res, 400, JSON.stringify({ error: { code: 'KGW_CONTROL', message: 'the body must be JSON {"ip": "…"}' } }), 'application/json');
      logger.info({ event: 'console.revoke', ip }, `revoke of ${ip} from the console`);
      return passOn(res, 'POST', '/v1/revoke', { ip });
    }
    return send(res, req.method === 'GET' ? 404 : 405, 'not here\n', 'text/plain; charset=utf-8');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ event: 'console.error', err: describeError(err) }, `the console request failed: ${describeError(err)}`);
      if (!res.headersSent) send(res, 502, JSON.stringify({ error: { code: 'KGW_CONTROL', message: describeError(err) } }), 'application/json');
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(kgwError('KGW_CLI_USAGE', `console --listen ${opts.host}:${opts.port} cannot be used: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    port,
    url: `http://${host}:${port}/?token=${token}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
