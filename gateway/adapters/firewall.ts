// Picks the HostFirewall backend named in the config.
import type { FirewallKind } from '../config/types.ts';
import type { Clock, HostFirewall, Logger } from '../ports.ts';
import type { KernelCompileInput } from '../core/nft-kernel.ts';
import { createNftablesFirewall } from './firewall-nftables.ts';
import { createIptablesFirewall } from './firewall-iptables.ts';
import { createNoneFirewall } from './firewall-none.ts';
import type { Runner } from './run.ts';

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
