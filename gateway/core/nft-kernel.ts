// Compiles knock sequences into nftables dynamic sets and rules, so the kernel itself advances
// and completes knocks (the kernel engine). Pure: produces the text the nftables adapter loads.
//
// Per sequence i and family f the kernel keeps:
//   q<i>_start<f>     sources that began the sequence, timeout = seq_timeout, refreshed only by a
//                     first knock: membership means "the first knock was less than seq_timeout ago",
//                     which is exactly knockd's rule (the deadline counts from the first knock).
//   q<i>_s<k>_<f>     sources that completed k steps (1 <= k < n).
// A packet on the next port moves the source from stage k to k+1; on the last port the door's
// ports go into allowed<f> (with the door TTL) and the event goes to NFLOG group N, prefix
// "kgw:<i>:open" or "kgw:<i>:close", which the daemon reads to record and propagate the grant.
//
// Flood bounds: the kernel has no LRU, and a full set refuses new entries. We keep "refuse new,
// keep in progress": the only eviction is the timeout, sets are sized for rate x timeout with
// headroom (DESIGN: 262144 entries held ~50k live entries under an 18k pps spoofed flood with 5 s
// timeouts), and a source that is not in q<i>_start costs two lookups and a drop on any port but
// the first. Evicting in-progress entries instead would let a flood cancel a legitimate knock.
import type { Door, KnockSequence } from './types.ts';
import type { Family } from './ip.ts';
import type { PortSpec, Proto } from './grant.ts';

export const KERNEL_SET_SIZE = 262144;
/**
 * How long the kernel remembers a completion in its done set: several full repairs (every 30 s)
 * must see it, and no longer, so that a repair never acts on an old one.
 */
export const DONE_WINDOW_MS = 120_000;
/** The NFLOG group the kernel engine reports completed sequences on (the daemon reads it). */
export const NFLOG_GROUP = 7213;
/** The nft set of granted (source, proto, port) per family, shared with the firewall backend. */
export const ALLOWED_SETS: Readonly<Record<Family, string>> = { 4: 'allowed4', 6: 'allowed6' };
/** A rate-limit entry lives this long after the source's last knock packet. */
const RATE_SET_TIMEOUT_MS = 2000;
const NFLOG_PREFIX = 'kgw';

export interface NftSetDef { readonly name: string; readonly body: string }
export interface NftChainDef { readonly name: string; readonly hook?: string; readonly rules: readonly string[] }

export interface KernelSequenceInfo {
  readonly index: number;
  readonly id: string;
  readonly door: string;
  readonly action: 'open' | 'close';
}

export interface KernelProgram {
  /** Every set the program needs (allowed4/6 excepted: the base owns those). */
  readonly sets: readonly NftSetDef[];
  /** Jump targets before the chains that jump to them; the hooked chain last. */
  readonly chains: readonly NftChainDef[];
  readonly sequences: readonly KernelSequenceInfo[];
  /** Sequences left to the pcap engine, with why. */
  readonly skipped: readonly { readonly index: number; readonly id: string; readonly reason: string }[];
}

export interface KernelCompileInput {
  /** The config's sequences; the NFLOG prefix carries the index into this list. */
  readonly sequences: readonly KnockSequence[];
  readonly doors: readonly Door[];
  readonly nflogGroup: number;
  /** Per-source cap on knock packets (IPv6 per /64), enforced in the kernel before any set work. */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number };
  readonly setSize?: number;
}

const PROTO_NUM: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17 };
const FAMILIES: readonly Family[] = [4, 6];

/** Why the kernel cannot run this sequence, or undefined when it can. */
export function kernelUnsupportedReason(seq: KnockSequence, doors: readonly Door[]): string | undefined {
  if (seq.action.kind === 'command') return 'it runs commands';
  if (seq.oneTimeSequencesFile !== undefined) return 'it uses one-time sequences';
  if (seq.ports.length === 0) return 'it has no ports';
  const door = doors.find((d) => d.name === seq.door);
  if (!door) return `its door "${seq.door}" is not defined`;
  if (seq.action.kind === 'open' && door.open.length === 0) return 'its door opens no ports';
  if (seq.timeoutMs <= 0) return 'it has no sequence timeout (the kernel state would never expire)';
  return undefined;
}

export function nflogPrefix(index: number, action: 'open' | 'close'): string {
  return `${NFLOG_PREFIX}:${index}:${action}`;
}

/** The sequence index and action of an NFLOG prefix written by this program. */
export function parseNflogPrefix(prefix: string): { index: number; action: 'open' | 'close' } | undefined {
  const m = /^kgw:(\d+):(open|close)$/.exec(prefix.replace(/\0+$/, '').trim());
  if (!m) return undefined;
  return { index: Number(m[1]), action: m[2] === 'open' ? 'open' : 'close' };
}

const saddr = (f: Family): string => (f === 4 ? 'ip saddr' : 'ip6 saddr');
const startSet = (i: number, f: Family): string => `q${i}_start${f}`;
/** Sources that completed sequence i lately: the kernel's own record, for repairing lost NFLOG reports. */
export const doneSet = (i: number, f: Family): string => `q${i}_done${f}`;
const stageSet = (i: number, k: number, f: Family): string => `q${i}_s${k}_${f}`;
const portKey = (p: PortSpec): string => `${p.proto}_${p.port}`;
const samePort = (a: PortSpec, b: PortSpec): boolean => a.port === b.port && a.proto === b.proto;

function completion(i: number, seq: KnockSequence, door: Door, f: Family, group: number): string {
  const n = seq.ports.length;
  const a = saddr(f);
  const parts: string[] = [];
  if (n > 1) parts.push(`delete @${stageSet(i, n - 1, f)} { ${a} }`);
  parts.push(`delete @${startSet(i, f)} { ${a} }`);
  const kind = seq.action.kind === 'close' ? 'close' : 'open';
  for (const p of door.open) {
    const key = `${a} . ${PROTO_NUM[p.proto]} . ${p.port}`;
    // `update`, not `add`: knocking again while open must refresh the TTL.
    if (kind === 'open') parts.push(`update @${ALLOWED_SETS[f]} { ${key}${door.ttlMs > 0 ? ` timeout ${door.ttlMs}ms` : ''} }`);
    else parts.push(`delete @${ALLOWED_SETS[f]} { ${key} }`);
  }
  // NFLOG can drop a report (a full netlink buffer): the done set remembers the completion
  // long enough for the daemon's repair to find it (see DONE_WINDOW_MS).
  parts.push(`update @${doneSet(i, f)} { ${a} }`);
  // queue-threshold 1: hand each event to the daemon at once (the default batches up to 1 s).
  parts.push(`log prefix "${nflogPrefix(i, kind)}" group ${group} queue-threshold 1`);
  return parts.join(' ');
}

function allStagesDeleted(i: number, n: number, f: Family, from: number): string[] {
  const out: string[] = [];
  for (let k = from; k < n; k++) out.push(`delete @${stageSet(i, k, f)} { ${saddr(f)} }`);
  return out;
}

/** The rules of one sequence for packets on one of its ports (the dispatch already matched proto+port). */
function sequencePortRules(i: number, seq: KnockSequence, door: Door, port: PortSpec, group: number): string[] {
  const n = seq.ports.length;
  const rules: string[] = [];
  const mask = seq.tcpFlags.require | seq.tcpFlags.forbid;
  // knockd ignores (rather than resets on) TCP packets whose flags do not match.
  if (port.proto === 'tcp' && mask !== 0) rules.push(`tcp flags & 0x${mask.toString(16)} != 0x${seq.tcpFlags.require.toString(16)} return`);
  const first = seq.ports[0];
  const isFirst = first !== undefined && samePort(first, port);
  for (const f of FAMILIES) {
    // Every rule names its family: a dynset statement on `ip saddr` carries no implicit
    // nfproto check, so an IPv6 packet would otherwise hit the IPv4 reset rule and return.
    const fam = f === 4 ? 'meta nfproto ipv4' : 'meta nfproto ipv6';
    const push = (rule: string): void => {
      rules.push(`${fam} ${rule}`);
    };
    const a = saddr(f);
    const inStart = `${a} @${startSet(i, f)}`;
    // Early exit: on a later port, a source that never started cannot be in the sequence.
    if (!isFirst) push(`${a} != @${startSet(i, f)} return`);
    for (let k = n - 1; k >= 1; k--) {
      const p = seq.ports[k];
      if (!p || !samePort(p, port)) continue;
      const from = `${inStart} ${a} @${stageSet(i, k, f)}`;
      if (k === n - 1) push(`${from} ${completion(i, seq, door, f, group)} return`);
      else push(`${from} delete @${stageSet(i, k, f)} { ${a} } update @${stageSet(i, k + 1, f)} { ${a} } return`);
    }
    // A retransmitted SYN of the knock just made is not a wrong knock (a known knockd complaint).
    for (let k = 1; k < n; k++) {
      const prev = seq.ports[k - 1];
      if (prev && samePort(prev, port)) push(`${inStart} ${a} @${stageSet(i, k, f)} return`);
    }
    if (isFirst) {
      if (n === 1) push(`${completion(i, seq, door, f, group)} return`);
      else push([`update @${startSet(i, f)} { ${a} }`, ...allStagesDeleted(i, n, f, 2), `update @${stageSet(i, 1, f)} { ${a} }`, 'return'].join(' '));
    } else {
      // Any other port of this sequence resets the source, as knockd does.
      push([...allStagesDeleted(i, n, f, 1), `delete @${startSet(i, f)} { ${a} }`, 'return'].join(' '));
    }
  }
  return rules;
}

export function compileKernel(input: KernelCompileInput): KernelProgram {
  const size = input.setSize ?? KERNEL_SET_SIZE;
  const group = input.nflogGroup;
  const sets: NftSetDef[] = [];
  const seqChains: NftChainDef[] = [];
  const sequences: KernelSequenceInfo[] = [];
  const skipped: { index: number; id: string; reason: string }[] = [];
  // proto_port -> the sequence chains to run for it, in sequence order.
  const dispatch = new Map<string, { port: PortSpec; chains: string[] }>();

  input.sequences.forEach((seq, i) => {
    const reason = kernelUnsupportedReason(seq, input.doors);
    const door = input.doors.find((d) => d.name === seq.door);
    if (reason !== undefined || !door) {
      skipped.push({ index: i, id: seq.id, reason: reason ?? 'no door' });
      return;
    }
    sequences.push({ index: i, id: seq.id, door: seq.door, action: seq.action.kind === 'close' ? 'close' : 'open' });
    const timeout = `timeout ${seq.timeoutMs}ms`;
    for (const f of FAMILIES) {
      const type = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
      sets.push({ name: startSet(i, f), body: `type ${type}; flags dynamic,timeout; ${timeout}; size ${size};` });
      for (let k = 1; k < seq.ports.length; k++) sets.push({ name: stageSet(i, k, f), body: `type ${type}; flags dynamic,timeout; ${timeout}; size ${size};` });
      sets.push({ name: doneSet(i, f), body: `type ${type}; flags dynamic,timeout; timeout ${DONE_WINDOW_MS}ms; size ${size};` });
    }
    const seen = new Set<string>();
    for (const p of seq.ports) {
      const key = portKey(p);
      if (seen.has(key)) continue;
      seen.add(key);
      const name = `q${i}_${key}`;
      seqChains.push({ name, rules: sequencePortRules(i, seq, door, p, group) });
      const slot = dispatch.get(key) ?? { port: p, chains: [] };
      slot.chains.push(name);
      dispatch.set(key, slot);
    }
  });

  if (sequences.length === 0) return { sets: [], chains: [], sequences, skipped };

  const { perSecond, burst } = input.rateLimit;
  const limit = `limit rate over ${perSecond}/second burst ${Math.max(1, burst)} packets`;
  sets.push({ name: 'knock_rate4', body: `type ipv4_addr; flags dynamic,timeout; timeout ${RATE_SET_TIMEOUT_MS}ms; size ${size};` });
  sets.push({ name: 'knock_rate6', body: `type ipv6_addr; flags dynamic,timeout; timeout ${RATE_SET_TIMEOUT_MS}ms; size ${size};` });

  const portChains: NftChainDef[] = [];
  const vmap: string[] = [];
  for (const [key, slot] of [...dispatch.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const name = `knock_${key}`;
    portChains.push({
      name,
      rules: [
        // Traffic routed through this host to the same port is not a knock.
        'fib daddr type != local return',
        // Sources the kernel drops after this hook (martians, spoofs of our own addresses) and
        // knockgw never grants: they must not advance a sequence or reach the daemon either.
        'fib saddr type { local, broadcast, multicast } counter drop',
        'ip saddr { 0.0.0.0/8, 240.0.0.0/4 } counter drop',
        'ip6 saddr { ::/128, ::ffff:0:0/96 } counter drop',
        `meta nfproto ipv4 update @knock_rate4 { ip saddr ${limit} } counter drop`,
        `meta nfproto ipv6 update @knock_rate6 { ip6 saddr & ffff:ffff:ffff:ffff:: ${limit} } counter drop`,
        ...slot.chains.map((c) => `jump ${c}`),
        // Knock ports are closed ports: the knock is examined, never delivered.
        'counter drop',
      ],
    });
    vmap.push(`${slot.port.proto} . ${slot.port.port} : jump ${name}`);
  }
  // prerouting at raw - 10: before conntrack, so a spoofed flood on knock ports creates no
  // conntrack entries.
  const hook: NftChainDef = {
    name: 'knock',
    hook: 'type filter hook prerouting priority raw - 10; policy accept;',
    rules: [`meta l4proto . th dport vmap { ${vmap.join(', ')} }`],
  };
  return { sets, chains: [...seqChains, ...portChains, hook], sequences, skipped };
}
