// knockd's one_time_sequences file: one sequence per line ("7000,8000:udp,9000"), blank lines
// and lines starting with '#' ignored. knockd uses the first valid line; after a successful knock
// it writes '#' over the first character of that line (so its man page recommends a leading
// space) and moves on to the next one. We mark lines the same way, except that a line starting
// with a digit gets the '#' prepended instead of losing its first digit, and the file is
// replaced atomically (temp file, fsync, rename) rather than patched in place.
import { chown, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import type { PortSpec } from '../../core/grant.ts';
import type { OneTimeSequence } from '../../core/knock-state.ts';
import { checkPortSpec, sameSequence } from '../../core/port-spec.ts';
import { kgwError, isKnockgwError } from '../../core/errors.ts';

export interface InvalidLine {
  /** 0-based, like OneTimeSequence.line. */
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

export interface OneTimeSequencesFile {
  readonly path: string;
  /** Unused sequences in file order; the first is the live one. */
  readonly entries: readonly OneTimeSequence[];
  /** Lines that are neither blank, comments nor sequences (knockd skips them as well). */
  readonly invalid: readonly InvalidLine[];
}

function parseLine(text: string): readonly PortSpec[] | string {
  const ports: PortSpec[] = [];
  for (const item of text.split(',')) {
    const p = checkPortSpec(item);
    if (typeof p === 'string') return p;
    ports.push(p);
  }
  return ports;
}

export function parseOneTimeSequences(text: string): Pick<OneTimeSequencesFile, 'entries' | 'invalid'> {
  const entries: OneTimeSequence[] = [];
  const invalid: InvalidLine[] = [];
  for (const [line, raw] of text.split('\n').entries()) {
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) continue;
    const ports = parseLine(t);
    if (typeof ports === 'string') invalid.push({ line, text: t, reason: ports });
    else entries.push({ line, ports });
  }
  return { entries, invalid };
}

/** Every port any unused line may knock on: what the capture filter must let through. */
export function oneTimePorts(entries: readonly OneTimeSequence[]): PortSpec[] {
  const out: PortSpec[] = [];
  for (const e of entries) for (const p of e.ports) if (!out.some((q) => q.port === p.port && q.proto === p.proto)) out.push(p);
  return out;
}

export async function loadOneTimeSequences(path: string): Promise<OneTimeSequencesFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw kgwError('KGW_ONE_TIME_SEQUENCES', `cannot read one_time_sequences file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file: path }, err);
  }
  return { path, ...parseOneTimeSequences(text) };
}

// Completions can arrive back to back; each read-modify-write of a file waits for the previous.
const queues = new Map<string, Promise<unknown>>();

/**
 * Comments out the line holding `used` (found again by content, as knockd does, in case the file
 * was edited since it was loaded). A sequence that is no longer in the file is an error: the
 * caller logs it, the knock itself already counted.
 */
export function markOneTimeSequenceUsed(path: string, used: OneTimeSequence): Promise<void> {
  const prev = queues.get(path) ?? Promise.resolve();
  const next = prev.catch(() => undefined).then(() => markNow(path, used));
  queues.set(path, next);
  void next.finally(() => {
    if (queues.get(path) === next) queues.delete(path);
  }).catch(() => undefined);
  return next;
}

async function markNow(path: string, used: OneTimeSequence): Promise<void> {
  try {
    // Write through a symlink to its target, not over the link.
    const real = await realpath(path);
    const text = await readFile(real, 'utf8');
    const lines = text.split('\n');
    const matches = (i: number): boolean => {
      const t = (lines[i] ?? '').trim();
      if (t === '' || t.startsWith('#')) return false;
      const ports = parseLine(t);
      return typeof ports !== 'string' && sameSequence(ports, used.ports);
    };
    let at = matches(used.line) ? used.line : -1;
    for (let i = 0; at < 0 && i < lines.length; i++) if (matches(i)) at = i;
    if (at < 0) {
      throw kgwError('KGW_ONE_TIME_SEQUENCES', `${path} no longer holds the used sequence ${used.ports.map((p) => `${p.port}:${p.proto}`).join(',')}; nothing was marked`, { file: path, line: used.line });
    }
    const line = lines[at] ?? '';
    lines[at] = /^\s/.test(line) ? `#${line.slice(1)}` : `#${line}`;
    await writeAtomically(real, lines.join('\n'));
  } catch (err) {
    if (isKnockgwError(err)) throw err;
    throw kgwError('KGW_ONE_TIME_SEQUENCES', `cannot update one_time_sequences file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file: path }, err);
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const st = await stat(path);
  const tmp = join(dirname(path), `.${basename(path)}.kgw-${process.pid}.tmp`);
  try {
    const fh = await open(tmp, 'w', st.mode & 0o7777);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    // Keep the owner when we can (root); an unprivileged daemon writes its own files anyway.
    await chown(tmp, st.uid, st.gid).catch(() => undefined);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
