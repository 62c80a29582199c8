// SPA from inside a lab namespace: Debian's fwknop client with explicit keys (no rc file, nothing
// saved in $HOME), raw UDP sends of saved packets (replays), and packets made by our own encoder
// for what the Debian client cannot do (IPv6).
import { fileURLToPath } from 'node:url';
import type { Host } from './netns.ts';
import { HMAC_KEY_BASE64, KEY_BASE64 } from '../fixtures/fwknop/packets.ts';

export { HMAC_KEY_BASE64, KEY_BASE64 };
export const FIXTURES = fileURLToPath(new URL('../fixtures/fwknop/', import.meta.url));
const FWKNOP_PROTOCOL = fileURLToPath(new URL('../../gateway/protocol/fwknop.ts', import.meta.url));

/** YAML `spa:` with the fixture keys: one stanza "laptop" opening 22/tcp for `ttl` seconds. */
export function spaYaml(opts: { ttl?: number; port?: number; extra?: string } = {}): string {
  return `spa:
  port: ${opts.port ?? 62201}
  access:
    - name: laptop
      source: [ANY]
      keyBase64: "${KEY_BASE64}"
      hmacKeyBase64: "${HMAC_KEY_BASE64}"
      open: ["22/tcp"]
      ttl: ${opts.ttl ?? 30}
${opts.extra ?? ''}`;
}

/**
 * Runs Debian's fwknop client in `client` towards `server` (bounded by `timeout`). `args` choose
 * the allow IP (-a IP, -s, -R …) and anything else; -B FILE also saves the packet it sent.
 */
export function fwknop(client: Host, server: string, args: readonly string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return client.exec('timeout', ['15', 'fwknop', '--no-rc-file', '--no-save-args', '--use-hmac', '-A', 'tcp/22', '-D', server,
    '--key-base64-rijndael', KEY_BASE64, '--key-base64-hmac', HMAC_KEY_BASE64, ...args], { allowFail: true });
}

// argv: address, port, then the payloads (text). Sends each as one datagram, in order.
const SEND = `import { createSocket } from 'node:dgram';
const [addr, port, ...payloads] = process.argv.slice(1);
const s = createSocket(addr.includes(':') ? 'udp6' : 'udp4');
for (const p of payloads) await new Promise((r, j) => s.send(Buffer.from(p, 'latin1'), Number(port), addr, (e) => (e ? j(e) : r())));
s.close();`;

/** Sends `payloads` as UDP datagrams from `client` to addr:port (a replay of a saved packet, or our own). */
export async function sendUdp(client: Host, addr: string, payloads: readonly string[], port = 62201): Promise<void> {
  await client.exec('timeout', ['15', process.execPath, '--input-type=module', '-e', SEND, addr, String(port), ...payloads]);
}

/**
 * An SPA packet made by our encoder inside `client` (its clock), for `allowIp` ("0.0.0.0" = -s).
 * Debian's fwknop 2.6.10 client cannot send over IPv6 (it resolves and sends IPv4 only), so the
 * IPv6 tests build the packet — byte for byte what the client would — with protocol/fwknop.ts.
 */
export async function encodeIn(client: Host, allowIp: string, extra: Record<string, unknown> = {}): Promise<string> {
  const code = `import { encodeSpa } from ${JSON.stringify(FWKNOP_PROTOCOL)};
process.stdout.write(encodeSpa({ allowIp: ${JSON.stringify(allowIp)}, ports: [{ port: 22, proto: 'tcp' }], timestamp: Math.floor(Date.now() / 1000), ...${JSON.stringify(extra)} },
  { keyBase64: ${JSON.stringify(KEY_BASE64)}, hmacKeyBase64: ${JSON.stringify(HMAC_KEY_BASE64)}, hmacDigest: 'sha256' }));`;
  return (await client.exec('timeout', ['15', process.execPath, '--input-type=module', '-e', code])).stdout;
}
