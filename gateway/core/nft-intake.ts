// The kernel in front of the daemon's packet intakes: nftables chains that hand the daemon, over
// NFLOG, only what it has to see, after per-source rate limits. Pure: produces sets and chains
// that nft-ruleset.ts renders into knockgw's table next to the base and the kernel engine.
//
// Where: prerouting at `raw - 20`. Before conntrack (-200), so a spoofed flood on these ports
// leaves no conntrack entry (the kernel engine's `raw - 10` has the same reason); after defrag
// (-400), so `th dport` sees whole datagrams; and before the kernel engine, whose chain drops
// every packet on its knock ports: a port shared by a sequence on the kernel engine and one left
// to the pcap engine (a one-time or command door) must reach both. Only the SPA port drops here;
// the knock chains just watch (knockd never changed what the host does with a knock either).
//
// SPA (a UDP socket of the daemon on the SPA port): every UDP packet to the SPA port of this host
// is dropped here unless its source is one the kernel drops anyway (martians, IPv4-mapped), its
// size and first four bytes can be fwknop's (140-1500 bytes of base64 text: random garbage fails
// with probability > 99.5%, and these stateless checks come before the per-source limit so
// garbage costs no set entry), its source (IPv6: its /64) is within SPA_RATE, and all sources
// together are within SPA_CAP. What passes is marked notrack (a flood of it leaves no conntrack
// entry) and accepted to the daemon's socket, which reads it by recvmsg — no capture process, no
// pcap parse — and never answers; nothing else reaches the port, and with no socket bound (the
// daemon stopped) the rule drops even that, so the port answers nothing, whatever runs.
// Another firewall that drops udp/<port> in its input chain hides the packets from the socket
// (doctor says so). The cap is what bounds the daemon's work whatever arrives: spoofed sources
// defeat any per-source limit and base64-looking garbage passes the shape checks. Its price: a
// flood of well-formed garbage above the cap delays legitimate packets (each passes with probability
// cap/rate), a denial of service anyone can have against any SPA daemon, here at bounded cost.
//
// pcap knocks (NFLOG group 7214): the pcap engine's knock machine still decides everything with
// knockd's semantics; the kernel only withholds what cannot change its outcome. Per sequence i
// that can be deferred (2+ ports, a timeout, no one_time_sequences file), per family f:
//   ps<i>_<f>  sources whose first knock of i came less than seq_timeout ago (the kernel engine's
//              q<i>_start: `add` keeps the deadline of the first knock, knockd's rule)
//   pl<i>_<f>  sources the daemon has been told about ("live"), refreshed by each first knock
// A first knock from a source that is not live goes into ps<i> and no further: a spoofed-source
// flood on a first port (all an attacker who cannot see replies can do) costs one set insert per
// packet and never wakes the daemon. The source's next packet on a port of i promotes it: it is
// logged twice, as "kgw-pf:<i>" (the held-back first knock, which the daemon replays into
// sequence i alone) and as "kgw-pk" (the packet itself). From then on every packet of a live
// source on i's ports is logged while its first knock is younger than seq_timeout. Promotions
// are capped per rule (PROMOTE_CAP), so even first+second knocks from spoofed sources cost the
// daemon a bounded rate. Sequences that cannot be deferred have every packet on their ports logged
// (after the per-source limit, KnockRate = the config's knock rate limit).
//
// What differs from feeding the machine every packet, none of it letting through a knock knockd
// would refuse: a held-back first knock's checksum is never checked (it never reaches userspace;
// a bad checksum gives a spoofing sender nothing a good one would not); the machine dates it at
// the promotion, so its own deadline is lenient by up to seq_timeout, and ps<i> enforces the real
// one; repeats of a first knock before the promotion are not seen (the machine would count them
// as duplicates, nothing more). A full ps<i> refuses new first knocks, as the kernel engine's sets do.
import type { PortSpec, Proto } from './grant.ts';
import type { Family } from './ip.ts';
import type { NftChainDef, NftSetDef } from './nft-kernel.ts';
import type { KnockSequence } from './types.ts';

export const INTAKE_GROUPS = { pcap: 7214 } as const;
export const INTAKE_CHAIN = 'intake';
/** See the header: before the kernel engine (`raw - 10`) and conntrack, after defrag. */
export const INTAKE_PRIORITY = 'raw - 20';
/** Per source (IPv6: per /64): a client sends one packet per access; a shared NAT address a few more. */
export const SPA_RATE = { perSecond: 5, burst: 20 } as const;
/** All sources together: what the daemon is asked to authenticate at most (see the header). */
export const SPA_CAP = { perSecond: 2000, burst: 500 } as const;
/** Per promotion rule (sequence, port, family): held-back first knocks released per second at most. */
export const PROMOTE_CAP = { perSecond: 1000, burst: 1000 } as const;
/** fwknop's UDP payload bounds (protocol/fwknop.ts MIN_SPA_PACKET, MAX_SPA_PACKET) plus the 8-byte UDP header. */
const SPA_UDP_LENGTH = { min: 140 + 8, max: 1500 + 8 } as const;
/** Base64's alphabet as byte values: + / 0-9 A-Z a-z. */
const BASE64_BYTES = '{ 43, 47-57, 65-90, 97-122 }';
const RATE_SET_TIMEOUT_MS = 2000;
const LIVE_SET_SIZE = 65536;

const PREFIX = { knock: 'kgw-pk', first: 'kgw-pf' } as const;

export type IntakeRecord = { readonly kind: 'knock' } | { readonly kind: 'first'; readonly index: number };

/** What an intake record's NFLOG prefix says; undefined for prefixes this module did not write. */
export function parseIntakePrefix(prefix: string): IntakeRecord | undefined {
  const p = prefix.replace(/\0+$/, '').trim();
  if (p === PREFIX.knock) return { kind: 'knock' };
  const m = /^kgw-pf:(\d{1,5})$/.exec(p);
  return m ? { kind: 'first', index: Number(m[1]) } : undefined;
}

interface Rate { readonly perSecond: number; readonly burst: number }

export interface IntakeCompileInput {
  /** The pcap engine's sequences, in the order its knock machine holds them (prefixes carry an index into it). */
  readonly pcap?: {
    readonly sequences: readonly KnockSequence[];
    /** Every port of the one_time_sequences files (such sequences list none themselves). */
    readonly oneTimePorts: readonly PortSpec[];
    /** Knocks count on these interfaces only, as with knockd's Interface. */
    readonly interfaces: readonly string[];
    readonly rateLimit: Rate;
  };
  /** The SPA port (UDP). */
  readonly spa?: { readonly port: number };
  readonly setSize?: number;
}

export interface IntakeProgram {
  readonly sets: readonly NftSetDef[];
  /** Jump targets first, the hooked chain last. */
  readonly chains: readonly NftChainDef[];
  /** pcap sequences whose every packet is logged, with why (the rest are deferred). */
  readonly undeferred: readonly { readonly index: number; readonly id: string; readonly reason: string }[];
}

/** Why the kernel cannot hold back this sequence's first knocks, or undefined when it can. */
export function deferUnsupportedReason(seq: KnockSequence): string | undefined {
  if (seq.oneTimeSequencesFile !== undefined) return 'its ports come from a one_time_sequences file';
  if (seq.ports.length < 2) return 'a single knock completes it';
  if (seq.timeoutMs <= 0) return 'it has no sequence timeout';
  return undefined;
}

const PROTO_ORDER: Readonly<Record<Proto, number>> = { tcp: 0, udp: 1 };
const FAMILIES: readonly Family[] = [4, 6];
const fam = (f: Family): string => (f === 4 ? 'meta nfproto ipv4' : 'meta nfproto ipv6');
const saddr = (f: Family): string => (f === 4 ? 'ip saddr' : 'ip6 saddr');
const samePort = (a: PortSpec, b: PortSpec): boolean => a.port === b.port && a.proto === b.proto;
const portKey = (p: PortSpec): string => `${p.proto}_${p.port}`;
const startSet = (i: number, f: Family): string => `ps${i}_${f}`;
const liveSet = (i: number, f: Family): string => `pl${i}_${f}`;
const limitOver = (r: Rate): string => `limit rate over ${r.perSecond}/second burst ${Math.max(1, r.burst)} packets`;
const log = (prefix: string, group: number): string => `log prefix "${prefix}" group ${group} queue-threshold 1`;

/** Sources the kernel itself drops after this hook (martians, IPv4-mapped); `verdict` for them. */
function bogons(verdict: 'drop' | 'return'): string[] {
  return [
    `fib saddr type { local, broadcast, multicast } counter ${verdict}`,
    `ip saddr { 0.0.0.0/8, 240.0.0.0/4 } counter ${verdict}`,
    `ip6 saddr { ::/128, ::ffff:0:0/96 } counter ${verdict}`,
  ];
}

/** Per-source limit (IPv6 per /64) on set `name`4/6. */
function perSource(name: string, r: Rate, verdict: 'drop' | 'return'): string[] {
  return [
    `meta nfproto ipv4 update @${name}4 { ip saddr ${limitOver(r)} } counter ${verdict}`,
    `meta nfproto ipv6 update @${name}6 { ip6 saddr & ffff:ffff:ffff:ffff:: ${limitOver(r)} } counter ${verdict}`,
  ];
}

function rateSets(name: string, size: number): NftSetDef[] {
  return FAMILIES.map((f) => ({ name: `${name}${f}`, body: `type ipv${f}_addr; flags dynamic,timeout; timeout ${RATE_SET_TIMEOUT_MS}ms; size ${size};` }));
}

function spaChain(): NftChainDef {
  const byte = (n: number): string => `@th,${64 + 8 * n},8 != ${BASE64_BYTES} counter drop`;
  return {
    name: 'spa',
    rules: [
      ...bogons('drop'),
      `udp length < ${SPA_UDP_LENGTH.min} counter drop`,
      `udp length > ${SPA_UDP_LENGTH.max} counter drop`,
      byte(0), byte(1), byte(2), byte(3),
      ...perSource('spa_rate', SPA_RATE, 'drop'),
      `${limitOver(SPA_CAP)} counter drop`,
      // Only to a socket: with the daemon down the port stays as silent as with it up.
      'socket transparent 0 notrack counter accept',
      'counter drop',
    ],
  };
}

/** Who may knock on this sequence's ports: its knockd `target`, or any address of this host. */
function destination(seq: KnockSequence): string[] {
  if (seq.target === undefined) return ['fib daddr type != local return'];
  const v6 = seq.target.includes(':');
  return [`${v6 ? 'meta nfproto ipv4' : 'meta nfproto ipv6'} return`, `${v6 ? 'ip6' : 'ip'} daddr != ${seq.target} return`];
}

/** The bookkeeping of deferred sequence i for packets on `port` (see the header). */
function deferredRules(i: number, seq: KnockSequence, port: PortSpec): string[] {
  const rules = [...destination(seq)];
  const mask = seq.tcpFlags.require | seq.tcpFlags.forbid;
  // The machine ignores TCP packets whose flags do not match (knockd): so does the kernel.
  if (port.proto === 'tcp' && mask !== 0) rules.push(`tcp flags & 0x${mask.toString(16)} != 0x${seq.tcpFlags.require.toString(16)} return`);
  const first = seq.ports[0];
  const isFirst = first !== undefined && samePort(first, port);
  const alsoLater = seq.ports.slice(1).some((p) => samePort(p, port));
  for (const f of FAMILIES) {
    const a = saddr(f);
    const live = `${fam(f)} ${a} @${liveSet(i, f)}`;
    // Live: the final rule of the port chain logs it; a first knock restarts the deadline.
    rules.push(isFirst ? `${live} update @${startSet(i, f)} { ${a} } update @${liveSet(i, f)} { ${a} } return` : `${live} return`);
    if (isFirst) {
      rules.push(`${fam(f)} ${a} != @${startSet(i, f)} add @${startSet(i, f)} { ${a} } return`);
      // A repeat of the held-back first knock: a duplicate for the machine.
      if (!alsoLater) rules.push(`${fam(f)} return`);
    }
    rules.push(`${fam(f)} ${a} @${startSet(i, f)} limit rate ${PROMOTE_CAP.perSecond}/second burst ${PROMOTE_CAP.burst} packets add @${liveSet(i, f)} { ${a} } ${log(`${PREFIX.first}:${i}`, INTAKE_GROUPS.pcap)} return`);
  }
  return rules;
}

interface PortSlot { readonly port: PortSpec; readonly deferred: number[]; undeferred: boolean; targeted: boolean }

function pcapChains(input: NonNullable<IntakeCompileInput['pcap']>, undeferred: IntakeProgram['undeferred'][number][]): { chains: NftChainDef[]; slots: PortSlot[] } {
  const slots = new Map<string, PortSlot>();
  const slot = (p: PortSpec): PortSlot => {
    const k = portKey(p);
    let s = slots.get(k);
    if (!s) slots.set(k, (s = { port: p, deferred: [], undeferred: false, targeted: false }));
    return s;
  };
  const chains: NftChainDef[] = [];
  input.sequences.forEach((seq, i) => {
    const reason = deferUnsupportedReason(seq);
    const ports = seq.oneTimeSequencesFile !== undefined ? input.oneTimePorts : seq.ports;
    if (reason !== undefined) undeferred.push({ index: i, id: seq.id, reason });
    const seen = new Set<string>();
    for (const p of ports) {
      if (seen.has(portKey(p))) continue;
      seen.add(portKey(p));
      const s = slot(p);
      if (seq.target !== undefined) s.targeted = true;
      if (reason !== undefined) {
        s.undeferred = true;
        continue;
      }
      s.deferred.push(i);
      chains.push({ name: `pcap${i}_${portKey(p)}`, rules: deferredRules(i, seq, p) });
    }
  });
  const ordered = [...slots.values()].sort((a, b) => PROTO_ORDER[a.port.proto] - PROTO_ORDER[b.port.proto] || a.port.port - b.port.port);
  for (const s of ordered) {
    const logKnock = log(PREFIX.knock, INTAKE_GROUPS.pcap);
    const final = s.undeferred
      ? [`counter ${logKnock} return`]
      : s.deferred.flatMap((i) => FAMILIES.map((f) => `${fam(f)} ${saddr(f)} @${liveSet(i, f)} ${saddr(f)} @${startSet(i, f)} counter ${logKnock} return`));
    chains.push({
      name: `pcap_${portKey(s.port)}`,
      rules: [
        // Routed traffic is not a knock; a sequence with a knockd target decides for itself.
        ...(s.targeted ? [] : ['fib daddr type != local return']),
        ...bogons('return'),
        ...perSource('pcap_rate', input.rateLimit, 'return'),
        ...s.deferred.map((i) => `jump pcap${i}_${portKey(s.port)}`),
        ...final,
      ],
    });
  }
  return { chains, slots: ordered };
}

export function compileIntake(input: IntakeCompileInput): IntakeProgram | undefined {
  const size = input.setSize ?? 262144;
  const sets: NftSetDef[] = [];
  const chains: NftChainDef[] = [];
  const undeferred: IntakeProgram['undeferred'][number][] = [];
  const hook: string[] = [];
  if (input.spa) {
    sets.push(...rateSets('spa_rate', size));
    chains.push(spaChain());
    hook.push(`fib daddr type local udp dport ${input.spa.port} jump spa`);
  }
  const pcap = input.pcap;
  if (pcap && pcap.sequences.length > 0) {
    pcap.sequences.forEach((seq, i) => {
      if (deferUnsupportedReason(seq) !== undefined) return;
      for (const f of FAMILIES) {
        sets.push({ name: startSet(i, f), body: `type ipv${f}_addr; flags dynamic,timeout; timeout ${seq.timeoutMs}ms; size ${size};` });
        sets.push({ name: liveSet(i, f), body: `type ipv${f}_addr; flags dynamic,timeout; timeout ${seq.timeoutMs}ms; size ${LIVE_SET_SIZE};` });
      }
    });
    sets.push(...rateSets('pcap_rate', size));
    const built = pcapChains(pcap, undeferred);
    chains.push(...built.chains);
    const vmap = built.slots.map((s) => `${s.port.proto} . ${s.port.port} : jump pcap_${portKey(s.port)}`);
    const ifaces = pcap.interfaces.map((i) => `"${i}"`).join(', ');
    if (vmap.length > 0) hook.push(`iifname { ${ifaces} } meta l4proto . th dport vmap { ${vmap.join(', ')} }`);
  }
  if (hook.length === 0) return undefined;
  chains.push({ name: INTAKE_CHAIN, hook: `type filter hook prerouting priority ${INTAKE_PRIORITY}; policy accept;`, rules: hook });
  return { sets, chains, undeferred };
}
