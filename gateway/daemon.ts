// `knockgw daemon`: the process around the gateway. The wiring builds it and its control socket
// from the config; this owns the signals (SIGTERM/SIGINT stop, SIGHUP reloads), the shutdown
// deadline, the pid file and the exit status.
import { hostname } from 'node:os';
import { rm, writeFile } from 'node:fs/promises';
import { loadConfig } from './config/load.ts';
import { createLogger, openLog } from './kit/log.ts';
import { findRivals, rivalsOf, rivalText } from './kit/rivals.ts';
import { describeError, kgwError } from './core/errors.ts';
import { formatPort } from './core/grant.ts';
import { systemClock } from './ports.ts';
import type { Command } from './cli.ts';
import type { Config } from './config/types.ts';
import { assembleGateway, type Assembly } from './wiring/index.ts';
import { serveControl } from './wiring/control.ts';
import { createReloader } from './daemon/reload.ts';
import { readConfigFiles } from './wiring/files.ts';

/** A stop that takes longer than this (a hung helper, a stuck cloud call) ends with exit 1. */
const SHUTDOWN_DEADLINE_MS = 10_000;

export async function runDaemon(command: Extract<Command, { cmd: 'daemon' }>): Promise<number> {
  const load = (): Promise<Config> => loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
  const first = await load();
  if (command.check) {
    await readConfigFiles(first, createLogger({ level: 'warn', format: 'pretty', destination: process.stderr }));
    process.stdout.write(`${first.source.path}: valid (${first.doors.length} door(s), ${first.spa?.access.length ?? 0} SPA stanza(s), protected ${first.protectedPorts.map(formatPort).join(',')})\n`);
    return 0;
  }
  const rival = (await findRivals(rivalsOf(first)))[0];
  if (rival) throw kgwError('KGW_RIVAL_RUNNING', rivalText(rival), { rival: rival.name, pid: rival.pid });
  const log = openLog({ level: first.log.level, format: first.log.format, ...(first.log.file ? { file: first.log.file } : {}) });
  const { logger } = log;
  const deps = { clock: systemClock, logger };
  let current: { config: Config; assembly: Assembly } = { config: first, assembly: await assembleGateway(first, deps) };
  const control = await serveControl(() => current, deps).catch(async (err: unknown) => {
    await current.assembly.release();
    throw err;
  });

  // A gateway that dies on its own ends the daemon; one replaced by a reload does not.
  let reportFatal: (err: unknown) => void = () => undefined;
  const fatal = new Promise<unknown>((resolve) => (reportFatal = resolve));
  const watch = (a: Assembly): void => void a.gateway.failed.then((err) => a === current.assembly && reportFatal(err));
  watch(current.assembly);

  const stopCurrent = async (teardown: boolean): Promise<void> => {
    await current.assembly.gateway.stop({ teardown });
    await current.assembly.release().catch((err: unknown) => logger.warn({ event: 'daemon.close_error', err: describeError(err) }, 'closing the store failed'));
  };
  // knockd's PidFile; one that cannot be written is logged, and the gateway keeps running.
  const writePid = async (config: Config): Promise<void> => {
    if (!config.pidFile) return;
    await writeFile(config.pidFile, `${process.pid}\n`).catch((err: unknown) => logger.error({ event: 'daemon.pid_file', code: 'KGW_CONFIG_INVALID', file: config.pidFile, err: describeError(err) }, `cannot write the PidFile ${config.pidFile ?? ''}: ${describeError(err)}`));
  };
  const stop = async (reason: string): Promise<void> => {
    logger.info({ event: 'daemon.stopping', signal: reason, teardown: command.teardown }, `stopping on ${reason}`);
    const deadline = setTimeout(() => {
      logger.error({ event: 'daemon.stop_timeout' }, `shutdown took longer than ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    await reloader.close();
    await control.close().catch(() => undefined);
    await stopCurrent(command.teardown);
    if (current.config.pidFile) await rm(current.config.pidFile, { force: true });
    clearTimeout(deadline);
    logger.info({ event: 'daemon.stopped' }, 'stopped');
    log.close();
  };

  const reloader = createReloader({
    load, logger, log,
    current: () => current,
    replace: async (config) => {
      await stopCurrent(false);
      const assembly = await assembleGateway(config, deps);
      current = { config, assembly };
      watch(assembly);
      await assembly.gateway.start();
    },
    onFatal: (err) => reportFatal(err),
    pidFile: async (from, to) => {
      if (from.pidFile && from.pidFile !== to.pidFile) await rm(from.pidFile, { force: true });
      await writePid(to);
    },
  });

  // Listening before the start, so a signal during a slow start still stops in order.
  let signalled: ((signal: string) => void) | undefined;
  const signal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (s: NodeJS.Signals): void => signalled?.(s);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // Until the first start is done a SIGHUP is noted and served after it, never lost or fatal.
  process.on('SIGHUP', () => reloader.request());

  const outcome = await Promise.race([
    current.assembly.gateway.start().then(() => 'ready' as const, (err: unknown) => ({ err })),
    signal.then((s) => ({ signal: s })),
    fatal.then((err) => ({ err })),
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

  const config = current.config;
  for (const notice of config.notices) logger.warn({ event: 'config.notice', config: config.source.path }, notice);
  await writePid(config);
  logger.info(
    {
      event: 'daemon.ready',
      nodeId: config.nodeId,
      config: config.source.path,
      interfaces: config.interfaces,
      firewall: config.firewall,
      store: config.store === 'memory' ? 'memory' : 'redis',
      protectedPorts: config.protectedPorts.map(formatPort),
      engines: (await current.assembly.gateway.status()).engines,
    },
    `knockgw ready: ${config.protectedPorts.map(formatPort).join(',')} protected on ${config.interfaces.join(',')}`,
  );
  reloader.ready();

  const end = await Promise.race([signal.then((s) => ({ signal: s })), fatal.then((err) => ({ err }))]);
  if ('err' in end) logger.fatal({ event: 'daemon.fatal', err: describeError(end.err) }, describeError(end.err));
  await stop('signal' in end ? end.signal : 'fatal');
  return 'signal' in end ? 0 : 1;
}
