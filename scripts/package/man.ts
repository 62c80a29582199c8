// The man pages, generated from what the program itself uses, so they cannot drift: knockgw(8)
// from the help table that `knockgw CMD --help` prints (gateway/cli/help.ts) and the error table, knockgw.yaml(5) from the zod
// schema that validates the config (every key, its type, default and limits).
import { z } from 'zod';
import { COMMANDS, GLOBAL_OPTIONS, type CommandHelp, type OptionHelp } from '../../gateway/cli/help.ts';
import { DEFAULT_CONFIGS } from '../../gateway/core/config-paths.ts';
import { ERROR_CODES, exitStatusFor, kgwError, type ErrorCode } from '../../gateway/core/errors.ts';
import { yamlConfigSchema } from '../../gateway/config/schema.ts';

/** roff-safe text: backslashes doubled, a leading . or ' cannot start a request, dashes are minus signs. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/…/g, '...').replace(/^([.'])/gm, '\\&$1');
}

const header = (name: string, section: number, version: string, date: string): string =>
  `.TH ${name.toUpperCase()} ${section} "${date}" "knockgw ${version}" "knockgw"\n`;

/** One entry per synopsis line of the help table (gateway/cli/help.ts), with the command's summary. */
export function usageCommands(): { name: string; synopsis: string; note?: string }[] {
  return COMMANDS.flatMap((c) => c.synopsis.map((line) => ({ name: c.name, synopsis: `knockgw ${line}`, note: c.summary })));
}

const optionLabel = (o: OptionHelp): string => `${o.short ? `-${o.short}, ` : ''}--${o.long}${o.arg ? ` ${o.arg}` : ''}`;

/** A command's entry: synopsis, summary, every option of the help table, its notes. */
function commandSection(c: CommandHelp): string {
  const options = c.options.map((o) => `.TP\n.B ${roff(optionLabel(o))}\n${roff(o.text)}${o.choices ? ` (${roff(o.choices.join(' | '))})` : ''}\n`);
  return [
    `.SS ${roff(c.name)}\n`,
    ...c.synopsis.map((l) => `.B knockgw\n${roff(l.replace(/^\S+\s*/, `${c.name} `).trim())}\n.br\n`),
    `${roff(c.summary)}\n`,
    ...(options.length ? ['.RS\n', ...options, '.RE\n'] : []),
    ...(c.notes ?? []).map((n) => `.PP\n${roff(n)}\n`),
  ].join('');
}

export function knockgwManPage(version: string, date: string): string {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];
  return [
    header('knockgw', 8, version, date),
    '.SH NAME\nknockgw \\- port\\-knocking gateway (knockd and fwknopd drop\\-in): nftables/iptables, IPv4+IPv6, HA, cloud firewalls, NAT relay\n',
    '.SH SYNOPSIS\n',
    ...COMMANDS.flatMap((c) => c.synopsis).map((l) => `.B knockgw\n${roff(l)}\n.br\n`),
    '.SH DESCRIPTION\n',
    'knockgw keeps protected ports (SSH) closed and opens them for one client address after a\nproof: a knock sequence (knockd.conf or YAML doors), an SPA packet (fwknop 2.x) or a knock\nrelayed for a client behind NAT. Grants expire in the kernel, so they hold even if the daemon\ndies. The configuration is described in\n.BR knockgw.yaml (5);\nan existing\n.I /etc/knockd.conf\nloads unchanged.\n',
    '.SH OPTIONS\nEvery command takes\n',
    ...GLOBAL_OPTIONS.map((o) => `.TP\n.B ${roff(optionLabel(o))}\n${roff(o.text)}\n`),
    '.SH COMMANDS\n',
    ...COMMANDS.map(commandSection),
    `.SH FILES\n.TP\n.I ${roff(DEFAULT_CONFIGS.join(', '))}\nread in this order when no config option is given (the package's YAML ships without a door: nothing starts)\n.TP\n.I /var/lib/knockgw/state.json\nthe grants of the memory store, re\\-applied at start\n.TP\n.I /usr/lib/systemd/system/knockgw.service, knockgw\\-base.service, knockgw\\-relay.service\nthe daemon, the base rules at boot, the stand\\-alone relay\n`,
    '.SH EXIT STATUS\n.TP\n.B 0\nsuccess\n.TP\n.B 64\nthe command line cannot run\n.TP\n.B 78\nthe configuration cannot run\n.TP\n.B 1\nanything else\n.PP\nEvery error names its code:\n',
    ...codes.map((code) => `.TP\n.B ${roff(code)}\n${roff(ERROR_CODES[code])} (exit ${exitStatusFor(kgwError(code, ''))})\n`),
    '.SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\nstop; the rules and grants stay in the kernel unless the daemon runs with \\-\\-teardown\n.TP\n.B SIGHUP\nreload the configuration: checked first (one that does not load keeps the running one and is logged as daemon.reload_failed), the log file reopened, every grant kept\n',
    '.SH SEE ALSO\n.BR knockgw.yaml (5),\n.BR knockd (1),\n.BR fwknopd (8),\n.BR nft (8),\n.BR iptables (8)\n',
  ].join('');
}

type JsonSchema = {
  type?: string | string[]; properties?: Record<string, JsonSchema>; items?: JsonSchema; anyOf?: JsonSchema[]; required?: string[];
  default?: unknown; enum?: unknown[]; minimum?: number; maximum?: number; minItems?: number; maxItems?: number; minLength?: number; maxLength?: number; pattern?: string; description?: string;
};

/** Every key of the config, depth first, with its path (doors[].name) and its schema. */
export function configKeys(schema: JsonSchema = z.toJSONSchema(yamlConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema, prefix = ''): { path: string; schema: JsonSchema; required: boolean }[] {
  const out: { path: string; schema: JsonSchema; required: boolean }[] = [];
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${key}`;
    out.push({ path, schema: child, required: schema.required?.includes(key) ?? false });
    const objects = [child, child.items, ...(child.anyOf ?? []), ...(child.anyOf ?? []).map((a) => a.items)].filter((s): s is JsonSchema => s?.properties !== undefined);
    for (const obj of objects.slice(0, 1)) out.push(...configKeys(obj, `${path}${obj === child ? '' : '[]'}.`));
  }
  return out;
}

function typeOf(s: JsonSchema): string {
  if (s.anyOf) return s.anyOf.map(typeOf).join(' or ');
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  const t = Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
  return t === 'array' && s.items ? `list of ${typeOf(s.items)}` : t;
}

function limitsOf(s: JsonSchema): string[] {
  const out: string[] = [];
  const range = (min: number | undefined, max: number | undefined, unit: string): string | undefined =>
    min !== undefined && max !== undefined ? `${min} to ${max}${unit}` : min !== undefined ? `at least ${min}${unit}` : max !== undefined ? `at most ${max}${unit}` : undefined;
  for (const r of [range(s.minimum, s.maximum, ''), range(s.minItems, s.maxItems, ' items'), range(s.minLength, s.maxLength, ' characters')]) if (r) out.push(r);
  if (s.pattern) out.push(`matching ${s.pattern}`);
  for (const a of s.anyOf ?? []) out.push(...limitsOf(a));
  return out;
}

export function configManPage(version: string, date: string): string {
  const keys = configKeys();
  return [
    header('knockgw.yaml', 5, version, date),
    '.SH NAME\nknockgw.yaml \\- configuration of the knockgw port\\-knocking gateway\n',
    '.SH DESCRIPTION\nThe YAML file the daemon reads with \\-\\-config (the package\'s is\n.IR /etc/knockgw/knockgw.yaml ).\nEvery object is strict: an unknown or misspelt key is an error (exit 78) naming the file and\nthe line, never a silently ignored line. Durations are in seconds. A knockd.conf can be used\ninstead (\\-\\-knockd\\-config).\n',
    '.SH KEYS\nEach key with its type, whether it is required, its default and its limits.\n',
    ...keys.map(({ path, schema, required }) => {
      const facts = [typeOf(schema), required ? 'required' : undefined, schema.default !== undefined ? `default ${JSON.stringify(schema.default)}` : undefined, ...limitsOf(schema)].filter(Boolean).join('; ');
      return `.TP\n.B ${roff(path)}\n${roff(facts)}${schema.description ? `\n.br\n${roff(schema.description)}` : ''}\n`;
    }),
    '.SH EXAMPLE\n.nf\n',
    roff('doors:\n  - name: openSSH\n    sequence: ["7000", "8000", "9000:udp"]\n    seqTimeout: 5\n    tcpFlags: syn\n    open: ["22/tcp"]\n    ttl: 3600\n    closeSequence: ["9000", "8000", "7000"]\n'),
    '.fi\n.SH SEE ALSO\n.BR knockgw (8),\n.BR knockd (1)\n',
  ].join('');
}
