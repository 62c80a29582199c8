// The compiled, normalized configuration every module runs on (what users write is in schema.ts
// and knockd-conf.ts; both compile to this).
import type { PortSpec } from '../core/grant.ts';

/** knockd `tcpflags`: every bit in `require` set, every bit in `forbid` clear. Both 0 = any packet. */
export interface TcpFlagMatch { readonly require: number; readonly forbid: number }

/** What a completed sequence does. */
export type SequenceAction =
  /** Open the door's ports for the knocking IP (a knockd iptables/ip6tables command understood as intent, or YAML). */
  | { readonly kind: 'open' }
  /** Close the door's grant for the knocking IP. */
  | { readonly kind: 'close' }
  /** Run knockd-style commands as argv (no shell), with %IP% validated and substituted. */
  | { readonly kind: 'command'; readonly start: CommandSpec; readonly stop?: CommandSpec; readonly stopAfterMs?: number };

/** A command as written; `argv` is the shell-word split of the text, `%IP%` still in place. */
export interface CommandSpec { readonly text: string; readonly argv: readonly string[]; readonly argv6?: readonly string[] }

export interface KnockSequence {
  /** Unique; for knockd.conf the section name. */
  readonly id: string;
  /** The door whose grant this sequence opens or closes. */
  readonly door: string;
  readonly ports: readonly PortSpec[];
  /** From the first knock. */
  readonly timeoutMs: number;
  readonly tcpFlags: TcpFlagMatch;
  readonly action: SequenceAction;
  /** knockd one_time_sequences: a file of sequences, each used once (`ports` is then empty: the file supplies them). */
  readonly oneTimeSequencesFile?: string;
  /** knockd `target`: match knocks sent to this address instead of the interface's own addresses. */
  readonly target?: string;
  /** Where the definition came from, for error messages ("knockd.conf:12"). */
  readonly origin: string;
}

export interface Door {
  readonly name: string;
  readonly open: readonly PortSpec[];
  /** 0 = until closed. */
  readonly ttlMs: number;
}

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
  readonly endpoint?: string;
}

export type Engine = 'auto' | 'kernel' | 'pcap';
export type FirewallKind = 'nftables' | 'iptables' | 'none';

export interface Config {
  readonly source: { readonly kind: 'yaml' | 'knockd'; readonly path: string };
  readonly interfaces: readonly string[];
  readonly engine: Engine;
  readonly firewall: FirewallKind;
  /** 'memory', a redis:// / rediss:// URL, or a unix socket path. */
  readonly store: string;
  readonly stateFile: string;
  readonly nodeId: string;
  readonly control: string;
  readonly log: { readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error'; readonly format: 'json' | 'pretty'; readonly file?: string };
  /** Union of every door's ports: dropped by the base rules unless granted. */
  readonly protectedPorts: readonly PortSpec[];
  readonly doors: readonly Door[];
  readonly sequences: readonly KnockSequence[];
  readonly cloud: { readonly aws?: AwsCloudConfig; readonly gcp?: GcpCloudConfig };
  /**
   * keysFile: verify relayed knocks (from Redis with a Redis store). listen: also serve the relay
   * from this daemon (single host: requests stay in process).
   */
  readonly relay?: { readonly keysFile: string; readonly listen?: string; readonly trustedProxies?: number };
  /** Per-source cap of knock packets per second (the guide's brute-force rate limit). */
  readonly knockRateLimit: { readonly perSecond: number; readonly burst: number };
  /** Per-door cap on in-progress knock states (LRU beyond it). */
  readonly maxTrackedSources: number;
}
