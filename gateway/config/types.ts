// The compiled, normalized configuration every module runs on (what users write is in schema.ts
// and knockd-conf.ts; both compile to this).
import type { PortSpec } from '../core/grant.ts';
import type { Door, KnockSequence } from '../core/types.ts';
import type { Engine, FirewallKind } from '../core/engines.ts';
import type { SpaStanza } from '../core/spa.ts';
import type { MetricsListen } from './schema-metrics.ts';

export interface AwsCloudConfig {
  readonly region: string;
  readonly securityGroupIds: readonly string[];
  readonly mode: 'rules' | 'prefix-list';
  /** prefix-list mode: the IPv4 list; IPv6 grants need prefixListIdV6 (a prefix list has one family). */
  readonly prefixListId?: string;
  readonly prefixListIdV6?: string;
  readonly endpoint?: string;
}

export interface GcpCloudConfig {
  readonly project: string;
  readonly network: string;
  readonly targetTags: readonly string[];
  readonly targetServiceAccounts: readonly string[];
  readonly priority: number;
  /**
   * aggregated: a few knockgw rules per door and family, each holding many source ranges (patched);
   * per-grant: one rule per grant and family (one rule per person in the audit log).
   */
  readonly mode: 'aggregated' | 'per-grant';
  readonly endpoint?: string;
}

/** SPA doors (fwknop 2.x wire format), from the YAML spa: section or fwknopd's own files. */
export interface SpaConfig {
  /** UDP port the packets arrive on. */
  readonly port: number;
  /** MAX_SPA_PACKET_AGE: a message timestamp further from now, either way, is refused. */
  readonly maxPacketAgeMs: number;
  /** Stanzas in file order (the first that authenticates and allows a request wins). */
  readonly access: readonly SpaStanza[];
  readonly source: { readonly kind: 'yaml'; readonly path: string } | { readonly kind: 'fwknop'; readonly accessPath: string; readonly configPath?: string };
  /** fwknopd.conf PCAP_INTF: where fwknopd listened (knockgw's nftables rule takes SPA on every interface). */
  readonly interface?: string;
}

/** The family-pinned URLs of the relay (the knock page knocks over both). */
export interface PublicUrls { readonly v4?: string; readonly v6?: string }

export interface RelayConfig {
  readonly keysFile: string;
  readonly listen?: string;
  readonly trustedProxies?: number;
  readonly publicUrls?: PublicUrls;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Enrolled devices with a memory store (default: devices.json beside the state file). */
  readonly devicesFile?: string;
}

export interface Config {
  /** The main file: --config, --knockd-config, or --fwknop-access when SPA doors are all there is. */
  readonly source: { readonly kind: 'yaml' | 'knockd' | 'fwknop'; readonly path: string };
  readonly interfaces: readonly string[];
  readonly engine: Engine;
  readonly firewall: FirewallKind;
  /** 'memory', a redis:// / rediss:// URL, or a unix socket path. */
  readonly store: string;
  readonly stateFile: string;
  readonly nodeId: string;
  readonly control: string;
  /** metrics.listen / --metrics-listen: Prometheus over TCP (loopback unless allowRemote). */
  readonly metrics?: MetricsListen;
  readonly log: { readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error'; readonly format: 'json' | 'pretty'; readonly file?: string };
  /** Union of every door's ports and every SPA stanza's OPEN_PORTS: dropped by the base rules unless granted. */
  readonly protectedPorts: readonly PortSpec[];
  readonly doors: readonly Door[];
  readonly sequences: readonly KnockSequence[];
  readonly cloud: { readonly aws?: AwsCloudConfig; readonly gcp?: GcpCloudConfig };
  /**
   * keysFile: verify relayed knocks (from Redis with a Redis store). listen: also serve the relay
   * from this daemon (single host: requests stay in process).
   */
  readonly relay?: RelayConfig;
  /** Per-source cap of knock packets per second (the guide's brute-force rate limit). */
  readonly knockRateLimit: { readonly perSecond: number; readonly burst: number };
  /** Per-door cap on in-progress knock states (LRU beyond it). */
  readonly maxTrackedSources: number;
  /** ha.maxStaleness / --max-staleness: seconds without the store before learned grants close. */
  readonly maxStalenessS: number;
  readonly spa?: SpaConfig;
  /** knockd's PidFile: written once the daemon is ready, removed when it stops. */
  readonly pidFile?: string;
  /** What the config asks that knockgw does differently, by name: logged once at start (config.notice). */
  readonly notices: readonly string[];
}
