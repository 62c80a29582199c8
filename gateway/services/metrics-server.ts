// `metrics.listen`: GET /metrics over plain TCP for Prometheus, beside the root-only control
// socket (which serves the same text). Read-only, one route, no body accepted; the address was
// checked at config load (loopback unless allowRemote).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, kgwError } from '../core/errors.ts';
import type { Logger } from '../ports.ts';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(at: { host: string; port: number }, metrics: { render(): Promise<string>; readonly contentType: string }, logger: Logger): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(req.method === 'GET' ? 404 : 405, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics here\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
      (err: unknown) => {
        logger.error({ event: 'metrics.error', err: describeError(err) }, 'rendering the metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(kgwError('KGW_CONFIG_INVALID', `metrics.listen ${at.host}:${at.port} cannot be used: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, { listen: `${at.host}:${at.port}` })));
    server.listen(at.port, at.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ event: 'metrics.listening', host: at.host, port }, `Prometheus metrics on http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}/metrics`);
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
