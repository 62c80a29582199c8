// What every config source compiles through: the defaults, the mutable draft, and the finish
// that checks the node id and deep-freezes the result.
import { kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import { STALENESS_S } from '../core/timers.ts';
import type { Config } from './types.ts';

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
  maxStalenessS: STALENESS_S.default,
  protectedPorts: [{ port: 22, proto: 'tcp' }],
} as const;

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export function uniquePorts(ports: readonly PortSpec[]): PortSpec[] {
  const out: PortSpec[] = [];
  for (const p of ports) if (!out.some((o) => o.port === p.port && o.proto === p.proto)) out.push({ port: p.port, proto: p.proto });
  return out;
}

/** SPA's port must be knockgw's alone: its kernel rule drops every packet sent to it. */
function checkSpa(cfg: Mutable<Config>): void {
  const spa = cfg.spa;
  if (!spa) return;
  const where = spa.source.kind === 'yaml' ? `spa: in ${spa.source.path}` : spa.source.accessPath;
  if (cfg.firewall === 'none') {
    throw kgwError('KGW_CONFIG_INVALID', `SPA doors (${where}) need --firewall nftables or iptables: SPA packets reach knockgw only through its own kernel rule (rate limit, NFLOG, drop), and with --firewall none knockgw writes no rules`, { firewall: cfg.firewall });
  }
  const knock = cfg.sequences.find((s) => s.ports.some((p) => p.proto === 'udp' && p.port === spa.port));
  if (knock) throw kgwError('KGW_CONFIG_INVALID', `the SPA port ${spa.port}/udp is also a knock port of ${knock.id} (${knock.origin}): the SPA rule drops every packet to it; pick another port`, { port: spa.port });
  if (cfg.protectedPorts.some((p) => p.proto === 'udp' && p.port === spa.port)) {
    throw kgwError('KGW_CONFIG_INVALID', `the SPA port ${spa.port}/udp is also a protected port: the SPA rule drops every packet to it, so nothing could ever be granted there; pick another port`, { port: spa.port });
  }
}

export function finish(cfg: Mutable<Config>): Config {
  if (!NODE_ID.test(cfg.nodeId)) {
    throw kgwError('KGW_CONFIG_INVALID', `the hostname "${cfg.nodeId}" cannot serve as the node id; set nodeId in the config or pass --node-id`, { nodeId: cfg.nodeId });
  }
  checkSpa(cfg);
  const file = cfg.source.path;
  // With no door the daemon would close the protected ports with no way in.
  if (cfg.sequences.length === 0 && (cfg.spa?.access.length ?? 0) === 0) {
    throw kgwError(cfg.source.kind === 'knockd' ? 'KGW_CONFIG_KNOCKD' : 'KGW_CONFIG_INVALID', `${file}: defines no door (no sequence and no SPA stanza): knockgw would close ${cfg.protectedPorts.map((p) => `${p.port}/${p.proto}`).join(', ')} with no way to open it; add a door section`, { file });
  }
  return deepFreeze(cfg);
}

export function base(source: Config['source'], nodeId: string): Mutable<Config> {
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
    maxStalenessS: DEFAULTS.maxStalenessS,
    notices: [],
  };
}

