// SPA doors into the Config: from the YAML spa: section, or from fwknopd's files next to (or
// instead of) a knock config. The protected ports grow by every port a stanza may open.
import { kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import { spaOpenPorts, type SpaStanza } from '../core/spa.ts';
import type { YamlConfig } from './schema.ts';
import type { Config, SpaConfig } from './types.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function compileYamlSpa(spa: NonNullable<YamlConfig['spa']>, path: string, origin: (p: readonly PropertyKey[]) => string): SpaConfig {
  const access = spa.access.map((a, i): SpaStanza => ({
    name: a.name,
    origin: origin(['spa', 'access', i]),
    source: a.source,
    // The schema made sure exactly one of each pair is there.
    keys: { keyBase64: a.keyBase64 ?? a.key ?? '', hmacKeyBase64: a.hmacKeyBase64 ?? a.hmacKey ?? '', hmacDigest: a.hmacDigest },
    open: a.open,
    restrict: a.restrict,
    ttlMs: a.ttl * 1000,
    maxTtlMs: a.maxTtl * 1000,
    requireSourceAddress: a.requireSourceAddress,
    ...(a.requireUsername !== undefined ? { requireUsername: a.requireUsername } : {}),
  }));
  return { port: spa.port, maxPacketAgeMs: spa.maxPacketAge * 1000, access, source: { kind: 'yaml', path } };
}

function samePort(a: PortSpec, b: PortSpec): boolean {
  return a.port === b.port && a.proto === b.proto;
}

/**
 * Adds SPA doors to a compiled config. When no knock door opens a port natively, the protected
 * ports are only the default 22/tcp, and stanzas with OPEN_PORTS replace it (as knockd.conf's
 * doors do); stanzas without OPEN_PORTS open whatever is asked, so the default stays.
 */
export function addSpa(cfg: Mutable<Config>, spa: SpaConfig): void {
  if (cfg.spa) {
    const first = cfg.spa.source.kind === 'yaml' ? `spa: in ${cfg.spa.source.path}` : cfg.spa.source.accessPath;
    throw kgwError('KGW_CLI_USAGE', `SPA doors come from both ${first} and --fwknop-access ${spa.source.kind === 'fwknop' ? spa.source.accessPath : ''}; keep one`);
  }
  for (const s of spa.access) {
    if (cfg.doors.some((d) => d.name === s.name)) {
      throw kgwError('KGW_CONFIG_INVALID', `${s.origin}: the SPA door "${s.name}" has the name of a knock door; rename the knock door`, { door: s.name });
    }
  }
  const open = spaOpenPorts(spa.access);
  const knockPorts = cfg.doors.some((d) => d.open.length > 0);
  const base = knockPorts || open.length === 0 ? cfg.protectedPorts : [];
  cfg.protectedPorts = [...base, ...open.filter((p) => !base.some((b) => samePort(b, p)))];
  cfg.spa = spa;
}
