// Frames of a pcap record decoded down to TCP/UDP ports: Ethernet (802.1Q/802.1ad tags), raw
// IP, Linux cooked (SLL, SLL2) and NFLOG (with the rule's prefix). Bytes are untrusted: what
// cannot be decoded is a SkipReason, never an exception.
//
// The pcap engine taps packets before the kernel validates them, so it drops here what the
// kernel would drop: a TCP or UDP checksum that does not verify. One exception keeps local
// traffic working: a packet whose checksum the sender left to offload (a veth or container on
// this host) carries only the pseudo-header sum, which the kernel trusts; so does this. A
// record cut by the snap length, or an IPv4 length of 0 (segmentation offload), cannot be
// checked and is taken as captured. The kernel engine's NFLOG reports (core/nft-kernel.ts
// prefixes) are the kernel's own record of a knock it already acted on: not re-checked. Every
// other NFLOG record — the intakes' (core/nft-intake.ts), logged before the kernel validated the
// packet — is checked like a capture.
import type { KnockPacket } from '../../core/types.ts';
import { formatV6 } from '../../core/ip.ts';
import { parseNflogPrefix } from '../../core/nft-kernel.ts';

const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const utf8 = new TextDecoder();

export interface CapturedPacket extends KnockPacket {
  /** NFLOG records only: the rule's `log prefix`. */
  readonly nflogPrefix?: string;
  /** NFLOG records of UDP packets captured whole: the datagram's payload (a view of the capture buffer). */
  readonly payload?: Uint8Array;
  /** Stamped by the capture (wall-clock ms, kit/wall-clock.ts): when the daemon read it, when it was decoded. */
  readAt?: number;
  parsedAt?: number;
}

export const LINKTYPE = { EN10MB: 1, RAW: 101, LINUX_SLL: 113, IPV4: 228, IPV6: 229, NFLOG: 239, LINUX_SLL2: 276 } as const;

export type SkipReason =
  | 'truncated'
  | 'not-ip'
  | 'not-tcp-udp'
  | 'fragment'
  | 'bad-ip-header'
  | 'bad-checksum'
  | 'nflog-malformed'
  | 'nflog-no-payload';

export type Decoded = CapturedPacket | SkipReason;

export function u16be(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

export function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? ((b[o + 1] ?? 0) << 8) | (b[o] ?? 0) : u16be(b, o);
}

export function u32(b: Uint8Array, o: number, le: boolean): number {
  const x = b[o] ?? 0, y = b[o + 1] ?? 0, z = b[o + 2] ?? 0, w = b[o + 3] ?? 0;
  return (le ? ((w << 24) | (z << 16) | (y << 8) | x) : ((x << 24) | (y << 16) | (z << 8) | w)) >>> 0;
}

function v4Text(b: Uint8Array, o: number): string {
  return `${b[o] ?? 0}.${b[o + 1] ?? 0}.${b[o + 2] ?? 0}.${b[o + 3] ?? 0}`;
}

function v6Text(b: Uint8Array, o: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(u16be(b, o + i));
  return formatV6(groups);
}

/** Where the addresses of the IP header are (for the checksum's pseudo-header), and whether the whole segment was captured. */
interface Pseudo { readonly src: number; readonly dst: number; readonly addrBytes: 4 | 16; readonly complete: boolean }

/** One's-complement sum of the 16-bit words of b[from..to) (an odd last byte padded), folded. */
function sum16(b: Uint8Array, from: number, to: number, acc: number): number {
  let sum = acc;
  let i = from;
  for (; i + 1 < to; i += 2) sum += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  if (i < to) sum += (b[i] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Does the TCP/UDP checksum hold, as the kernel would judge it? (See the header comment.) */
function checksumHolds(b: Uint8Array, l4: number, end: number, proto: number, ps: Pseudo): boolean {
  const field = u16be(b, l4 + (proto === 6 ? 16 : 6));
  // UDP over IPv4 may send no checksum at all; over IPv6 it must (RFC 8200), and Linux drops it.
  if (proto === 17 && field === 0) return ps.addrBytes === 4;
  const len = end - l4;
  let pseudo = sum16(b, ps.src, ps.src + ps.addrBytes, 0);
  pseudo = sum16(b, ps.dst, ps.dst + ps.addrBytes, pseudo);
  pseudo = sum16(Uint8Array.of(0, proto, (len >> 8) & 0xff, len & 0xff), 0, 4, pseudo);
  if (sum16(b, l4, end, pseudo) === 0xffff) return true;
  // Left to offload by a local sender: the field holds the pseudo-header sum only.
  return field === pseudo;
}

/** The transport header at `l4` (first fragments only: the caller checked). */
function transport(b: Uint8Array, l4: number, end: number, ts: number, src: string, dst: string, family: 4 | 6, proto: number, prefix: string | undefined, ps: Pseudo): Decoded {
  let packet: CapturedPacket;
  if (proto === 6) {
    if (end - l4 < 14) return 'truncated';
    packet = { ts, src, dst, family, proto: 'tcp', sport: u16be(b, l4), dport: u16be(b, l4 + 2), flags: b[l4 + 13] ?? 0 };
  } else if (proto === 17) {
    if (end - l4 < 4) return 'truncated';
    packet = { ts, src, dst, family, proto: 'udp', sport: u16be(b, l4), dport: u16be(b, l4 + 2), flags: 0 };
  } else {
    return 'not-tcp-udp';
  }
  const trusted = prefix !== undefined && parseNflogPrefix(prefix) !== undefined;
  if (!trusted && ps.complete && end - l4 >= (proto === 6 ? 20 : 8) && !checksumHolds(b, l4, end, proto, ps)) return 'bad-checksum';
  if (prefix === undefined) return packet;
  // The SPA intake needs the datagram; a cut one (snap length) cannot authenticate anyway.
  return proto === 17 && ps.complete && end - l4 >= 8 ? { ...packet, nflogPrefix: prefix, payload: b.subarray(l4 + 8, end) } : { ...packet, nflogPrefix: prefix };
}

function ipv4(b: Uint8Array, o: number, end: number, ts: number, prefix: string | undefined): Decoded {
  if (end - o < 20) return 'truncated';
  const ihl = ((b[o] ?? 0) & 15) * 4;
  if (ihl < 20) return 'bad-ip-header';
  const total = u16be(b, o + 2);
  // A total length of 0 is what segmentation offload captures show; trust the capture then.
  if (total !== 0) {
    if (total < ihl) return 'bad-ip-header';
    end = Math.min(end, o + total);
  }
  if (end - o < ihl) return 'truncated';
  if ((u16be(b, o + 6) & 0x1fff) !== 0) return 'fragment';
  const ps: Pseudo = { src: o + 12, dst: o + 16, addrBytes: 4, complete: total !== 0 && end === o + total };
  return transport(b, o + ihl, end, ts, v4Text(b, o + 12), v4Text(b, o + 16), 4, b[o + 9] ?? 0, prefix, ps);
}

function ipv6(b: Uint8Array, o: number, end: number, ts: number, prefix: string | undefined): Decoded {
  if (end - o < 40) return 'truncated';
  const payload = u16be(b, o + 4);
  // 0 = jumbogram (hop-by-hop option) or offload: trust the capture length.
  if (payload !== 0) end = Math.min(end, o + 40 + payload);
  const complete = payload !== 0 && end === o + 40 + payload;
  let next = b[o + 6] ?? 0;
  let p = o + 40;
  for (let hops = 0; ; hops++) {
    if (next === 6 || next === 17) break;
    if (hops >= 8) return 'bad-ip-header';
    switch (next) {
      case 0: // hop-by-hop
      case 43: // routing
      case 60: // destination options
        if (end - p < 2) return 'truncated';
        next = b[p] ?? 0;
        p += ((b[p + 1] ?? 0) + 1) * 8;
        break;
      case 44: // fragment
        if (end - p < 8) return 'truncated';
        if ((u16be(b, p + 2) & 0xfff8) !== 0) return 'fragment';
        next = b[p] ?? 0;
        p += 8;
        break;
      case 51: // authentication header
        if (end - p < 2) return 'truncated';
        next = b[p] ?? 0;
        p += ((b[p + 1] ?? 0) + 2) * 4;
        break;
      default:
        return 'not-tcp-udp';
    }
    if (p > end) return 'truncated';
  }
  return transport(b, p, end, ts, v6Text(b, o + 8), v6Text(b, o + 24), 6, next, prefix, { src: o + 8, dst: o + 24, addrBytes: 16, complete });
}

function ip(b: Uint8Array, o: number, end: number, ts: number, prefix: string | undefined): Decoded {
  if (end - o < 1) return 'truncated';
  const version = (b[o] ?? 0) >> 4;
  if (version === 4) return ipv4(b, o, end, ts, prefix);
  if (version === 6) return ipv6(b, o, end, ts, prefix);
  return 'not-ip';
}

function byEthertype(type: number, b: Uint8Array, o: number, end: number, ts: number): Decoded {
  if (type === 0x0800) return ipv4(b, o, end, ts, undefined);
  if (type === 0x86dd) return ipv6(b, o, end, ts, undefined);
  return 'not-ip';
}

function ethernet(b: Uint8Array, o: number, end: number, ts: number): Decoded {
  if (end - o < 14) return 'truncated';
  let p = o + 12;
  let type = u16be(b, p);
  // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag: 4 bytes each, then the real type.
  for (let tags = 0; type === 0x8100 || type === 0x88a8 || type === 0x9100; tags++) {
    if (tags >= 4) return 'not-ip';
    p += 4;
    if (end - p < 2) return 'truncated';
    type = u16be(b, p);
  }
  return byEthertype(type, b, p + 2, end, ts);
}

/** NFLOG: 4-byte header, then TLVs whose length and type are in the capturing host's order (= the file's). */
function nflog(b: Uint8Array, o: number, end: number, ts: number, le: boolean): Decoded {
  if (end - o < 4) return 'truncated';
  let prefix: string | undefined;
  let payload: [number, number] | undefined;
  for (let p = o + 4; p < end;) {
    if (end - p < 4) return 'nflog-malformed';
    const len = u16(b, p, le);
    const type = u16(b, p + 2, le) & 0x7fff;
    if (len < 4) return 'nflog-malformed';
    if (p + len > end) {
      // The snap length cut the record: the payload comes last, and its headers may still be whole.
      if (type !== NFULA_PAYLOAD) return 'truncated';
      payload = [p + 4, end];
      break;
    }
    if (type === NFULA_PREFIX) {
      let q = p + 4;
      const stop = p + len;
      while (q < stop && b[q] !== 0) q++;
      prefix = utf8.decode(b.subarray(p + 4, q));
    } else if (type === NFULA_PAYLOAD) {
      payload = [p + 4, p + len];
    }
    p += (len + 3) & ~3;
  }
  if (!payload) return 'nflog-no-payload';
  return ip(b, payload[0], payload[1], ts, prefix ?? '');
}

export function decodeFrame(link: number, b: Uint8Array, o: number, end: number, ts: number, le: boolean): Decoded {
  switch (link) {
    case LINKTYPE.EN10MB:
      return ethernet(b, o, end, ts);
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return ip(b, o, end, ts, undefined);
    case LINKTYPE.LINUX_SLL:
      return end - o < 16 ? 'truncated' : byEthertype(u16be(b, o + 14), b, o + 16, end, ts);
    case LINKTYPE.LINUX_SLL2:
      return end - o < 20 ? 'truncated' : byEthertype(u16be(b, o), b, o + 20, end, ts);
    case LINKTYPE.NFLOG:
      return nflog(b, o, end, ts, le);
    default:
      return 'not-ip';
  }
}
