// The HostFirewall port (ports.ts): nftables (with the kernel engine and the SPA intake),
// iptables+ipset, none; and the conflict check of other rules that would drop what a grant opens.
export { detectConflicts } from './conflicts.ts';
export { createIptablesFirewall } from './iptables.ts';
export { createNftablesFirewall } from './nftables.ts';
export type { NftablesFirewall } from './nftables.ts';
export { createNoneFirewall } from './none.ts';
