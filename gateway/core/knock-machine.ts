// The knock state machine: packets in, knock events out. Pure (no I/O, no clock, no logger).
//
// Semantics are knockd's (src/knockd.c, sniff() and process_attempt()), with its known
// failures fixed:
// - per (sequence, source IP) a stage; the next expected port+proto advances, any other port of
//   *that* sequence resets (knockd resets on any door's port: a knock for door B then ruins the
//   knock for door A); ports that are not in the sequence are ignored;
// - TCP packets whose flags do not match `tcpFlags` are ignored, neither advancing nor resetting
//   (knockd's flags_match());
// - a repeat of the last accepted knock (a retransmitted SYN) is tolerated instead of resetting;
// - a reset caused by the sequence's first port starts a new attempt at once (knockd drops that
//   packet, so a user who restarts a sequence after a mistake fails a second time);
// - `timeoutMs` runs from the first knock; a knock at or after start + timeout is late (knockd
//   compares whole seconds with >=);
// - every attempt is independent, so one source timing out never drops another's attempt
//   (knockd's list splice empties the whole list when the head entry expires);
// - state is bounded: at most `maxTrackedSources` attempts per sequence. Attempts still at stage
//   1 (what a spoofed-source flood creates) are evicted first, oldest first; attempts that got
//   further are only evicted when no stage-1 attempt is left. Evictions are counted.
//
// For speed the state is mutated in place: step() returns only the events. Keep one state per
// listener and never share it between threads of control.
import { kgwError } from './errors.ts';
import type { PortSpec, Proto } from './grant.ts';
import { parseIp, refusalReason, type Family } from './ip.ts';
import { createRateLimiter, SlabLru, take, type RateLimit, type RateLimiter } from './rate-limit.ts';
import type { KnockSequence, SequenceAction, TcpFlagMatch } from './types.ts';

/** What the machine reads from a packet (a KnockPacket from ports.ts fits). */
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
  /** Required for every sequence with `oneTimeSequencesFile`, unused entries in file order. The first is the live one (knockd). */
  readonly oneTimeSequences?: ReadonlyMap<string, readonly OneTimeSequence[]>;
}

interface Who {
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

interface SequenceState {
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
  readonly limiter: RateLimiter | undefined;
  readonly counters: KnockCounters;
}

const NO_EVENTS: readonly KnockEvent[] = Object.freeze([]);
const FRESH = 0;
const ADVANCED = 1;

function portKey(proto: Proto, port: number): number {
  return proto === 'udp' ? 65536 + port : port;
}

function canonical(ip: string, what: string): string {
  const p = parseIp(ip);
  if (!p) throw kgwError('KGW_CONFIG_INVALID', `${what} "${ip}" is not an IP address`, { ip });
  return p.address;
}

function buildIndex(sequences: readonly SequenceState[]): Map<number, SequenceState[]> {
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
  return {
    sequences: states,
    index: buildIndex(states),
    cap: opts.maxTrackedSources,
    local,
    limiter: opts.rateLimit ? createRateLimiter(opts.rateLimit, opts.rateLimitSources ?? opts.maxTrackedSources, opts.hashSeed ?? Math.random() * 2 ** 32) : undefined,
    counters: {
      packets: 0, ignoredPort: 0, ignoredFlags: 0, ignoredTarget: 0, progress: 0, duplicates: 0, resetWrongPort: 0,
      resetTimeout: 0, completed: 0, evicted: 0, deniedBadSource: 0, deniedRateLimited: 0, rateLimitEvicted: 0,
    },
  };
}

export function flagsMatch(m: TcpFlagMatch, flags: number): boolean {
  return (flags & m.require) === m.require && (flags & m.forbid) === 0;
}

/**
 * refusalReason() for the hot path: every refused IPv4 range is decided by the first octet
 * (0/8, 127/8, 224/4 multicast, 240/4 incl. broadcast), so most packets cost a few charCodeAt.
 */
function badSource(p: KnockInput): string | undefined {
  if (p.family === 4) {
    let octet = 0;
    for (let i = 0; i < 4; i++) {
      const d = p.src.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      octet = octet * 10 + d;
    }
    if (octet !== 0 && octet !== 127 && octet < 224) return undefined;
  }
  return refusalReason({ address: p.src, family: p.family });
}

function admit(state: KnockState, s: SequenceState, ip: string, key: number, now: number): void {
  const t = s.table;
  let slot = t.add(ip, FRESH);
  if (slot < 0) {
    t.remove(t.count(FRESH) > 0 ? t.oldest(FRESH) : t.oldest(ADVANCED));
    state.counters.evicted++;
    slot = t.add(ip, FRESH);
  }
  s.stage[slot] = 1;
  s.startedAt[slot] = now;
  s.lastKey[slot] = key;
}

/** Consumes the live one-time sequence; the next line (if any) becomes live and old attempts die with the old ports. */
function consumeOneTime(state: KnockState, s: SequenceState): UsedOneTimeSequence | undefined {
  if (!s.oneTime) return undefined;
  const used = s.oneTime.shift();
  const next = s.oneTime[0];
  s.keys = next ? next.ports.map((p) => portKey(p.proto, p.port)) : [];
  s.table.clear();
  state.index = buildIndex(state.sequences);
  return used ? { line: used.line, ports: used.ports, remaining: s.oneTime.length } : undefined;
}

function complete(state: KnockState, s: SequenceState, p: KnockInput): KnockEvent {
  state.counters.completed++;
  const oneTime = consumeOneTime(state, s);
  const { id: sequenceId, door, action } = s.def;
  return oneTime
    ? { type: 'completed', sequenceId, door, ip: p.src, family: p.family, action, oneTime }
    : { type: 'completed', sequenceId, door, ip: p.src, family: p.family, action };
}

function progress(state: KnockState, s: SequenceState, p: KnockInput, stage: number): KnockEvent {
  state.counters.progress++;
  return { type: 'progress', sequenceId: s.def.id, door: s.def.door, ip: p.src, family: p.family, stage, of: s.keys.length };
}

function reset(s: SequenceState, ip: string, family: Family, reason: ResetReason, stage: number): KnockEvent {
  return { type: 'reset', sequenceId: s.def.id, door: s.def.door, ip, family, reason, stage };
}

/** A fresh first knock (no attempt, or the previous one just ended). */
function begin(state: KnockState, s: SequenceState, p: KnockInput, key: number, now: number, out: KnockEvent[]): void {
  if (key !== s.keys[0]) return;
  if (s.keys.length === 1) {
    out.push(complete(state, s, p));
    return;
  }
  admit(state, s, p.src, key, now);
  out.push(progress(state, s, p, 1));
}

function stepSequence(state: KnockState, s: SequenceState, p: KnockInput, key: number, now: number, out: KnockEvent[]): void {
  const c = state.counters;
  const elsewhere = s.target !== undefined ? s.target !== p.dst : state.local !== undefined && !state.local.has(p.dst);
  if (elsewhere) {
    c.ignoredTarget++;
    return;
  }
  if (p.proto === 'tcp' && !flagsMatch(s.def.tcpFlags, p.flags)) {
    c.ignoredFlags++;
    return;
  }
  const t = s.table;
  const slot = t.find(p.src);
  if (slot < 0) {
    begin(state, s, p, key, now, out);
    return;
  }
  const stage = s.stage[slot] ?? 0;
  if (now - (s.startedAt[slot] ?? 0) >= s.def.timeoutMs) {
    t.remove(slot);
    c.resetTimeout++;
    out.push(reset(s, p.src, p.family, 'timeout', stage));
    begin(state, s, p, key, now, out);
    return;
  }
  if (key === s.keys[stage]) {
    if (stage + 1 >= s.keys.length) {
      t.remove(slot);
      out.push(complete(state, s, p));
      return;
    }
    s.stage[slot] = stage + 1;
    s.lastKey[slot] = key;
    t.move(slot, ADVANCED);
    out.push(progress(state, s, p, stage + 1));
    return;
  }
  if (key === s.lastKey[slot]) {
    // A retransmitted SYN: keep the attempt, refresh its recency.
    c.duplicates++;
    t.move(slot, t.listOf(slot));
    return;
  }
  t.remove(slot);
  c.resetWrongPort++;
  out.push(reset(s, p.src, p.family, 'wrong-port', stage));
  begin(state, s, p, key, now, out);
}

/**
 * Feeds one packet at time `now` (ms) into the machine. Mutates `state` and returns the
 * events it caused (a shared empty array when none).
 */
export function step(state: KnockState, p: KnockInput, now: number): readonly KnockEvent[] {
  const c = state.counters;
  c.packets++;
  const key = portKey(p.proto, p.dport);
  const seqs = state.index.get(key);
  if (seqs === undefined) {
    c.ignoredPort++;
    return NO_EVENTS;
  }
  const bad = badSource(p);
  if (bad !== undefined) {
    c.deniedBadSource++;
    return [{ type: 'denied', ip: p.src, family: p.family, reason: 'bad-source', detail: bad }];
  }
  if (state.limiter) {
    const verdict = take(state.limiter, p.src, now);
    switch (verdict) {
      case 'ok':
        break;
      case 'first-refusal':
        c.deniedRateLimited++;
        return [{ type: 'denied', ip: p.src, family: p.family, reason: 'rate-limited', detail: 'knock packet rate limit exceeded' }];
      case 'refused':
        // Counted, not reported again: a flooding source would otherwise flood the log too.
        c.deniedRateLimited++;
        return NO_EVENTS;
      default:
        return assertNever(verdict);
    }
  }
  const out: KnockEvent[] = [];
  // A completed one-time sequence rebuilds the index; the list we hold stays valid for this packet.
  for (const s of seqs) stepSequence(state, s, p, key, now, out);
  return out.length === 0 ? NO_EVENTS : out;
}

/**
 * Drops attempts whose time is up; returns a
 * timeout reset per dropped attempt. Call it periodically (e.g. every second): step() alone
 * only notices a timeout when the same source knocks again.
 */
export function expire(state: KnockState, now: number): KnockEvent[] {
  const out: KnockEvent[] = [];
  for (const s of state.sequences) {
    const t = s.table;
    for (const list of [FRESH, ADVANCED]) {
      for (let slot = t.oldest(list); slot >= 0;) {
        const next = t.newer(slot);
        if (now - (s.startedAt[slot] ?? 0) >= s.def.timeoutMs) {
          const ip = t.keyOf(slot);
          out.push(reset(s, ip, ip.includes(':') ? 6 : 4, 'timeout', s.stage[slot] ?? 0));
          state.counters.resetTimeout++;
          t.remove(slot);
        }
        slot = next;
      }
    }
  }
  return out;
}

/** In-progress attempts per sequence id (for metrics and `status`). */
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

function assertNever(x: never): never {
  throw kgwError('KGW_INTERNAL', `unexpected value ${String(x)}`);
}
