// What the fleet bench's parent asks of the child processes that host its gateway nodes, and what
// they answer (over the fork IPC channel). Times are wall-clock ms with sub-ms resolution
// (performance.timeOrigin + now), so a grant sent in one child and applied in another compare.

export interface StartNodes {
  readonly cmd: 'start';
  readonly url: string;
  readonly namespace: string;
  readonly nodeIds: readonly string[];
  readonly repairMs?: number;
  readonly leaseTtlMs?: number;
}

export type HostRequest =
  | StartNodes
  /**
   * Opens `ips` from `node`, `perSecond` of them a second, the first after `offsetMs` (origins
   * interleave: the fleet's rate is steady, not one burst per round); answers the send times.
   */
  | { readonly cmd: 'grant'; readonly node: string; readonly ips: readonly string[]; readonly perSecond: number; readonly offsetMs: number; readonly door?: string }
  /** Revokes one address from `node` (the gateway's revoke: store, then its own firewall). */
  | { readonly cmd: 'revoke'; readonly node: string; readonly ip: string }
  /**
   * Waits (up to timeoutMs) until every local node applied the op for every address, then
   * answers per node the time of each (null = never).
   */
  | { readonly cmd: 'applied'; readonly ips: readonly string[]; readonly op: 'add' | 'remove'; readonly timeoutMs: number }
  /** Waits until every local node's firewall holds `size` entries; per node, when (null = timeout). */
  | { readonly cmd: 'holding'; readonly size: number; readonly timeoutMs: number }
  /** Stops `node` and starts it again with an empty firewall; answers how long until it held `expect`. */
  | { readonly cmd: 'restart'; readonly node: string; readonly expect: number; readonly timeoutMs: number }
  /** The local nodes that hold the cloud lease now, and every lease gain since the start. */
  | { readonly cmd: 'leaders' }
  /** Stops `node` without releasing its lease (as if it died); answers when. */
  | { readonly cmd: 'kill'; readonly node: string }
  /** CPU the process used so far (µs, user + system). */
  | { readonly cmd: 'cpu' }
  /** Drops the recording firewalls' per-address times (between phases). */
  | { readonly cmd: 'forget' }
  | { readonly cmd: 'stop' };

export interface Leaders { readonly leading: readonly string[]; readonly gains: readonly { readonly node: string; readonly at: number }[] }

export type PerNode = Readonly<Record<string, readonly (number | null)[]>>;

export interface Restarted {
  /** From the start call to gateway.start() resolving (store read, full repair applied). */
  readonly startMs: number;
  /** From the start call to the firewall holding `expect` entries. */
  readonly caughtUpMs: number;
}

/** The answer type of each request. */
export interface HostAnswers {
  start: null;
  grant: readonly number[];
  revoke: number;
  applied: PerNode;
  holding: Readonly<Record<string, number | null>>;
  restart: Restarted;
  leaders: Leaders;
  kill: number;
  cpu: number;
  forget: null;
  stop: null;
}

export type Envelope = { readonly id: number; readonly req: HostRequest };
export type Reply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
