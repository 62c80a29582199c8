// For hosts where another tool owns the firewall: knockgw keeps no host rules (grants still go
// to the store and the cloud firewalls).
import type { HostFirewall } from '../../ports.ts';
import type { FirewallEntry } from '../../core/types.ts';

export function createNoneFirewall(): HostFirewall {
  return {
    name: 'none',
    ensureBase: () => Promise.resolve(),
    apply: () => Promise.resolve(),
    list: () => Promise.resolve<FirewallEntry[]>([]),
    teardown: () => Promise.resolve(),
  };
}
