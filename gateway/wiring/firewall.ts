// The HostFirewall backend named in the config, with the kernel engine compiled in where it runs.
import type { EnginePlan, FirewallKind } from '../core/engines.ts';
import type { Config } from '../config/types.ts';
import type { Clock, HostFirewall, Logger } from '../ports.ts';
import { NFLOG_GROUP, type KernelCompileInput } from '../core/nft-kernel.ts';
import { createNftablesFirewall } from '../adapters/firewall-nftables.ts';
import { createIptablesFirewall } from '../adapters/firewall-iptables.ts';
import { createNoneFirewall } from '../adapters/firewall-none.ts';
import type { Runner } from '../adapters/run.ts';

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
      return createNftablesFirewall({ ...common, ...(opts.kernel !== undefined ? { kernel: opts.kernel } : {}) });
    case 'iptables':
      return createIptablesFirewall({ ...common, ...(opts.useIpset !== undefined ? { useIpset: opts.useIpset } : {}) });
    case 'none':
      return createNoneFirewall();
  }
}

/** The host firewall for this config; the kernel engine's program is compiled into nftables when any sequence runs on it. */
export function hostFirewallFor(config: Config, engines: EnginePlan, logger: Logger): HostFirewall {
  return createHostFirewall(config.firewall, {
    logger,
    ...(engines.kernel.length > 0
      ? // The whole list: NFLOG prefixes carry an index into it; the compiler skips what it cannot run.
        { kernel: { sequences: config.sequences, doors: config.doors, nflogGroup: NFLOG_GROUP, rateLimit: config.knockRateLimit } }
      : {}),
  });
}
