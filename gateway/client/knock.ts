// The knock client: one SYN per TCP knock (a non-blocking connect abandoned at once) and one
// small datagram per UDP knock, in order — the same behaviour and arguments as knockd's `knock`.
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { kgwError } from '../core/errors.ts';
import type { PortSpec, Proto } from '../core/grant.ts';

export interface KnockOptions {
  readonly host: string;
  readonly knocks: readonly PortSpec[];
  readonly delayMs: number;
  readonly family?: 4 | 6;
  /** The source address to knock from (a host with several, like the chaos harness's client). */
  readonly localAddress?: string;
  readonly onKnock?: (address: string, knock: PortSpec) => void;
}

/** knockd's `knock` syntax: "7000", "7000:udp"; `defaultProto` comes from -u. */
export function parseKnockArg(arg: string, defaultProto: Proto): PortSpec {
  const m = /^(\d{1,5})(?::(tcp|udp))?$/i.exec(arg.trim());
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw kgwError('KGW_PORT_INVALID', `"${arg}" is not a knock: use PORT or PORT:tcp / PORT:udp with 1 ≤ PORT ≤ 65535`, { arg });
  }
  return { port, proto: (m[2]?.toLowerCase() as Proto | undefined) ?? defaultProto };
}

async function resolveHost(host: string, family: 4 | 6 | undefined): Promise<{ address: string; family: 4 | 6 }> {
  try {
    const found = await lookup(host, family ? { family } : {});
    return { address: found.address, family: found.family === 6 ? 6 : 4 };
  } catch (err) {
    throw kgwError('KGW_CLI_USAGE', `cannot resolve "${host}"${family ? ` as IPv${family}` : ''}`, { host }, err);
  }
}

function tcpKnock(address: string, port: number, localAddress: string | undefined): void {
  const socket = new Socket();
  socket.on('error', () => { /* a closed knock port answers RST or nothing: that is the point */ });
  socket.connect({ host: address, port, ...(localAddress ? { localAddress } : {}) });
  // connect(2) has sent the SYN once libuv ran it; abandoning the socket on the next turn of the
  // loop sends nothing more (RST only if the peer answered).
  setImmediate(() => socket.destroy());
}

async function udpKnock(address: string, family: 4 | 6, port: number): Promise<void> {
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => socket.send(Buffer.alloc(1), port, address, (err) => (err ? reject(err) : resolve())));
  } finally {
    socket.close();
  }
}

export async function knock(opts: KnockOptions): Promise<string> {
  const { address, family } = await resolveHost(opts.host, opts.family);
  for (const [i, k] of opts.knocks.entries()) {
    if (i > 0 && opts.delayMs > 0) await sleep(opts.delayMs);
    opts.onKnock?.(address, k);
    if (k.proto === 'udp') await udpKnock(address, family, k.port);
    else tcpKnock(address, k.port, opts.localAddress);
  }
  // Let the last SYN leave before the process may exit.
  await new Promise((r) => setImmediate(r));
  return address;
}
