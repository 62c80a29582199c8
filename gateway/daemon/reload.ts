// SIGHUP, as knockd does it: read the config again and switch to it — but only once it has been
// checked (parsed, every file it names read, the log file opened), so a bad edit never takes a
// running gateway down: the old config keeps running and daemon.reload_failed says why, with the
// error's code. Grants live in the store (Redis, or memory + state file), so the gateway rebuilt
// on the new config re-applies every one of them; the control socket stays where it is.
import { describeError, isKnockgwError, kgwError } from '../core/errors.ts';
import type { Config } from '../config/types.ts';
import type { Logger } from '../ports.ts';
import type { LogHandle } from '../kit/log.ts';
import { readConfigFiles } from '../wiring/files.ts';

export interface ReloaderDeps {
  readonly load: () => Promise<Config>;
  readonly logger: Logger;
  readonly log: LogHandle;
  readonly current: () => { readonly config: Config };
  /** Stops the running gateway (rules and grants stay) and starts one on `config`. */
  readonly replace: (config: Config) => Promise<void>;
  /** Neither the new nor the old config could be started again: the daemon must end. */
  readonly onFatal: (err: unknown) => void;
  /** Writes or moves the pid file after a reload. */
  readonly pidFile?: (from: Config, to: Config) => Promise<void>;
}

export interface Reloader {
  /** A SIGHUP: served now, or after the first start when it is still running; several in a row run one after another. */
  request(): void;
  ready(): void;
  /** No reload from now on (the daemon is stopping); resolves when the running one is done. */
  close(): Promise<void>;
}

const logSettings = (c: Config) => ({ level: c.log.level, format: c.log.format, ...(c.log.file ? { file: c.log.file } : {}) });
const codeOf = (err: unknown): string => (isKnockgwError(err) ? err.code : 'KGW_INTERNAL');

/** What a running daemon cannot take from a reload. */
function unchangeable(from: Config, to: Config): string | undefined {
  if (from.control !== to.control) return `the control socket cannot move on a reload (${from.control} → ${to.control}): restart the daemon for that`;
  return undefined;
}

export function createReloader(deps: ReloaderDeps): Reloader {
  const { logger } = deps;
  let isReady = false;
  let pending = false;
  let closed = false;
  let chain: Promise<void> = Promise.resolve();

  const run = async (): Promise<void> => {
    const old = deps.current().config;
    logger.info({ event: 'daemon.reloading', config: old.source.path }, 'SIGHUP: reloading the config');
    let next: Config;
    try {
      next = await deps.load();
      await readConfigFiles(next, logger);
      const why = unchangeable(old, next);
      if (why) throw kgwError('KGW_CONFIG_INVALID', why, { control: next.control });
      // Opens the log file anew: after logrotate moved it, lines go to the new file.
      deps.log.reconfigure(logSettings(next));
    } catch (err) {
      logger.error({ event: 'daemon.reload_failed', code: codeOf(err), err: describeError(err), kept: old.source.path }, `reload refused, the running config stays: ${describeError(err)}`);
      return;
    }
    try {
      await deps.replace(next);
      await deps.pidFile?.(old, next);
      for (const notice of next.notices) logger.warn({ event: 'config.notice', config: next.source.path }, notice);
      logger.info({ event: 'daemon.reloaded', config: next.source.path, doors: next.doors.map((d) => d.name) }, `reloaded ${next.source.path}`);
    } catch (err) {
      logger.error({ event: 'daemon.reload_failed', code: codeOf(err), err: describeError(err), kept: old.source.path }, `the new config did not start (${describeError(err)}); going back to the running one`);
      try {
        deps.log.reconfigure(logSettings(old));
        await deps.replace(old);
        logger.warn({ event: 'daemon.reload_reverted', config: old.source.path }, 'running the previous config again');
      } catch (again) {
        deps.onFatal(again);
      }
    }
  };

  const reloader: Reloader = {
    request() {
      if (closed) {
        logger.info({ event: 'daemon.reload_skipped' }, 'SIGHUP while stopping: no reload');
        return;
      }
      if (!isReady) {
        pending = true;
        return;
      }
      chain = chain.then(run, run);
    },
    ready() {
      isReady = true;
      if (pending) {
        pending = false;
        reloader.request();
      }
    },
    close() {
      closed = true;
      return chain;
    },
  };
  return reloader;
}
