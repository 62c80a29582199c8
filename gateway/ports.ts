// The narrow interfaces between the pure core, the services and the adapters.
import type { Logger } from 'pino';
import type { Grant, PortSpec } from './core/grant.ts';
import type { FirewallEntry, FirewallOp, KernelCompletion, KnockPacket, Proof } from './core/types.ts';

export type { Logger };

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

export interface PacketSource extends AsyncIterable<KnockPacket> {
  /** Resolves once packets sent from now on are seen; rejects if the source fails first. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** What a proof source gets from the gateway it feeds. */
export interface SourceContext {
  submit(proof: Proof): Promise<void>;
  /** The source died on its own (its capture exited): the gateway stops, the daemon exits non-zero. */
  fail(err: unknown): void;
  /** A knock refused, by reason (the console's chart of denials); counted, never logged here. */
  deny?(reason: string): void;
}

/** Anything that proves clients: the pcap engine, the kernel engine's reports, relayed knocks… */
export interface ProofSource {
  readonly name: string;
  /** Starts reading; resolves once a proof arriving from now on will be seen. */
  start(ctx: SourceContext): Promise<void>;
  /** Finds proofs that were lost on the way (the gateway runs it before each full repair). */
  repair?(): Promise<void>;
  stop(): Promise<void>;
}

export interface HostFirewall {
  readonly name: 'nftables' | 'iptables' | 'none';
  /** Creates (idempotently) the table/chain that drops the protected ports unless granted. */
  ensureBase(protectedPorts: readonly PortSpec[]): Promise<void>;
  apply(ops: readonly FirewallOp[]): Promise<void>;
  list(): Promise<FirewallEntry[]>;
  /** Removes everything this backend created, and nothing else. */
  teardown(): Promise<void>;
  /** Kernel engine only: the completions the kernel recorded lately, reported or not. */
  kernelCompletions?(): Promise<KernelCompletion[]>;
  /** Starts helper processes the first change would otherwise wait for (the daemon, not `base`). */
  warm?(): Promise<void>;
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

/** A rule outside knockgw that opens a protected port to the whole Internet: knocking is pointless there. */
export interface WorldOpenRule {
  readonly provider: string;
  /** The provider's name for the rule: a security-group rule id, a VPC firewall rule name. */
  readonly rule: string;
  /** Where it applies: the security group, or the VPC network and its targets. */
  readonly where: string;
  /** 0.0.0.0/0 or ::/0. */
  readonly source: string;
  /** The protected ports it opens, e.g. ["22/tcp"]. */
  readonly ports: readonly string[];
  /** The exact command that removes it. */
  readonly removeCommand: string;
}

export interface CloudFirewall {
  readonly name: string;
  /** 'ip' when the provider keeps one entry per address (AWS prefix lists), shared by every grant of that IP. Default 'grant'. */
  readonly keyedBy?: 'grant' | 'ip';
  /**
   * Resolves with the entries it created when the provider says which (with their handles), so a
   * caller can keep what the cloud holds without listing it again.
   */
  grant(grants: readonly Grant[]): Promise<readonly CloudRule[] | void>;
  /**
   * `rules`: the entries list() or grant() reported for these grants, when the caller has them;
   * they spare the adapter a lookup of its own.
   */
  revoke(grants: readonly Grant[], rules?: readonly CloudRule[]): Promise<void>;
  /** Only the rules knockgw owns (found by tag / name prefix). */
  list(): Promise<CloudRule[]>;
  /** Rules outside knockgw that open a protected port to 0.0.0.0/0 or ::/0 where this adapter acts. */
  worldOpen?(): Promise<WorldOpenRule[]>;
  /** API calls made so far, per provider action (metrics, and the bench's calls per grant). */
  apiCalls?(): Readonly<Record<string, number>>;
}

export type StoreChange = { readonly kind: 'put'; readonly grant: Grant } | { readonly kind: 'remove'; readonly id: string };

/** How a node hears its shared store: connected, degraded (silent or away, within the bound), cut-off (past it). */
export interface StoreHealth { readonly state: 'connected' | 'degraded' | 'cut-off'; readonly since: number }

export interface GrantStore {
  /** Stores (merging with an existing grant of the same id: later expiry wins). Returns the stored grant. */
  put(grant: Grant): Promise<Grant>;
  remove(id: string): Promise<Grant | undefined>;
  /** Unexpired grants. */
  list(): Promise<Grant[]>;
  /** Hints that the set changed (level-triggered: the listener re-reads list()). Returns an unsubscribe. */
  watch(onChange: (change: StoreChange | undefined) => void): () => void;
  /** A shared store only: whether this node still hears it. */
  health?(): StoreHealth;
  close(): Promise<void>;
}

/** What a node says of itself to the fleet. */
export interface FleetSelf {
  readonly version: string;
  readonly startedAt: number | null;
  /** How this node hears the store right now. */
  readonly store: StoreHealth['state'];
}

/** A node of the fleet as the shared store last heard of it. */
export interface FleetMember extends FleetSelf {
  readonly nodeId: string;
  /** Since the store last heard the node, on the store's own clock (a node's skew does not show). */
  readonly silentMs: number;
}

/** Which nodes share the store: each announces itself while it runs and leaves when it stops. */
export interface FleetRoster {
  /** Announces this node now and every beat after, with what `self` says at that moment. */
  join(self: () => FleetSelf): void;
  /** Stops announcing and takes this node off the roster. */
  leave(): Promise<void>;
  /** Every node heard within the roster's memory (an hour), this one included. */
  members(): Promise<FleetMember[]>;
}

/** Shared replay protection (SPA, relay): true the first time a nonce is seen before it expires. */
export interface NonceStore {
  claim(scope: string, nonce: string, ttlMs: number): Promise<boolean>;
}

export type LeaseEvent = 'gained' | 'lost';

/** One node at a time does a job (the cloud changes): whoever holds the lease. */
export interface LeaderLease {
  isLeader(): boolean;
  /** gained: this node may act; lost (with a reason): it must stop now. Returns an unsubscribe. */
  on(event: LeaseEvent, listener: (reason: string) => void): () => void;
  /** Stops renewing; releases the lease (default) so another node takes over at once. */
  stop(opts?: { release?: boolean }): Promise<void>;
}
