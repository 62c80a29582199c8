// Creates a relay client identity: the private key file the client keeps, and the entry the
// operator adds to the relay/gateway keys file.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { kgwError } from '../core/errors.ts';
import { ed25519RawPublic, keysFileSchema, p256RawPublic, type KeysEntry, type PrivateKeyFile } from '../protocol/relay-v1.ts';

export { KEY_ALGS, type KeyAlg } from '../protocol/relay-v1.ts';

export interface KeygenOptions {
  readonly id: string;
  readonly alg?: KeysEntry['alg'];
  readonly doors: readonly string[];
  readonly allowIp?: boolean;
}

export interface KeygenResult {
  /** JSON text of the client's private key file (write it mode 0600). */
  readonly privateKeyFile: string;
  /** The object to append to `clients` in the keys file. */
  readonly keysEntry: KeysEntry;
}

export function keygen(opts: KeygenOptions): KeygenResult {
  const alg = opts.alg ?? 'ed25519';
  let priv: PrivateKeyFile;
  let entry: KeysEntry;
  const common = { id: opts.id, doors: [...opts.doors], allowIp: opts.allowIp ?? false };
  if (alg === 'hmac-sha256') {
    const secret = randomBytes(32).toString('base64');
    priv = { id: opts.id, alg, secret };
    entry = { ...common, alg, secret };
  } else if (alg === 'ecdsa-p256') {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = privateKey.export({ format: 'jwk' });
    if (typeof jwk.d !== 'string') throw kgwError('KGW_INTERNAL', 'node:crypto did not export the P-256 private key');
    priv = { id: opts.id, alg, privateKey: Buffer.from(jwk.d, 'base64url').toString('base64') };
    entry = { ...common, alg, publicKey: p256RawPublic(privateKey).toString('base64') };
  } else {
    const { privateKey } = generateKeyPairSync('ed25519');
    const jwk = privateKey.export({ format: 'jwk' });
    if (typeof jwk.d !== 'string') throw kgwError('KGW_INTERNAL', 'node:crypto did not export the Ed25519 private key');
    priv = { id: opts.id, alg, privateKey: Buffer.from(jwk.d, 'base64url').toString('base64') };
    entry = { ...common, alg, publicKey: ed25519RawPublic(privateKey).toString('base64') };
  }
  // Validate what we hand out with the very schema the relay will load it with.
  const check = keysFileSchema.safeParse({ clients: [entry] });
  if (!check.success) {
    const issues = check.error.issues.map((i) => `${i.path.slice(2).join('.')}: ${i.message}`).join('; ');
    throw kgwError('KGW_CLI_USAGE', `cannot create a key for "${opts.id}": ${issues}`, { id: opts.id });
  }
  return { privateKeyFile: `${JSON.stringify(priv, null, 2)}\n`, keysEntry: entry };
}
