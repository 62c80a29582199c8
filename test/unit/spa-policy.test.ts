// What an authenticated SPA message may open, with fwknopd 2.6's rules (core/spa.ts), driven by
// packets the real fwknop client made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, type Cidr } from '../../gateway/core/cidr.ts';
import { authorizeSpa, decideSpa, replayWindowMs, spaDoor, spaOpenPorts, type SpaMessage, type SpaOutcome, type SpaStanza } from '../../gateway/core/spa.ts';
import { decodeSpa, encodeSpa } from '../../gateway/protocol/fwknop.ts';
import { HMAC_KEY_BASE64, KEY_BASE64, PACKETS } from '../fixtures/fwknop/packets.ts';

const keys = { keyBase64: KEY_BASE64, hmacKeyBase64: HMAC_KEY_BASE64, hmacDigest: 'sha256' } as const;
const otherKeys = { ...keys, hmacKeyBase64: Buffer.alloc(64, 9).toString('base64') };
const MAX_AGE = 120_000;
const cidrs = (...texts: string[]): Cidr[] => texts.map((t) => {
  const c = parseCidr(t);
  if (typeof c === 'string') throw new Error(c);
  return c;
});

function stanza(over: Partial<SpaStanza> = {}): SpaStanza {
  return { name: 'laptop', origin: 'access.conf:1', source: 'any', keys, open: [{ port: 22, proto: 'tcp' }], restrict: [], ttlMs: 30_000, maxTtlMs: 300_000, requireSourceAddress: false, ...over };
}

type Name = keyof typeof PACKETS;
const at = (name: Name, skewS = 0): number => (PACKETS[name].timestamp + skewS) * 1000;

function authorize(name: Name, access: SpaStanza[], src = '203.0.113.9', now = at(name)): SpaOutcome {
  return authorizeSpa({ payload: Buffer.from(PACKETS[name].packet, 'latin1'), src, now }, access, MAX_AGE, decodeSpa);
}

function message(name: Name): SpaMessage {
  const r = decodeSpa(Buffer.from(PACKETS[name].packet, 'latin1'), keys);
  assert.ok(r.ok);
  return r.message;
}

const denial = (o: SpaOutcome): string => ('grant' in o ? 'grant' : o.deny);

void test('an access message grants its allow IP the requested port for FW_ACCESS_TIMEOUT', () => {
  const o = authorize('access', [stanza()]);
  assert.ok('grant' in o);
  assert.deepEqual({ ip: o.grant.ip, family: o.grant.family, ports: o.grant.ports, ttlMs: o.grant.ttlMs, door: o.grant.stanza.name }, {
    ip: '198.51.100.7', family: 4, ports: [{ port: 22, proto: 'tcp' }], ttlMs: 30_000, door: 'laptop',
  });
  assert.match(o.packetDigest, /^[0-9a-f]{64}$/);
});

void test('a client timeout (type 3) is honoured up to MAX_FW_TIMEOUT, and FW_ACCESS_TIMEOUT is capped by it too', () => {
  const capped = authorize('client-timeout', [stanza()]);
  assert.equal('grant' in capped && capped.grant.ttlMs, 300_000, '-f 600 against MAX_FW_TIMEOUT 300');
  const within = authorize('client-timeout', [stanza({ maxTtlMs: 900_000 })]);
  assert.equal('grant' in within && within.grant.ttlMs, 600_000);
  const plain = authorize('access', [stanza({ ttlMs: 600_000, maxTtlMs: 120_000 })]);
  assert.equal('grant' in plain && plain.grant.ttlMs, 120_000);
  assert.equal(spaDoor(stanza({ ttlMs: 600_000, maxTtlMs: 120_000 })).ttlMs, 120_000);
});

void test('command and NAT messages are refused with a reason, whatever the stanza allows', () => {
  for (const name of ['command', 'nat', 'nat-timeout', 'nat-local'] as const) {
    const o = authorize(name, [stanza({ open: 'any' })]);
    assert.equal(denial(o), 'message-type', name);
    assert.ok(!('grant' in o) && o.stanza?.name === 'laptop' && /command|NAT/.test(o.detail), name);
  }
});

void test('a packet older or newer than MAX_SPA_PACKET_AGE is refused; inside the window either way it is not', () => {
  assert.equal(denial(authorize('access', [stanza()], undefined, at('access', 121))), 'stale');
  assert.equal(denial(authorize('access', [stanza()], undefined, at('access', -121))), 'future');
  assert.equal(denial(authorize('access', [stanza()], undefined, at('access', 120))), 'grant');
  assert.equal(denial(authorize('access', [stanza()], undefined, at('access', -120))), 'grant');
  assert.equal(replayWindowMs(MAX_AGE), 242_000, 'a digest outlives every timestamp that could still be accepted');
});

void test('-s (0.0.0.0) grants the packet source, IPv4 or IPv6, unless REQUIRE_SOURCE_ADDRESS', () => {
  const v4 = authorize('source-ip', [stanza()], '203.0.113.9');
  assert.equal('grant' in v4 && v4.grant.ip, '203.0.113.9');
  const v6 = authorize('source-ip-v6', [stanza()], '2001:db8:1::9');
  assert.deepEqual('grant' in v6 && [v6.grant.ip, v6.grant.family], ['2001:db8:1::9', 6]);
  const required = authorize('source-ip', [stanza({ requireSourceAddress: true })]);
  assert.equal(denial(required), 'source-required');
  assert.equal(denial(authorize('access', [stanza({ requireSourceAddress: true })])), 'grant', 'a named address is fine');
});

void test('an IPv6 allow IP (as fwknop\'s ipv6 branch writes it) is granted; addresses that must never be opened are refused', () => {
  const now = 1_800_000_000;
  const pkt = (allowIp: string): SpaOutcome =>
    authorizeSpa({ payload: Buffer.from(encodeSpa({ allowIp, ports: [{ port: 22, proto: 'tcp' }], timestamp: now }, keys), 'latin1'), src: '203.0.113.9', now: now * 1000 }, [stanza()], MAX_AGE, decodeSpa);
  const v6 = pkt('2001:db8::7');
  assert.deepEqual('grant' in v6 && [v6.grant.ip, v6.grant.family], ['2001:db8::7', 6]);
  for (const ip of ['127.0.0.1', '224.0.0.1', '255.255.255.255', '::1', 'ff02::1', '::']) assert.equal(denial(pkt(ip)), 'ip-refused', ip);
  assert.equal(denial(authorize('source-ip', [stanza()], '127.0.0.1')), 'ip-refused', '-s from loopback');
});

void test('SOURCE: ANY, IPv4 and IPv6 ranges, matched against the packet source, first matching stanza that grants wins', () => {
  const office = stanza({ name: 'office', source: cidrs('198.51.100.0/24', '2001:db8:1::/48'), open: [{ port: 443, proto: 'tcp' }] });
  const anywhere = stanza({ name: 'anywhere' });
  assert.equal(denial(authorize('access', [office])), 'no-stanza', '203.0.113.9 is outside every SOURCE');
  const fromOffice = authorize('source-ip', [office, anywhere], '198.51.100.20');
  assert.equal('grant' in fromOffice && fromOffice.grant.stanza.name, 'anywhere', 'office authenticates but does not open tcp/22: the next stanza does');
  const v6 = authorize('source-ip-v6', [stanza({ source: cidrs('2001:db8:1::/48') })], '2001:db8:1:2::3');
  assert.equal(denial(v6), 'grant');
  assert.equal(denial(authorize('source-ip-v6', [stanza({ source: cidrs('2001:db8:1::/48') })], '2001:db8:2::3')), 'no-stanza');
  assert.equal(denial(authorize('access', [stanza({ source: cidrs('203.0.113.9') })])), 'grant', 'a single host');
});

void test('a stanza whose keys do not match is skipped; the denial reported is the authenticated stanza\'s', () => {
  const wrong = stanza({ name: 'other', keys: otherKeys });
  assert.equal(denial(authorize('access', [wrong])), 'hmac');
  const o = authorize('access', [wrong, stanza({ open: [{ port: 443, proto: 'tcp' }] })]);
  assert.equal(denial(o), 'port-not-allowed');
  assert.equal(!('grant' in o) && o.stanza?.origin, 'access.conf:1');
});

void test('OPEN_PORTS must hold every requested port, RESTRICT_PORTS none; without OPEN_PORTS anything not restricted', () => {
  assert.equal(denial(authorize('two-ports', [stanza()])), 'port-not-allowed', 'udp/53 is not in OPEN_PORTS tcp/22');
  const both = authorize('two-ports', [stanza({ open: [{ port: 53, proto: 'udp' }, { port: 22, proto: 'tcp' }] })]);
  assert.deepEqual('grant' in both && both.grant.ports, [{ port: 22, proto: 'tcp' }, { port: 53, proto: 'udp' }]);
  assert.equal(denial(authorize('two-ports', [stanza({ open: 'any' })])), 'grant');
  assert.equal(denial(authorize('two-ports', [stanza({ open: 'any', restrict: [{ port: 53, proto: 'udp' }] })])), 'port-restricted');
  assert.deepEqual(spaOpenPorts([stanza(), stanza({ open: 'any' }), stanza({ open: [{ port: 22, proto: 'tcp' }, { port: 53, proto: 'udp' }] })]), [{ port: 22, proto: 'tcp' }, { port: 53, proto: 'udp' }]);
});

void test('REQUIRE_USERNAME and an expired stanza refuse', () => {
  assert.equal(denial(authorize('user-alice', [stanza({ requireUsername: 'alice' })])), 'grant');
  assert.equal(denial(authorize('access', [stanza({ requireUsername: 'alice' })])), 'username', 'the access packet says root');
  assert.equal(denial(authorize('access', [stanza({ expiresAt: at('access', -1) })])), 'stanza-expired');
});

void test('decideSpa on a message alone: the same rules without the decoder', () => {
  const m = message('client-timeout');
  const d = decideSpa(stanza({ maxTtlMs: 60_000 }), m, { src: '203.0.113.9', now: m.timestamp * 1000, maxPacketAgeMs: MAX_AGE });
  assert.ok('grant' in d);
  assert.equal(d.grant.ttlMs, 60_000);
});

void test('SOURCE ranges: host bits cleared as fwknopd does, /0 and junk refused with what to write', () => {
  assert.deepEqual(cidrs('10.1.2.3/8', '2001:db8::1/32', '198.51.100.7').map((c) => c.text), ['10.0.0.0/8', '2001:db8::/32', '198.51.100.7/32']);
  const problem = (text: string): string => {
    const c = parseCidr(text);
    return typeof c === 'string' ? c : 'parsed';
  };
  assert.match(problem('0.0.0.0/0'), /ANY/);
  assert.match(problem('10.0.0.0/33'), /1-32/);
  assert.match(problem('example.com'), /not an address/);
});
