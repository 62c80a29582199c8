// The narrow interfaces between the pure core, the services and the adapters.
import type { Logger } from 'pino';
import type { Family } from './core/ip.ts';
import type { Grant, PortSpec, Proto } from './core/grant.ts';

export type { Logger };

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

/** TCP flag bits as on the wire. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export interface KnockPacket {
  /** Unix milliseconds (capture time). */
  readonly ts: number;
  readonly src: string;
  readonly dst: string;
  readonly family: Family;
  readonly proto: Proto;
  readonly sport: number;
  readonly dport: number;
  /** TCP flag bits (0 for UDP). */
  readonly flags: number;
}

export interface PacketSource extends AsyncIterable<KnockPacket> {
  close(): Promise<void>;
}

/** One (ip, port) pass-through in the host firewall. expiresAt null = no timeout. */
export interface FirewallEntry {
  readonly ip: string;
  readonly family: Family;
  readonly port: number;
  readonly proto: Proto;
  readonly expiresAt: number | null;
}

export type FirewallOp =
  /** fresh: the planner saw no such entry, so a plain add will do (no timeout to refresh). */
  | { readonly op: 'add'; readonly entry: FirewallEntry; readonly fresh?: boolean }
  | { readonly op: 'remove'; readonly entry: FirewallEntry };

export interface HostFirewall {
  readonly name: 'nftables' | 'iptables' | 'none';
  /** Creates (idempotently) the table/chain that drops the protected ports unless granted. */
  ensureBase(protectedPorts: readonly PortSpec[]): Promise<void>;
  apply(ops: readonly FirewallOp[]): Promise<void>;
  list(): Promise<FirewallEntry[]>;
  /** Removes everything this backend created, and nothing else. */
  teardown(): Promise<void>;
  /** Releases helper processes (the rules stay). */
  close?(): void;
}

export interface CloudRule {
  /** The provider's handle (security-group rule id, prefix-list entry, GCP rule name). */
  readonly key: string;
  readonly grantId: string;
  readonly ip: string;
  readonly expiresAt: number | null;
}

export interface CloudFirewall {
  readonly name: string;
  /** 'ip' when the provider keeps one entry per address (AWS prefix lists), shared by every grant of that IP. Default 'grant'. */
  readonly keyedBy?: 'grant' | 'ip';
  grant(grants: readonly Grant[]): Promise<void>;
  revoke(grants: readonly Grant[]): Promise<void>;
  /** Only the rules knockgw owns (found by tag / name prefix). */
  list(): Promise<CloudRule[]>;
  /** API calls made so far, per provider action (metrics, and the bench's calls per grant). */
  apiCalls?(): Readonly<Record<string, number>>;
}

export type StoreChange = { readonly kind: 'put'; readonly grant: Grant } | { readonly kind: 'remove'; readonly id: string };

export interface GrantStore {
  /** Stores (merging with an existing grant of the same id: later expiry wins). Returns the stored grant. */
  put(grant: Grant): Promise<Grant>;
  remove(id: string): Promise<Grant | undefined>;
  /** Unexpired grants. */
  list(): Promise<Grant[]>;
  /** Hints that the set changed (level-triggered: the listener re-reads list()). Returns an unsubscribe. */
  watch(onChange: (change: StoreChange | undefined) => void): () => void;
  close(): Promise<void>;
}

/** Shared replay protection (SPA, relay): true the first time a nonce is seen before it expires. */
export interface NonceStore {
  claim(scope: string, nonce: string, ttlMs: number): Promise<boolean>;
}
