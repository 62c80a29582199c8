// The man pages, generated from what the program itself uses, so they cannot drift: knockgw(8)
// from the usage text `knockgw --help` prints and the error table, knockgw.yaml(5) from the zod
// schema that validates the config (every key, its type, default and limits).
import { z } from 'zod';
import { USAGE } from '../../gateway/cli.ts';
import { ERROR_CODES, exitStatusFor, kgwError, type ErrorCode } from '../../gateway/core/errors.ts';
import { yamlConfigSchema } from '../../gateway/config/schema.ts';

/** roff-safe text: backslashes doubled, a leading . or ' cannot start a request, dashes are minus signs. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/…/g, '...').replace(/^([.'])/gm, '\\&$1');
}

const header = (name: string, section: number, version: string, date: string): string =>
  `.TH ${name.toUpperCase()} ${section} "${date}" "knockgw ${version}" "knockgw"\n`;

/** The usage text's command lines: one entry per `knockgw CMD …`, continuation lines joined. */
export function usageCommands(usage: string = USAGE): { name: string; synopsis: string; note?: string }[] {
  const out: { name: string; synopsis: string; note?: string }[] = [];
  for (const raw of usage.split('\n').slice(1)) {
    const line = raw.trim();
    if (line.startsWith('knockgw ')) {
      const m = /^(.*?)\s{2,}\((.*)\)$/.exec(line);
      const synopsis = (m?.[1] ?? line).trim();
      out.push({ name: synopsis.split(/\s+/)[1] ?? '', synopsis, ...(m?.[2] ? { note: m[2] } : {}) });
    } else if (line.startsWith('(')) {
      const last = out.at(-1);
      if (last) out[out.length - 1] = { ...last, note: [last.note, line.replace(/^\(|\)$/g, '')].filter(Boolean).join('; ') };
    } else if (line !== '') {
      const last = out.at(-1);
      if (last) out[out.length - 1] = { ...last, synopsis: `${last.synopsis} ${line}` };
    }
  }
  return out;
}

export function knockgwManPage(version: string, date: string): string {
  const commands = usageCommands();
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];
  return [
    header('knockgw', 8, version, date),
    '.SH NAME\nknockgw \\- port\\-knocking gateway (knockd and fwknopd drop\\-in): nftables/iptables, IPv4+IPv6, HA, cloud firewalls, NAT relay\n',
    '.SH SYNOPSIS\n',
    ...commands.map((c) => `.B knockgw\n${roff(c.synopsis.replace(/^knockgw /, ''))}\n.br\n`),
    '.SH DESCRIPTION\n',
    'knockgw keeps protected ports (SSH) closed and opens them for one client address after a\nproof: a knock sequence (knockd.conf or YAML doors), an SPA packet (fwknop 2.x) or a knock\nrelayed for a client behind NAT. Grants expire in the kernel, so they hold even if the daemon\ndies. The configuration is described in\n.BR knockgw.yaml (5);\nan existing\n.I /etc/knockd.conf\nloads unchanged.\n',
    '.SH COMMANDS\n',
    ...commands.map((c) => `.TP\n.B ${roff(c.name)}\n${roff(c.synopsis)}${c.note ? `\n.br\n${roff(c.note)}` : ''}\n`),
    '.SH FILES\n.TP\n.I /etc/knockgw/knockgw.yaml\nthe daemon\'s configuration (the package ships it without a door: nothing starts)\n.TP\n.I /var/lib/knockgw/state.json\nthe grants of the memory store, re\\-applied at start\n.TP\n.I /usr/lib/systemd/system/knockgw.service, knockgw\\-base.service, knockgw\\-relay.service\nthe daemon, the base rules at boot, the stand\\-alone relay\n',
    '.SH EXIT STATUS\n.TP\n.B 0\nsuccess\n.TP\n.B 64\nthe command line cannot run\n.TP\n.B 78\nthe configuration cannot run\n.TP\n.B 1\nanything else\n.PP\nEvery error names its code:\n',
    ...codes.map((code) => `.TP\n.B ${roff(code)}\n${roff(ERROR_CODES[code])} (exit ${exitStatusFor(kgwError(code, ''))})\n`),
    '.SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\nstop; the rules and grants stay in the kernel unless the daemon runs with \\-\\-teardown\n',
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
