// The fwknop 2.x wire format against packets the real Debian client made (test/fixtures/fwknop/
// packets.ts; each entry keeps the exact `fwknop --test --save-packet …` command that made it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSpa, encodeSpa, spaPacketDigest } from '../../gateway/protocol/fwknop.ts';
import { SALTED_B64 } from '../../gateway/protocol/fwknop-crypto.ts';
import type { HmacDigest, SpaDecoded, SpaKeys } from '../../gateway/core/spa.ts';
import { HMAC_KEY_BASE64, KEY_BASE64, PACKETS, PASSPHRASE } from '../fixtures/fwknop/packets.ts';

const keys = (hmacDigest: HmacDigest = 'sha256', keyBase64 = KEY_BASE64): SpaKeys => ({ keyBase64, hmacKeyBase64: HMAC_KEY_BASE64, hmacDigest });
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const decode = (packet: string, k: SpaKeys = keys()): SpaDecoded => decodeSpa(bytes(packet), k);

function decoded(name: keyof typeof PACKETS, k: SpaKeys = keys()) {
  const r = decode(PACKETS[name].packet, k);
  assert.ok(r.ok, `${name}: ${r.ok ? '' : `${r.reason}: ${r.detail}`}`);
  return r;
}

void test("the client's plain access packet decodes to the fields fwknop -v printed", () => {
  const p = PACKETS.access;
  const { message, packetDigest } = decoded('access');
  assert.deepEqual(message, {
    rand: p.rand, user: 'root', timestamp: p.timestamp, version: '3.0.0', type: 1,
    allowIp: '198.51.100.7', ports: [{ proto: 'tcp', port: 22 }], digest: 'sha256',
  });
  assert.equal(packetDigest, spaPacketDigest(bytes(p.packet)));
  assert.match(packetDigest, /^[0-9a-f]{64}$/);
});

void test('every HMAC digest type the client offers verifies with the matching HMAC_DIGEST_TYPE, and only with it', () => {
  for (const d of ['sha1', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
    assert.equal(decoded(`hmac-${d}`, keys(d)).message.allowIp, '198.51.100.7');
    const wrong = decode(PACKETS[`hmac-${d}`].packet, keys('sha256'));
    assert.equal(wrong.ok ? 'ok' : wrong.reason, 'hmac', `${d} packet against a sha256 stanza`);
  }
});

void test('every message digest type decodes, SHA3 told apart from SHA-2 of the same length', () => {
  for (const d of ['md5', 'sha1', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
    assert.equal(decoded(`digest-${d}`).message.digest, d);
  }
});

void test('-s, -f, two ports, -U, a passphrase KEY: the fields come through', () => {
  assert.equal(decoded('source-ip').message.allowIp, '0.0.0.0');
  assert.equal(decoded('source-ip-v6').message.allowIp, '0.0.0.0', 'sent to ::1, the message still says 0.0.0.0');
  const timeout = decoded('client-timeout').message;
  assert.deepEqual([timeout.type, timeout.clientTimeout], [3, 600]);
  assert.deepEqual(decoded('two-ports').message.ports, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }]);
  assert.equal(decoded('user-alice').message.user, 'alice');
  assert.equal(decoded('passphrase', keys('sha256', Buffer.from(PASSPHRASE).toString('base64'))).message.allowIp, '198.51.100.7');
});

void test('command and NAT messages decode with their type, for the policy to refuse', () => {
  const cmd = decoded('command').message;
  assert.deepEqual([cmd.type, cmd.command, cmd.ports], [0, 'touch /tmp/pwned', []]);
  const nat = decoded('nat').message;
  assert.deepEqual([nat.type, nat.natAccess], [2, '192.168.1.2,22']);
  const natTimeout = decoded('nat-timeout').message;
  assert.deepEqual([natTimeout.type, natTimeout.natAccess, natTimeout.clientTimeout], [4, '192.168.1.2,22', 90]);
  assert.equal(decoded('nat-local').message.type, 5);
});

void test('a wrong KEY fails after the HMAC, a wrong HMAC key fails at the HMAC, a non-CBC mode fails to decrypt', () => {
  const otherKey = Buffer.alloc(32, 7).toString('base64');
  const r1 = decode(PACKETS.access.packet, keys('sha256', otherKey));
  assert.equal(r1.ok ? 'ok' : r1.reason, 'decrypt');
  const r2 = decode(PACKETS.access.packet, { ...keys(), hmacKeyBase64: Buffer.alloc(64, 1).toString('base64') });
  assert.equal(r2.ok ? 'ok' : r2.reason, 'hmac');
  const r3 = decode(PACKETS['mode-cfb'].packet);
  assert.equal(r3.ok ? 'ok' : r3.reason, 'decrypt');
  const r4 = decode(PACKETS.passphrase.packet, keys('sha256', Buffer.from(`${PASSPHRASE}0`).toString('base64')));
  assert.equal(r4.ok ? 'ok' : r4.reason, 'decrypt', 'a passphrase is used as its bytes, not padded to 32');
});

void test('truncated, extended, prefixed, padded or non-base64 packets are refused with a reason, before any decryption', () => {
  const p = PACKETS.access.packet;
  const cases: [string, string][] = [
    [p.slice(0, -1), 'hmac'],
    [p.slice(1), 'hmac'],
    [`${p}A`, 'hmac'],
    [p.slice(0, 100), 'size'],
    [`${SALTED_B64}${p}`, 'salted-prefix'],
    [`${p}=`, 'not-base64'],
    [`${p.slice(0, 50)} ${p.slice(51)}`, 'not-base64'],
    ['A'.repeat(1501), 'size'],
    ['', 'size'],
  ];
  for (const [packet, reason] of cases) {
    const r = decode(packet);
    assert.equal(r.ok ? 'ok' : r.reason, reason, packet.slice(0, 40));
  }
});

void test('flipping any single bit of a real packet is refused', () => {
  const p = bytes(PACKETS['two-ports'].packet);
  for (let i = 0; i < p.length; i++) {
    for (const bit of [0, 3, 6]) {
      const copy = Buffer.from(p);
      copy[i] = (copy[i] ?? 0) ^ (1 << bit);
      const r = decodeSpa(copy, keys());
      assert.equal(r.ok, false, `byte ${i} bit ${bit}`);
    }
  }
});

void test('the encoder reproduces a client packet byte for byte from the same salt, random value and timestamp', () => {
  for (const name of ['access', 'client-timeout', 'two-ports', 'source-ip'] as const) {
    const fixture = PACKETS[name];
    const { message } = decoded(name);
    const salt = Buffer.from(SALTED_B64 + fixture.packet.slice(0, 14), 'base64').subarray(8, 16);
    const packet = encodeSpa({
      allowIp: message.allowIp, ports: message.ports, timestamp: message.timestamp, user: message.user, rand: message.rand, salt,
      ...(message.clientTimeout !== undefined ? { clientTimeout: message.clientTimeout } : {}),
    }, keys());
    assert.equal(packet, fixture.packet, name);
  }
});

void test('encoded packets round-trip for every digest and HMAC type, IPv6 allow IPs included', () => {
  for (const hmac of ['sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
    for (const digest of ['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
      const k = keys(hmac);
      const packet = encodeSpa({ allowIp: '2001:db8::7', ports: [{ port: 22, proto: 'tcp' }], timestamp: 1_800_000_000, clientTimeout: 60, digest }, k);
      const r = decode(packet, k);
      assert.ok(r.ok, `${hmac}/${digest}: ${r.ok ? '' : r.detail}`);
      assert.deepEqual([r.message.allowIp, r.message.digest, r.message.type, r.message.clientTimeout], ['2001:db8::7', digest, 3, 60]);
    }
  }
});

void test('two packets with the same request differ (random salt and value), so their replay digests differ', () => {
  const req = { allowIp: '198.51.100.7', ports: [{ port: 22, proto: 'tcp' as const }], timestamp: 1_800_000_000 };
  const a = encodeSpa(req, keys());
  const b = encodeSpa(req, keys());
  assert.notEqual(a, b);
  assert.notEqual(spaPacketDigest(bytes(a)), spaPacketDigest(bytes(b)));
});

void test('the encoder refuses a request it cannot express, with a coded error', () => {
  assert.throws(() => encodeSpa({ allowIp: 'nope', ports: [{ port: 22, proto: 'tcp' }], timestamp: 1 }, keys()), /KGW_SPA_REQUEST/);
  assert.throws(() => encodeSpa({ allowIp: '198.51.100.7', ports: [], timestamp: 1 }, keys()), /KGW_SPA_REQUEST/);
  assert.throws(() => encodeSpa({ allowIp: '198.51.100.7', ports: [{ port: 0, proto: 'tcp' }], timestamp: 1 }, keys()), /KGW_SPA_REQUEST/);
});
