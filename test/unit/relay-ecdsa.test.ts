// Protocol v1.1: ecdsa-p256 beside ed25519, checked against signatures WebCrypto made
// (test/fixtures/relay-v1-webcrypto.json, from scripts/webcrypto-vectors.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { keygen } from '../../gateway/client/keygen.ts';
import { canonicalString, parseKeys, parsePrivateKeyFile, signKnock, verifyKnock, verifySignature } from '../../gateway/protocol/relay-v1.ts';

const fixture = z.object({
  vectors: z.array(z.object({
    alg: z.enum(['ecdsa-p256', 'ed25519']),
    publicKey: z.string(),
    request: z.object({ client: z.string(), door: z.string(), ip: z.string().optional(), ts: z.number(), nonce: z.string() }),
    canonical: z.string(),
    sig: z.string(),
  })),
}).parse(JSON.parse(readFileSync(new URL('../fixtures/relay-v1-webcrypto.json', import.meta.url), 'utf8')));

function clientOf(alg: string, publicKey: string, doors = ['openSSH', 'ünïcode-door']) {
  const keys = parseKeys(JSON.stringify({ clients: [{ id: 'd-pixel', alg, publicKey, doors }] }), 'vector');
  const c = keys.get('d-pixel');
  assert.ok(c);
  return c;
}

void test('every WebCrypto vector: our canonical string is the one WebCrypto signed, and the signature verifies', () => {
  assert.equal(fixture.vectors.filter((v) => v.alg === 'ecdsa-p256').length, 3);
  for (const v of fixture.vectors) {
    const fields = v.request;
    assert.equal(canonicalString(fields), v.canonical);
    assert.equal(verifySignature(clientOf(v.alg, v.publicKey), fields, v.sig), true, `${v.alg} ${v.canonical}`);
  }
});

void test('a WebCrypto P-256 signature does not verify once any signed field changes', () => {
  for (const v of fixture.vectors.filter((x) => x.alg === 'ecdsa-p256')) {
    const c = clientOf(v.alg, v.publicKey);
    const r = v.request;
    for (const changed of [{ ...r, door: 'other' }, { ...r, ts: r.ts + 1 }, { ...r, ip: '192.0.2.1' }, { ...r, client: 'd-other' }]) {
      assert.equal(verifySignature(c, changed, v.sig), false);
    }
  }
});

void test('only the 64-byte r‖s form is accepted: the same signature in DER, or truncated, is refused', () => {
  const v = fixture.vectors.find((x) => x.alg === 'ecdsa-p256');
  assert.ok(v);
  const raw = Buffer.from(v.sig, 'base64');
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const t = b.subarray(i);
    return (t[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), t]) : t;
  };
  const r = int(raw.subarray(0, 32));
  const s = int(raw.subarray(32));
  const der = Buffer.concat([Buffer.from([0x30, r.length + s.length + 4, 2, r.length]), r, Buffer.from([2, s.length]), s]);
  const c = clientOf(v.alg, v.publicKey);
  assert.equal(verifySignature(c, v.request, der.toString('base64')), false);
  assert.equal(verifySignature(c, v.request, raw.subarray(0, 63).toString('base64')), false);
});

void test('the keys file takes an ecdsa-p256 key only as the 65-byte uncompressed point on the curve', () => {
  const v = fixture.vectors.find((x) => x.alg === 'ecdsa-p256');
  assert.ok(v);
  const point = Buffer.from(v.publicKey, 'base64');
  const compressed = Buffer.concat([Buffer.from([2 + ((point[64] ?? 0) & 1)]), point.subarray(1, 33)]);
  const offCurve = Buffer.from(point);
  offCurve[64] = (offCurve[64] ?? 0) ^ 1;
  const hashPrefixed = Buffer.concat([Buffer.from([5]), createHash('sha512').update('x').digest().subarray(0, 64)]);
  for (const bad of [compressed, offCurve, hashPrefixed]) {
    assert.throws(() => clientOf('ecdsa-p256', bad.toString('base64')), (e: unknown) => isKnockgwError(e) && e.code === 'KGW_CONFIG_INVALID');
  }
});

void test('keygen --alg ecdsa-p256 writes a key file whose knocks the keys entry verifies', () => {
  const k = keygen({ id: 'laptop', alg: 'ecdsa-p256', doors: ['openSSH'] });
  assert.equal(k.keysEntry.alg, 'ecdsa-p256');
  const signer = parsePrivateKeyFile(k.privateKeyFile, 'k');
  const body = signKnock(signer, { door: 'openSSH', ts: 1790000000, nonce: 'AAECAwQFBgcICQoLDA0ODw==' });
  assert.equal(Buffer.from(body.sig, 'base64').length, 64);
  const keys = parseKeys(JSON.stringify({ clients: [k.keysEntry] }), 'k');
  const { client, ip } = verifyKnock(keys, body, '203.0.113.9', 1790000000_000);
  assert.equal(client.id, 'laptop');
  assert.equal(ip, '203.0.113.9');
  // A door the key was not given stays shut.
  const other = signKnock(signer, { door: 'admin', ts: 1790000000, nonce: 'AAECAwQFBgcICQoLDA0ODw==' });
  assert.throws(() => verifyKnock(keys, other, '203.0.113.9', 1790000000_000), (e: unknown) => isKnockgwError(e) && e.code === 'KGW_RELAY_DOOR_FORBIDDEN');
});
