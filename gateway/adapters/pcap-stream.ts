// Incremental parser of the classic pcap stream `tcpdump -U -w -` writes: the file header, then
// records (16-byte header + frame), in either byte order, with micro- or nanosecond stamps.
// Frames are decoded down to TCP/UDP ports: Ethernet (802.1Q/802.1ad tags), raw IP, Linux
// cooked (SLL, SLL2) and NFLOG (the kernel engine's completion log, with its prefix).
//
// Bytes are untrusted. A frame that cannot be decoded is counted by reason and skipped; push()
// never throws. What cannot be skipped is a broken *record framing*: pcap has no sync marker,
// so after a record length beyond the snap length (or 256 KiB) every later boundary would be a
// guess. The parser then stops for good and reports a KGW_PCAP_FORMAT error; the capture owner
// restarts tcpdump, whose fresh stream starts with a fresh header. Buffering is bounded by one
// record (<= 256 KiB + 16).
import type { KnockPacket } from '../core/types.ts';
import { formatV6 } from '../core/ip.ts';
import { kgwError, type KnockgwError } from '../core/errors.ts';

export interface CapturedPacket extends KnockPacket {
  /** NFLOG records only: the rule's `log prefix`. */
  readonly nflogPrefix?: string;
}

export const LINKTYPE = { EN10MB: 1, RAW: 101, LINUX_SLL: 113, IPV4: 228, IPV6: 229, NFLOG: 239, LINUX_SLL2: 276 } as const;

export type SkipReason =
  | 'truncated'
  | 'not-ip'
  | 'not-tcp-udp'
  | 'fragment'
  | 'bad-ip-header'
  | 'nflog-malformed'
  | 'nflog-no-payload';

export interface PcapStats {
  records: number;
  packets: number;
  bytes: number;
  /** Bytes thrown away after a fatal error or left over at end(). */
  discardedBytes: number;
  readonly skipped: Record<SkipReason, number>;
}

export interface PcapParser {
  /** Parses what `chunk` completes; keeps the incomplete tail. Never throws. */
  push(chunk: Uint8Array): CapturedPacket[];
  /** The stream ended: an incomplete trailing record counts as truncated. */
  end(): void;
  readonly linkType: number | undefined;
  /** Set once the stream cannot be parsed any further (KGW_PCAP_FORMAT). */
  readonly error: KnockgwError | undefined;
  readonly stats: PcapStats;
}

/** No link layer tcpdump writes has frames this large; a bigger record length is corruption. */
export const MAX_RECORD_BYTES = 256 * 1024;

const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const utf8 = new TextDecoder();

type Decoded = CapturedPacket | SkipReason;

function u16be(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? ((b[o + 1] ?? 0) << 8) | (b[o] ?? 0) : u16be(b, o);
}

function u32(b: Uint8Array, o: number, le: boolean): number {
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

/** The transport header at `l4` (first fragments only: the caller checked). */
function transport(b: Uint8Array, l4: number, end: number, ts: number, src: string, dst: string, family: 4 | 6, proto: number, prefix: string | undefined): Decoded {
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
  return prefix === undefined ? packet : { ...packet, nflogPrefix: prefix };
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
  return transport(b, o + ihl, end, ts, v4Text(b, o + 12), v4Text(b, o + 16), 4, b[o + 9] ?? 0, prefix);
}

function ipv6(b: Uint8Array, o: number, end: number, ts: number, prefix: string | undefined): Decoded {
  if (end - o < 40) return 'truncated';
  const payload = u16be(b, o + 4);
  // 0 = jumbogram (hop-by-hop option) or offload: trust the capture length.
  if (payload !== 0) end = Math.min(end, o + 40 + payload);
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
  return transport(b, p, end, ts, v6Text(b, o + 8), v6Text(b, o + 24), 6, next, prefix);
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

function decodeFrame(link: number, b: Uint8Array, o: number, end: number, ts: number, le: boolean): Decoded {
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

const SUPPORTED = new Set<number>(Object.values(LINKTYPE));

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export function createPcapParser(): PcapParser {
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  /** Bytes needed before parsing can make progress. */
  let need = GLOBAL_HEADER;
  let le = true;
  let nano = false;
  let linkType: number | undefined;
  let maxRecord = MAX_RECORD_BYTES;
  let error: KnockgwError | undefined;
  const stats: PcapStats = {
    records: 0, packets: 0, bytes: 0, discardedBytes: 0,
    skipped: { 'truncated': 0, 'not-ip': 0, 'not-tcp-udp': 0, 'fragment': 0, 'bad-ip-header': 0, 'nflog-malformed': 0, 'nflog-no-payload': 0 },
  };

  const fail = (message: string, detail: Record<string, unknown>): void => {
    error = kgwError('KGW_PCAP_FORMAT', `${message}; the capture must be restarted`, detail);
    stats.discardedBytes += pendingLen;
    pending = [];
    pendingLen = 0;
  };

  /** Reads the global header at b[o..o+24); false after a fatal error. */
  const header = (b: Uint8Array, o: number): boolean => {
    const magic = u32(b, o, false);
    switch (magic) {
      case 0xa1b2c3d4: le = false; nano = false; break;
      case 0xd4c3b2a1: le = true; nano = false; break;
      case 0xa1b23c4d: le = false; nano = true; break;
      case 0x4d3cb2a1: le = true; nano = true; break;
      default:
        fail(magic === 0x0a0d0d0a ? 'the stream is pcapng; knockgw reads classic pcap (tcpdump -w)' : `not a pcap stream (magic 0x${magic.toString(16).padStart(8, '0')})`, { magic });
        return false;
    }
    // The low 16 bits are the link type; the high bits may carry FCS information.
    const link = u32(b, o + 20, le) & 0xffff;
    if (!SUPPORTED.has(link)) {
      fail(`unsupported link type ${link} (supported: ${[...SUPPORTED].join(', ')})`, { linkType: link });
      return false;
    }
    linkType = link;
    const snap = u32(b, o + 16, le);
    maxRecord = snap > 0 && snap < MAX_RECORD_BYTES ? Math.max(snap, 64) : MAX_RECORD_BYTES;
    return true;
  };

  const parse = (b: Uint8Array, out: CapturedPacket[]): void => {
    let o = 0;
    if (linkType === undefined) {
      if (b.length < GLOBAL_HEADER) {
        pending = [b];
        pendingLen = b.length;
        return;
      }
      if (!header(b, 0)) {
        stats.discardedBytes += b.length;
        return;
      }
      o = GLOBAL_HEADER;
    }
    const link = linkType ?? 0;
    for (;;) {
      if (b.length - o < RECORD_HEADER) {
        need = RECORD_HEADER;
        break;
      }
      const incl = u32(b, o + 8, le);
      if (incl > maxRecord) {
        stats.discardedBytes += b.length - o;
        fail(`record length ${incl} exceeds ${maxRecord} bytes at stream offset ${stats.bytes - (b.length - o)}`, { length: incl, limit: maxRecord });
        return;
      }
      if (b.length - o < RECORD_HEADER + incl) {
        need = RECORD_HEADER + incl;
        break;
      }
      const sec = u32(b, o, le);
      const frac = u32(b, o + 4, le);
      const ts = sec * 1000 + (nano ? frac / 1e6 : frac / 1e3);
      const start = o + RECORD_HEADER;
      stats.records++;
      const d = decodeFrame(link, b, start, start + incl, ts, le);
      if (typeof d === 'string') stats.skipped[d]++;
      else {
        stats.packets++;
        out.push(d);
      }
      o = start + incl;
    }
    if (o < b.length) {
      pending = [b.subarray(o)];
      pendingLen = b.length - o;
    }
  };

  return {
    push(chunk) {
      stats.bytes += chunk.length;
      if (error) {
        stats.discardedBytes += chunk.length;
        return [];
      }
      if (pendingLen + chunk.length < need) {
        pending.push(chunk);
        pendingLen += chunk.length;
        return [];
      }
      const b = pendingLen === 0 ? chunk : concat([...pending, chunk], pendingLen + chunk.length);
      pending = [];
      pendingLen = 0;
      need = linkType === undefined ? GLOBAL_HEADER : RECORD_HEADER;
      const out: CapturedPacket[] = [];
      parse(b, out);
      return out;
    },
    end() {
      if (pendingLen > 0) {
        if (linkType !== undefined) stats.skipped.truncated++;
        stats.discardedBytes += pendingLen;
        pending = [];
        pendingLen = 0;
      }
    },
    get linkType() {
      return linkType;
    },
    get error() {
      return error;
    },
    stats,
  };
}
