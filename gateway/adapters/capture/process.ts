// The tcpdump child behind every capture source: spawned tied to the daemon, its pcap stream
// parsed as it comes, packets handed to one consumer through a bounded queue. A slow consumer
// never blocks tcpdump (the kernel would then drop silently): beyond the queue the newest
// packets are dropped and counted. Any exit of tcpdump that close() did not ask for ends the
// iterable with a coded error carrying tcpdump's stderr; the owner decides what to do.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { kgwError, type KnockgwError } from '../../core/errors.ts';
import type { Logger, PacketSource } from '../../ports.ts';
import { wallNow } from '../../kit/wall-clock.ts';
import { createPcapParser, type PcapStats } from './pcap-stream.ts';
import type { CapturedPacket } from './pcap-frames.ts';

export interface CaptureOptions {
  readonly logger: Logger;
  /** Default: `tcpdump` from PATH. */
  readonly tcpdumpPath?: string;
  /** Packets waiting for the consumer before new ones are dropped (default 65536). */
  readonly queueLimit?: number;
  /** Bytes captured per packet (default 1024: every header we read, with room for IPv6 extension headers). */
  readonly snaplen?: number;
}

export interface CaptureStats {
  /** Packets handed to the queue. */
  readonly packets: number;
  /** Packets dropped because the consumer was behind. */
  readonly dropped: number;
  readonly queued: number;
  readonly pcap: Readonly<PcapStats>;
}

export interface CaptureSource extends PacketSource {
  [Symbol.asyncIterator](): AsyncIterator<CapturedPacket>;
  /** Resolves once tcpdump is listening (knocks sent earlier are not seen); rejects if it fails first. */
  ready(): Promise<void>;
  stats(): CaptureStats;
}

const DEFAULT_QUEUE = 65_536;
const STDERR_KEEP = 8192;
const KILL_AFTER_MS = 2000;
const DROP_LOG_EVERY_MS = 10_000;

const SETPRIV = '/usr/bin/setpriv';


function onPath(tool: string): boolean {
  if (tool.includes('/')) return existsSync(tool);
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, tool)));
}

/**
 * tcpdump must not outlive a daemon killed with SIGKILL: an orphan keeps the NFLOG group bound
 * (the restarted daemon then cannot listen) and captures for nobody. setpriv (util-linux,
 * essential on Debian) sets the parent-death signal before exec'ing it. A tool that is not on
 * the PATH is spawned directly so the missing-tool error stays ENOENT.
 */
function spawnTiedToUs(tool: string, args: readonly string[]): ChildProcessByStdio<null, Readable, Readable> {
  const tie = existsSync(SETPRIV) && onPath(tool);
  return tie
    ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', tool, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

type Waiter = { resolve(r: IteratorResult<CapturedPacket>): void; reject(e: unknown): void };

export function startCapture(args: readonly string[], what: string, opts: CaptureOptions): CaptureSource {
  const log = opts.logger;
  const tool = opts.tcpdumpPath ?? 'tcpdump';
  const queueLimit = opts.queueLimit ?? DEFAULT_QUEUE;
  const parser = createPcapParser();
  let queue: CapturedPacket[] = [];
  let head = 0;
  let waiter: Waiter | undefined;
  let packets = 0;
  let dropped = 0;
  let droppedLogged = 0;
  let lastDropLog = 0;
  let stderr = '';
  let closing = false;
  let ended = false;
  /** The error the consumer still has to see; cleared once thrown. */
  let failure: KnockgwError | undefined;

  let markReady: () => void = () => undefined;
  let failReady: (e: unknown) => void = () => undefined;
  const readyP = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // ready() is optional for callers; an unobserved rejection must not crash the daemon.
  readyP.catch(() => undefined);

  let markExited: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => {
    markExited = resolve;
  });

  const child = spawnTiedToUs(tool, args);
  log.info({ event: 'capture.start', source: what, command: [tool, ...args].join(' ') }, `capturing knocks on ${what}`);

  const finish = (err: KnockgwError | undefined): void => {
    if (ended) return;
    ended = true;
    failure = err;
    failReady(err ?? kgwError('KGW_CAPTURE_FAILED', `capture on ${what} stopped before it was listening`, { source: what }));
    if (waiter && head >= queue.length) {
      const w = waiter;
      waiter = undefined;
      if (failure) {
        const e = failure;
        failure = undefined;
        w.reject(e);
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  };

  const enqueue = (p: CapturedPacket): void => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      packets++;
      w.resolve({ value: p, done: false });
      return;
    }
    if (queue.length - head >= queueLimit) {
      dropped++;
      const now = Date.now();
      if (now - lastDropLog >= DROP_LOG_EVERY_MS) {
        log.warn({ event: 'capture.drop', source: what, dropped: dropped - droppedLogged, queueLimit }, `the knock consumer is behind: dropped ${dropped - droppedLogged} packet(s) on ${what}`);
        lastDropLog = now;
        droppedLogged = dropped;
      }
      return;
    }
    packets++;
    queue.push(p);
  };

  child.stdout.on('data', (chunk: Buffer) => {
    if (ended || closing) return;
    const readAt = wallNow();
    const decoded = parser.push(chunk);
    const parsedAt = wallNow();
    for (const p of decoded) {
      p.readAt = readAt;
      p.parsedAt = parsedAt;
      enqueue(p);
    }
    if (parser.error) {
      log.error({ event: 'capture.error', source: what, code: parser.error.code, err: parser.error.message }, `the capture stream from tcpdump on ${what} is malformed`);
      finish(parser.error);
      child.kill('SIGTERM');
    }
  });
  child.stdout.on('end', () => parser.end());
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-STDERR_KEEP);
    if (/listening on /.test(stderr)) markReady();
  });
  child.on('error', (e: NodeJS.ErrnoException) => {
    const err = e.code === 'ENOENT'
      ? kgwError('KGW_TOOL_MISSING', `${tool} is not installed (or not in PATH): the pcap engine needs it (apt-get install tcpdump)`, { tool }, e)
      : kgwError('KGW_CAPTURE_FAILED', `${tool} could not be started: ${e.message}`, { tool }, e);
    log.error({ event: 'capture.error', source: what, code: err.code, err: err.message }, err.message);
    finish(err);
    // A child that never started emits no 'close'.
    if (child.pid === undefined) markExited();
  });
  child.on('close', (code, signal) => {
    markExited();
    if (closing || ended) {
      finish(undefined);
      return;
    }
    const text = stderr.trim().split('\n').filter((l) => !/^(listening on|\d+ packets? )/.test(l)).join('\n');
    const err = kgwError('KGW_CAPTURE_FAILED', `tcpdump on ${what} exited ${signal ?? String(code)}: ${text.slice(-2000) || '(no stderr)'}`, { source: what, code, signal, stderr: stderr.slice(-STDERR_KEEP) });
    log.error({ event: 'capture.error', source: what, code: err.code, exit: code, signal, stderr: text.slice(-2000) }, err.message);
    finish(err);
  });


  const close = async (): Promise<void> => {
    if (!closing) {
      closing = true;
      queue = [];
      head = 0;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
        await exited;
        clearTimeout(killer);
      }
      finish(undefined);
      failure = undefined;
      log.info({ event: 'capture.stop', source: what, packets, dropped, pcap: parser.stats }, `stopped capturing on ${what}`);
    }
    await exited;
  };

  const iterator: AsyncIterator<CapturedPacket> = {
    next() {
      if (head < queue.length) {
        const value = queue[head] as CapturedPacket;
        head++;
        if (head === queue.length) {
          queue = [];
          head = 0;
        } else if (head > 4096 && head * 2 > queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        return Promise.resolve({ value, done: false });
      }
      if (ended || closing) {
        if (failure) {
          const e = failure;
          failure = undefined;
          return Promise.reject(e);
        }
        return Promise.resolve({ value: undefined, done: true });
      }
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
      });
    },
    async return() {
      await close();
      return { value: undefined, done: true };
    },
  };

  return {
    [Symbol.asyncIterator]: () => iterator,
    ready: () => readyP,
    close,
    stats: () => ({ packets, dropped, queued: queue.length - head, pcap: parser.stats }),
  };
}
