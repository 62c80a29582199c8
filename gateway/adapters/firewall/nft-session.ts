// A long-lived `nft -i` process for small, frequent batches: starting nft costs tens of
// milliseconds (dynamic libraries, cache set-up) — more than the whole knock → open budget —
// while a line written to a running one is applied in well under a millisecond.
// One line = one netlink transaction (commands joined by ';'), so a batch stays atomic. The end
// of each batch is marked by a `describe` command (no netlink traffic, fixed output); errors come
// on stderr before it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { kgwError } from '../../core/errors.ts';
import type { Logger } from '../../ports.ts';

const MARKER_COMMAND = 'describe tcp dport';
const MARKER_OUTPUT = 'payload expression';
const BATCH_TIMEOUT_MS = 10_000;

export interface NftSession {
  /** Runs an nft script (one command per line) as one transaction. */
  run(script: string): Promise<void>;
  close(): void;
}

interface Pending { resolve(): void; reject(err: Error): void; timer: NodeJS.Timeout; stderrFrom: number }

export function createNftSession(opts: { netns?: string; logger: Logger }): NftSession {
  let child: ChildProcessWithoutNullStreams | undefined;
  let stdout = '';
  let stderr = '';
  let pending: Pending | undefined;
  let queue: Promise<void> = Promise.resolve();

  const fail = (err: Error): void => {
    const p = pending;
    pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  };

  const start = (): ChildProcessWithoutNullStreams => {
    const argv = opts.netns ? ['netns', 'exec', opts.netns, 'nft', '-i'] : ['-i'];
    // nft -i keeps a readline history in $HOME/.nft.history: a home that does not exist keeps every
    // batch of grants out of root's home (found by the package test's purge check).
    const c = spawn(opts.netns ? 'ip' : 'nft', argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: '/nonexistent' } });
    stdout = '';
    stderr = '';
    c.stdout.setEncoding('utf8');
    c.stderr.setEncoding('utf8');
    c.stdout.on('data', (d: string) => {
      stdout += d;
      if (!pending || !stdout.includes(MARKER_OUTPUT)) return;
      stdout = '';
      // nft wrote any error to stderr before it read the marker line; let that pipe drain.
      setImmediate(() => {
        const p = pending;
        if (!p) return;
        pending = undefined;
        clearTimeout(p.timer);
        const errors = stderr.slice(p.stderrFrom).trim();
        stderr = '';
        if (errors) p.reject(kgwError('KGW_FW_COMMAND', `nft rejected a batch: ${errors.slice(0, 2000)}`, { stderr: errors.slice(0, 8000) }));
        else p.resolve();
      });
    });
    c.stderr.on('data', (d: string) => {
      stderr += d;
    });
    c.stdin.on('error', () => undefined);
    c.on('error', (err) => fail(kgwError('KGW_FW_COMMAND', `nft -i could not run: ${err.message}`, {}, err)));
    c.on('exit', (code, signal) => {
      if (child === c) child = undefined;
      fail(kgwError('KGW_FW_COMMAND', `nft -i exited (${signal ?? code ?? '?'}): ${stderr.trim().slice(0, 2000)}`));
      opts.logger.debug({ event: 'nft.session_exit', code, signal }, 'nft session ended; the next batch starts a new one');
    });
    return c;
  };

  const runOne = (script: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      child ??= start();
      const c = child;
      const line = script
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
        .join('; ');
      const timer = setTimeout(() => {
        fail(kgwError('KGW_FW_COMMAND', `nft did not answer within ${BATCH_TIMEOUT_MS} ms; restarting it`));
        c.kill('SIGKILL');
      }, BATCH_TIMEOUT_MS);
      pending = { resolve, reject, timer, stderrFrom: stderr.length };
      c.stdin.write(`${line}\n${MARKER_COMMAND}\n`);
    });

  return {
    run(script) {
      const next = queue.then(() => runOne(script));
      queue = next.catch(() => undefined);
      return next;
    },
    close() {
      child?.stdin.end();
      child = undefined;
    },
  };
}
