// For hosts where another tool owns the firewall: knockgw keeps no host rules (grants still go
// to the store and the cloud firewalls).
import type { FirewallEntry, HostFirewall } from '../ports.ts';

export function createNoneFirewall(): HostFirewall {
  return {
    name: 'none',
    ensureBase: () => Promise.resolve(),
    apply: () => Promise.resolve(),
    list: () => Promise.resolve<FirewallEntry[]>([]),
    teardown: () => Promise.resolve(),
  };
}
