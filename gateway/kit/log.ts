// pino JSON lines (one event per open/close/deny), or a knockd-style readable line for consoles.
import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'event', 'component']);

/** Renders one pino JSON line as `2026-11-25 12:00:00 INFO grant.open ip=… door=… — message`. */
export function prettyLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().replace('T', ' ').slice(0, 19) : '';
  const level = LEVEL_NAMES[Number(rec.level)] ?? String(rec.level);
  const fields = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const head = [time, level.padEnd(5), typeof rec.event === 'string' ? rec.event : ''].filter(Boolean).join(' ');
  const msg = typeof rec.msg === 'string' && rec.msg !== rec.event ? ` — ${rec.msg}` : '';
  return `${head}${fields ? ` ${fields}` : ''}${msg}`;
}

function prettyStream(out: NodeJS.WritableStream): DestinationStream {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l) out.write(`${prettyLine(l)}\n`);
      done();
    },
  });
}

export interface LogOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Defaults to stdout. Tests pass a stream and read events as objects. */
  readonly destination?: NodeJS.WritableStream;
  /** Also append every line to this file (knockd's LogFile, `log.file`). */
  readonly file?: string;
}

export function createLogger(opts: LogOptions): Logger {
  const out = opts.destination ?? process.stdout;
  const terminal: DestinationStream = opts.format === 'pretty' ? prettyStream(out) : out;
  const dest = opts.file
    ? pino.multistream([{ stream: terminal, level: 'trace' }, { stream: pino.destination({ dest: opts.file, append: true, mkdir: true, sync: true }), level: 'trace' }])
    : terminal;
  return pino({ level: opts.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.epochTime }, dest);
}
