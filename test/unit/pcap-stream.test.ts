import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type CapturedPacket, createPcapParser, LINKTYPE, MAX_RECORD_BYTES } from '../../gateway/adapters/capture/index.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { TCP, type KnockSequence } from '../../gateway/core/types.ts';
import { step } from '../../gateway/core/knock-machine.ts';
import { createKnockState } from '../../gateway/core/knock-state.ts';
import { withChecksum, withPartialChecksum } from '../helpers/frames.ts';

// ---- byte builders (what tcpdump and the kernel put on the wire) ----

const be16 = (n: number): number[] => [(n >> 8) & 255, n & 255];
const u16 = (n: number, le: boolean): number[] => (le ? be16(n).reverse() : be16(n));
const u32 = (n: number, le: boolean): number[] => {
  const b = [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return le ? b.reverse() : b;
};

interface Opts { le?: boolean; nano?: boolean; link?: number; snap?: number }

function globalHeader({ le = true, nano = false, link = LINKTYPE.EN10MB, snap = 262144 }: Opts = {}): number[] {
  return [...u32(nano ? 0xa1b23c4d : 0xa1b2c3d4, le), ...u16(2, le), ...u16(4, le), ...u32(0, le), ...u32(0, le), ...u32(snap, le), ...u32(link, le)];
}

function record(frame: readonly number[], { le = true, sec = 1_700_000_000, frac = 250_000, orig }: { le?: boolean; sec?: number; frac?: number; orig?: number } = {}): number[] {
  return [...u32(sec, le), ...u32(frac, le), ...u32(frame.length, le), ...u32(orig ?? frame.length, le), ...frame];
}

const tcp = (dport: number, flags: number, sport = 40000): number[] => [...be16(sport), ...be16(dport), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, ...be16(64240), 0, 0, 0, 0];
const udp = (dport: number, sport = 40000): number[] => [...be16(sport), ...be16(dport), ...be16(9), 0, 0, 0x78];

function ipv4(l4: readonly number[], { proto = 6, src = [203, 0, 113, 7], dst = [198, 18, 0, 1], options = [] as number[], frag = 0 } = {}): number[] {
  const ihl = 5 + options.length / 4;
  return withChecksum([0x40 | ihl, 0, ...be16(ihl * 4 + l4.length), 0, 1, ...be16(frag), 64, proto, 0, 0, ...src, ...dst, ...options, ...l4]);
}

const V6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const V6_DST = [0xfd, 0x00, 0x01, 0x98, 0x00, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

function ipv6(l4: readonly number[], next: number, ext: readonly number[] = [], src: readonly number[] = V6_SRC): number[] {
  return withChecksum([0x60, 0, 0, 0, ...be16(ext.length + l4.length), next, 64, ...src, ...V6_DST, ...ext, ...l4]);
}

const MACS = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
const eth = (type: number, payload: readonly number[], tags: readonly number[][] = []): number[] => [...MACS, ...tags.flat(), ...be16(type), ...payload];
const sll = (type: number, payload: readonly number[]): number[] => [0, 0, 0, 1, 0, 6, ...MACS.slice(0, 6), 0, 0, ...be16(type), ...payload];
const sll2 = (type: number, payload: readonly number[]): number[] => [...be16(type), 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, ...MACS.slice(0, 6), 0, 0, ...payload];

function tlv(type: number, value: readonly number[], le: boolean): number[] {
  const len = 4 + value.length;
  const pad = (4 - (len % 4)) % 4;
  return [...u16(len, le), ...u16(type, le), ...value, ...new Array<number>(pad).fill(0)];
}

function nflog(payload: readonly number[], prefix: string | undefined, le: boolean, family = 2): number[] {
  const hdr = [family, 0, ...be16(5)];
  const tlvs = [
    ...tlv(1, [0x08, 0x00, 3, 0], le), // NFULA_PACKET_HDR: hw_protocol, hook, pad
    ...(prefix === undefined ? [] : tlv(10, [...new TextEncoder().encode(prefix), 0], le)),
    ...tlv(4, [0, 0, 0, 2], le), // NFULA_IFINDEX_INDEV
    ...tlv(9, payload, le), // NFULA_PAYLOAD
  ];
  return [...hdr, ...tlvs];
}

function parseAll(bytes: readonly number[], chunkSizes?: readonly number[]): { packets: CapturedPacket[]; parser: ReturnType<typeof createPcapParser> } {
  const parser = createPcapParser();
  const buf = Uint8Array.from(bytes);
  const packets: CapturedPacket[] = [];
  if (!chunkSizes) packets.push(...parser.push(buf));
  else {
    let o = 0;
    for (let i = 0; o < buf.length; i++) {
      const n = chunkSizes[i % chunkSizes.length] ?? 1;
      packets.push(...parser.push(buf.subarray(o, o + n)));
      o += n;
    }
  }
  parser.end();
  return { packets, parser };
}

const SYN_7000_V4 = { ts: 1_700_000_000_250, src: '203.0.113.7', dst: '198.18.0.1', family: 4, proto: 'tcp', sport: 40000, dport: 7000, flags: TCP.SYN };
const SYN_7000_V6 = { ...SYN_7000_V4, src: '2001:db8::5', dst: 'fd00:198:18::1', family: 6 };

// ---- tests ----

void test('Ethernet IPv4 TCP SYN, little- and big-endian files, micro and nano stamps', () => {
  for (const le of [true, false]) {
    for (const nano of [false, true]) {
      const frac = nano ? 250_000_000 : 250_000;
      const { packets, parser } = parseAll([...globalHeader({ le, nano }), ...record(eth(0x0800, ipv4(tcp(7000, TCP.SYN))), { le, frac })]);
      assert.deepEqual(packets, [SYN_7000_V4], `le=${le} nano=${nano}`);
      assert.equal(parser.linkType, LINKTYPE.EN10MB);
      assert.equal(parser.error, undefined);
    }
  }
});

void test('Ethernet with 802.1Q and QinQ tags', () => {
  const frame = eth(0x0800, ipv4(tcp(7000, TCP.SYN)), [[0x88, 0xa8, 0, 10], [0x81, 0x00, 0, 20]]);
  assert.deepEqual(parseAll([...globalHeader(), ...record(frame)]).packets, [SYN_7000_V4]);
});

void test('IPv4 options are skipped by IHL; UDP gives ports and no flags', () => {
  const frame = eth(0x0800, ipv4(udp(9000), { proto: 17, options: [1, 1, 1, 0, 0x94, 4, 0, 0] }));
  assert.deepEqual(parseAll([...globalHeader(), ...record(frame)]).packets, [{ ...SYN_7000_V4, proto: 'udp', dport: 9000, flags: 0 }]);
});

void test('IPv4 fragments: the first has ports, later ones are skipped and counted', () => {
  const first = eth(0x0800, ipv4(tcp(7000, TCP.SYN), { frag: 0x2000 })); // MF, offset 0
  const later = eth(0x0800, ipv4([1, 2, 3, 4, 5, 6, 7, 8], { frag: 0x0003 }));
  const { packets, parser } = parseAll([...globalHeader(), ...record(first), ...record(later)]);
  assert.deepEqual(packets, [SYN_7000_V4]);
  assert.equal(parser.stats.skipped.fragment, 1);
});

void test('IPv6 through hop-by-hop, routing, destination options and a first fragment header', () => {
  const hop = [43, 0, 5, 2, 0, 0, 1, 0]; // next=routing, len 0 (8 bytes): router alert + PadN
  const routing = [60, 0, 0, 0, 0, 0, 0, 0]; // next=dest opts
  const dstopts = [44, 0, 1, 4, 0, 0, 0, 0]; // next=fragment
  const frag = [6, 0, 0, 1, 0, 0, 0, 42]; // next=tcp, offset 0, M=1
  const frame = eth(0x86dd, ipv6(tcp(7000, TCP.SYN), 0, [...hop, ...routing, ...dstopts, ...frag]));
  assert.deepEqual(parseAll([...globalHeader(), ...record(frame)]).packets, [SYN_7000_V6]);
  const later = eth(0x86dd, ipv6([0, 0, 0, 0], 44, [6, 0, 0, 8, 0, 0, 0, 42]));
  assert.equal(parseAll([...globalHeader(), ...record(later)]).parser.stats.skipped.fragment, 1);
});

void test('RAW (101), LINUX_SLL (113) and LINUX_SLL2 (276) frames', () => {
  const cases: [number, number[]][] = [
    [LINKTYPE.RAW, ipv6(udp(9000), 17)],
    [LINKTYPE.LINUX_SLL, sll(0x86dd, ipv6(udp(9000), 17))],
    [LINKTYPE.LINUX_SLL2, sll2(0x86dd, ipv6(udp(9000), 17))],
  ];
  for (const [link, frame] of cases) {
    const { packets } = parseAll([...globalHeader({ link }), ...record(frame)]);
    assert.deepEqual(packets, [{ ...SYN_7000_V6, proto: 'udp', dport: 9000, flags: 0 }], `link ${link}`);
  }
  assert.deepEqual(parseAll([...globalHeader({ link: LINKTYPE.LINUX_SLL2 }), ...record(sll2(0x0800, ipv4(tcp(7000, TCP.SYN))))]).packets, [SYN_7000_V4]);
});

void test('NFLOG gives the prefix and the logged IP packet, in both byte orders', () => {
  for (const le of [true, false]) {
    const frame = nflog(ipv4(tcp(22, TCP.SYN)), 'kgw:openSSH', le);
    const { packets } = parseAll([...globalHeader({ le, link: LINKTYPE.NFLOG }), ...record(frame, { le })]);
    assert.deepEqual(packets, [{ ...SYN_7000_V4, dport: 22, nflogPrefix: 'kgw:openSSH' }], `le=${le}`);
  }
  const v6 = nflog(ipv6(tcp(22, TCP.SYN), 6), 'kgw:x', true, 10);
  assert.equal(parseAll([...globalHeader({ link: LINKTYPE.NFLOG }), ...record(v6)]).packets[0]?.src, '2001:db8::5');
  const noPrefix = nflog(ipv4(tcp(22, TCP.SYN)), undefined, true);
  assert.equal(parseAll([...globalHeader({ link: LINKTYPE.NFLOG }), ...record(noPrefix)]).packets[0]?.nflogPrefix, '');
  const cut = nflog(ipv4([...tcp(22, TCP.SYN), ...new Array<number>(400).fill(0)]), 'kgw:cut', true).slice(0, -300);
  assert.equal(parseAll([...globalHeader({ link: LINKTYPE.NFLOG }), ...record(cut)]).packets[0]?.dport, 22, 'a payload cut by the snap length still has its headers');
  const noPayload = [2, 0, 0, 5, ...tlv(10, [0x6b, 0], true)];
  assert.equal(parseAll([...globalHeader({ link: LINKTYPE.NFLOG }), ...record(noPayload)]).parser.stats.skipped['nflog-no-payload'], 1);
});

void test('records split at every possible boundary parse the same', () => {
  const bytes = [
    ...globalHeader(),
    ...record(eth(0x0800, ipv4(tcp(7000, TCP.SYN)))),
    ...record(eth(0x86dd, ipv6(tcp(7000, TCP.SYN), 6))),
    ...record(eth(0x0800, ipv4(udp(9000), { proto: 17 }))),
  ];
  const whole = parseAll(bytes).packets;
  assert.equal(whole.length, 3);
  for (const sizes of [[1], [2], [3], [7], [15, 1], [16], [17, 5], [23, 1000]]) {
    assert.deepEqual(parseAll(bytes, sizes).packets, whole, `chunks ${sizes.join(',')}`);
  }
  for (let cut = 1; cut < bytes.length; cut++) assert.deepEqual(parseAll(bytes, [cut, bytes.length]).packets, whole, `cut at ${cut}`);
});

void test('non-IP, non-TCP/UDP and truncated frames are counted and skipped', () => {
  const arp = eth(0x0806, new Array<number>(28).fill(0));
  const icmp = eth(0x0800, ipv4([8, 0, 0, 0, 0, 0, 0, 0], { proto: 1 }));
  const shortTcp = eth(0x0800, ipv4(tcp(7000, TCP.SYN)).slice(0, 20 + 10));
  const badIhl = eth(0x0800, [0x42, ...ipv4(tcp(7000, TCP.SYN)).slice(1)]);
  const good = eth(0x0800, ipv4(tcp(7000, TCP.SYN)));
  const { packets, parser } = parseAll([...globalHeader(), ...[arp, icmp, shortTcp, badIhl, good].flatMap((f) => record(f))]);
  assert.deepEqual(packets, [SYN_7000_V4]);
  assert.deepEqual(parser.stats.skipped, { 'truncated': 1, 'not-ip': 1, 'not-tcp-udp': 1, 'fragment': 0, 'bad-ip-header': 1, 'bad-checksum': 0, 'nflog-malformed': 0, 'nflog-no-payload': 0 });
  assert.equal(parser.stats.records, 5);
});

void test('a TCP or UDP checksum that does not verify is dropped, as the kernel would; a local offload sum is not', () => {
  const flip = (frame: number[], at: number): number[] => frame.map((x, i) => (i === at ? x ^ 1 : x));
  const syn4 = ipv4(tcp(7000, TCP.SYN));
  const udp6 = ipv6(udp(9000), 17);
  const badSyn = eth(0x0800, flip(syn4, 20 + 16)); // TCP checksum field
  const badPort = eth(0x0800, flip(syn4, 20 + 3)); // a knock port changed on the way
  const badUdp6 = eth(0x86dd, flip(udp6, 40 + 7));
  const zeroUdp6 = eth(0x86dd, udp6.map((x, i) => (i === 40 + 6 || i === 40 + 7 ? 0 : x))); // IPv6 requires a UDP checksum
  const zeroUdp4 = eth(0x0800, ipv4(udp(9000), { proto: 17 }).map((x, i) => (i === 20 + 6 || i === 20 + 7 ? 0 : x))); // IPv4 allows none
  const offloaded = eth(0x0800, withPartialChecksum(syn4)); // a veth peer on this host
  const { packets, parser } = parseAll([...globalHeader(), ...[badSyn, badPort, badUdp6, zeroUdp6, zeroUdp4, offloaded].flatMap((f) => record(f))]);
  assert.equal(parser.stats.skipped['bad-checksum'], 4);
  assert.deepEqual(packets.map((p) => `${p.proto}/${p.dport}`), ['udp/9000', 'tcp/7000']);
});

void test('IPv4-mapped IPv6 sources in real frames (::ffff:127.0.0.1, ::ffff:203.0.113.7) never advance a sequence', () => {
  // The kernel drops these on input; the pcap engine taps before it does, so it must refuse them itself.
  const mapped = (v4: readonly number[]): number[] => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4];
  const door: KnockSequence = { id: 'openSSH', door: 'openSSH', ports: [7000, 8000, 9000].map((port) => ({ port, proto: 'tcp' as const })), timeoutMs: 5000, tcpFlags: { require: TCP.SYN, forbid: TCP.ACK }, action: { kind: 'open' }, origin: 'test' };
  for (const [v4, text] of [[[127, 0, 0, 1], '::ffff:7f00:1'], [[203, 0, 113, 7], '::ffff:cb00:7107']] as const) {
    const frames = [7000, 8000, 9000].map((port) => record(eth(0x86dd, ipv6(tcp(port, TCP.SYN), 6, [], mapped(v4)))));
    const { packets } = parseAll([...globalHeader(), ...frames.flat()]);
    assert.deepEqual(packets.map((p) => [p.src, p.family, p.dport]), [[text, 6, 7000], [text, 6, 8000], [text, 6, 9000]], 'parsed as the IPv6 source it is, not turned into IPv4');
    const state = createKnockState([door], { maxTrackedSources: 10 });
    const events = packets.flatMap((p, i) => step(state, p, i * 100));
    assert.deepEqual(events.map((e) => [e.type, e.type === 'denied' ? e.reason : '']), [['denied', 'bad-source'], ['denied', 'bad-source'], ['denied', 'bad-source']], text);
  }
});

void test('NFLOG: the kernel intake\'s records are checksum-checked and carry the UDP payload; the kernel engine\'s reports are trusted', () => {
  const flip = (frame: number[], at: number): number[] => frame.map((x, i) => (i === at ? x ^ 1 : x));
  const badSyn = flip(ipv4(tcp(7000, TCP.SYN)), 20 + 16);
  const spa = ipv4([...be16(40000), ...be16(62201), ...be16(8 + 5), 0, 0, ...new TextEncoder().encode('QUJDRA')].slice(0, 13), { proto: 17 });
  const records = [
    nflog(badSyn, 'kgw-pk', true), // the pcap intake: logged before the kernel checked it
    nflog(badSyn, 'kgw-pf:0', true),
    nflog(badSyn, 'kgw:0:open', true), // the kernel engine's own report of a knock it acted on
    nflog(spa, 'kgw-spa', true),
  ];
  const { packets, parser } = parseAll([...globalHeader({ link: LINKTYPE.NFLOG }), ...records.flatMap((f) => record(f))]);
  assert.equal(parser.stats.skipped['bad-checksum'], 2);
  assert.deepEqual(packets.map((p) => p.nflogPrefix), ['kgw:0:open', 'kgw-spa']);
  assert.equal(Buffer.from(packets[1]?.payload ?? []).toString('latin1'), 'QUJDR');
  assert.equal(packets[0]?.payload, undefined, 'TCP records carry no payload');
});

void test('a trailing partial record is counted as truncated at end()', () => {
  const bytes = [...globalHeader(), ...record(eth(0x0800, ipv4(tcp(7000, TCP.SYN))))];
  const { parser } = parseAll(bytes.slice(0, -5));
  assert.equal(parser.stats.skipped.truncated, 1);
  assert.equal(parser.error, undefined);
});

void test('a corrupt record length stops the parser with KGW_PCAP_FORMAT instead of buffering', () => {
  const bytes = [...globalHeader({ snap: 65535 }), ...record(eth(0x0800, ipv4(tcp(7000, TCP.SYN)))), ...u32(1, true), ...u32(0, true), ...u32(65536, true), ...u32(65536, true), 1, 2, 3];
  const { packets, parser } = parseAll(bytes);
  assert.equal(packets.length, 1, 'records before the corruption are kept');
  assert.ok(isKnockgwError(parser.error, 'KGW_PCAP_FORMAT'));
  assert.match(parser.error?.message ?? '', /record length 65536 exceeds 65535/);
  assert.deepEqual(parser.push(Uint8Array.from(bytes)), [], 'nothing more is parsed');
  const huge = createPcapParser();
  huge.push(Uint8Array.from([...globalHeader(), ...u32(1, true), ...u32(0, true), ...u32(MAX_RECORD_BYTES + 1, true), ...u32(0, true)]));
  assert.ok(isKnockgwError(huge.error, 'KGW_PCAP_FORMAT'));
});

void test('bad magic, pcapng and unsupported link types are KGW_PCAP_FORMAT', () => {
  for (const [bytes, re] of [
    [[0, 1, 2, 3, ...new Array<number>(20).fill(0)], /not a pcap stream/],
    [[0x0a, 0x0d, 0x0d, 0x0a, ...new Array<number>(20).fill(0)], /pcapng/],
    [globalHeader({ link: 105 }), /unsupported link type 105/],
  ] as const) {
    const { parser } = parseAll(bytes);
    assert.ok(isKnockgwError(parser.error, 'KGW_PCAP_FORMAT'));
    assert.match(parser.error?.message ?? '', re);
  }
});

/** xorshift32: a deterministic fuzz so a failure is reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

void test('fuzz: random bytes, random frames and random chunking never throw and never over-buffer', () => {
  const r = rng(0xc0ffee);
  const links = Object.values(LINKTYPE);
  for (let iter = 0; iter < 3000; iter++) {
    const parser = createPcapParser();
    const mode = iter % 3;
    let bytes: number[];
    if (mode === 0) {
      bytes = Array.from({ length: r() % 200 }, () => r() & 255);
    } else {
      const link = links[r() % links.length] ?? LINKTYPE.EN10MB;
      bytes = globalHeader({ le: (r() & 1) === 1, link, snap: 2048 });
      for (let k = r() % 5; k >= 0; k--) {
        let frame: number[];
        if (mode === 1) frame = Array.from({ length: r() % 120 }, () => r() & 255);
        else {
          // A valid frame with random bytes flipped: deep paths with broken fields.
          const base = link === LINKTYPE.NFLOG ? nflog(ipv6(tcp(7000, TCP.SYN), 0, [6, 0, 0, 0, 0, 0, 0, 0]), 'kgw', true) : link === LINKTYPE.EN10MB ? eth(0x86dd, ipv6(tcp(7000, 2), 60, [6, 0, 1, 4, 0, 0, 0, 0])) : ipv4(udp(9000), { proto: 17 });
          frame = base.map((v) => ((r() % 10) === 0 ? r() & 255 : v));
          frame = frame.slice(0, r() % (frame.length + 1));
        }
        bytes.push(...record(frame, { le: bytes[0] === 0xd4 }));
      }
    }
    const buf = Uint8Array.from(bytes);
    for (let o = 0; o < buf.length;) {
      const n = 1 + (r() % 64);
      assert.doesNotThrow(() => parser.push(buf.subarray(o, o + n)));
      o += n;
    }
    parser.end();
    if (mode !== 0) assert.equal(parser.error, undefined, `iteration ${iter}: framing was valid`);
  }
});

void test('throughput: 200k Ethernet SYN records parse in well under a second of CPU', () => {
  const one = record(eth(0x0800, ipv4(tcp(7000, TCP.SYN))));
  const many = new Uint8Array(24 + one.length * 200_000);
  many.set(globalHeader(), 0);
  for (let i = 0; i < 200_000; i++) many.set(one, 24 + i * one.length);
  const parser = createPcapParser();
  const cpu0 = process.cpuUsage();
  let n = 0;
  for (let o = 0; o < many.length; o += 65536) n += parser.push(many.subarray(o, o + 65536)).length;
  const used = process.cpuUsage(cpu0);
  const ms = (used.user + used.system) / 1000;
  console.log(`# pcap: 200k records in ${ms.toFixed(0)} ms CPU (${(200_000 / ms * 1000).toFixed(0)} records/s)`);
  assert.equal(n, 200_000);
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
});
