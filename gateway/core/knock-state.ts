// The knock machine's state: what it reads from a packet, what it reports, and the bounded
// per-sequence tables it keeps (see knock-machine.ts for the semantics). Pure.
import { kgwError } from './errors.ts';
import type { PortSpec, Proto } from './grant.ts';
import { parseIp, type Family } from './ip.ts';
import { createRateLimiter, SlabLru, type RateLimit, type RateLimiter } from './rate-limit.ts';
import type { KnockSequence, SequenceAction } from './types.ts';

export interface KnockInput {
  readonly src: string;
  readonly dst: string;
  readonly family: Family;
  readonly proto: Proto;
  readonly dport: number;
  readonly flags: number;
}

/** One line of a one_time_sequences file; `line` (0-based) lets the adapter mark it used. */
export interface OneTimeSequence {
  readonly line: number;
  readonly ports: readonly PortSpec[];
}

/** The one-time line a completion used up (pass it to markOneTimeSequenceUsed) and how many are left. */
export interface UsedOneTimeSequence extends OneTimeSequence {
  readonly remaining: number;
}

export interface KnockMachineOptions {
  /** Per-sequence cap on in-progress attempts. */
  readonly maxTrackedSources: number;
  /** Per-source token bucket on knock packets (fixed memory, see rate-limit.ts). */
  readonly rateLimit?: RateLimit;
  /** Concurrently active sources the rate limiter is sized for (default: maxTrackedSources). */
  readonly rateLimitSources?: number;
  /** Seeds the rate limiter's hash (default: random), so collisions cannot be aimed offline. */
  readonly hashSeed?: number;
  /** For sequences without `target`: only knocks sent to one of these count (knockd: the interface's addresses). Absent = any. */
  readonly localAddresses?: readonly string[];
  /** This host's own addresses: a knock "from" one of them is a spoof the kernel would drop. */
  readonly ownAddresses?: readonly string[];
  /** Required for every sequence with `oneTimeSequencesFile`, unused entries in file order. The first is the live one (knockd). */
  readonly oneTimeSequences?: ReadonlyMap<string, readonly OneTimeSequence[]>;
}

export interface Who {
  readonly sequenceId: string;
  readonly door: string;
  readonly ip: string;
  readonly family: Family;
}

export type ResetReason = 'wrong-port' | 'timeout';
export type DeniedReason = 'rate-limited' | 'bad-source';

export type KnockEvent =
  | (Who & { readonly type: 'progress'; readonly stage: number; readonly of: number })
  | (Who & { readonly type: 'reset'; readonly reason: ResetReason; readonly stage: number })
  | (Who & { readonly type: 'completed'; readonly action: SequenceAction; readonly oneTime?: UsedOneTimeSequence })
  | { readonly type: 'denied'; readonly ip: string; readonly family: Family; readonly reason: DeniedReason; readonly detail: string };

export interface KnockCounters {
  packets: number;
  /** Not a port of any live sequence. */
  ignoredPort: number;
  /** TCP flags did not match (per sequence). */
  ignoredFlags: number;
  /** Sent to another address than the sequence's target / the local addresses (per sequence). */
  ignoredTarget: number;
  progress: number;
  duplicates: number;
  resetWrongPort: number;
  resetTimeout: number;
  completed: number;
  evicted: number;
  deniedBadSource: number;
  deniedRateLimited: number;
  /** Exact rate-limit buckets evicted (only sources whose sketch cells ran dry get one). */
  rateLimitEvicted: number;
}

export interface SequenceState {
  readonly def: KnockSequence;
  readonly target: string | undefined;
  /** Current port keys; empty = disabled (one-time sequences used up). */
  keys: number[];
  oneTime: OneTimeSequence[] | undefined;
  /** In-progress attempts by source: list FRESH (stage 1) and list ADVANCED, each in recency order. */
  readonly table: SlabLru;
  /** Per slot: knocks accepted so far, time of the first knock, port key of the last accepted knock. */
  readonly stage: Uint16Array;
  readonly startedAt: Float64Array;
  readonly lastKey: Int32Array;
}

export interface KnockState {
  readonly sequences: readonly SequenceState[];
  /** port key -> live sequences that use it. */
  index: Map<number, SequenceState[]>;
  readonly cap: number;
  readonly local: ReadonlySet<string> | undefined;
  readonly own: ReadonlySet<string>;
  readonly limiter: RateLimiter | undefined;
  readonly counters: KnockCounters;
}

/** Attempt lists of a sequence's table: still at stage 1 (what a flood creates), or further. */
export const FRESH = 0;
export const ADVANCED = 1;

export function portKey(proto: Proto, port: number): number {
  return proto === 'udp' ? 65536 + port : port;
}

function canonical(ip: string, what: string): string {
  const p = parseIp(ip);
  if (!p) throw kgwError('KGW_CONFIG_INVALID', `${what} "${ip}" is not an IP address`, { ip });
  return p.address;
}

export function buildIndex(sequences: readonly SequenceState[]): Map<number, SequenceState[]> {
  const index = new Map<number, SequenceState[]>();
  for (const s of sequences) {
    for (const k of new Set(s.keys)) {
      const list = index.get(k);
      if (list) list.push(s);
      else index.set(k, [s]);
    }
  }
  return index;
}

/**
 * What the knock state can grow to under a flood that fills every table: per sequence and
 * tracked source a preallocated slot (~35 B) plus its key and index entry (~100 B), and per
 * source the rate limiter's sketch cells and exact bucket (~200 B).
 */
export function knockStateBytes(sequences: number, maxTrackedSources: number): number {
  return maxTrackedSources * (135 * sequences + 200);
}

/** The most knock state a config may ask for; past it a flood would exhaust the heap, not the table. */
export const KNOCK_STATE_BUDGET_BYTES = 256 * 1024 * 1024;

export function createKnockState(sequences: readonly KnockSequence[], opts: KnockMachineOptions): KnockState {
  if (!Number.isInteger(opts.maxTrackedSources) || opts.maxTrackedSources < 1) {
    throw kgwError('KGW_CONFIG_INVALID', `maxTrackedSources must be a positive integer, got ${opts.maxTrackedSources}`, { maxTrackedSources: opts.maxTrackedSources });
  }
  const states = sequences.map((def): SequenceState => {
    let ports = def.ports;
    let oneTime: OneTimeSequence[] | undefined;
    if (def.oneTimeSequencesFile !== undefined) {
      const list = opts.oneTimeSequences?.get(def.id);
      if (!list) {
        throw kgwError('KGW_CONFIG_INVALID', `sequence ${def.id} (${def.origin}) uses one_time_sequences but its entries were not loaded`, { sequence: def.id, file: def.oneTimeSequencesFile });
      }
      oneTime = [...list];
      ports = oneTime[0]?.ports ?? [];
    } else if (ports.length === 0) {
      throw kgwError('KGW_CONFIG_INVALID', `sequence ${def.id} (${def.origin}) has no ports`, { sequence: def.id });
    }
    return {
      def,
      target: def.target === undefined ? undefined : canonical(def.target, `target of ${def.id}`),
      keys: ports.map((p) => portKey(p.proto, p.port)),
      oneTime,
      table: new SlabLru(opts.maxTrackedSources, 2),
      stage: new Uint16Array(opts.maxTrackedSources),
      startedAt: new Float64Array(opts.maxTrackedSources),
      lastKey: new Int32Array(opts.maxTrackedSources),
    };
  });
  const local = opts.localAddresses ? new Set(opts.localAddresses.map((a) => canonical(a, 'local address'))) : undefined;
  const own = new Set((opts.ownAddresses ?? []).map((a) => canonical(a, 'own address')));
  return {
    sequences: states,
    index: buildIndex(states),
    cap: opts.maxTrackedSources,
    local,
    own,
    limiter: opts.rateLimit ? createRateLimiter(opts.rateLimit, opts.rateLimitSources ?? opts.maxTrackedSources, opts.hashSeed ?? Math.random() * 2 ** 32) : undefined,
    counters: {
      packets: 0, ignoredPort: 0, ignoredFlags: 0, ignoredTarget: 0, progress: 0, duplicates: 0, resetWrongPort: 0,
      resetTimeout: 0, completed: 0, evicted: 0, deniedBadSource: 0, deniedRateLimited: 0, rateLimitEvicted: 0,
    },
  };
}

export function trackedSources(state: KnockState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of state.sequences) out[s.def.id] = s.table.size;
  return out;
}

/** A snapshot of the counters. */
export function knockCounters(state: KnockState): Readonly<KnockCounters> {
  return { ...state.counters, rateLimitEvicted: state.limiter?.evicted ?? 0 };
}

/** Sequences whose one-time list is used up (knockd disables such a door). */
export function exhaustedSequences(state: KnockState): string[] {
  return state.sequences.filter((s) => s.keys.length === 0).map((s) => s.def.id);
}
