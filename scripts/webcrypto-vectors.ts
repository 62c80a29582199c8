// Relay protocol v1 test vectors made by WebCrypto itself (the API the knock page signs with), not
// by node:crypto's own sign(): one key pair per public-key algorithm, its raw public key as the
// keys file holds it, and signatures over canonical strings. Made once and committed:
//   node scripts/webcrypto-vectors.ts > test/fixtures/relay-v1-webcrypto.json
// (Node's globalThis.crypto.subtle is WebCrypto; chromium's is checked by test/e2e/phone.test.ts.)
import { webcrypto } from 'node:crypto';

const subtle = webcrypto.subtle;
const b64 = (buf: ArrayBuffer): string => Buffer.from(buf).toString('base64');

const requests = [
  { client: 'd-pixel', door: 'openSSH', ts: 1790000000, nonce: 'AAECAwQFBgcICQoLDA0ODw==' },
  { client: 'd-pixel', door: 'openSSH', ip: '2001:db8:5::7', ts: 1790000061, nonce: 'EBESExQVFhcYGRobHB0eHw==' },
  { client: 'd-pixel', door: 'ünïcode-door', ip: '198.51.100.4', ts: 1790000122, nonce: 'ICEiIyQlJicoKSorLC0uLw==' },
];
const canonical = (r: (typeof requests)[number]): string => ['knockgw-v1', r.client, r.door, 'ip' in r ? r.ip : '', String(r.ts), r.nonce].join('\n');

const algs = [
  { alg: 'ecdsa-p256', gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  { alg: 'ed25519', gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
] as const;

const vectors = [];
for (const a of algs) {
  const pair = (await subtle.generateKey(a.gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const publicKey = b64(await subtle.exportKey('raw', pair.publicKey));
  for (const r of requests) {
    const sig = b64(await subtle.sign(a.sign, pair.privateKey, new TextEncoder().encode(canonical(r))));
    vectors.push({ alg: a.alg, publicKey, request: r, canonical: canonical(r), sig });
  }
}
process.stdout.write(`${JSON.stringify({ generatedBy: `WebCrypto (Node ${process.version} globalThis.crypto.subtle)`, vectors }, null, 2)}\n`);
