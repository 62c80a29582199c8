// The HostFirewall backend named in the config, with the kernel engine compiled in where it runs.
import type { EnginePlan, FirewallKind } from '../core/engines.ts';
import type { Config } from '../config/types.ts';
import type { Clock, HostFirewall, Logger } from '../ports.ts';
import { NFLOG_GROUP, type KernelCompileInput } from '../core/nft-kernel.ts';
import type { IntakeCompileInput } from '../core/nft-intake.ts';
import type { PortSpec } from '../core/grant.ts';
import { createIptablesFirewall, createNftablesFirewall, createNoneFirewall } from '../adapters/firewall/index.ts';
import type { Runner } from '../adapters/exec/index.ts';

export interface HostFirewallOptions {
  readonly logger: Logger;
  /** Kernel knock engine (nftables only): the config's sequences and doors are compiled into the table. */
  readonly kernel?: KernelCompileInput;
  /** Run the tools inside this network namespace. */
  readonly netns?: string;
  readonly runner?: Runner;
  readonly clock?: Clock;
  /** iptables only: force or forbid ipset (default: use it when installed). */
  readonly useIpset?: boolean;
  /** nftables: the packet intakes (SPA, the pcap engine's knocks); iptables: the SPA port only. */
  readonly intake?: IntakeCompileInput;
}

export function createHostFirewall(kind: FirewallKind, opts: HostFirewallOptions): HostFirewall {
  const common = {
    logger: opts.logger,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
    ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
  };
  switch (kind) {
    case 'nftables':
      return createNftablesFirewall({ ...common, ...(opts.kernel !== undefined ? { kernel: opts.kernel } : {}), ...(opts.intake !== undefined ? { intake: opts.intake } : {}) });
    case 'iptables':
      return createIptablesFirewall({ ...common, ...(opts.useIpset !== undefined ? { useIpset: opts.useIpset } : {}), ...(opts.intake?.spa ? { spa: opts.intake.spa } : {}) });
    case 'none':
      return createNoneFirewall();
  }
}

/**
 * Where the pcap engine reads knocks: the kernel intake's NFLOG group on nftables (rate-limited,
 * first knocks held back: core/nft-intake.ts), else tcpdump on each interface, as before.
 */
export function pcapReadsNflog(config: Config): boolean {
  return config.firewall === 'nftables';
}

/** The kernel intakes this config runs: SPA on any backend with rules, the pcap engine's knocks on nftables. */
export function intakeFor(config: Config, engines: EnginePlan, oneTimePorts: readonly PortSpec[]): IntakeCompileInput {
  const pcap = pcapReadsNflog(config) && engines.pcap.length > 0
    ? { sequences: engines.pcap, oneTimePorts, interfaces: config.interfaces, rateLimit: config.knockRateLimit }
    : undefined;
  return { ...(pcap ? { pcap } : {}), ...(config.spa ? { spa: { port: config.spa.port } } : {}) };
}

/**
 * The host firewall for this config; the kernel engine's program is compiled into nftables when
 * any sequence runs on it. `oneTimePorts`: every port of the one_time_sequences files (wiring/files.ts).
 */
export function hostFirewallFor(config: Config, engines: EnginePlan, logger: Logger, oneTimePorts: readonly PortSpec[] = []): HostFirewall {
  return createHostFirewall(config.firewall, {
    logger,
    ...(engines.kernel.length > 0
      ? // The whole list: NFLOG prefixes carry an index into it; the compiler skips what it cannot run.
        { kernel: { sequences: config.sequences, doors: config.doors, nflogGroup: NFLOG_GROUP, rateLimit: config.knockRateLimit } }
      : {}),
    intake: intakeFor(config, engines, oneTimePorts),
  });
}
