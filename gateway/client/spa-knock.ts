// An fwknop-compatible SPA knock from the fwknop client's own ~/.fwknoprc (the stanza named like
// the host, else [default]): KEY_BASE64, HMAC_KEY_BASE64, HMAC_DIGEST_TYPE, SPA_SERVER_PORT. The
// packet asks for the source address (fwknop -s), so it opens exactly the address it leaves from.
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { describeError, kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import type { HmacDigest, SpaKeys } from '../core/spa.ts';
import { encodeSpa } from '../protocol/fwknop.ts';

export interface SpaClientConfig { readonly keys: SpaKeys; readonly port: number }

const DIGESTS: Readonly<Record<string, HmacDigest>> = { sha1: 'sha1', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512', sha3_256: 'sha3_256', sha3_512: 'sha3_512' };

/** Reads the stanza for `host` (or [default]) of an fwknoprc file. */
export async function readFwknoprc(path: string, host: string): Promise<SpaClientConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw kgwError('KGW_CONFIG_READ', `cannot read the SPA key file ${path}: ${describeError(err)}`, { path }, err);
  }
  const stanzas = new Map<string, Map<string, string>>();
  let current = 'default';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = section[1] ?? 'default';
      continue;
    }
    const [key = '', ...rest] = line.split(/\s+/);
    if (!stanzas.has(current)) stanzas.set(current, new Map());
    stanzas.get(current)?.set(key.toUpperCase(), rest.join(' '));
  }
  const s = stanzas.get(host) ?? stanzas.get('default') ?? new Map<string, string>();
  const keyBase64 = s.get('KEY_BASE64');
  const hmacKeyBase64 = s.get('HMAC_KEY_BASE64');
  if (!keyBase64 || !hmacKeyBase64) throw kgwError('KGW_CONFIG_INVALID', `${path} has no stanza [${host}] or [default] with KEY_BASE64 and HMAC_KEY_BASE64`, { path });
  const digest = DIGESTS[(s.get('HMAC_DIGEST_TYPE') ?? 'sha256').toLowerCase()];
  if (!digest) throw kgwError('KGW_CONFIG_INVALID', `${path}: HMAC_DIGEST_TYPE must be one of ${Object.keys(DIGESTS).join(', ')}`, { path });
  const port = Number(s.get('SPA_SERVER_PORT') ?? '62201');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw kgwError('KGW_CONFIG_INVALID', `${path}: SPA_SERVER_PORT must be 1-65535`, { path });
  return { keys: { keyBase64, hmacKeyBase64, hmacDigest: digest }, port };
}

/** Sends one SPA packet for `open` to address:port; the grant is for the packet's source address. */
export async function sendSpa(address: string, family: 4 | 6, spa: SpaClientConfig, open: readonly PortSpec[]): Promise<void> {
  const packet = encodeSpa({ allowIp: '0.0.0.0', ports: open, timestamp: Math.floor(Date.now() / 1000) }, spa.keys);
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => socket.send(packet, spa.port, address, (err) => (err ? reject(err) : resolve())));
  } finally {
    socket.close();
  }
}
