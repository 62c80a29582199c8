// Entry point: parse the command line, run the command, turn any error into a coded one-line
// message and an exit status (never a stack trace for a user mistake).
import { parseCommand, USAGE, type Command } from './cli.ts';
import { findCommand, renderCommandHelp } from './cli/help.ts';
import { describeError, exitStatusFor, isKnockgwError } from './core/errors.ts';
import type { PortSpec } from './core/grant.ts';

async function run(command: Command): Promise<number> {
  switch (command.cmd) {
    case 'help': {
      const topic = findCommand(command.topic);
      process.stdout.write(topic ? renderCommandHelp(topic) : USAGE);
      return 0;
    }
    case 'version':
      process.stdout.write(`knockgw ${(await import('./commands/package-info.ts')).packageInfo().version}\n`);
      return 0;
    case 'completion': {
      const { bashCompletion, zshCompletion } = await import('./cli/completion.ts');
      process.stdout.write(command.shell === 'zsh' ? zshCompletion() : bashCompletion());
      return 0;
    }
    case 'daemon':
      return (await import('./daemon.ts')).runDaemon(command);
    case 'knock': {
      const { knock } = await import('./client/knock.ts');
      const address = await knock({
        host: command.host,
        knocks: command.knocks,
        delayMs: command.delayMs,
        ...(command.family ? { family: command.family } : {}),
        ...(command.verbose ? { onKnock: (addr: string, k: PortSpec) => void process.stdout.write(`hitting ${k.proto} ${addr}:${k.port}\n`) } : {}),
      });
      if (command.verbose) process.stdout.write(`knocked ${address}\n`);
      return 0;
    }
    case 'relay-knock':
    case 'keygen':
    case 'relay':
      return (await import('./commands/relay.ts')).runRelayCommand(command);
    case 'console':
      return (await import('./commands/console.ts')).runConsole(command);
    case 'status':
    case 'revoke':
      return (await import('./commands/control.ts')).runControlCommand(command);
    case 'ssh': {
      const { sshProxy } = await import('./client/ssh-proxy.ts');
      const { cmd: _cmd, ...opts } = command;
      await sshProxy({ ...opts, log: (line) => void process.stderr.write(`knockgw ssh: ${line}\n`) }, process.stdin, process.stdout);
      return 0;
    }
    case 'enroll':
    case 'devices':
      return (await import('./commands/devices.ts')).runDevicesCommand(command);
    case 'doctor':
      return (await import('./commands/doctor.ts')).runDoctor(command);
    case 'install':
    case 'uninstall':
      return (await import('./commands/install.ts')).runInstallCommand(command);
    case 'base':
      return (await import('./commands/install.ts')).runBase(command);
  }
}

/** Exit once everything written has left: a oneshot (`base`) or a piped `status` must not hang or lose output. */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

try {
  const command = parseCommand(process.argv.slice(2));
  exitAfterFlush(await run(command));
} catch (err) {
  process.stderr.write(`knockgw: ${describeError(err)}\n`);
  if (!isKnockgwError(err) && process.env.KNOCKGW_DEBUG) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
  // Exit now: a start-up that failed half-way may have left connections (Redis, cloud) open.
  exitAfterFlush(exitStatusFor(err));
}
