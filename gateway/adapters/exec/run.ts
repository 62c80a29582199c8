// One way to run the firewall tools: argv (never a shell), stdin for batches, a bounded time,
// and failures turned into coded errors that carry the tool's own stderr.
import { spawn } from 'node:child_process';
import { kgwError } from '../../core/errors.ts';

export interface RunOptions {
  readonly input?: string;
  /** Killed (SIGKILL) after this long; a hung firewall tool must not hang the daemon. */
  readonly timeoutMs?: number;
  /** Run inside this network namespace (`ip netns exec`): tests and multi-namespace hosts. */
  readonly netns?: string;
  /** Resolve with the exit code instead of throwing on a non-zero exit. */
  readonly allowFail?: boolean;
}

export interface RunResult { readonly stdout: string; readonly stderr: string; readonly code: number }

export type Runner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 60_000;
// `ip netns exec` reports a missing program this way (exit 255) instead of ENOENT.
const NETNS_EXEC_MISSING = /exec of "[^"]*" failed: No such file or directory/;

export const run: Runner = (cmd, args, opts = {}) => {
  const argv = opts.netns ? ['netns', 'exec', opts.netns, cmd, ...args] : [...args];
  const program = opts.netns ? 'ip' : cmd;
  const shown = `${cmd} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    // The tool may exit before reading all of stdin (a syntax error on line 1); the exit code says why.
    child.stdin.on('error', () => undefined);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') reject(kgwError('KGW_TOOL_MISSING', `${program} is not installed (or not in PATH)`, { tool: program }, e));
      else reject(kgwError('KGW_FW_COMMAND', `${shown} could not be started: ${e.message}`, { command: shown }, e));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (timedOut) {
        reject(kgwError('KGW_FW_COMMAND', `${shown} did not finish within ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms and was killed`, { command: shown }));
        return;
      }
      const status = code ?? -1;
      if (opts.netns && status === 255 && NETNS_EXEC_MISSING.test(stderr)) {
        reject(kgwError('KGW_TOOL_MISSING', `${cmd} is not installed (or not in PATH)`, { tool: cmd }));
        return;
      }
      if (status !== 0 && !opts.allowFail) {
        reject(kgwError('KGW_FW_COMMAND', `${shown} exited ${signal ?? status}: ${stderr.slice(0, 2000) || '(no stderr)'}`, { command: shown, code: status, stderr: stderr.slice(0, 8000) }));
        return;
      }
      resolve({ stdout, stderr, code: status });
    });
    child.stdin.end(opts.input ?? '');
  });
};
