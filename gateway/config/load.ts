// Reads the YAML config or /etc/knockd.conf, applies command-line overrides and defaults, and
// returns the deep-frozen Config every module runs on. Errors name the file and the line, say
// what is wrong and what would be right; the CLI prints err.message, never a stack.
import { access, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { kgwError } from '../core/errors.ts';
import { DEFAULT_CONFIGS } from '../core/config-paths.ts';
import type { PortSpec } from '../core/grant.ts';
import { MAX_TIMEOUT_S, STALENESS_S, stalenessRange } from '../core/timers.ts';
import { parseKnockdConf } from './knockd-conf.ts';
import { compileFwknop } from './fwknop-conf.ts';
import { addSpa } from './spa-config.ts';
import type { Config } from './types.ts';
import type { Engine, FirewallKind } from '../core/engines.ts';
import { base, finish, NODE_ID, uniquePorts, type Mutable } from './draft.ts';
import { fromYaml, pathText } from './yaml.ts';
import { isLoopbackHost, parseListen } from './schema-metrics.ts';

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
  /** knockd -D. */
  readonly logLevel?: 'debug';
  /** knockd -p / -g: PidFile and LogFile from the command line. */
  readonly pidFile?: string;
  readonly logFile?: string;
  /** `--metrics-listen ADDR:PORT` (a wider address than loopback needs metrics.allowRemote in the config). */
  readonly metricsListen?: string;
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
  /** Looked for, in order, when no file is named (default DEFAULT_CONFIGS). */
  readonly candidates?: readonly string[];
}

// ---- knockd.conf -----------------------------------------------------------------------------

function fromKnockd(text: string, path: string, hostname: string): Mutable<Config> {
  const k = parseKnockdConf(text, path);
  const cfg = base({ kind: 'knockd', path }, hostname);
  if (k.interface) cfg.interfaces = [k.interface];
  if (k.logFile) cfg.log = { ...cfg.log, file: k.logFile };
  if (k.pidFile) cfg.pidFile = resolve(k.pidFile);
  // knockgw writes no syslog of its own: said once at start, so nobody waits for lines in /var/log/syslog.
  if (k.useSyslog) cfg.notices = [...cfg.notices, `${path}: UseSyslog is not done by knockgw itself: it logs to stdout, which journald (and syslog through it) collects under systemd; LogFile writes a file`];
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
  maxStalenessS: z.number().optional(),
  logLevel: z.literal('debug').optional(),
  pidFile: z.string().min(1).optional(),
  logFile: z.string().min(1).optional(),
  metricsListen: z.string().optional(),
});

const FLAG: Readonly<Record<string, string>> = { interface: '--interface', engine: '--engine', firewall: '--firewall', store: '--store', stateFile: '--state', nodeId: '--node-id', control: '--control', logFormat: '--log-format', ports: '--ports', maxStalenessS: '--max-staleness', logLevel: '-D', pidFile: '--pidfile', logFile: '--logfile', metricsListen: '--metrics-listen' };

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
  if (o.logLevel) cfg.log = { ...cfg.log, level: o.logLevel };
  if (o.pidFile) cfg.pidFile = resolve(o.pidFile);
  if (o.logFile) cfg.log = { ...cfg.log, file: resolve(o.logFile) };
  if (o.ports) cfg.protectedPorts = uniquePorts(o.ports);
  if (o.maxStalenessS !== undefined) {
    const s = o.maxStalenessS;
    if (!Number.isInteger(s) || s < STALENESS_S.min || s > MAX_TIMEOUT_S) usage('--max-staleness', `"${s}" must be ${stalenessRange()}`);
    cfg.maxStalenessS = s;
  }
  if (o.metricsListen !== undefined) {
    const at = parseListen(o.metricsListen) ?? usage('--metrics-listen', `"${o.metricsListen}" must be ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464`);
    const allowRemote = cfg.metrics?.allowRemote === true;
    if (!isLoopbackHost(at.host) && !allowRemote) usage('--metrics-listen', `${o.metricsListen} is not a loopback address: anyone who reaches it reads the doors, the grant counts and when the gateway is flooded or cut off; use 127.0.0.1, or set metrics.allowRemote: true in the config`);
    cfg.metrics = { ...at, allowRemote };
  }
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

/** knockd's own `--config FILE` is knockgw's `-c`/`--knockd-config`: a knockd.conf given as YAML says so. */
function yamlOrHint(text: string, path: string, hostname: string): Mutable<Config> {
  try {
    return fromYaml(text, path, hostname);
  } catch (err) {
    if (!/^\s*\[[A-Za-z][\w-]*\]\s*$/m.test(text) || !/^\s*sequence\s*=/im.test(text)) throw err;
    throw kgwError('KGW_CONFIG_INVALID', `${path} is a knockd.conf, not YAML: pass it with -c or --knockd-config (--config takes knockgw's YAML)`, { file: path }, err);
  }
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

/** No file named: the first candidate that exists (a .yaml is knockgw's, anything else knockd's). */
async function discover(input: LoadInput): Promise<LoadInput> {
  const candidates = input.candidates ?? DEFAULT_CONFIGS;
  for (const path of candidates) {
    if (await access(path).then(() => true, () => false)) return /\.ya?ml$/.test(path) ? { ...input, yamlPath: path } : { ...input, knockdPath: path };
  }
  throw kgwError('KGW_CONFIG_READ', `no config given, and none of ${candidates.join(', ')} exists: pass --config FILE.yaml or --knockd-config FILE`, { candidates });
}

export async function loadConfig(given: LoadInput): Promise<Config> {
  const named = given.yamlPath !== undefined || given.knockdPath !== undefined || given.fwknopAccessPath !== undefined;
  const input = named ? given : await discover(given);
  const { yamlPath, knockdPath, fwknopAccessPath: accessPath, fwknopConfigPath: confPath } = input;
  if (confPath !== undefined && accessPath === undefined) throw kgwError('KGW_CLI_USAGE', '--fwknop-config needs --fwknop-access /etc/fwknop/access.conf');
  if (yamlPath !== undefined && knockdPath !== undefined) throw kgwError('KGW_CLI_USAGE', 'give one of --config FILE.yaml or --knockd-config /etc/knockd.conf, not both');
  const cfg = yamlPath !== undefined
    ? yamlOrHint(await readText(yamlPath), yamlPath, input.hostname)
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
  if (!named) cfg.notices = [`no config was named: read ${cfg.source.path} (the first of ${(input.candidates ?? DEFAULT_CONFIGS).join(', ')} that exists)`, ...cfg.notices];
  return finish(cfg);
}
