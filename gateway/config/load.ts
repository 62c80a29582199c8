// Reads the YAML config or /etc/knockd.conf, applies command-line overrides and defaults, and
// returns the deep-frozen Config every module runs on. Errors name the file and the line, say
// what is wrong and what would be right; the CLI prints err.message, never a stack.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { isKnockgwError, kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import { checkPortSpec, knownKeysAt, yamlConfigSchema } from './schema.ts';
import { parseKnockdConf } from './knockd-conf.ts';
import { compileFwknop } from './fwknop-conf.ts';
import { addSpa, compileYamlSpa } from './spa-config.ts';
import type { Config } from './types.ts';
import type { Engine, FirewallKind } from '../core/engines.ts';
import type { Door, KnockSequence } from '../core/types.ts';

export const DEFAULTS = {
  /** knockd's default too. */
  interface: 'eth0',
  engine: 'auto',
  firewall: 'nftables',
  store: 'memory',
  stateFile: '/var/lib/knockgw/state.json',
  control: '/run/knockgw.sock',
  log: { level: 'info', format: 'json' },
  // A legitimate knock is 3-5 packets in well under a second, plus SYN retransmits; 20/s
  // sustained with a burst of 40 leaves several times that for `knock -d 0` and for users
  // sharing one NAT address, while a single flooding source is cut to 20 packets/s.
  knockRateLimit: { perSecond: 20, burst: 40 },
  maxTrackedSources: 65536,
  protectedPorts: [{ port: 22, proto: 'tcp' }],
} as const;

export interface ConfigOverrides {
  readonly interface?: string | readonly string[];
  readonly engine?: Engine;
  readonly firewall?: FirewallKind;
  readonly store?: string;
  readonly stateFile?: string;
  readonly nodeId?: string;
  readonly control?: string;
  readonly logFormat?: 'json' | 'pretty';
  /** Replaces the protected ports (`--ports 22,2222`). */
  readonly ports?: readonly PortSpec[];
}

export interface LoadInput {
  readonly yamlPath?: string;
  readonly knockdPath?: string;
  /** fwknopd's access.conf (SPA doors), alone or next to one of the above. */
  readonly fwknopAccessPath?: string;
  /** fwknopd.conf (port, packet age); only with fwknopAccessPath. */
  readonly fwknopConfigPath?: string;
  readonly overrides?: ConfigOverrides;
  readonly hostname: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function uniquePorts(ports: readonly PortSpec[]): PortSpec[] {
  const out: PortSpec[] = [];
  for (const p of ports) if (!out.some((o) => o.port === p.port && o.proto === p.proto)) out.push({ port: p.port, proto: p.proto });
  return out;
}

function finish(cfg: Mutable<Config>): Config {
  if (!NODE_ID.test(cfg.nodeId)) {
    throw kgwError('KGW_CONFIG_INVALID', `the hostname "${cfg.nodeId}" cannot serve as the node id; set nodeId in the config or pass --node-id`, { nodeId: cfg.nodeId });
  }
  return deepFreeze(cfg);
}

function base(source: Config['source'], nodeId: string): Mutable<Config> {
  return {
    source,
    interfaces: [DEFAULTS.interface],
    engine: DEFAULTS.engine,
    firewall: DEFAULTS.firewall,
    store: DEFAULTS.store,
    stateFile: DEFAULTS.stateFile,
    nodeId,
    control: DEFAULTS.control,
    log: { ...DEFAULTS.log },
    protectedPorts: [...DEFAULTS.protectedPorts],
    doors: [],
    sequences: [],
    cloud: {},
    knockRateLimit: { ...DEFAULTS.knockRateLimit },
    maxTrackedSources: DEFAULTS.maxTrackedSources,
  };
}

// ---- YAML ------------------------------------------------------------------------------------

function pathText(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('') || '(top level)';
}

function lineOf(doc: Document, lc: LineCounter, path: readonly PropertyKey[], key?: string): number {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (key !== undefined && n === path.length && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (pair && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
    }
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return 1;
}

function closest(word: string, options: readonly string[]): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0] ?? 0;
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = d[j] ?? 0;
        d[j] = Math.min(cur + 1, (d[j - 1] ?? 0) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
        prev = cur;
      }
    }
    return d[b.length] ?? Infinity;
  };
  const best = options.map((o) => ({ o, d: dist(word, o) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(word.length / 3)) ? best.o : undefined;
}

function yamlIssues(doc: Document, lc: LineCounter, path: string, issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(issue.path);
      for (const key of issue.keys) {
        const guess = closest(key, known);
        lines.push(`${path}:${lineOf(doc, lc, issue.path, key)}: unknown key "${key}" in ${pathText(issue.path)}${guess ? ` (did you mean "${guess}"?)` : ''}; known keys: ${known.join(', ')}`);
      }
    } else {
      lines.push(`${path}:${lineOf(doc, lc, issue.path)}: ${pathText(issue.path)}: ${issue.message}`);
    }
  }
  return lines;
}

// zod's defaults ("expected array, received undefined") read poorly in a config error.
function typeMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  if (issue.input === undefined) return 'is required';
  const got = JSON.stringify(issue.input) ?? typeof issue.input;
  if (issue.expected === 'int') return `must be a whole number, not ${got}`;
  return `must be ${issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'a mapping' : `a ${issue.expected}`}, not ${got}`;
}

function parseYaml(text: string, path: string): z.output<typeof yamlConfigSchema> & { origins: (p: readonly PropertyKey[]) => string } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = lc.linePos(syntax.pos[0]).line;
    throw kgwError('KGW_CONFIG_INVALID', `${path}:${line}: YAML syntax error: ${syntax.message.split('\n')[0] ?? syntax.code}`, { file: path, line });
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || data === undefined) {
    throw kgwError('KGW_CONFIG_INVALID', `${path}:1: the file is empty; expected a mapping with at least "doors:" (see the README's config example)`, { file: path, line: 1 });
  }
  const parsed = yamlConfigSchema.safeParse(data, { error: typeMessage });
  if (!parsed.success) {
    const lines = yamlIssues(doc, lc, path, parsed.error.issues);
    throw kgwError('KGW_CONFIG_INVALID', lines.slice(0, 8).join('\n'), { file: path, issues: lines });
  }
  return { ...parsed.data, origins: (p) => `${path}:${lineOf(doc, lc, p)}` };
}

function fromYaml(text: string, path: string, hostname: string): Mutable<Config> {
  const y = parseYaml(text, path);
  const cfg = base({ kind: 'yaml', path }, y.nodeId ?? hostname);
  if (y.interface !== undefined) cfg.interfaces = typeof y.interface === 'string' ? [y.interface] : y.interface;
  if (y.engine) cfg.engine = y.engine;
  if (y.firewall) cfg.firewall = y.firewall;
  if (y.store) cfg.store = y.store;
  if (y.stateFile) cfg.stateFile = y.stateFile;
  if (y.control) cfg.control = y.control;
  cfg.log = {
    level: y.log?.level ?? DEFAULTS.log.level,
    format: y.log?.format ?? DEFAULTS.log.format,
    ...(y.log?.file ? { file: y.log.file } : {}),
  };
  if (y.knockRateLimit) cfg.knockRateLimit = y.knockRateLimit;
  if (y.maxTrackedSources) cfg.maxTrackedSources = y.maxTrackedSources;
  if (y.relay) {
    const { keysFile, listen, trustedProxies } = y.relay;
    cfg.relay = { keysFile, ...(listen !== undefined ? { listen } : {}), ...(trustedProxies !== undefined ? { trustedProxies } : {}) };
  }
  const { aws, gcp } = y.cloud ?? {};
  cfg.cloud = {
    ...(aws ? { aws: { region: aws.region, securityGroupIds: aws.securityGroupIds, mode: aws.mode, ...(aws.prefixListId ? { prefixListId: aws.prefixListId } : {}), ...(aws.prefixListIdV6 ? { prefixListIdV6: aws.prefixListIdV6 } : {}), ...(aws.endpoint ? { endpoint: aws.endpoint } : {}) } } : {}),
    ...(gcp ? { gcp: { project: gcp.project, network: gcp.network, targetTags: gcp.targetTags, targetServiceAccounts: gcp.targetServiceAccounts, priority: gcp.priority, mode: gcp.mode, ...(gcp.endpoint ? { endpoint: gcp.endpoint } : {}) } } : {}),
  };
  const doors: Door[] = [];
  const sequences: KnockSequence[] = [];
  (y.doors ?? []).forEach((d, i) => {
    doors.push({ name: d.name, open: uniquePorts(d.open), ttlMs: d.ttl * 1000 });
    const common = { door: d.name, timeoutMs: d.seqTimeout * 1000, tcpFlags: d.tcpFlags };
    sequences.push({ ...common, id: d.name, ports: d.sequence, action: { kind: 'open' }, origin: y.origins(['doors', i, 'sequence']) });
    if (d.closeSequence) {
      sequences.push({ ...common, id: `${d.name}:close`, ports: d.closeSequence, action: { kind: 'close' }, origin: y.origins(['doors', i, 'closeSequence']) });
    }
  });
  cfg.doors = doors;
  cfg.sequences = sequences;
  cfg.protectedPorts = uniquePorts(doors.flatMap((d) => d.open));
  if (y.spa) addSpa(cfg, compileYamlSpa(y.spa, path, y.origins));
  return cfg;
}

// ---- knockd.conf -----------------------------------------------------------------------------

function fromKnockd(text: string, path: string, hostname: string): Mutable<Config> {
  const k = parseKnockdConf(text, path);
  const cfg = base({ kind: 'knockd', path }, hostname);
  if (k.interface) cfg.interfaces = [k.interface];
  // UseSyslog and PidFile have no knockgw counterpart: the daemon logs to stdout (journald
  // collects it under systemd) and systemd tracks the process.
  if (k.logFile) cfg.log = { ...cfg.log, file: k.logFile };
  cfg.doors = k.doors;
  cfg.sequences = k.sequences;
  if (k.openedPorts.length > 0) cfg.protectedPorts = [...k.openedPorts];
  return cfg;
}

// ---- overrides -------------------------------------------------------------------------------

const overrideSchema = z.strictObject({
  interface: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  engine: z.enum(['auto', 'kernel', 'pcap']).optional(),
  firewall: z.enum(['nftables', 'iptables', 'none']).optional(),
  store: z.string().optional(),
  stateFile: z.string().min(1).optional(),
  nodeId: z.string().regex(NODE_ID, 'must be letters, digits, "_", "." or "-"').optional(),
  control: z.string().min(1).optional(),
  logFormat: z.enum(['json', 'pretty']).optional(),
  ports: z.array(z.object({ port: z.number().int().min(1).max(65535), proto: z.enum(['tcp', 'udp']) })).min(1).optional(),
});

const FLAG: Readonly<Record<string, string>> = { interface: '--interface', engine: '--engine', firewall: '--firewall', store: '--store', stateFile: '--state', nodeId: '--node-id', control: '--control', logFormat: '--log-format', ports: '--ports' };

function applyOverrides(cfg: Mutable<Config>, overrides: ConfigOverrides): void {
  const parsed = overrideSchema.safeParse(overrides);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${FLAG[String(i.path[0])] ?? pathText(i.path)}: ${i.message}`).join('; ');
    throw kgwError('KGW_CLI_USAGE', msg, { overrides });
  }
  const o = parsed.data;
  const usage = (flag: string, message: string): never => {
    throw kgwError('KGW_CLI_USAGE', `${flag}: ${message}`);
  };
  if (o.interface !== undefined) {
    const list = typeof o.interface === 'string' ? o.interface.split(',').map((s) => s.trim()) : o.interface;
    for (const i of list) if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(i)) usage('--interface', `"${i}" is not a network interface name (e.g. eth0)`);
    cfg.interfaces = list;
  }
  if (o.engine) cfg.engine = o.engine;
  if (o.firewall) cfg.firewall = o.firewall;
  if (o.store !== undefined) {
    const s = o.store;
    const ok = s === 'memory' || /^redis(s|\+sentinel)?:\/\/\S+$/.test(s) || (!s.includes('://') && s !== '' && !/\s/.test(s));
    if (!ok) usage('--store', `"${s}" must be memory, a redis:// or rediss:// URL, or the path of a Redis unix socket`);
    cfg.store = s === 'memory' || s.includes('://') ? s : resolve(s);
  }
  // Paths on a command line are relative to where it was typed.
  if (o.stateFile) cfg.stateFile = resolve(o.stateFile);
  if (o.control) cfg.control = resolve(o.control);
  if (o.nodeId) cfg.nodeId = o.nodeId;
  if (o.logFormat) cfg.log = { ...cfg.log, format: o.logFormat };
  if (o.ports) cfg.protectedPorts = uniquePorts(o.ports);
}

// ---- entry points ----------------------------------------------------------------------------

/** Pure: YAML text to a frozen Config (defaults applied, no overrides). */
export function compileYaml(text: string, path: string, hostname: string): Config {
  return finish(fromYaml(text, path, hostname));
}

/** Pure: knockd.conf text to a frozen Config (defaults applied, no overrides). */
export function compileKnockd(text: string, path: string, hostname: string): Config {
  return finish(fromKnockd(text, path, hostname));
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (run as root?)' : code === 'EISDIR' ? 'it is a directory' : code;
    throw kgwError('KGW_CONFIG_READ', `cannot read ${path}: ${why}`, { file: path, errno: code }, err);
  }
}

// knockd refuses to start when a one-time-sequences file is unreadable or used up; so does knockgw.
async function checkOneTimeSequences(cfg: Config): Promise<void> {
  for (const s of cfg.sequences) {
    if (s.oneTimeSequencesFile === undefined) continue;
    let text: string;
    try {
      text = await readText(s.oneTimeSequencesFile);
    } catch (err) {
      throw isKnockgwError(err) ? kgwError('KGW_CONFIG_READ', `${s.origin}: [${s.id}] one_time_sequences: ${err.message.replace(/^KGW_CONFIG_READ: /, '')}`, { file: s.oneTimeSequencesFile }, err) : err;
    }
    const usable = text.split(/\r?\n/).some((l) => {
      const t = l.trim();
      return t !== '' && !t.startsWith('#') && t.split(',').every((p) => typeof checkPortSpec(p) !== 'string');
    });
    if (!usable) throw kgwError('KGW_CONFIG_KNOCKD', `${s.origin}: [${s.id}] one_time_sequences file ${s.oneTimeSequencesFile} has no unused sequence left; add lines such as " 7000,8000:udp,9000"`, { file: s.oneTimeSequencesFile });
  }
}

export async function loadConfig(input: LoadInput): Promise<Config> {
  const { yamlPath, knockdPath, fwknopAccessPath: accessPath, fwknopConfigPath: confPath } = input;
  if (confPath !== undefined && accessPath === undefined) throw kgwError('KGW_CLI_USAGE', '--fwknop-config needs --fwknop-access /etc/fwknop/access.conf');
  if (yamlPath !== undefined && knockdPath !== undefined) throw kgwError('KGW_CLI_USAGE', 'give one of --config FILE.yaml or --knockd-config /etc/knockd.conf, not both');
  if (yamlPath === undefined && knockdPath === undefined && accessPath === undefined) {
    throw kgwError('KGW_CLI_USAGE', 'give exactly one of --config FILE.yaml or --knockd-config /etc/knockd.conf (and/or --fwknop-access /etc/fwknop/access.conf)');
  }
  const cfg = yamlPath !== undefined
    ? fromYaml(await readText(yamlPath), yamlPath, input.hostname)
    : knockdPath !== undefined
      ? fromKnockd(await readText(knockdPath), knockdPath, input.hostname)
      : base({ kind: 'fwknop', path: accessPath ?? '' }, input.hostname);
  if (accessPath !== undefined) {
    const conf = confPath === undefined ? undefined : { text: await readText(confPath), path: confPath };
    addSpa(cfg, compileFwknop({ text: await readText(accessPath), path: accessPath }, conf));
    // Alone, fwknopd's files say where it listened, as knockd.conf's Interface does.
    if (cfg.source.kind === 'fwknop' && cfg.spa?.interface) cfg.interfaces = [cfg.spa.interface];
  }
  if (input.overrides) applyOverrides(cfg, input.overrides);
  const frozen = finish(cfg);
  await checkOneTimeSequences(frozen);
  return frozen;
}
