// `knockgw console`: the page server in front of the daemon's control socket, until SIGINT/SIGTERM.
import { once } from 'node:events';
import { createLogger } from '../kit/log.ts';
import { controlRequest } from '../services/control-server.ts';
import { startConsoleServer } from '../services/console/server.ts';
import type { Command } from '../cli.ts';

export async function runConsole(command: Extract<Command, { cmd: 'console' }>): Promise<number> {
  const logger = createLogger({ level: 'info', format: 'pretty', destination: process.stderr });
  // A daemon that does not answer is said now, not as an empty page.
  await controlRequest(command.control, 'GET', '/v1/status');
  const server = await startConsoleServer({
    host: command.host,
    port: command.port,
    backend: { request: (method, path, body) => controlRequest(command.control, method, path, body) },
    logger,
  });
  process.stdout.write(`knockgw console: ${server.url}\nfrom your machine: ssh -L ${server.port}:${command.host.includes(':') ? `[${command.host}]` : command.host}:${server.port} THIS-HOST, then open that URL with localhost in it\n`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await server.close();
  return 0;
}
