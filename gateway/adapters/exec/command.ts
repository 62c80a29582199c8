// Runs a knockd.conf command for a knocking address: the address is validated first and only
// then substituted for %IP% in argv elements, and the program runs without a shell, so nothing
// in a packet can become shell syntax or an extra option. Bounded in time and output.
import { spawn } from 'node:child_process';
import { kgwError } from '../../core/errors.ts';
import { grantableIp, type Family } from '../../core/ip.ts';
import type { Logger } from '../../ports.ts';
import type { CommandSpec } from '../../core/types.ts';
import { IP_PLACEHOLDER, iptablesFamily } from '../../core/command-intent.ts';

export interface CommandResult { readonly code: number; readonly stdout: string; readonly stderr: string }

export interface RunCommandOptions {
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** After SIGTERM at the deadline, SIGKILL follows this much later. */
  readonly killGraceMs?: number;
}

const MAX_OUTPUT = 64 * 1024;

/** The argv to run for this family, before substitution: knockd's `_6` command, or its fallback to the IPv4 one. */
export function argvFor(spec: CommandSpec, family: Family): readonly string[] {
  const argv = family === 6 && spec.argv6 !== undefined ? spec.argv6 : spec.argv;
  const serves = iptablesFamily(argv[0]);
  if (serves !== undefined && serves !== family) {
    const missing = family === 6 ? 'command_6 / start_command_6 / stop_command_6 with ip6tables' : 'command / start_command / stop_command with iptables';
    throw kgwError(
      'KGW_CMD_INVALID',
      `"${argv.join(' ')}" only handles IPv${serves} addresses and cannot run for an IPv${family} knock; add ${missing} to the door (an empty value means: do nothing for IPv${family})`,
      { command: spec.text, family },
    );
  }
  return argv;
}

/**
 * Runs the command with %IP% replaced by `ip`. Resolves with the exit code (non-zero exits are
 * logged and returned); throws KGW_IP_* for an address that must not be granted,
 * KGW_CMD_INVALID when the command cannot serve this family, and KGW_CMD_FAILED when the
 * program cannot start, exceeds the time limit or dies by a signal.
 */
export async function runCommand(spec: CommandSpec, ip: string, family: Family, opts: RunCommandOptions): Promise<CommandResult> {
  const addr = grantableIp(ip);
  if (addr.family !== family) {
    throw kgwError('KGW_IP_INVALID', `${addr.address} is an IPv${addr.family} address, not IPv${family}`, { ip: addr.address, family });
  }
  const template = argvFor(spec, family);
  const [program, ...args] = template.map((a) => a.replaceAll(IP_PLACEHOLDER, addr.address));
  const log = opts.logger;
  if (program === undefined) {
    log.debug({ event: 'command.skip', ip: addr.address, family }, 'no command for this family');
    return { code: 0, stdout: '', stderr: '' };
  }
  log.debug({ event: 'command.run', argv: [program, ...args] }, 'running command');
  const started = Date.now();

  return new Promise<CommandResult>((resolve, reject) => {
    // Its own process group, so a deadline kills the script and everything it started.
    const child = spawn(program, args, { shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const append = (buf: string, chunk: Buffer): string => (buf.length >= MAX_OUTPUT ? buf : (buf + chunk.toString('utf8')).slice(0, MAX_OUTPUT));
    child.stdout.on('data', (c: Buffer) => (stdout = append(stdout, c)));
    child.stderr.on('data', (c: Buffer) => (stderr = append(stderr, c)));
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    const deadline = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 2000);
    }, opts.timeoutMs);
    const done = (): void => {
      clearTimeout(deadline);
      if (killTimer) clearTimeout(killTimer);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      done();
      const why = err.code === 'ENOENT' ? 'no such program' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(kgwError('KGW_CMD_FAILED', `cannot run ${program}: ${why} (command "${spec.text}")`, { program, errno: err.code }, err));
    });
    child.on('close', (code, signal) => {
      done();
      const ms = Date.now() - started;
      if (timedOut) {
        reject(kgwError('KGW_CMD_FAILED', `${program} did not finish within ${opts.timeoutMs} ms and was killed (command "${spec.text}")`, { program, timeoutMs: opts.timeoutMs }));
      } else if (code === null) {
        reject(kgwError('KGW_CMD_FAILED', `${program} was killed by ${signal ?? 'a signal'} (command "${spec.text}")`, { program, signal }));
      } else {
        const level = code === 0 ? 'info' : 'warn';
        log[level]({ event: 'command.exit', program, code, ms, ...(code === 0 ? {} : { stderr: stderr.slice(0, 500) }) }, code === 0 ? 'command done' : 'command exited non-zero');
        resolve({ code, stdout, stderr });
      }
    });
  });
}
