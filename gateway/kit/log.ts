// pino JSON lines (one event per open/close/deny), or a knockd-style readable line for consoles.
import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';
import { kgwError } from '../core/errors.ts';

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/**
 * pino's level as a word ("level": "warn", which Lambda's JSON log format and most pipelines
 * filter on) plus `severity`, Cloud Logging's LogSeverity (the syslog levels by name), so a relay
 * line in Cloud Run is a WARNING and not DEFAULT. pino writes "level": 40 otherwise.
 */
export const SEVERITY: Readonly<Record<string, string>> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };
const SKIP = new Set(['level', 'severity', 'time', 'pid', 'hostname', 'msg', 'event', 'component']);

// Log strings carry attacker-chosen text (client ids, doors, addresses, reasons). JSON escapes
// C0 controls, but not C1 controls or bidirectional overrides, and the pretty console turns
// JSON back into raw text: an ESC sequence or a U+202E would then rewrite the operator's
// terminal or reverse what a line appears to say. They are written as visible \u escapes.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Line breaks and tabs are fine inside JSON; a console line shows them escaped (no forged lines). */
const LINE_BREAKS = /[\t\n\r]/g;

function escape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** Renders one pino JSON line as `2026-11-25 12:00:00 INFO grant.open ip=… door=… — message`. */
export function prettyLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().replace('T', ' ').slice(0, 19) : '';
  const level = typeof rec.level === 'string' ? rec.level.toUpperCase() : (LEVEL_NAMES[Number(rec.level)] ?? String(rec.level));
  const fields = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v.replace(LINE_BREAKS, escape) : JSON.stringify(v)}`)
    .join(' ');
  const head = [time, level.padEnd(5), typeof rec.event === 'string' ? rec.event : ''].filter(Boolean).join(' ');
  const msg = typeof rec.msg === 'string' && rec.msg !== rec.event ? ` — ${rec.msg.replace(LINE_BREAKS, escape)}` : '';
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

type FileDestination = ReturnType<typeof pino.destination>;

/** The log file, opened now: a path that cannot be written is a config error at start, not a crash later. */
function logFile(path: string): FileDestination {
  try {
    return pino.destination({ dest: path, append: true, mkdir: true, sync: true });
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'EISDIR' ? 'it is a directory' : err instanceof Error ? err.message : String(err);
    throw kgwError('KGW_CONFIG_INVALID', `the log file ${path} cannot be opened for writing: ${why}`, { file: path });
  }
}

function pinoLogger(level: LogLevel, dest: DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.epochTime,
    formatters: { level: (label) => ({ level: label, severity: SEVERITY[label] ?? 'DEFAULT' }), log: (fields) => cleanFields(fields) },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? cleanText(a) : a)) as Parameters<typeof method>);
      },
    },
  }, dest);
}

export function createLogger(opts: LogOptions): Logger {
  const out = opts.destination ?? process.stdout;
  const terminal: DestinationStream = opts.format === 'pretty' ? prettyStream(out) : out;
  const dest = opts.file ? pino.multistream([{ stream: terminal, level: 'trace' }, { stream: logFile(opts.file), level: 'trace' }]) : terminal;
  return pinoLogger(opts.level, dest);
}

/** A daemon's logger for its whole life: SIGHUP gives it a new level, format or file without a new Logger. */
export interface LogHandle {
  readonly logger: Logger;
  /**
   * Switches to these settings and opens the log file anew (after logrotate moved it away);
   * a file that cannot be opened throws and leaves the old settings in place.
   */
  reconfigure(opts: Omit<LogOptions, 'destination'>): void;
  close(): void;
}

export function openLog(opts: LogOptions): LogHandle {
  const out = opts.destination ?? process.stdout;
  const open = (o: Omit<LogOptions, 'destination'>): { terminal: NodeJS.WritableStream; file?: FileDestination } => ({
    terminal: o.format === 'pretty' ? (prettyStream(out) as unknown as NodeJS.WritableStream) : out,
    ...(o.file ? { file: logFile(o.file) } : {}),
  });
  let current = open(opts);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      current.terminal.write(chunk);
      current.file?.write(chunk.toString('utf8'));
      done();
    },
  });
  const logger = pinoLogger(opts.level, sink);
  return {
    logger,
    reconfigure(o) {
      const next = open(o);
      const old = current;
      current = next;
      old.file?.end();
      logger.level = o.level;
    },
    close() {
      current.file?.end();
    },
  };
}

export function cleanText(text: string): string {
  return text.replace(UNSAFE, escape);
}

function cleanValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return cleanText(value);
  if (depth > 4 || value === null || typeof value !== 'object' || value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => cleanValue(v, depth + 1));
  return cleanFields(value as Record<string, unknown>, depth + 1);
}

function cleanFields(fields: Record<string, unknown>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[cleanText(k)] = cleanValue(v, depth);
  return out;
}
