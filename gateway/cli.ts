// Argument parsing for every sub-command. Pure: turns argv into a typed command or a coded
// usage error; main.ts runs it.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { kgwError } from './core/errors.ts';
import { parseKnockArg } from './client/knock.ts';
import { parseIp } from './core/ip.ts';
import type { PortSpec } from './core/grant.ts';
import type { Engine, FirewallKind } from './core/engines.ts';
import { KEY_ALGS, type KeyAlg } from './client/keygen.ts';
import { MAX_TIMEOUT_S, STALENESS_S, stalenessRange } from './core/timers.ts';

export const USAGE = `usage:
  knockgw daemon (--config FILE.yaml | --knockd-config /etc/knockd.conf) [--interface IF]
                 [--fwknop-access /etc/fwknop/access.conf [--fwknop-config /etc/fwknop/fwknopd.conf]]
                 [--engine auto|kernel|pcap] [--firewall nftables|iptables|none] [--ports 22,...]
                 [--store memory|redis://…|rediss://…|/path/redis.sock] [--node-id ID]
                 [--max-staleness SECONDS] [--metrics-listen 127.0.0.1:9464]
                 [--state FILE] [--control SOCKET] [--log-format json|pretty] [--teardown]
  knockgw knock HOST PORT[:tcp|:udp]… [-u] [-d MS] [-4|-6] [-v]
  knockgw knock --relay URL --key FILE DOOR [--ip IP]
  knockgw status [--json] [--control SOCKET]
  knockgw revoke IP [--control SOCKET]
  knockgw doctor (--config FILE | --knockd-config FILE) [--fwknop-access FILE …] [--firewall …]
  knockgw install (--config FILE | --knockd-config FILE) [--fwknop-access FILE …] [--firewall …] [--root DIR]
  knockgw uninstall [--root DIR]      (removes the units and every rule knockgw created)
  knockgw base (--config FILE | --knockd-config FILE) [--fwknop-access FILE …]   (boot: base rules only, then exit)
  (--fwknop-access alone: SPA doors from fwknopd's files and no knock doors)
  knockgw relay --listen ADDR:PORT --store URL --keys FILE [--trusted-proxies N] [--public-url-v4 URL] [--public-url-v6 URL]
  knockgw keygen --id ID [--alg ed25519|hmac-sha256|ecdsa-p256] [--door DOOR]… [--out FILE]
  knockgw enroll --door DOOR [--relay URL] [--name NAME] [--expires 15m] [--control SOCKET]   (one-time link + QR for a phone)
  knockgw devices list [--json] | knockgw devices revoke ID   [--control SOCKET]
  knockgw ssh HOST [PORT] [--door DOOR --relay URL --key FILE | --sequence P[:udp],… | --spa FWKNOPRC] [-4|-6] [--wait 10s]   (ssh ProxyCommand)`;

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
  metricsListen?: string;
}

export type Command =
  | { readonly cmd: 'daemon'; readonly source: ConfigSource; readonly overrides: DaemonOverrides; readonly teardown: boolean }
  | { readonly cmd: 'knock'; readonly host: string; readonly knocks: PortSpec[]; readonly delayMs: number; readonly family?: 4 | 6; readonly verbose: boolean }
  | { readonly cmd: 'relay-knock'; readonly url: string; readonly keyFile: string; readonly door: string; readonly ip?: string }
  | { readonly cmd: 'status'; readonly json: boolean; readonly control: string }
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
  | { readonly cmd: 'help' };

export const DEFAULT_CONTROL = '/run/knockgw.sock';

const daemonOptions = {
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

/** A knock port from the command line; a bad one is a usage error (exit 64), like any bad argument. */
function knockArg(text: string, proto: PortSpec['proto']): PortSpec {
  try {
    return parseKnockArg(text, proto);
  } catch (err) {
    return usage(err instanceof Error ? err.message.replace(/^KGW_\w+: /, '') : String(err));
  }
}

function usage(message: string): never {
  throw kgwError('KGW_CLI_USAGE', `${message}\n${USAGE}`);
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
}

/** "90s", "15m", "2h": an enrollment link's lifetime in ms. */
function parseDuration(text: string): number {
  const m = /^(\d{1,5})(s|m|h)$/.exec(text);
  if (!m) usage(`--expires "${text}" must be a number with s, m or h, e.g. 15m`);
  return Number(m?.[1]) * ({ s: 1000, m: 60_000, h: 3_600_000 } as const)[(m?.[2] ?? 's') as 's' | 'm' | 'h'];
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  return usage(`--${name} must be one of ${allowed.join(', ')} (got "${value}")`);
}

function daemonArgs(values: { [K in keyof typeof daemonOptions]?: string | undefined }): { source: ConfigSource; overrides: DaemonOverrides } {
  const yamlPath = values.config;
  const knockdPath = values['knockd-config'];
  const fwknopAccessPath = values['fwknop-access'];
  const fwknopConfigPath = values['fwknop-config'];
  if (fwknopConfigPath !== undefined && fwknopAccessPath === undefined) usage('--fwknop-config needs --fwknop-access FILE');
  if (yamlPath !== undefined && knockdPath !== undefined) usage('give one of --config FILE.yaml or --knockd-config FILE, not both');
  if (yamlPath === undefined && knockdPath === undefined && fwknopAccessPath === undefined) {
    usage('give exactly one of --config FILE.yaml or --knockd-config FILE (and/or --fwknop-access FILE)');
  }
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

export function parseCommand(argv: readonly string[]): Command {
  const [sub, ...rest] = argv;
  switch (sub) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return { cmd: 'help' };
    case 'daemon': {
      const { values } = parse(rest, { ...daemonOptions, teardown: { type: 'boolean' } });
      return { cmd: 'daemon', ...daemonArgs(values), teardown: values.teardown ?? false };
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
    case 'revoke': {
      const { values, positionals } = parse(rest, { control: { type: 'string' } }, true);
      if (positionals.length !== 1) usage('revoke IP');
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
      const sequence = values.sequence?.split(',').map((a) => parseKnockArg(a, 'tcp'));
      const family = values.ipv4 ? 4 : values.ipv6 ? 6 : undefined;
      return {
        cmd: 'ssh', host, port, waitMs: values.wait ? parseDuration(values.wait) : 10_000,
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
