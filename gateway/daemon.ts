// `knockgw daemon`: the process around the gateway. The wiring builds it and its control socket
// from the config; this owns the signals, the shutdown deadline and the exit status.
import { hostname } from 'node:os';
import { loadConfig } from './config/load.ts';
import { createLogger } from './kit/log.ts';
import { describeError } from './core/errors.ts';
import { formatPort } from './core/grant.ts';
import { systemClock } from './ports.ts';
import type { Command } from './cli.ts';
import { assembleGateway } from './wiring/index.ts';
import { serveControl } from './wiring/control.ts';

/** A stop that takes longer than this (a hung helper, a stuck cloud call) ends with exit 1. */
const SHUTDOWN_DEADLINE_MS = 10_000;

export async function runDaemon(command: Extract<Command, { cmd: 'daemon' }>): Promise<number> {
  const config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
  const logger = createLogger({ level: config.log.level, format: config.log.format, ...(config.log.file ? { file: config.log.file } : {}) });
  const assembly = await assembleGateway(config, { clock: systemClock, logger });
  const { gateway, release } = assembly;
  const control = await serveControl(config, assembly, { clock: systemClock, logger }).catch(async (err: unknown) => {
    await release();
    throw err;
  });

  const stop = async (reason: string): Promise<void> => {
    logger.info({ event: 'daemon.stopping', signal: reason, teardown: command.teardown }, `stopping on ${reason}`);
    const deadline = setTimeout(() => {
      logger.error({ event: 'daemon.stop_timeout' }, `shutdown took longer than ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    await control.close().catch(() => undefined);
    await gateway.stop({ teardown: command.teardown });
    await release().catch((err: unknown) => logger.warn({ event: 'daemon.close_error', err: describeError(err) }, 'closing the store failed'));
    clearTimeout(deadline);
    logger.info({ event: 'daemon.stopped' }, 'stopped');
  };

  // Listening before the start, so a signal during a slow start still stops in order.
  let signalled: ((signal: string) => void) | undefined;
  const signal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (s: NodeJS.Signals): void => signalled?.(s);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  const outcome = await Promise.race([
    gateway.start().then(() => 'ready' as const, (err: unknown) => ({ err })),
    signal.then((s) => ({ signal: s })),
    gateway.failed.then((err) => ({ err })),
  ]);
  if (outcome !== 'ready') {
    if ('signal' in outcome) {
      await stop(outcome.signal);
      return 0;
    }
    logger.fatal({ event: 'daemon.fatal', err: describeError(outcome.err) }, `start-up failed: ${describeError(outcome.err)}`);
    await stop('fatal');
    throw outcome.err;
  }

  logger.info(
    {
      event: 'daemon.ready',
      nodeId: config.nodeId,
      config: config.source.path,
      interfaces: config.interfaces,
      firewall: config.firewall,
      store: config.store === 'memory' ? 'memory' : 'redis',
      protectedPorts: config.protectedPorts.map(formatPort),
      engines: (await gateway.status()).engines,
    },
    `knockgw ready: ${config.protectedPorts.map(formatPort).join(',')} protected on ${config.interfaces.join(',')}`,
  );

  const end = await Promise.race([signal.then((s) => ({ signal: s })), gateway.failed.then((err) => ({ err }))]);
  if ('err' in end) logger.fatal({ event: 'daemon.fatal', err: describeError(end.err) }, describeError(end.err));
  await stop('signal' in end ? end.signal : 'fatal');
  return 'signal' in end ? 0 : 1;
}
