// `knockgw ssh HOST [PORT]` as an ssh ProxyCommand: resolve HOST the way ssh would (getaddrinfo's
// first answer), knock for that exact address's family (a relay reached over the same family, or
// a sequence or an fwknop SPA packet sent to that address), wait until the port answers, then carry ssh's bytes over the
// very connection that answered.
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import { describeError, kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import { familyFetch } from './family-fetch.ts';
import { knock } from './knock.ts';
import { relayKnock } from './relay-knock.ts';
import { readFwknoprc, sendSpa } from './spa-knock.ts';

export interface SshProxyOptions {
  readonly host: string;
  readonly port: number;
  readonly family?: 4 | 6;
  readonly relay?: { readonly url: string; readonly keyFile: string; readonly door: string };
  readonly sequence?: readonly PortSpec[];
  /** An fwknoprc file: an SPA packet for PORT/tcp, asking for the packet's source address. */
  readonly spaFile?: string;
  /** How long to wait for the port after the knock (ms). */
  readonly waitMs: number;
  readonly log: (line: string) => void;
}

/** The address ssh would connect to: getaddrinfo's order (RFC 6724), its first answer. */
export async function resolveLikeSsh(host: string, family?: 4 | 6): Promise<{ address: string; family: 4 | 6 }> {
  const literal = isIP(host.replace(/^\[|\]$/g, ''));
  if (literal) return { address: host.replace(/^\[|\]$/g, ''), family: literal === 6 ? 6 : 4 };
  try {
    const all = await lookup(host, { all: true, order: 'verbatim', ...(family ? { family } : {}) });
    const first = all[0];
    if (!first) throw new Error('no address');
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  } catch (err) {
    throw kgwError('KGW_CLI_USAGE', `cannot resolve "${host}"${family ? ` as IPv${family}` : ''}: ${describeError(err)}`, { host }, err);
  }
}

function tryConnect(address: string, port: number, timeoutMs: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    const timer = setTimeout(() => { s.destroy(); resolve(undefined); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', () => { clearTimeout(timer); s.destroy(); resolve(undefined); });
  });
}

/**
 * Connects as soon as the port answers. A SYN the firewall drops gets no answer, so each attempt
 * waits a little (100 ms, growing to 1 s for slow links) before a fresh one.
 */
export async function connectWhenOpen(address: string, port: number, waitMs: number): Promise<Socket> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    const s = await tryConnect(address, port, Math.max(50, Math.min(100 * 1.5 ** attempt, 1000, deadline - Date.now())));
    if (s) return s;
    if (Date.now() >= deadline) throw kgwError('KGW_SSH_UNREACHABLE', `port ${port} on ${address} did not answer within ${Math.round(waitMs / 1000)} s of the knock (wrong door, or the gateway refused it: see its log)`, { address, port });
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function sshProxy(opts: SshProxyOptions, stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream): Promise<void> {
  const target = await resolveLikeSsh(opts.host, opts.family);
  const t0 = Date.now();
  if (opts.relay) {
    const answer = await relayKnock({ url: opts.relay.url, keyFile: opts.relay.keyFile, door: opts.relay.door, fetchImpl: familyFetch(target.family) });
    opts.log(`knocked through ${opts.relay.url} over IPv${target.family}: ${answer.door} for ${answer.ip}`);
  } else if (opts.spaFile) {
    const spa = await readFwknoprc(opts.spaFile, opts.host);
    await sendSpa(target.address, target.family, spa, [{ port: opts.port, proto: 'tcp' }]);
    opts.log(`sent SPA for tcp/${opts.port} to ${target.address} port ${spa.port}/udp`);
  } else if (opts.sequence?.length) {
    await knock({ host: target.address, knocks: [...opts.sequence], delayMs: 0, family: target.family });
    opts.log(`knocked ${target.address} with ${opts.sequence.length} ports`);
  }
  const sock = await connectWhenOpen(target.address, opts.port, opts.waitMs);
  opts.log(`${target.address} port ${opts.port} answered ${Date.now() - t0} ms after the knock`);
  await new Promise<void>((resolve) => {
    stdin.pipe(sock);
    sock.pipe(stdout);
    sock.once('close', () => resolve());
    sock.once('error', () => resolve());
  });
}
