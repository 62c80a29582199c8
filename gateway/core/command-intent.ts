// knockd.conf commands: split into argv (never a shell), and, for the iptables idiom every knockd
// guide uses, understood as what the user *meant* (open/close a port for %IP%) so it compiles
// to a native grant instead of being run literally.
//
// Running the guide's `iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT` literally appends
// the ACCEPT *after* the guide's own `-A INPUT -p tcp --dport 22 -j DROP`, so it never matches
// (the guide only works on systems where that DROP happens to come later). A native grant sits
// in knockgw's own table/chain ahead of the protected-port drop, so the intent actually works.
import { kgwError } from './errors.ts';
import type { Family } from './ip.ts';
import type { PortSpec } from './grant.ts';
import { splitWords } from './shell-words.ts';

export const IP_PLACEHOLDER = '%IP%';

export interface CompiledCommand { readonly text: string; readonly argv: readonly string[] }

/** An iptables/ip6tables command that opens or closes one port for the knocking IP. */
export interface CommandIntent {
  readonly kind: 'open' | 'close';
  readonly family: Family;
  readonly port: PortSpec;
}

// Shell words that are not programs: execFile could only fail on them (or find an unrelated binary).
const NOT_PROGRAMS = new Set(['!', '{', '}', 'if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'case', 'esac', 'while', 'until', 'for', 'in', 'function', 'exec', 'eval', 'export', 'source', '.', 'cd', 'set', 'unset', 'alias', 'exit', 'return']);

const SCRIPT_HINT = 'knockgw runs commands without a shell: put this logic in a script and call it, e.g. `command = /usr/local/sbin/knock-open %IP%`';

/** Splits a command into argv; throws KGW_CMD_INVALID (naming `where`, e.g. "/etc/knockd.conf:12") for anything a shell would interpret. */
export function compileCommand(text: string, where: string): CompiledCommand {
  const split = splitWords(text);
  if (!split.ok) {
    throw kgwError('KGW_CMD_INVALID', `${where}: command "${text}" contains ${split.reason} at column ${split.index + 1}; ${SCRIPT_HINT}`, { where, command: text, column: split.index + 1 });
  }
  const argv = split.words;
  const program = argv[0];
  if (program !== undefined) {
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(program)) {
      throw kgwError('KGW_CMD_INVALID', `${where}: command "${text}" starts with an environment assignment (${program}); ${SCRIPT_HINT}`, { where, command: text });
    }
    if (NOT_PROGRAMS.has(program)) {
      throw kgwError('KGW_CMD_INVALID', `${where}: command "${text}" starts with the shell word "${program}", not a program; ${SCRIPT_HINT}`, { where, command: text });
    }
    if (program === '') throw kgwError('KGW_CMD_INVALID', `${where}: command "${text}" has an empty program name`, { where, command: text });
  }
  return Object.freeze({ text, argv: Object.freeze([...argv]) });
}

const IPTABLES = /^(?:\/usr\/sbin\/|\/sbin\/)?(iptables|ip6tables)$/;

/** The family an iptables/ip6tables program name serves, or undefined for any other program. */
export function iptablesFamily(program: string | undefined): Family | undefined {
  const m = program === undefined ? null : /(?:^|\/)(iptables|ip6tables)$/.exec(program);
  if (!m) return undefined;
  return m[1] === 'ip6tables' ? 6 : 4;
}

/**
 * The intent of `iptables|ip6tables -A|-I INPUT [N] -s %IP% -p tcp|udp --dport N -j ACCEPT`
 * (`-D INPUT …` closes), in any option order; undefined for anything else, which then runs as
 * a command.
 */
export function commandIntent(argv: readonly string[]): CommandIntent | undefined {
  const m = IPTABLES.exec(argv[0] ?? '');
  if (!m) return undefined;
  let kind: CommandIntent['kind'] | undefined;
  let source: string | undefined;
  let proto: string | undefined;
  let match: string | undefined;
  let dport: string | undefined;
  let jump: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const next = argv[i + 1];
    const take = (): string | undefined => {
      i++;
      return next;
    };
    switch (a) {
      case '-A': case '--append': case '-I': case '--insert': case '-D': case '--delete': {
        if (kind !== undefined || take() !== 'INPUT') return undefined;
        kind = a === '-D' || a === '--delete' ? 'close' : 'open';
        // -I INPUT 1: the rule position is irrelevant to a native grant.
        if ((a === '-I' || a === '--insert') && /^\d+$/.test(argv[i + 1] ?? '')) i++;
        break;
      }
      case '-s': case '--source': case '--src': source = take(); break;
      case '-p': case '--protocol': proto = take(); break;
      case '-m': case '--match': match = take(); break;
      case '--dport': case '--destination-port': dport = take(); break;
      case '-j': case '--jump': jump = take(); break;
      // Waiting for the xtables lock changes nothing about what the rule means.
      case '-w': case '--wait': if (/^\d+$/.test(argv[i + 1] ?? '')) i++; break;
      default: return undefined;
    }
  }
  if (kind === undefined || source !== IP_PLACEHOLDER || jump !== 'ACCEPT') return undefined;
  if (proto !== 'tcp' && proto !== 'udp') return undefined;
  if (match !== undefined && match !== proto) return undefined;
  if (dport === undefined || !/^\d{1,5}$/.test(dport)) return undefined;
  const port = Number(dport);
  if (port < 1 || port > 65535) return undefined;
  return { kind, family: m[1] === 'ip6tables' ? 6 : 4, port: { port, proto } };
}
