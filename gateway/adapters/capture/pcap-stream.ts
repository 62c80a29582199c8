// Incremental parser of the classic pcap stream `tcpdump -U -w -` writes: the file header, then
// records (16-byte header + frame), in either byte order, with micro- or nanosecond stamps.
// Frames are decoded by pcap-frames.ts.
//
// Bytes are untrusted. A frame that cannot be decoded is counted by reason and skipped; push()
// never throws. What cannot be skipped is a broken *record framing*: pcap has no sync marker,
// so after a record length beyond the snap length (or 256 KiB) every later boundary would be a
// guess. The parser then stops for good and reports a KGW_PCAP_FORMAT error; the capture owner
// restarts tcpdump, whose fresh stream starts with a fresh header. Buffering is bounded by one
// record (<= 256 KiB + 16).
import { kgwError, type KnockgwError } from '../../core/errors.ts';
import { decodeFrame, LINKTYPE, u32, type CapturedPacket, type SkipReason } from './pcap-frames.ts';

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
    skipped: { 'truncated': 0, 'not-ip': 0, 'not-tcp-udp': 0, 'fragment': 0, 'bad-ip-header': 0, 'bad-checksum': 0, 'nflog-malformed': 0, 'nflog-no-payload': 0 },
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
