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
import { refusalReason, type Family } from './ip.ts';
import { take } from './rate-limit.ts';
import type { TcpFlagMatch } from './types.ts';
import { ADVANCED, buildIndex, FRESH, portKey, type KnockEvent, type KnockInput, type KnockState, type ResetReason, type SequenceState, type UsedOneTimeSequence } from './knock-state.ts';

const NO_EVENTS: readonly KnockEvent[] = Object.freeze([]);

export function flagsMatch(m: TcpFlagMatch, flags: number): boolean {
  return (flags & m.require) === m.require && (flags & m.forbid) === 0;
}

/**
 * refusalReason() for the hot path: every refused IPv4 range is decided by the first octet
 * (0/8, 127/8, 224/4 multicast, 240/4 incl. broadcast), so most packets cost a few charCodeAt.
 * A source equal to one of this host's own addresses is a spoof the kernel would drop too.
 */
function badSource(state: KnockState, p: KnockInput): string | undefined {
  if (state.own.has(p.src)) return "one of this host's own addresses";
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
  const bad = badSource(state, p);
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
 * The first knock of sequence `index` (in the state's order) that the kernel held back until the
 * source's next packet of that sequence (core/nft-intake.ts), fed at time `now` to that sequence
 * alone: to every other sequence no such packet came. `p` is the packet that released it; it is
 * stepped on its own right after. Rate limit and bad sources are the real packet's to report.
 */
export function stepDeferredFirst(state: KnockState, index: number, p: KnockInput, now: number): readonly KnockEvent[] {
  const s = state.sequences[index];
  const first = s?.oneTime === undefined ? s?.def.ports[0] : undefined;
  if (!s || !first || badSource(state, p) !== undefined) return NO_EVENTS;
  const knock: KnockInput = { src: p.src, dst: p.dst, family: p.family, proto: first.proto, dport: first.port, flags: first.proto === 'tcp' ? s.def.tcpFlags.require : 0 };
  const out: KnockEvent[] = [];
  stepSequence(state, s, knock, portKey(first.proto, first.port), now, out);
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

function assertNever(x: never): never {
  throw kgwError('KGW_INTERNAL', `unexpected value ${String(x)}`);
}
