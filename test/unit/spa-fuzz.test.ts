// Whatever arrives on the SPA port, the decoder answers with a reason and never throws, and nothing
// but a packet made with the stanza's keys gets through to the policy. Seeded, so a failure replays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSpa, MAX_SPA_PACKET } from '../../gateway/protocol/fwknop.ts';
import { SALTED_B64, b64Unpadded, digestB64, encryptSalted, hmacB64 } from '../../gateway/protocol/fwknop-crypto.ts';
import { authorizeSpa, type SpaKeys, type SpaStanza } from '../../gateway/core/spa.ts';
import { HMAC_KEY_BASE64, KEY_BASE64, PACKETS } from '../fixtures/fwknop/packets.ts';

const keys: SpaKeys = { keyBase64: KEY_BASE64, hmacKeyBase64: HMAC_KEY_BASE64, hmacDigest: 'sha256' };
const stanza: SpaStanza = {
  name: 'fuzz', origin: 'fuzz:1', source: 'any', keys, open: 'any', restrict: [], ttlMs: 30_000, maxTtlMs: 300_000, requireSourceAddress: false,
};
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

// Mulberry32: small, seeded, good enough to spread inputs.
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function neverGrants(payload: Uint8Array, label: string): void {
  const decoded = decodeSpa(payload, keys);
  assert.equal(decoded.ok, false, label);
  const outcome = authorizeSpa({ payload, src: '203.0.113.9', now: PACKETS.access.timestamp * 1000 }, [stanza], 120_000, decodeSpa);
  assert.ok(!('grant' in outcome), label);
}

void test('random bytes, random base64 and bit flips of a real packet never throw and never grant', () => {
  // CPU time, not wall time: on a shared 2-core CI box a busy neighbour must not fail this.
  const cpu0 = process.cpuUsage();
  const next = rng(0x5eed);
  const int = (n: number): number => Math.floor(next() * n);
  let runs = 0;
  for (let i = 0; i < 1500; i++, runs++) {
    neverGrants(Uint8Array.from({ length: int(MAX_SPA_PACKET + 200) }, () => int(256)), `random bytes #${i}`);
  }
  for (let i = 0; i < 1500; i++, runs++) {
    const text = Array.from({ length: 100 + int(700) }, () => B64[int(64)]).join('');
    neverGrants(Buffer.from(text, 'latin1'), `random base64 #${i}`);
  }
  const real = Buffer.from(PACKETS['client-timeout'].packet, 'latin1');
  for (let i = 0; i < 1500; i++, runs++) {
    const copy = Buffer.from(real);
    for (let flips = 1 + int(3); flips > 0; flips--) {
      const at = int(copy.length);
      copy[at] = (copy[at] ?? 0) ^ (1 << int(8));
    }
    neverGrants(copy, `bit flips #${i}`);
  }
  const used = process.cpuUsage(cpu0);
  const cpuMs = (used.user + used.system) / 1000;
  assert.ok(cpuMs < 2000, `${runs} inputs took ${cpuMs.toFixed(0)} ms of CPU`);
});

void test('authenticated packets whose plaintext is mangled are refused by the parser, never thrown on', () => {
  const next = rng(42);
  const key = Buffer.from(KEY_BASE64, 'base64');
  const hmacKey = Buffer.from(HMAC_KEY_BASE64, 'base64');
  const valid = PACKETS['nat-timeout'].encoded;
  const seal = (plaintext: string): Buffer => {
    // What a client holding the keys could send: a good HMAC over any ciphertext.
    const cipherText = b64Unpadded(encryptSalted(Buffer.from(plaintext, 'latin1'), key, Buffer.alloc(8, 1)));
    return Buffer.from(cipherText.slice(SALTED_B64.length) + hmacB64('sha256', hmacKey, cipherText), 'latin1');
  };
  for (let i = 0; i < 400; i++) {
    const chars = [...valid];
    for (let edits = 1 + Math.floor(next() * 4); edits > 0; edits--) {
      chars[Math.floor(next() * chars.length)] = ':,/=A0'[Math.floor(next() * 6)] ?? ':';
    }
    const mangled = chars.join('');
    const body = next() < 0.5 ? mangled : `${mangled}:${digestB64('sha256', mangled)}`;
    const r = decodeSpa(seal(body), keys);
    if (r.ok) assert.ok([2, 4].includes(r.message.type), `only a still-valid NAT message may decode: ${body}`);
  }
});
