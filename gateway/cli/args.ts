// The small parsers every sub-command shares. A bad argument is a KGW_CLI_USAGE error with one
// line naming it; parseCommand adds the command's usage line.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { kgwError } from '../core/errors.ts';
import { parseKnockArg } from '../client/knock.ts';
import type { PortSpec } from '../core/grant.ts';

/** A knock port from the command line; a bad one is a usage error (exit 64), like any bad argument. */
export function knockArg(text: string, proto: PortSpec['proto']): PortSpec {
  try {
    return parseKnockArg(text, proto);
  } catch (err) {
    return usage(err instanceof Error ? err.message.replace(/^KGW_\w+: /, '') : String(err));
  }
}

/** One line naming the problem; parseCommand adds the command's usage line and where to look. */
export function usage(message: string): never {
  throw kgwError('KGW_CLI_USAGE', message);
}

/**
 * `--max-staleness -5`: parseArgs refuses a value that starts with "-" as ambiguous and says
 * nothing of the range; a negative number after an option that takes a value is its value, so
 * the option's own check names what is allowed.
 */
function joinNegatives(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const next = args[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: joinNegatives(args, options), options, allowPositionals, strict: true });
  } catch (err) {
    // parseArgs explains how to pass a positional that starts with "-": not what went wrong.
    return usage((err instanceof Error ? err.message : String(err)).replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** "90s", "15m", "2h": an enrollment link's lifetime in ms. */
export function parseDuration(text: string, flag = '--expires'): number {
  const m = /^(\d{1,5})(s|m|h)$/.exec(text);
  if (!m) usage(`${flag} "${text}" must be a number with s, m or h, e.g. 15m`);
  return Number(m?.[1]) * ({ s: 1000, m: 60_000, h: 3_600_000 } as const)[(m?.[2] ?? 's') as 's' | 'm' | 'h'];
}

export function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  return usage(`--${name} must be one of ${allowed.join(', ')} (got "${value}")`);
}
