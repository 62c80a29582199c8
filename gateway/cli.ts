// Argument parsing for every sub-command. Pure: turns argv into a typed command or a coded
// usage error; main.ts runs it.
import type { ParseArgsConfig } from 'node:util';
import { isKnockgwError, kgwError } from './core/errors.ts';
import { parseIp } from './core/ip.ts';
import type { PortSpec } from './core/grant.ts';
import type { Engine, FirewallKind } from './core/engines.ts';
import { KEY_ALGS, type KeyAlg } from './client/keygen.ts';
import { MAX_TIMEOUT_S, STALENESS_S, stalenessRange } from './core/timers.ts';
import { findCommand, renderOverview, usageHint } from './cli/help.ts';
import { knockArg, oneOf, parse, parseDuration, usage } from './cli/args.ts';

/** The overview (`knockgw --help`), rendered from the help table in cli/help.ts. */
export const USAGE = renderOverview();

export interface ConfigSource {
  readonly yamlPath?: string;
  readonly knockdPath?: string;
  readonly fwknopAccessPath?: string;
  readonly fwknopConfigPath?: string;
}
export interface DaemonOverrides {
  interface?: string;
  engine?: Engine;
  firewall?: FirewallKind;
  store?: string;
  stateFile?: string;
  nodeId?: string;
  control?: string;
  logFormat?: 'json' | 'pretty';
  ports?: PortSpec[];
  maxStalenessS?: number;
  /** knockd -D. */
  logLevel?: 'debug';
  /** knockd -p / -g. */
  pidFile?: string;
  logFile?: string;
  metricsListen?: string;
}

export type Command =
  | { readonly cmd: 'daemon'; readonly source: ConfigSource; readonly overrides: DaemonOverrides; readonly teardown: boolean; readonly check: boolean }
  | { readonly cmd: 'knock'; readonly host: string; readonly knocks: PortSpec[]; readonly delayMs: number; readonly family?: 4 | 6; readonly verbose: boolean }
  | { readonly cmd: 'relay-knock'; readonly url: string; readonly keyFile: string; readonly door: string; readonly ip?: string }
  | { readonly cmd: 'status'; readonly json: boolean; readonly control: string }
  | { readonly cmd: 'console'; readonly host: string; readonly port: number; readonly control: string }
  | { readonly cmd: 'revoke'; readonly ip: string; readonly control: string }
  | { readonly cmd: 'doctor'; readonly source: ConfigSource; readonly overrides: DaemonOverrides }
  | { readonly cmd: 'base'; readonly source: ConfigSource; readonly overrides: DaemonOverrides }
  | { readonly cmd: 'install'; readonly source: ConfigSource; readonly overrides: DaemonOverrides; readonly root?: string }
  | { readonly cmd: 'uninstall'; readonly root?: string }
  | { readonly cmd: 'relay'; readonly listen: string; readonly store: string; readonly keysFile: string; readonly trustedProxies: number; readonly publicUrls?: { v4?: string; v6?: string } }
  | { readonly cmd: 'keygen'; readonly id: string; readonly alg: KeyAlg; readonly doors: string[]; readonly out?: string }
  | { readonly cmd: 'enroll'; readonly door: string; readonly relay?: string; readonly name?: string; readonly ttlMs?: number; readonly control: string }
  | { readonly cmd: 'devices'; readonly action: 'list' | 'revoke'; readonly id?: string; readonly json: boolean; readonly control: string }
  | { readonly cmd: 'ssh'; readonly host: string; readonly port: number; readonly family?: 4 | 6; readonly relay?: { url: string; keyFile: string; door: string }; readonly sequence?: PortSpec[]; readonly spaFile?: string; readonly waitMs: number }
  | { readonly cmd: 'completion'; readonly shell: 'bash' | 'zsh' }
  | { readonly cmd: 'version' }
  | { readonly cmd: 'help'; readonly topic?: string };

export const DEFAULT_CONTROL = '/run/knockgw.sock';

const daemonOptions = {
  'config-file': { type: 'string', short: 'c' },
  config: { type: 'string' },
  'knockd-config': { type: 'string' },
  'fwknop-access': { type: 'string' },
  'fwknop-config': { type: 'string' },
  interface: { type: 'string', short: 'i' },
  engine: { type: 'string' },
  firewall: { type: 'string' },
  ports: { type: 'string' },
  store: { type: 'string' },
  'node-id': { type: 'string' },
  state: { type: 'string' },
  control: { type: 'string' },
  'log-format': { type: 'string' },
  'max-staleness': { type: 'string' },
  'metrics-listen': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function daemonArgs(values: { [K in keyof typeof daemonOptions]?: string | undefined }): { source: ConfigSource; overrides: DaemonOverrides } {
  // knockd -c FILE: the drop-in spelling; the file's name says which format it is.
  const c = values['config-file'];
  if (c !== undefined && (values.config !== undefined || values['knockd-config'] !== undefined)) usage('give one of -c, --config and --knockd-config');
  const cYaml = c !== undefined && /\.ya?ml$/i.test(c);
  const yamlPath = cYaml ? c : values.config;
  const knockdPath = c !== undefined && !cYaml ? c : values['knockd-config'];
  const fwknopAccessPath = values['fwknop-access'];
  const fwknopConfigPath = values['fwknop-config'];
  if (fwknopConfigPath !== undefined && fwknopAccessPath === undefined) usage('--fwknop-config needs --fwknop-access FILE');
  if (yamlPath !== undefined && knockdPath !== undefined) usage('give one of --config FILE.yaml or --knockd-config FILE, not both');
  const overrides: DaemonOverrides = {};
  if (values.interface !== undefined) overrides.interface = values.interface;
  const engine = oneOf<Engine>('engine', values.engine, ['auto', 'kernel', 'pcap']);
  if (engine) overrides.engine = engine;
  const firewall = oneOf<FirewallKind>('firewall', values.firewall, ['nftables', 'iptables', 'none']);
  if (firewall) overrides.firewall = firewall;
  if (values.store !== undefined) overrides.store = values.store;
  if (values['node-id'] !== undefined) overrides.nodeId = values['node-id'];
  if (values.state !== undefined) overrides.stateFile = values.state;
  if (values.control !== undefined) overrides.control = values.control;
  if (values['metrics-listen'] !== undefined) overrides.metricsListen = values['metrics-listen'];
  const logFormat = oneOf<'json' | 'pretty'>('log-format', values['log-format'], ['json', 'pretty']);
  if (logFormat) overrides.logFormat = logFormat;
  const staleness = values['max-staleness'];
  if (staleness !== undefined) {
    if (!/^\d{1,9}$/.test(staleness) || Number(staleness) < STALENESS_S.min || Number(staleness) > MAX_TIMEOUT_S) usage(`--max-staleness "${staleness}" must be ${stalenessRange()}`);
    overrides.maxStalenessS = Number(staleness);
  }
  if (values.ports !== undefined) {
    overrides.ports = values.ports.split(',').map((p) => {
      const [port = '', proto = 'tcp'] = p.trim().split('/');
      return knockArg(`${port}:${proto}`, 'tcp');
    });
  }
  const source: ConfigSource = {
    ...(yamlPath !== undefined ? { yamlPath } : knockdPath !== undefined ? { knockdPath } : {}),
    ...(fwknopAccessPath !== undefined ? { fwknopAccessPath } : {}),
    ...(fwknopConfigPath !== undefined ? { fwknopConfigPath } : {}),
  };
  return { source, overrides };
}

/** --help / -h anywhere before a `--`. */
const wantsHelp = (args: readonly string[]): boolean => {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
};

export function parseCommand(argv: readonly string[]): Command {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return { cmd: 'help' };
  if (sub === '--version' || sub === '-V' || sub === 'version') return { cmd: 'version' };
  if (findCommand(sub) && wantsHelp(rest)) return { cmd: 'help', topic: sub };
  try {
    return parseSub(sub, rest);
  } catch (err) {
    if (isKnockgwError(err, 'KGW_CLI_USAGE')) {
      throw kgwError('KGW_CLI_USAGE', `${err.message.replace(/^KGW_CLI_USAGE: /, '')}\n${usageHint(findCommand(sub) ? sub : undefined)}`);
    }
    throw err;
  }
}

function parseSub(sub: string, rest: string[]): Command {
  switch (sub) {
    case 'help': {
      const [topic, ...more] = rest;
      if (more.length > 0 || (topic !== undefined && !findCommand(topic))) usage(`no help for "${rest.join(' ')}": the commands are listed by knockgw --help`);
      return { cmd: 'help', ...(topic ? { topic } : {}) };
    }
    case 'completion': {
      const { positionals } = parse(rest, {}, true);
      const [shell] = positionals;
      if (positionals.length !== 1 || (shell !== 'bash' && shell !== 'zsh')) usage('completion takes one shell: bash or zsh');
      return { cmd: 'completion', shell: shell === 'zsh' ? 'zsh' : 'bash' };
    }
    case 'daemon': {
      const { values } = parse(rest, {
        ...daemonOptions, teardown: { type: 'boolean' }, check: { type: 'boolean' },
        // knockd's own flags, so its command lines keep working.
        debug: { type: 'boolean', short: 'D' }, daemon: { type: 'boolean', short: 'd' }, pidfile: { type: 'string', short: 'p' }, logfile: { type: 'string', short: 'g' },
        verbose: { type: 'boolean', short: 'v' }, lookup: { type: 'boolean', short: 'l' }, 'only-ip-v4': { type: 'boolean', short: '4' },
      });
      if (values.daemon) usage('-d (daemonize) is not supported: knockgw stays in the foreground; run it under systemd (knockgw install) or your init system');
      if (values.lookup) usage('-l (DNS lookups) is not supported: knockgw logs addresses only (a lookup would let a knocker choose what the log says)');
      if (values['only-ip-v4']) usage('-4 (IPv4 only) is not supported: knockgw protects both families; a door is the same for IPv4 and IPv6');
      const args = daemonArgs(values);
      if (values.debug) args.overrides.logLevel = 'debug';
      if (values.pidfile !== undefined) args.overrides.pidFile = values.pidfile;
      if (values.logfile !== undefined) args.overrides.logFile = values.logfile;
      return { cmd: 'daemon', ...args, teardown: values.teardown ?? false, check: values.check ?? false };
    }
    case 'doctor': {
      const { values } = parse(rest, daemonOptions);
      return { cmd: 'doctor', ...daemonArgs(values) };
    }
    case 'base': {
      const { values } = parse(rest, daemonOptions);
      return { cmd: 'base', ...daemonArgs(values) };
    }
    case 'install': {
      // --root: write the units under a staging directory (packaging, tests) and touch nothing live.
      const { values } = parse(rest, { ...daemonOptions, root: { type: 'string' } });
      return { cmd: 'install', ...daemonArgs(values), ...(values.root ? { root: values.root } : {}) };
    }
    case 'uninstall': {
      const { values } = parse(rest, { root: { type: 'string' } });
      return { cmd: 'uninstall', ...(values.root ? { root: values.root } : {}) };
    }
    case 'knock': {
      const { values, positionals } = parse(
        rest,
        {
          udp: { type: 'boolean', short: 'u' },
          delay: { type: 'string', short: 'd' },
          ipv4: { type: 'boolean', short: '4' },
          ipv6: { type: 'boolean', short: '6' },
          verbose: { type: 'boolean', short: 'v' },
          relay: { type: 'string' },
          key: { type: 'string' },
          ip: { type: 'string' },
        },
        true,
      );
      if (values.relay !== undefined) {
        if (values.key === undefined || positionals.length !== 1) usage('knock --relay URL --key FILE DOOR');
        return { cmd: 'relay-knock', url: values.relay, keyFile: values.key, door: positionals[0] ?? '', ...(values.ip ? { ip: values.ip } : {}) };
      }
      const [host, ...ports] = positionals;
      if (!host || ports.length === 0) usage('knock HOST PORT[:tcp|:udp]…');
      if (values.ipv4 && values.ipv6) usage('give at most one of -4 and -6');
      const delayMs = values.delay === undefined ? 0 : Number(values.delay);
      if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 60_000) usage(`-d takes milliseconds 0..60000 (got "${values.delay ?? ''}")`);
      const proto = values.udp ? 'udp' : 'tcp';
      const family = values.ipv4 ? 4 : values.ipv6 ? 6 : undefined;
      // knockd's client would quietly knock over the other family; an explicit -4/-6 must hold.
      const literal = parseIp(host);
      if (family && literal && literal.family !== family) usage(`-${family} was given, but ${host} is an IPv${literal.family} address`);
      return { cmd: 'knock', host, knocks: ports.map((p) => knockArg(p, proto)), delayMs, ...(family ? { family } : {}), verbose: values.verbose ?? false };
    }
    case 'status': {
      const { values } = parse(rest, { json: { type: 'boolean' }, control: { type: 'string' } });
      return { cmd: 'status', json: values.json ?? false, control: values.control ?? DEFAULT_CONTROL };
    }
    case 'console': {
      const { values } = parse(rest, { listen: { type: 'string' }, control: { type: 'string' } });
      const listen = values.listen ?? '127.0.0.1:9465';
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(listen);
      const host = m?.[1] ?? m?.[2] ?? '';
      const port = Number(m?.[3] ?? -1);
      if (!m || port > 65535) usage(`console --listen "${listen}" must be ADDR:PORT, e.g. 127.0.0.1:9465 or [::1]:9465`);
      const ip = parseIp(host);
      if (!ip || !(host === '::1' || /^127\./.test(host))) usage(`console --listen ${listen} is not a loopback address: the page shows every grant and can revoke, so it listens on 127.0.0.1 or ::1 only; reach it from elsewhere with ssh -L 9465:127.0.0.1:9465 HOST`);
      return { cmd: 'console', host, port, control: values.control ?? DEFAULT_CONTROL };
    }
    case 'revoke': {
      const { values, positionals } = parse(rest, { control: { type: 'string' } }, true);
      if (positionals.length !== 1) usage('revoke takes one IP address');
      if (!parseIp(positionals[0] ?? '')) usage(`"${positionals[0] ?? ''}" is not an IP address (e.g. 203.0.113.7 or 2001:db8::7)`);
      return { cmd: 'revoke', ip: positionals[0] ?? '', control: values.control ?? DEFAULT_CONTROL };
    }
    case 'relay': {
      const { values } = parse(rest, { listen: { type: 'string' }, store: { type: 'string' }, keys: { type: 'string' }, 'trusted-proxies': { type: 'string' }, 'public-url-v4': { type: 'string' }, 'public-url-v6': { type: 'string' } });
      if (!values.listen || !values.keys) usage('relay --listen ADDR:PORT --store URL --keys FILE');
      const trustedProxies = Number(values['trusted-proxies'] ?? '0');
      if (!Number.isInteger(trustedProxies) || trustedProxies < 0 || trustedProxies > 10) usage('--trusted-proxies takes 0..10');
      for (const u of [values['public-url-v4'], values['public-url-v6']]) if (u !== undefined && !/^https?:\/\/\S+$/.test(u)) usage('--public-url-v4/-v6 take http(s) URLs');
      const publicUrls = { ...(values['public-url-v4'] ? { v4: values['public-url-v4'] } : {}), ...(values['public-url-v6'] ? { v6: values['public-url-v6'] } : {}) };
      return { cmd: 'relay', listen: values.listen, store: values.store ?? 'memory', keysFile: values.keys, trustedProxies, publicUrls };
    }
    case 'keygen': {
      const { values } = parse(rest, { id: { type: 'string' }, alg: { type: 'string' }, door: { type: 'string', multiple: true }, out: { type: 'string' } });
      if (!values.id) usage('keygen --id ID');
      const alg = oneOf<KeyAlg>('alg', values.alg, KEY_ALGS) ?? 'ed25519';
      return { cmd: 'keygen', id: values.id, alg, doors: values.door ?? [], ...(values.out ? { out: values.out } : {}) };
    }
    case 'enroll': {
      const { values } = parse(rest, { door: { type: 'string' }, relay: { type: 'string' }, name: { type: 'string' }, expires: { type: 'string' }, control: { type: 'string' } });
      if (!values.door) usage('enroll --door DOOR');
      const ttlMs = values.expires === undefined ? undefined : parseDuration(values.expires);
      if (values.relay !== undefined && !/^https?:\/\/\S+$/.test(values.relay)) usage('--relay takes an http(s) URL, e.g. https://knock.example.net');
      return { cmd: 'enroll', door: values.door, control: values.control ?? DEFAULT_CONTROL, ...(values.relay ? { relay: values.relay } : {}), ...(values.name ? { name: values.name } : {}), ...(ttlMs ? { ttlMs } : {}) };
    }
    case 'devices': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' }, control: { type: 'string' } }, true);
      const [action, id] = positionals;
      if (action === 'list' && positionals.length === 1) return { cmd: 'devices', action, json: values.json ?? false, control: values.control ?? DEFAULT_CONTROL };
      if (action === 'revoke' && id && positionals.length === 2) return { cmd: 'devices', action, id, json: values.json ?? false, control: values.control ?? DEFAULT_CONTROL };
      return usage('devices list | devices revoke ID');
    }
    case 'ssh': {
      const { values, positionals } = parse(rest, { door: { type: 'string' }, relay: { type: 'string' }, key: { type: 'string' }, sequence: { type: 'string' }, spa: { type: 'string' }, wait: { type: 'string' }, ipv4: { type: 'boolean', short: '4' }, ipv6: { type: 'boolean', short: '6' } }, true);
      const [host, portText = '22'] = positionals;
      const port = Number(portText);
      if (!host || positionals.length > 2 || !Number.isInteger(port) || port < 1 || port > 65535) usage('ssh HOST [PORT] (as ProxyCommand: knockgw ssh %h %p …)');
      if ((values.relay === undefined) !== (values.key === undefined)) usage('ssh: --relay URL and --key FILE go together');
      if (values.relay && !values.door) usage('ssh: --relay needs --door DOOR');
      if ([values.relay, values.sequence, values.spa].filter((v) => v !== undefined).length > 1) usage('ssh: knock one way: --relay, --sequence or --spa');
      const sequence = values.sequence?.split(',').map((a) => knockArg(a, 'tcp'));
      const family = values.ipv4 ? 4 : values.ipv6 ? 6 : undefined;
      return {
        cmd: 'ssh', host, port, waitMs: values.wait ? parseDuration(values.wait, '--wait') : 10_000,
        ...(family ? { family } : {}),
        ...(values.relay && values.key && values.door ? { relay: { url: values.relay, keyFile: values.key, door: values.door } } : {}),
        ...(sequence ? { sequence } : {}),
        ...(values.spa ? { spaFile: values.spa } : {}),
      };
    }
    default:
      return usage(`unknown command "${sub}"`);
  }
}
